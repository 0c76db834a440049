"""evaluate: every figure comes from one set of predictions, so none can contradict another."""

import json
import re
import shutil

import keras
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    recall_score,
)

from image_classifier.report.scoring import Predictions, headline_scores, report, report_markdown
from image_classifier.report.tables import most_confident_mistakes, prediction_table
from tests.conftest import FIXTURE_INPUTS, make_resized_dataset, png_size, run_stage, write_params
from tests.test_train import TINY, train_args


def predictions(seed=0, count=200, classes=4, skill=2.0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, count)
    logits = rng.normal(0, 1, (count, classes))
    logits[np.arange(count), labels] += skill
    return Predictions(labels, logits, [f"class{i}" for i in range(classes)])


def baselines_for(p: Predictions, majority: int, others: dict | None = None) -> dict:
    """A baseline stage JSON: the majority class scored on p's labels, and other baselines
    with the scores given (by default worse than any model here)."""
    classes = list(range(len(p.class_names)))
    scored = {
        "majority": {
            "class": p.class_names[majority],
            **headline_scores(p.labels, np.full_like(p.labels, majority), classes),
        }
    }
    weak = {"accuracy": 0.3, "balanced_accuracy": 0.3, "macro_f1": 0.3}
    for name in ("logistic_regression", "gradient_boosting"):
        scored[name] = (others or {}).get(name, weak)
    best = {
        score: max(
            ({"model": n, "value": v[score]} for n, v in scored.items()),
            key=lambda entry: entry["value"],
        )
        for score in ("accuracy", "macro_f1")
    }
    return {"features": "16x16 grayscale pixels", **scored, "best": best}


def table_row(markdown: str, first_cell: str) -> list[str]:
    """The other cells of the Markdown table row that starts with `first_cell`."""
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in markdown.splitlines()
        if line.startswith("|")
    ]
    [row] = [row for row in rows if row[0] == first_cell]
    return row[1:]


def test_report_agrees_with_sklearn():
    p = predictions()
    baselines = baselines_for(p, majority=1)
    metrics = report(p, baselines)
    predicted = p.logits.argmax(axis=1)  # computed here, not taken from Predictions
    assert metrics["accuracy"] == pytest.approx(accuracy_score(p.labels, predicted), abs=1e-4)
    assert metrics["balanced_accuracy"] == pytest.approx(
        balanced_accuracy_score(p.labels, predicted), abs=1e-4
    )
    assert metrics["macro_f1"] == metrics["macro"]["f1"]
    assert metrics["macro"]["f1"] == pytest.approx(
        f1_score(p.labels, predicted, average="macro"), abs=1e-4
    )
    assert (p.confusion() == confusion_matrix(p.labels, predicted)).all()
    recalls = recall_score(p.labels, predicted, average=None)
    for index, name in enumerate(p.class_names):
        assert metrics["per_class"][name]["support"] == (p.labels == index).sum()
        assert metrics["per_class"][name]["recall"] == pytest.approx(recalls[index], abs=1e-4)
    top3 = np.mean([label in np.argsort(-row)[:3] for row, label in zip(p.logits, p.labels)])
    assert metrics["top3_accuracy"] == pytest.approx(top3, abs=1e-4)
    table = prediction_table(p, [f"img{i}" for i in range(len(p.labels))])
    assert table["predicted"].tolist() == [p.class_names[i] for i in predicted]
    assert table_row(report_markdown(metrics, baselines), "accuracy")[0] == (
        f"{metrics['accuracy']:.4f}"
    )


def test_majority_baseline_and_the_distance_to_it():
    # 57% of the test images are class 0, and the model always answers class 0.
    labels = np.array([0] * 57 + [1] * 30 + [2] * 9 + [3] * 4)
    logits = np.tile([3.0, 0.0, 0.0, 0.0], (len(labels), 1))
    p = Predictions(labels, logits, ["a", "b", "c", "d"])
    metrics = report(p, baselines_for(p, majority=0))
    baseline = metrics["majority_baseline"]
    assert baseline["class"] == "a"
    assert baseline["accuracy"] == pytest.approx(0.57)
    assert baseline["balanced_accuracy"] == pytest.approx(0.25)
    assert baseline["macro_f1"] == pytest.approx(
        f1_score(labels, np.zeros_like(labels), average="macro", labels=[0, 1, 2, 3]), abs=1e-4
    )
    assert metrics["above_majority"] == {"accuracy": 0, "balanced_accuracy": 0, "macro_f1": 0}
    markdown = report_markdown(metrics, baselines_for(p, majority=0))
    assert table_row(markdown, "accuracy") == ["0.5700", "0.5700", "0.3000", "0.3000", "+0.0000"]
    assert "Warning: the model is no better than always predicting 'a'" in markdown
    good = predictions()
    assert "Warning" not in report_markdown(
        report(good, baselines_for(good, 0)), baselines_for(good, 0)
    )


@pytest.mark.parametrize(("classes", "has_top3"), [(2, False), (3, False), (4, True)])
def test_top3_only_below_the_number_of_classes(classes, has_top3):
    p = predictions(classes=classes)
    metrics = report(p, baselines_for(p, 0))
    assert ("top3_accuracy" in metrics) == has_top3
    assert ("top-3 accuracy" in report_markdown(metrics, baselines_for(p, 0))) == has_top3


