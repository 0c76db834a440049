"""One honest set of test scores from a model's predictions, and the same scores of the
majority baseline, as a dict for `dvc metrics` and as a Markdown report."""

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import softmax
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    classification_report,
    confusion_matrix,
    f1_score,
    log_loss,
    top_k_accuracy_score,
)

TOP_K = 3
BASELINE_SCORES = ("accuracy", "macro_f1")  # the network must beat every baseline in both
BASELINE_NAMES = {
    "majority": "always the majority class",
    "logistic_regression": "logistic regression on pixels",
    "gradient_boosting": "gradient boosting on pixels",
}


def baseline_name(model: str, pixels: int = 0) -> str:
    """'gradient boosting on 32x32 pixels': the baseline and the thumbnail side val picked."""
    name = BASELINE_NAMES[model]
    return name.replace("on pixels", f"on {pixels}x{pixels} pixels") if pixels else name


WHAT_TO_TRY = (
    "What to try: more photos per class; on photos shot at any angle or distance, "
    "`dvc exp run -S train.rotation=0.03 -S train.zoom=0.08`; "
    "`dvc exp run -S train.model=efficientnetv2b0` with ImageNet weights (on a machine that "
    "can download them); docs/defaults.md says what each training default trades."
)
HEADLINE = {
    "accuracy": "accuracy",
    "balanced_accuracy": "balanced accuracy",
    "macro_f1": "macro F1",
}


@dataclass(frozen=True)
class Predictions:
    labels: np.ndarray  # (n,) true class index
    logits: np.ndarray  # (n, num_classes)
    class_names: list[str]

    @property
    def probabilities(self) -> np.ndarray:
        return softmax(self.logits, axis=1)

    @property
    def predicted(self) -> np.ndarray:
        return self.logits.argmax(axis=1)

    @property
    def confidence(self) -> np.ndarray:
        return self.probabilities.max(axis=1)

    def cross_entropy(self) -> float:
        """Mean sparse categorical cross-entropy, as Keras computes it from logits."""
        classes = range(len(self.class_names))
        return float(log_loss(self.labels, self.probabilities, labels=list(classes)))

    def top_k_accuracy(self, k: int) -> float:
        classes = range(len(self.class_names))
        return float(top_k_accuracy_score(self.labels, self.logits, k=k, labels=list(classes)))

    def confusion(self) -> np.ndarray:
        classes = range(len(self.class_names))
        return confusion_matrix(self.labels, self.predicted, labels=list(classes))


def majority_class(train_labels: np.ndarray) -> int:
    """The most frequent training class (the lowest index on a tie): what a model that learnt
    nothing but the class frequencies predicts for every image."""
    return int(np.bincount(train_labels).argmax())


def headline_scores(labels: np.ndarray, predicted: np.ndarray, classes: list[int]) -> dict:
    return {
        "accuracy": round(accuracy_score(labels, predicted), 4),
        "balanced_accuracy": round(balanced_accuracy_score(labels, predicted), 4),
        "macro_f1": round(
            f1_score(labels, predicted, labels=classes, average="macro", zero_division=0), 4
        ),
    }


def report(predictions: Predictions, baselines: dict) -> dict:
    """accuracy, balanced accuracy, loss, macro/weighted and per-class precision/recall/F1,
    top-3 accuracy (with more than 3 classes), and how they compare with the baselines of
    the baseline stage (`baselines`, its JSON): the majority class, and the best baseline in
    accuracy and in macro F1."""
    classes = list(range(len(predictions.class_names)))
    sklearn = classification_report(
        predictions.labels,
        predictions.predicted,
        labels=classes,
        target_names=predictions.class_names,
        output_dict=True,
        zero_division=0,
    )

    def rounded(scores: dict) -> dict:
        return {
            "precision": round(scores["precision"], 4),
            "recall": round(scores["recall"], 4),
            "f1": round(scores["f1-score"], 4),
            "support": int(scores["support"]),
        }

    model = headline_scores(predictions.labels, predictions.predicted, classes)
    majority = {name: baselines["majority"][name] for name in ("class", *HEADLINE)}
    best = baselines["best"]
    result = {
        **model,
        "loss": round(predictions.cross_entropy(), 4),
        "macro": rounded(sklearn["macro avg"]),
        "weighted": rounded(sklearn["weighted avg"]),
        "majority_baseline": majority,
        "above_majority": {name: round(model[name] - majority[name], 4) for name in model},
        "best_baseline": {score: dict(best[score]) for score in BASELINE_SCORES},
        "above_best_baseline": {
            score: round(model[score] - best[score]["value"], 4) for score in BASELINE_SCORES
        },
        "per_class": {name: rounded(sklearn[name]) for name in predictions.class_names},
        "images": len(predictions.labels),
    }
    if len(classes) > TOP_K:  # top-k of k or fewer classes is 1 by definition
        result[f"top{TOP_K}_accuracy"] = round(predictions.top_k_accuracy(TOP_K), 4)
    return result


