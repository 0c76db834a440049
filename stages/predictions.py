"""A model's predictions on labelled images, and the table of them that stages pass on.

evaluate derives every number from one `Predictions`; gradcam reads the table evaluate
wrote. What both need (captions, the most confident mistakes) is here, once.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix

PREDICTIONS_FILE = "predictions.csv"
TABLE_COLUMNS = ("path", "actual", "predicted", "confidence")


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Log-probabilities from a model's logits, shifted by the row maximum so exp cannot
    overflow."""
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities from a model's logits (float64, each row sums to 1)."""
    return np.exp(log_softmax(logits))


@dataclass(frozen=True)
class Predictions:
    labels: np.ndarray  # (n,) true class index
    logits: np.ndarray  # (n, num_classes)
    class_names: list[str]

    @property
    def log_probabilities(self) -> np.ndarray:
        return log_softmax(self.logits)

    @property
    def probabilities(self) -> np.ndarray:
        return softmax(self.logits)

    @property
    def predicted(self) -> np.ndarray:
        return self.logits.argmax(axis=1)

    @property
    def confidence(self) -> np.ndarray:
        return self.probabilities.max(axis=1)

    def cross_entropy(self) -> float:
        """Mean sparse categorical cross-entropy, as Keras computes it from logits."""
        picked = self.log_probabilities[np.arange(len(self.labels)), self.labels]
        return float(-picked.mean())

    def top_k_accuracy(self, k: int) -> float:
        top = np.argsort(-self.logits, axis=1)[:, :k]
        return float((top == self.labels[:, None]).any(axis=1).mean())

    def confusion(self) -> np.ndarray:
        classes = range(len(self.class_names))
        return confusion_matrix(self.labels, self.predicted, labels=list(classes))


def prediction_table(predictions: Predictions, paths: list[str]) -> pd.DataFrame:
    """One row per image: what DVC's confusion template and the gradcam stage read."""
    names = np.array(predictions.class_names)
    return pd.DataFrame(
        {
            "path": paths,
            "actual": names[predictions.labels],
            "predicted": names[predictions.predicted],
            "confidence": predictions.confidence.round(4),
        }
    )


def most_confident_mistakes(table: pd.DataFrame, count: int, actual: str | None = None):
    """Index labels of wrong rows of a prediction table, the most confident first (ties keep
    table order); only rows of the true class `actual` when it is given."""
    wrong = table[table["actual"] != table["predicted"]]
    if actual is not None:
        wrong = wrong[wrong["actual"] == actual]
    return wrong.sort_values("confidence", ascending=False, kind="stable").index[:count]


def caption(row: pd.Series) -> str:
    return f"true {row['actual']}\npredicted {row['predicted']} ({row['confidence']:.0%})"


def majority_class(train_labels: np.ndarray) -> int:
    """The most frequent training class (the lowest index on a tie): what a model that learnt
    nothing but the class frequencies predicts for every image."""
    return int(np.bincount(train_labels).argmax())
