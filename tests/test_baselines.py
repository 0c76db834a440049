"""The baseline stage: its scores are scikit-learn's, fitted here on the same thumbnails."""

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.preprocessing import StandardScaler

from image_classifier.report.baselines import is_grayscale
from tests.conftest import make_resized_dataset, run_stage, write_params

SEED = 42  # base.seed in the committed params


def thumbnails(images: np.ndarray) -> np.ndarray:
    """16x16 bilinear thumbnails, flattened: what the baselines are documented to see."""
    small = [
        np.asarray(Image.fromarray(image).resize((16, 16), Image.BILINEAR)) for image in images
    ]
    return np.stack(small).reshape(len(images), -1).astype(np.float32)


def part(folder, split_name):
    split = pd.read_csv(folder / "split.csv")
    rows = split[split["split"] == split_name]
    names = sorted(split["class"].unique())
    images = np.load(folder / "resized/images.npy")[rows["row"].to_numpy()]
    return thumbnails(images), rows["class"].map(names.index).to_numpy()


@pytest.fixture(scope="module")
def stage(tmp_path_factory):
    folder = tmp_path_factory.mktemp("baseline")
    make_resized_dataset(folder, per_class=36, classes=("cat", "dog", "cow", "owl"))
    write_params(folder)
    result = run_stage("baseline", "--resized", "resized", "--split", "split.csv",
                       "--metrics", "baseline.json", cwd=folder)  # fmt: skip
    return folder, json.loads((folder / "baseline.json").read_text()), result


def test_scores_are_scikit_learns(stage):
    folder, scores, _ = stage
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = (
        part(folder, name) for name in ("train", "val", "test")
    )
    assert scores["features"] == "16x16 RGB pixels"
    assert (scores["train_images"], scores["test_images"]) == (len(y_train), len(y_test))

    boosting = HistGradientBoostingClassifier(random_state=SEED).fit(x_train, y_train)
    predicted = boosting.predict(x_test)
    assert scores["gradient_boosting"]["accuracy"] == round(accuracy_score(y_test, predicted), 4)
    assert scores["gradient_boosting"]["macro_f1"] == round(
        f1_score(y_test, predicted, average="macro"), 4
    )

    majority = np.bincount(y_train).argmax()
    assert scores["majority"]["accuracy"] == round(float(np.mean(y_test == majority)), 4)

    # Logistic regression: the pair chosen is the best on val, and it scores as stated.
    scaler = StandardScaler().fit(x_train)

    def fitted(c, weight):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return LogisticRegression(C=c, class_weight=weight, max_iter=300,
                                      random_state=SEED).fit(scaler.transform(x_train), y_train)  # fmt: skip

    val = {
        (c, weight): f1_score(
            y_val, fitted(c, weight).predict(scaler.transform(x_val)), average="macro"
        )
        for c in (0.001, 0.01, 0.1, 1.0)
        for weight in (None, "balanced")
    }
    chosen = scores["logistic_regression"]
    weight = None if chosen["class_weight"] == "none" else chosen["class_weight"]
    assert val[(chosen["C"], weight)] == max(val.values())
    predicted = fitted(chosen["C"], weight).predict(scaler.transform(x_test))
    assert chosen["accuracy"] == round(accuracy_score(y_test, predicted), 4)


def test_the_best_baseline_is_named_for_each_score(stage):
    _, scores, result = stage
    for score in ("accuracy", "macro_f1"):
        values = {name: scores[name][score] for name in
                  ("majority", "logistic_regression", "gradient_boosting")}  # fmt: skip
        assert scores["best"][score]["value"] == max(values.values())
        assert values[scores["best"][score]["model"]] == max(values.values())
    assert "baseline: gradient boosting on pixels: test accuracy" in result.stderr


def test_grayscale_photos_get_one_channel():
    gray = np.repeat(np.arange(48, dtype=np.uint8).reshape(1, 4, 4, 3), 2, axis=0)
    assert not is_grayscale(gray)
    assert is_grayscale(np.repeat(gray[..., :1], 3, axis=-1))
