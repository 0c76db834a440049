"""How far a model's confidence can be trusted: temperature scaling, the expected calibration
error, and the confidence below which an answer is marked unsure.

Networks trained with cross-entropy are often over-confident: "98%" is right less often
than 98% of the time. Dividing the logits by one temperature, fitted on the val split,
fixes most of it without changing any answer (the argmax is the same). Folded into the last
layer, the saved model, predict and every export give the calibrated probabilities.

A temperature fitted on a few hundred val photos can also make it worse (the val split is
not the test split), so it is kept only when it pays on val photos it was not fitted on:
fitted on 4 folds of val, applied to the fifth, in turn; otherwise the model keeps 1.
"""

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax
from sklearn.model_selection import KFold

CALIBRATION_BINS = 15  # equal-width confidence bins, as in Guo et al. (2017)
# Temperatures searched: from 1/20 (sharpen) to 20 (soften); log-spaced, so the search is
# as fine for an over-confident model as for an under-confident one.
LOG_TEMPERATURE_BOUNDS = (-np.log(20), np.log(20))
LOGITS_LAYER = "logits"  # the Dense layer every architecture ends with (architectures.py)
CALIBRATION_FOLDS = 5


def negative_log_likelihood(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    log_probabilities = log_softmax(np.asarray(logits, np.float64) / temperature, axis=1)
    return float(-log_probabilities[np.arange(len(labels)), labels].mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature T that minimises the negative log-likelihood of softmax(logits / T)."""
    result = minimize_scalar(
        lambda log_t: negative_log_likelihood(logits, labels, float(np.exp(log_t))),
        bounds=LOG_TEMPERATURE_BOUNDS,
        method="bounded",
        options={"xatol": 1e-4},
    )
    return round(float(np.exp(result.x)), 4)


@dataclass(frozen=True)
class Reliability:
    """Confidence against accuracy in equal-width bins: a reliability diagram's data."""

    lower: np.ndarray  # each bin's lower edge
    count: np.ndarray  # answers whose confidence falls in the bin
    confidence: np.ndarray  # their mean confidence (0 for an empty bin)
    accuracy: np.ndarray  # the share of them that is right (0 for an empty bin)

    @property
    def ece(self) -> float:
        """Expected calibration error: the mean |accuracy - confidence| over the bins,
        weighted by how many answers each holds."""
        total = max(int(self.count.sum()), 1)
        return float((self.count * np.abs(self.accuracy - self.confidence)).sum() / total)


def reliability(
    probabilities: np.ndarray, labels: np.ndarray, bins: int = CALIBRATION_BINS
) -> Reliability:
    return binned(probabilities.max(axis=1), probabilities.argmax(axis=1) == labels, bins)


def binned(confidence: np.ndarray, correct: np.ndarray, bins: int = CALIBRATION_BINS):
    """The reliability diagram of answers given as their confidence and whether they were
    right."""
    edges = np.linspace(0, 1, bins + 1)
    # Bin i holds (edges[i], edges[i + 1]]; a confidence of exactly 0 cannot occur.
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    count = np.bincount(index, minlength=bins)
    sums = np.bincount(index, weights=confidence, minlength=bins)
    hits = np.bincount(index, weights=correct.astype(float), minlength=bins)
    nonempty = np.maximum(count, 1)
    return Reliability(edges[:-1], count, sums / nonempty, hits / nonempty)


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray) -> float:
    return reliability(probabilities, labels).ece


def fold_temperature(model, temperature: float) -> None:
    """Divide the last layer's weights and bias by `temperature`, so the model itself
    returns logits / temperature: every format exported from it is calibrated alike."""
    layer = model.get_layer(LOGITS_LAYER)
    layer.set_weights([weight / temperature for weight in layer.get_weights()])


def unsure_threshold(confidence: np.ndarray, correct: np.ndarray, error_ratio: float) -> float:
    """The lowest confidence t such that the answers at t or above are wrong at most
    `error_ratio` times as often as all answers (0.5: half as often); 0 when every answer is
    right, so none need be marked.

    Relative to the model's own error rate, so the rule means the same on a set it gets 99%
    right as on one it gets 80% right, where a fixed accuracy target marks either nothing
    or most answers unsure.
    """
    confidence, correct = np.asarray(confidence, np.float64), np.asarray(correct, bool)
    order = np.argsort(-confidence, kind="stable")
    sorted_confidence, sorted_correct = confidence[order], correct[order]
    overall_error = 1 - sorted_correct.mean()
    if overall_error == 0:
        return 0.0
    kept = np.arange(1, len(order) + 1)
    error_kept = np.cumsum(~sorted_correct) / kept
    # Only cut between distinct confidences: equal ones are kept or marked together.
    last_of_value = np.append(sorted_confidence[1:] != sorted_confidence[:-1], True)
    allowed = last_of_value & (error_kept <= error_ratio * overall_error)
    if not allowed.any():
        return float(sorted_confidence[0])
    cut = np.flatnonzero(allowed)[-1]  # the most answers kept that still meet the rule
    if cut == len(order) - 1:
        return 0.0
    return float(sorted_confidence[cut])


def selective_scores(confidence: np.ndarray, correct: np.ndarray, threshold: float) -> dict:
    """The share of answers marked unsure (below `threshold`) and the accuracy of the rest."""
    confidence, correct = np.asarray(confidence), np.asarray(correct, bool)
    sure = confidence >= threshold
    return {
        "threshold": round(float(threshold), 4),
        "unsure_share": round(float(1 - sure.mean()), 4),
        "accuracy_when_sure": round(float(correct[sure].mean()), 4) if sure.any() else None,
        "accuracy_when_unsure": round(float(correct[~sure].mean()), 4) if (~sure).any() else None,
    }


def calibrated_probabilities(logits: np.ndarray, temperature: float) -> np.ndarray:
    return softmax(np.asarray(logits, np.float64) / temperature, axis=1)


def out_of_fold_probabilities(
    logits: np.ndarray, labels: np.ndarray, folds: int = CALIBRATION_FOLDS
) -> np.ndarray | None:
    """Each answer's probabilities under a temperature fitted on the other folds: what the
    fit does to photos it has not seen. None when there are too few answers to fold."""
    folds = min(folds, len(labels))
    if folds < 2:
        return None
    result = np.empty_like(logits, dtype=np.float64)
    for fit_rows, held_rows in KFold(folds, shuffle=True, random_state=0).split(logits):
        temperature = fit_temperature(logits[fit_rows], labels[fit_rows])
        result[held_rows] = calibrated_probabilities(logits[held_rows], temperature)
    return result


@dataclass(frozen=True)
class Calibration:
    temperature: float  # what the model applies: the fitted one when it pays, else 1
    fitted_temperature: float  # fitted on the whole val split
    unsure_below: float
    unsure_error_ratio: float  # the rule that chose unsure_below (train.unsure_error_ratio)
    val_ece_before: float
    val_ece_cross_validated: float  # with temperatures fitted on other val folds
    reason: str  # why the temperature is or is not applied, in a sentence


def choose_temperature(
    logits: np.ndarray, labels: np.ndarray
) -> tuple[float, float, float, float, str]:
    """(temperature to apply, fitted temperature, val ECE before, cross-validated val ECE
    after, reason): the fitted temperature only if it lowers the ECE on held-out folds."""
    fitted = fit_temperature(logits, labels)
    before = round(expected_calibration_error(softmax(logits, axis=1), labels), 4)
    held_out = out_of_fold_probabilities(logits, labels)
    if held_out is None:
        return 1.0, fitted, before, before, "too few val photos to check a temperature"
    after = round(expected_calibration_error(held_out, labels), 4)
    if after < before:
        reason = (
            f"it lowers the ECE on val photos it was not fitted on ({before:.4f} -> {after:.4f})"
        )
        return fitted, fitted, before, after, reason
    reason = (
        f"a fitted temperature ({fitted:.3f}) does not lower the ECE on val photos it was "
        f"not fitted on ({before:.4f} -> {after:.4f}), so none is applied"
    )
    return 1.0, fitted, before, after, reason


def calibrate(
    model, images: np.ndarray, labels: np.ndarray, error_ratio: float, batch_size: int
) -> Calibration:
    """Choose the temperature and fit the unsure threshold on (val) images, and fold the
    temperature into `model`, which from then on returns calibrated logits."""
    logits = np.asarray(model.predict(images, batch_size=batch_size, verbose=0), np.float64)
    temperature, fitted, before, after, reason = choose_temperature(logits, labels)
    probabilities = calibrated_probabilities(logits, temperature)
    correct = probabilities.argmax(axis=1) == labels
    threshold = unsure_threshold(probabilities.max(axis=1), correct, error_ratio)
    fold_temperature(model, temperature)
    return Calibration(
        temperature=temperature,
        fitted_temperature=fitted,
        unsure_below=threshold,
        unsure_error_ratio=error_ratio,
        val_ece_before=before,
        val_ece_cross_validated=after,
        reason=reason,
    )


def calibration_report(
    logits: np.ndarray, labels: np.ndarray, unsure_below: float, calibration: dict
) -> tuple[dict, dict[str, Reliability]]:
    """Test-split figures of a model whose logits are already divided by the temperature
    train applied (`calibration`: train's record of it, Calibration's fields): the ECE
    without a temperature, with the one applied and with the one fitted (the same when it
    was applied), and what the unsure threshold does; with the reliability diagrams of no
    temperature and of the fitted one."""
    applied, fitted = calibration["temperature"], calibration["fitted_temperature"]
    raw = np.asarray(logits, np.float64) * applied  # the calibration undone
    before, after = softmax(raw, axis=1), softmax(np.asarray(logits, np.float64), axis=1)
    with_fitted = calibrated_probabilities(raw, fitted)
    label = "applied" if applied == fitted else "not applied"
    diagrams = {
        "without a temperature": reliability(before, labels),
        f"temperature {fitted:.3f}, fitted on val ({label})": reliability(with_fitted, labels),
    }
    correct = after.argmax(axis=1) == labels
    metrics = {
        "calibration": {
            "temperature": applied,
            "fitted_temperature": fitted,
            "applied": applied == fitted,
            "reason": calibration["reason"],
            "ece_before": round(reliability(before, labels).ece, 4),
            "ece_after": round(reliability(after, labels).ece, 4),
            "ece_with_fitted_temperature": round(reliability(with_fitted, labels).ece, 4),
        },
        "unsure": selective_scores(after.max(axis=1), correct, unsure_below)
        | {"error_ratio": calibration["unsure_error_ratio"]},
    }
    return metrics, diagrams
