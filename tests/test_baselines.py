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

from image_classifier.data.dataset import Subset
from image_classifier.report.baselines import class_weightings, fit_baselines, is_grayscale
from tests.conftest import FIXTURE_INPUTS, make_resized_dataset, run_stage, write_params

SEED = 42  # base.seed in the committed params


def thumbnails(images: np.ndarray, pixels: int) -> np.ndarray:
    """Bilinear thumbnails, flattened, what the baselines are documented to see: 16x16 in
    colour, 32x32 in grayscale."""
    mode = "RGB" if pixels == 16 else "L"
    small = [
        np.asarray(Image.fromarray(image).convert(mode).resize((pixels, pixels), Image.BILINEAR))
        for image in images
    ]
    return np.stack(small).reshape(len(images), -1).astype(np.float32)


def part(folder, split_name, pixels):
    split = pd.read_csv(folder / "split.csv")
    rows = split[split["split"] == split_name]
    names = sorted(split["class"].unique())
    images = np.load(folder / "resized/images.npy")[rows["row"].to_numpy()]
    return thumbnails(images, pixels), rows["class"].map(names.index).to_numpy()


@pytest.fixture(scope="module")
def stage(tmp_path_factory):
    folder = tmp_path_factory.mktemp("baseline")
    make_resized_dataset(folder, per_class=36, classes=("cat", "dog", "cow", "owl"))
    write_params(folder)
    result = run_stage(
        "baseline",
        *FIXTURE_INPUTS,
        "--metrics",
        "baseline.json",
        cwd=folder,
    )
    return folder, json.loads((folder / "baseline.json").read_text()), result


def test_scores_are_scikit_learns_at_the_side_val_picked(stage):
    folder, scores, _ = stage
    assert scores["features"] == "16x16 RGB or 32x32 grayscale pixels, the side picked on val"
    val_f1, test_scores = {}, {}
    for pixels in (16, 32):
        (x_train, y_train), (x_val, y_val), (x_test, y_test) = (
            part(folder, name, pixels) for name in ("train", "val", "test")
        )
        boosting = HistGradientBoostingClassifier(random_state=SEED).fit(x_train, y_train)
        val_f1[pixels] = round(f1_score(y_val, boosting.predict(x_val), average="macro"), 4)
        predicted = boosting.predict(x_test)
        test_scores[pixels] = (
            round(accuracy_score(y_test, predicted), 4),
            round(f1_score(y_test, predicted, average="macro"), 4),
        )
    assert (scores["train_images"], scores["test_images"]) == (len(y_train), len(y_test))
    chosen = scores["gradient_boosting"]
    assert chosen["val_by_pixels"] == {str(pixels): val_f1[pixels] for pixels in (16, 32)}
    assert val_f1[chosen["pixels"]] == max(val_f1.values())
    assert (chosen["accuracy"], chosen["macro_f1"]) == test_scores[chosen["pixels"]]

    majority = np.bincount(y_train).argmax()
    assert scores["majority"]["accuracy"] == round(float(np.mean(y_test == majority)), 4)

    # Logistic regression: the side, C and weighting chosen are the best on val, and it
    # scores as stated.
    def fitted(pixels, c, weight):
        x_train, y_train = part(folder, "train", pixels)
        scaler = StandardScaler().fit(x_train)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model = LogisticRegression(
                C=c, class_weight=weight, max_iter=300, random_state=SEED
            ).fit(scaler.transform(x_train), y_train)
        return lambda x: model.predict(scaler.transform(x))

    def val_score(pixels, c, weight):
        x_val, y_val = part(folder, "val", pixels)
        return f1_score(y_val, fitted(pixels, c, weight)(x_val), average="macro")

    val = {
        (pixels, c, weight): val_score(pixels, c, weight)
        for pixels in (16, 32)
        for c in (0.001, 0.01, 0.1, 1.0)
        for weight in (None, "balanced")
    }
    chosen = scores["logistic_regression"]
    weight = None if chosen["class_weight"] == "none" else chosen["class_weight"]
    assert val[(chosen["pixels"], chosen["C"], weight)] == max(val.values())
    x_test, y_test = part(folder, "test", chosen["pixels"])
    predicted = fitted(chosen["pixels"], chosen["C"], weight)(x_test)
    assert chosen["accuracy"] == round(accuracy_score(y_test, predicted), 4)


