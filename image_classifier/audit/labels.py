"""Suspect labels: images whose given label the data disagrees with, by confident learning
(cleanlab) on out-of-sample class probabilities.

Out of sample for every image: val and test images get the trained model's (calibrated)
probabilities, since it never trained on them; train images get those of a logistic
regression on the network's embeddings, fitted fold by fold without the image itself.
"""

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

# A model that gives its train photos their given label this much more often than val
# photos has learnt the train labels themselves: its embeddings carry the wrong ones too.
MEMORISED_GAP = 0.05


def given_label_accuracy(probabilities: np.ndarray, labels: np.ndarray, splits: np.ndarray):
    """How often the model's answer is the given label, on train and on val."""
    right = probabilities.argmax(axis=1) == labels
    return {
        f"{split}_accuracy": round(float(right[splits == split].mean()), 4)
        for split in ("train", "val")
    }


def cross_validated_probabilities(
    embeddings: np.ndarray, labels: np.ndarray, num_classes: int, folds: int, seed: int
) -> np.ndarray:
    """Each image's class probabilities from a classifier fitted on the other folds."""
    smallest = int(np.bincount(labels, minlength=num_classes)[np.unique(labels)].min())
    splitter = StratifiedKFold(max(2, min(folds, smallest)), shuffle=True, random_state=seed)
    # C = 0.1: probabilities less extreme than C = 1's; with filter "both", it found the
    # planted flips more precisely on every set measured (docs/defaults.md).
    classifier = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=500))
    probabilities = np.zeros((len(labels), num_classes))
    present = np.unique(labels)
    predicted = cross_val_predict(
        classifier, embeddings, labels, cv=splitter, method="predict_proba"
    )
    probabilities[:, present] = predicted
    return probabilities


def suspect_labels(labels: np.ndarray, probabilities: np.ndarray) -> pd.DataFrame:
    """The images cleanlab finds mislabelled (both of its filters: prune by noise rate and
    the confident joint), worst first: index,
    given and suggested class (the most probable one), and the label quality score (the
    probability of the given label: low is suspect)."""
    from cleanlab.filter import find_label_issues

    issues = find_label_issues(
        labels,
        probabilities,
        filter_by="both",
        return_indices_ranked_by="self_confidence",
    )
    issues = np.asarray(issues, int)
    return pd.DataFrame(
        {
            "index": issues,
            "given": labels[issues],
            "suggested": probabilities[issues].argmax(axis=1),
            "score": probabilities[issues, labels[issues]].round(4),
        }
    )