def test_the_margin_is_over_the_best_baseline_in_each_score():
    p = predictions(skill=1.0)
    model = headline_scores(p.labels, p.predicted, list(range(4)))
    # gradient boosting wins accuracy, logistic regression macro F1; the model loses both.
    others = {
        "gradient_boosting": {"accuracy": 0.95, "balanced_accuracy": 0.5, "macro_f1": 0.5},
        "logistic_regression": {"accuracy": 0.6, "balanced_accuracy": 0.9, "macro_f1": 0.9},
    }
    baselines = baselines_for(p, 0, others)
    metrics = report(p, baselines)
    assert metrics["best_baseline"]["accuracy"] == {"model": "gradient_boosting", "value": 0.95}
    assert metrics["best_baseline"]["macro_f1"] == {"model": "logistic_regression", "value": 0.9}
    assert metrics["above_best_baseline"] == {
        "accuracy": round(model["accuracy"] - 0.95, 4),
        "macro_f1": round(model["macro_f1"] - 0.9, 4),
    }
    markdown = report_markdown(metrics, baselines)
    assert "**The model loses to a simple baseline: accuracy -" in markdown
    assert "BEHIND gradient boosting on pixels (0.9500)" in markdown
    assert "What to try" in markdown
    assert "loses" not in report_markdown(report(p, baselines_for(p, 0)), baselines_for(p, 0))


def test_loss_matches_keras():
    import keras

    p = predictions(seed=1)
    expected = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(p.labels, p.logits)
    assert p.cross_entropy() == pytest.approx(float(expected), rel=1e-5)


def test_most_confident_mistakes_come_first():
    table = pd.DataFrame(
        {
            "actual": ["a", "a", "b", "b", "b"],
            "predicted": ["b", "a", "a", "a", "b"],
            "confidence": [0.6, 0.99, 0.9, 0.6, 0.7],
        }
    )
    assert most_confident_mistakes(table, 5).tolist() == [2, 0, 3]  # ties keep table order
    assert most_confident_mistakes(table, 1).tolist() == [2]
    assert most_confident_mistakes(table, 5, actual="a").tolist() == [0]


def evaluate_args(model="models/model.keras", out="metrics"):
    return (
        *FIXTURE_INPUTS,
        "--model",
        model,
        "--live",
        "plots/training",
        "--train-metrics",
        "metrics/train.json",
        "--baselines",
        "metrics/baseline.json",
        "--metrics",
        f"{out}/evaluate.json",
        "--report",
        f"{out}/report.md",
        "--plots",
        f"{out}/plots",
    )


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """baseline, train and evaluate on a tiny resized set, as dvc repro runs them."""
    folder = tmp_path_factory.mktemp("evaluate")
    make_resized_dataset(folder)
    write_params(folder, **TINY)
    run_stage(
        "baseline",
        *FIXTURE_INPUTS,
        "--metrics",
        "metrics/baseline.json",
        cwd=folder,
    )
    run_stage("train", *train_args(folder), cwd=folder)
    result = run_stage("evaluate", *evaluate_args(), cwd=folder)
    return folder, result


def test_evaluate_says_when_a_simple_baseline_wins(evaluated):
    """A model made worse than the baselines (it always answers one class) is reported as
    losing, in the log, the metrics and the report; the trained one's margins are its
    scores minus the baseline stage's best."""
    folder, result = evaluated
    metrics = json.loads((folder / "metrics/evaluate.json").read_text())
    baselines = json.loads((folder / "metrics/baseline.json").read_text())
    for score in ("accuracy", "macro_f1"):
        best = max(
            baselines[name][score]
            for name in ("majority", "logistic_regression", "gradient_boosting")
        )
        assert metrics["best_baseline"][score]["value"] == best
        assert metrics["above_best_baseline"][score] == pytest.approx(metrics[score] - best)
    assert f"macro F1 {metrics['above_best_baseline']['macro_f1']:+.4f}" in result.stderr

    model = keras.models.load_model(folder / "models/model.keras", safe_mode=True)
    kernel, _ = model.get_layer("logits").get_weights()
    model.get_layer("logits").set_weights([np.zeros_like(kernel), np.array([9.0, 0, 0])])
    model.save(folder / "models/worse.keras")
    shutil.copy(folder / "models/model.json", folder / "models/worse.json")  # its card
    worse = run_stage("evaluate", *evaluate_args("models/worse.keras", "worse"), cwd=folder)
    worse_metrics = json.loads((folder / "worse/evaluate.json").read_text())
    assert worse_metrics["above_best_baseline"]["macro_f1"] < 0
    assert "evaluate: warning: the model loses to a simple baseline: accuracy" in worse.stderr
    assert "What to try" in worse.stderr
    assert "**The model loses to a simple baseline" in (folder / "worse/report.md").read_text()