def no_better_than_majority(metrics: dict) -> bool:
    """Less than 5 points of balanced accuracy above always predicting one class."""
    return metrics["above_majority"]["balanced_accuracy"] < 0.05


def loses_to_a_baseline(metrics: dict) -> bool:
    return any(margin < 0 for margin in metrics["above_best_baseline"].values())


def warning(metrics: dict) -> str:
    baseline = metrics["majority_baseline"]
    return (
        f"the model is no better than always predicting {baseline['class']!r} (balanced "
        f"accuracy {metrics['balanced_accuracy']:.4f} against {baseline['balanced_accuracy']:.4f})"
        ": see metrics/classification_report.md and plots/evaluate/confusion_matrix.png"
    )


def comparison_text(metrics: dict) -> str:
    """One line: beats every simple baseline (by how much), or which one it loses to."""
    parts = []
    for score in BASELINE_SCORES:
        best, margin = metrics["best_baseline"][score], metrics["above_best_baseline"][score]
        words = "ahead of" if margin >= 0 else "BEHIND"
        parts.append(
            f"{HEADLINE[score]} {margin:+.4f} {words} "
            f"{baseline_name(best['model'], best.get('pixels', 0))} "
            f"({best['value']:.4f})"
        )
    verdict = (
        "loses to a simple baseline" if loses_to_a_baseline(metrics) else "beats the baselines"
    )
    return f"{verdict}: " + "; ".join(parts)


def trust_text(metrics: dict) -> str:
    """How far the confidence can be trusted, in two sentences."""
    calibration, unsure = metrics["calibration"], metrics["unsure"]
    if calibration["applied"]:
        text = (
            f"Calibration error (ECE): {calibration['ece_before']:.4f} before, "
            f"{calibration['ece_after']:.4f} after dividing the logits by the temperature "
            f"{calibration['temperature']:.3f} fitted on val (plots/evaluate/reliability.png)."
        )
    else:
        text = (
            f"Calibration error (ECE): {calibration['ece_before']:.4f}, no temperature "
            f"applied: {calibration['reason']}; on test it would give "
            f"{calibration['ece_with_fitted_temperature']:.4f} (plots/evaluate/reliability.png)."
        )
    if not unsure["threshold"]:
        return text + " No answer is marked unsure."
    rest = unsure["accuracy_when_sure"]
    return text + (
        f" Answers below {unsure['threshold']:.0%} confidence are marked unsure: "
        f"{unsure['unsure_share']:.1%} of the test images"
        + (f", the others are {rest:.2%} right" if rest is not None else "")
        + f" (on val, the answers at or above {unsure['threshold']:.0%} are wrong "
        f"{unsure['error_ratio']:g} times as often as all answers: train.unsure_error_ratio)."
    )


def report_markdown(metrics: dict, baselines: dict) -> str:
    """The classification report as Markdown tables (readable as plain text too)."""
    extras = [f"loss {metrics['loss']:.4f}"]
    if f"top{TOP_K}_accuracy" in metrics:
        extras.append(f"top-{TOP_K} accuracy {metrics[f'top{TOP_K}_accuracy']:.4f}")
    majority = metrics["majority_baseline"]["class"]
    columns = {"majority": f"always {majority}"}
    for key in ("logistic_regression", "gradient_boosting"):
        pixels = baselines[key].get("pixels")
        columns[key] = key.replace("_", " ") + (f", {pixels}x{pixels}" if pixels else "")
    headline = pd.DataFrame(
        {
            label: {
                "model": metrics[name],
                **{columns[key]: baselines[key][name] for key in columns},
                "model - best baseline": metrics[name]
                - max(baselines[key][name] for key in columns),
            }
            for name, label in HEADLINE.items()
        }
    ).T
    lines = [
        f"# Test set: {metrics['images']} images, {len(metrics['per_class'])} classes",
        "",
        f"Baselines fitted on the same train split, on {baselines['features']}.",
        "",
        headline.to_markdown(floatfmt=[""] + [".4f"] * (len(columns) + 1) + ["+.4f"]),
    ]
    lines += ["", " · ".join(extras), ""]
    if "calibration" in metrics:
        lines += [trust_text(metrics), ""]
    if loses_to_a_baseline(metrics):
        lines += [f"**The model {comparison_text(metrics)}.** {WHAT_TO_TRY}", ""]
    if no_better_than_majority(metrics):
        lines += [f"**Warning: {warning(metrics)}**", ""]
    rows = {**metrics["per_class"], "**macro avg**": metrics["macro"]}
    rows["**weighted avg**"] = metrics["weighted"]
    per_class = pd.DataFrame(rows).T[["precision", "recall", "f1", "support"]]
    per_class = per_class.rename(columns={"f1": "F1"}).rename_axis("class")
    lines.append(per_class.to_markdown(floatfmt=["", ".4f", ".4f", ".4f", ".0f"]))
    return "\n".join(lines) + "\n"