def test_the_best_baseline_is_named_for_each_score(stage):
    _, scores, result = stage
    for score in ("accuracy", "macro_f1"):
        values = {
            name: scores[name][score]
            for name in ("majority", "logistic_regression", "gradient_boosting")
        }
        assert scores["best"][score]["value"] == max(values.values())
        assert values[scores["best"][score]["model"]] == max(values.values())
    pixels = scores["gradient_boosting"]["pixels"]
    assert (
        f"baseline: gradient boosting on {pixels}x{pixels} pixels: test accuracy" in result.stderr
    )


def stripes(size: int, vertical: bool, period: int) -> np.ndarray:
    """Dark and light stripes `period` pixels apart, across or down the image."""
    line = (np.arange(size) % period < period // 2) * 60.0
    return np.broadcast_to(line[None, :] if vertical else line[:, None], (size, size))


def subset(images: list, labels: list) -> Subset:
    pixels = np.clip(np.stack(images), 0, 255).astype(np.uint8)
    return Subset(
        np.repeat(pixels[..., None], 3, axis=-1),
        np.array(labels, np.int32),
        [str(i) for i in range(len(labels))],
        ["a", "b"],
    )


def fine_mark_set(rng, count: int) -> Subset:
    """The class is the direction of stripes 4 pixels apart at 64: they vanish in a 16x16
    thumbnail (4 pixels of the photo each), and are plain in a 32x32 one."""
    labels = [i % 2 for i in range(count)]
    images = [100 + stripes(64, bool(label), 4) + rng.normal(0, 60, (64, 64)) for label in labels]
    return subset(images, labels)


def coarse_mark_set(rng, count: int, spurious: int) -> Subset:
    """The class is which half is brighter (seen at any side), under noise; fine stripes
    (seen at 32 px only) follow the class in train (`spurious` 1) and the opposite way in val
    and test (-1), as a mark of the camera of one batch would: 32 px learns the wrong thing."""
    labels = [i % 2 for i in range(count)]
    images = []
    for label in labels:
        image = 100 + rng.normal(0, 40, (64, 64))
        image[:, 32 * label : 32 * label + 32] += 25
        images.append(image + stripes(64, bool(label) == (spurious > 0), 4))
    return subset(images, labels)


@pytest.mark.parametrize("wins", [32, 16])
def test_val_picks_the_side_that_is_best_on_val(wins):
    rng = np.random.default_rng(0)
    if wins == 32:
        train, val = fine_mark_set(rng, 120), fine_mark_set(rng, 60)
    else:
        train, val = coarse_mark_set(rng, 120, 1), coarse_mark_set(rng, 60, -1)
    fitted, gray = fit_baselines(train, val, SEED)
    assert gray
    for model in fitted[1:]:
        assert model.pixels == wins, (model.name, model.details)
        scores = model.details["val_by_pixels"]
        assert scores[str(wins)] == max(scores.values())


def test_grayscale_photos_get_one_channel():
    gray = np.repeat(np.arange(48, dtype=np.uint8).reshape(1, 4, 4, 3), 2, axis=0)
    assert not is_grayscale(gray)
    assert is_grayscale(np.repeat(gray[..., :1], 3, axis=-1))


def test_balanced_classes_fit_no_class_weighted_twin():
    assert class_weightings(np.repeat([0, 1, 2], [200, 200, 201])) == (None,)
    assert class_weightings(np.repeat([0, 1, 2], [300, 200, 100])) == (None, "balanced")
