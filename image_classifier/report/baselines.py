"""The simple models a data scientist tries first, fitted on small raw pixels, so that every
run says how the network compares with them.

Majority class (always the most frequent training class), logistic regression (standardised
pixels) and gradient boosting (scikit-learn's HistGradientBoosting at its default
settings), on thumbnails of the resized images: 16x16 (in colour when the photos have
colour) and 32x32 grayscale. Each of the two pixel models is tried on both (and logistic
regression at every C and class weighting); the val split picks, by the score that
`train.monitor` names, as it picks the network's epoch. They are scored on the test split
with the network's own scoring function (report/scoring.py).
"""

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, f1_score, log_loss
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from image_classifier.data.dataset import Subset
from image_classifier.report.scoring import BASELINE_SCORES, headline_scores, majority_class

# Thumbnail sides tried: 16 wins where the class is in the overall shape and colour
# (silhouettes, garments, drawings), 32 where it is in finer marks (cracks in solar cells);
# docs/defaults.md. 32 px in grayscale only: no candidate has more than 1,024 features, which
# keeps the stage under a minute on a few thousand photos.
PIXELS = (16, 32)
COLOUR_PIXELS = 16
C_VALUES = (0.001, 0.01, 0.1, 1.0)
CLASS_WEIGHTS = (None, "balanced")
# Candidates are compared on at most this many train images; the winner is then fitted on
# all of them, so the choice costs the same at any size.
CHOICE_IMAGES = 2000


def is_grayscale(images: np.ndarray) -> bool:
    return bool(
        (images[..., 0] == images[..., 1]).all() and (images[..., 1] == images[..., 2]).all()
    )


def in_colour(pixels: int, gray: bool) -> bool:
    return pixels == COLOUR_PIXELS and not gray


def pixel_features(images: np.ndarray, gray: bool, pixels: int) -> np.ndarray:
    """uint8 images (n, size, size, 3) -> float32 (n, pixels * pixels * channels) thumbnails:
    three channels at COLOUR_PIXELS when the photos have colour, else one."""
    mode = "RGB" if in_colour(pixels, gray) else "L"
    thumbnails = np.stack(
        [
            np.asarray(
                Image.fromarray(image).convert(mode).resize((pixels, pixels), Image.BILINEAR)
            )
            for image in images
        ]
    )
    return thumbnails.reshape(len(thumbnails), -1).astype(np.float32)


def val_score(monitor: str, model, x_val: np.ndarray, y_val: np.ndarray, classes) -> float:
    """Higher is better: the score `train.monitor` names, of a fitted scikit-learn model."""
    if monitor == "val_loss":
        return -log_loss(y_val, model.predict_proba(x_val), labels=classes)
    predicted = model.predict(x_val)
    if monitor == "val_balanced_accuracy":
        return balanced_accuracy_score(y_val, predicted)
    return f1_score(y_val, predicted, labels=classes, average="macro", zero_division=0)


def logistic_regression(c: float, class_weight: str | None, seed: int):
    return make_pipeline(
        StandardScaler(),
        LogisticRegression(C=c, class_weight=class_weight, max_iter=300, random_state=seed),
    )


def gradient_boosting(seed: int):
    # Early stopping is on above 10,000 images (scikit-learn's "auto").
    return HistGradientBoostingClassifier(random_state=seed)


def class_weightings(labels: np.ndarray) -> tuple[str | None, ...]:
    """CLASS_WEIGHTS, less "balanced" where the classes are (within 2%) as frequent as each
    other: its weights would all be ~1, the same model at twice the cost."""
    counts = np.bincount(labels)
    counts = counts[counts > 0]
    return CLASS_WEIGHTS if counts.max() > 1.02 * counts.min() else (None,)


def candidates(name: str, seed: int, labels: np.ndarray) -> dict[tuple, Callable[[], object]]:
    """(pixels, settings...) -> an unfitted model, for every setting val chooses among."""
    if name == "logistic_regression":
        return {
            (pixels, c, weight or "none"): (
                lambda c=c, weight=weight: logistic_regression(c, weight, seed)
            )
            for pixels in PIXELS
            for c in C_VALUES
            for weight in class_weightings(labels)
        }
    return {(pixels,): (lambda: gradient_boosting(seed)) for pixels in PIXELS}


SETTINGS = {
    "logistic_regression": ("pixels", "C", "class_weight"),
    "gradient_boosting": ("pixels",),
}