def test_evaluate_stage_outputs_agree(evaluated):
    tmp_path, result = evaluated
    metrics = json.loads((tmp_path / "metrics/evaluate.json").read_text())
    assert re.search(r"(beats the baselines|loses to a simple baseline): accuracy", result.stderr)
    table = pd.read_csv(tmp_path / "metrics/plots/predictions.csv")
    split = pd.read_csv(tmp_path / "split.csv")
    test = split[split["split"] == "test"]
    assert table["path"].tolist() == test["path"].tolist()
    assert table["actual"].tolist() == test["class"].tolist()
    # The model's own predictions, made here, agree with the table and the metrics.
    model = keras.models.load_model(tmp_path / "models/model.keras", safe_mode=True)
    images = np.load(tmp_path / "resized/images.npy")[test["row"].to_numpy()]
    names = sorted(split["class"].unique())
    predicted = [names[i] for i in model.predict(images, verbose=0).argmax(axis=1)]
    assert table["predicted"].tolist() == predicted
    assert metrics["images"] == len(test)
    assert metrics["accuracy"] == pytest.approx(accuracy_score(test["class"], predicted), abs=1e-4)
    assert metrics["balanced_accuracy"] == pytest.approx(
        balanced_accuracy_score(test["class"], predicted), abs=1e-4
    )
    train_counts = split.loc[split["split"] == "train", "class"].value_counts()
    majority = sorted(train_counts[train_counts == train_counts.max()].index)[0]
    assert metrics["majority_baseline"]["class"] == majority
    assert metrics["majority_baseline"]["accuracy"] == pytest.approx(
        (test["class"] == majority).mean(), abs=1e-4
    )
    for name, scores in metrics["per_class"].items():
        assert scores["support"] == (test["class"] == name).sum()
    assert table_row((tmp_path / "metrics/report.md").read_text(), "cat")[0] == (
        f"{metrics['per_class']['cat']['precision']:.4f}"
    )
    for png in ("confusion_matrix.png", "curves.png", "mistakes.png", "reliability.png"):
        width, height = png_size(tmp_path / "metrics/plots" / png)
        assert 300 < width < 6000 and 200 < height < 6000, (png, width, height)


def test_evaluate_reports_calibration_and_the_unsure_answers_of_trains_card(evaluated):
    """train calibrated the model on val and chose the unsure threshold; evaluate's numbers
    are those of the saved (calibrated) model on the test split, and of it undone."""
    from scipy.special import softmax

    from image_classifier.model.calibration import expected_calibration_error

    folder, result = evaluated
    card = json.loads((folder / "models/model.json").read_text())
    metrics = json.loads((folder / "metrics/evaluate.json").read_text())
    split = pd.read_csv(folder / "split.csv")
    test = split[split["split"] == "test"]
    names = sorted(split["class"].unique())
    labels = test["class"].map(names.index).to_numpy()
    model = keras.models.load_model(folder / "models/model.keras", safe_mode=True)
    logits = model.predict(np.load(folder / "resized/images.npy")[test["row"]], verbose=0)
    calibration = metrics["calibration"]
    trained = json.loads((folder / "metrics/train.json").read_text())["calibration"]
    assert calibration["temperature"] == card["temperature"] == trained["temperature"]
    assert calibration["fitted_temperature"] == trained["fitted_temperature"]
    assert calibration["applied"] == (card["temperature"] == trained["fitted_temperature"])
    assert calibration["reason"] == trained["reason"]
    assert calibration["ece_after"] == pytest.approx(
        expected_calibration_error(softmax(logits, axis=1), labels), abs=1e-4
    )
    undone = logits * card["temperature"]
    assert calibration["ece_before"] == pytest.approx(
        expected_calibration_error(softmax(undone, axis=1), labels), abs=1e-4
    )
    with_fitted = softmax(undone / trained["fitted_temperature"], axis=1)
    assert calibration["ece_with_fitted_temperature"] == pytest.approx(
        expected_calibration_error(with_fitted, labels), abs=1e-4
    )
    table = pd.read_csv(folder / "metrics/plots/predictions.csv")
    confidence = softmax(logits, axis=1).max(axis=1)
    assert table["unsure"].tolist() == (confidence < card["unsure_below"]).tolist()
    assert metrics["unsure"]["unsure_share"] == pytest.approx(table["unsure"].mean(), abs=1e-4)
    assert metrics["unsure"]["threshold"] == pytest.approx(card["unsure_below"], abs=1e-4)
    if calibration["applied"]:
        assert f"{calibration['ece_after']:.4f} after dividing the logits" in result.stderr
    else:
        assert f"{calibration['ece_before']:.4f}, no temperature applied" in result.stderr
    assert f"wrong {trained['unsure_error_ratio']:g} times as often" in result.stderr
    bins = pd.read_csv(folder / "metrics/plots/calibration.csv")
    assert len(bins) == 15 and bins["answers_after"].sum() == len(test)
    weights = bins["answers_after"] / len(test)
    gaps = (bins["accuracy_after"] - bins["confidence_after"]).abs()
    # "after": with the temperature fitted on val, applied or not
    assert (weights * gaps).sum() == pytest.approx(
        calibration["ece_with_fitted_temperature"], abs=1e-3
    )