@dataclass(frozen=True)
class Fitted:
    name: str
    pixels: int  # thumbnail side, 0 for the majority class
    predict: Callable[[np.ndarray], np.ndarray]  # features -> class indices
    seconds: float
    details: dict


def fit_majority(labels: np.ndarray) -> Fitted:
    majority = majority_class(labels)
    return Fitted("majority", 0, lambda x: np.full(len(x), majority), 0.0, {"class": majority})


def choice_rows(labels: np.ndarray, seed: int) -> np.ndarray:
    """The train rows candidates are compared on: all, or a stratified CHOICE_IMAGES."""
    rows = np.arange(len(labels))
    if len(rows) <= CHOICE_IMAGES:
        return rows
    chosen, _ = train_test_split(rows, train_size=CHOICE_IMAGES, stratify=labels, random_state=seed)
    return np.sort(chosen)


def fit_chosen_on_val(
    name: str, train_features: dict, y_train, val_features: dict, y_val, monitor: str, seed: int
) -> Fitted:
    """Every candidate of `name` fitted on (a sample of) train and scored on val by `monitor`;
    the best one fitted on all of train."""
    started = time.perf_counter()
    classes = sorted(set(y_train.tolist()))
    rows = choice_rows(y_train, seed)
    scores = {}
    with warnings.catch_warnings():
        # lbfgs may stop short of the optimum at a weak regularisation; val decides anyway.
        warnings.simplefilter("ignore", ConvergenceWarning)
        for key, make in candidates(name, seed, y_train).items():
            model = make().fit(train_features[key[0]][rows], y_train[rows])
            scores[key] = (val_score(monitor, model, val_features[key[0]], y_val, classes), model)
        best = max(scores, key=lambda key: scores[key][0])
        model = scores[best][1]
        if len(rows) < len(y_train):
            model = candidates(name, seed, y_train)[best]().fit(train_features[best[0]], y_train)
    details = dict(zip(SETTINGS[name], best, strict=True))
    details["val_by_pixels"] = {
        str(pixels): round(max(score for key, (score, _) in scores.items() if key[0] == pixels), 4)
        for pixels in PIXELS
    }
    return Fitted(name, best[0], model.predict, time.perf_counter() - started, details)


def fit_baselines(
    train: Subset, val: Subset, seed: int, monitor: str = "val_macro_f1"
) -> tuple[list[Fitted], bool]:
    """The three baselines fitted on `train`, their settings chosen on `val` by `monitor`,
    and whether the photos are grayscale (their features then have one channel)."""
    gray = is_grayscale(train.images)
    train_features = {pixels: pixel_features(train.images, gray, pixels) for pixels in PIXELS}
    val_features = {pixels: pixel_features(val.images, gray, pixels) for pixels in PIXELS}
    fitted = [fit_majority(train.labels)]
    for name in ("logistic_regression", "gradient_boosting"):
        fitted.append(
            fit_chosen_on_val(
                name, train_features, train.labels, val_features, val.labels, monitor, seed
            )
        )
    return fitted, gray


def describe_features(gray: bool) -> str:
    sides = " or ".join(
        f"{pixels}x{pixels} {'RGB' if in_colour(pixels, gray) else 'grayscale'}"
        for pixels in PIXELS
    )
    return f"{sides} pixels, the side picked on val"


def score_baselines(fitted: list[Fitted], gray: bool, test: Subset, train_images: int) -> dict:
    """Each baseline's test scores and the best of them in each of BASELINE_SCORES: the JSON
    that evaluate measures the network against."""
    features = {pixels: pixel_features(test.images, gray, pixels) for pixels in PIXELS}
    classes = list(range(test.num_classes))
    result: dict = {"features": describe_features(gray)}
    for model in fitted:
        details = dict(model.details)
        if model.name == "majority":
            details["class"] = test.class_names[details["class"]]
            predicted = model.predict(test.labels)
        else:
            predicted = model.predict(features[model.pixels])
        scores = headline_scores(test.labels, predicted, classes)
        result[model.name] = {**scores, **details, "seconds": round(model.seconds, 1)}
    result["best"] = {}
    for score in BASELINE_SCORES:
        name = max((model.name for model in fitted), key=lambda name: result[name][score])
        result["best"][score] = {
            "model": name,
            "value": result[name][score],
            "pixels": result[name].get("pixels", 0),
        }
    return {**result, "train_images": train_images, "test_images": len(test.labels)}
