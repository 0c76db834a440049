"""evaluate: every figure comes from one set of predictions, so none can contradict another."""

import json

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

from image_classifier.report.scoring import Predictions, report, report_markdown
from image_classifier.report.tables import most_confident_mistakes, prediction_table
from tests.conftest import make_resized_dataset, png_size, run_stage, write_params
from tests.test_train import TINY, train_args


def predictions(seed=0, count=200, classes=4, skill=2.0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, count)
    logits = rng.normal(0, 1, (count, classes))
    logits[np.arange(count), labels] += skill
    return Predictions(labels, logits, [f"class{i}" for i in range(classes)])


def test_report_agrees_with_sklearn():
    p = predictions()
    metrics = report(p, majority=1)
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
    assert f"| accuracy | {metrics['accuracy']:.4f} |" in report_markdown(metrics)


def test_majority_baseline_and_the_distance_to_it():
    # 57% of the test images are class 0, and the model always answers class 0.
    labels = np.array([0] * 57 + [1] * 30 + [2] * 9 + [3] * 4)
    logits = np.tile([3.0, 0.0, 0.0, 0.0], (len(labels), 1))
    metrics = report(Predictions(labels, logits, ["a", "b", "c", "d"]), majority=0)
    baseline = metrics["majority_baseline"]
    assert baseline["class"] == "a"
    assert baseline["accuracy"] == pytest.approx(0.57)
    assert baseline["balanced_accuracy"] == pytest.approx(0.25)
    assert baseline["macro_f1"] == pytest.approx(
        f1_score(labels, np.zeros_like(labels), average="macro", labels=[0, 1, 2, 3]), abs=1e-4
    )
    assert metrics["above_majority"] == {"accuracy": 0, "balanced_accuracy": 0, "macro_f1": 0}
    markdown = report_markdown(metrics)
    assert "| accuracy | 0.5700 | 0.5700 | +0.0000 |" in markdown
    assert "Warning: the model is no better than always predicting 'a'" in markdown
    assert "Warning" not in report_markdown(report(predictions(), majority=0))


@pytest.mark.parametrize(("classes", "has_top3"), [(2, False), (3, False), (4, True)])
def test_top3_only_below_the_number_of_classes(classes, has_top3):
    metrics = report(predictions(classes=classes), majority=0)
    assert ("top3_accuracy" in metrics) == has_top3
    assert ("top-3 accuracy" in report_markdown(metrics)) == has_top3


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


def test_evaluate_stage_outputs_agree(tmp_path):
    make_resized_dataset(tmp_path)
    write_params(tmp_path, **TINY)
    run_stage("train", *train_args(tmp_path), cwd=tmp_path)
    result = run_stage(
        "evaluate", "--resized", "resized", "--split", "split.csv",
        "--model", "models/model.keras", "--live", "plots/training",
        "--train-metrics", "metrics/train.json", "--metrics", "metrics/evaluate.json",
        "--report", "metrics/report.md", "--plots", "plots/evaluate", cwd=tmp_path,
    )  # fmt: skip
    metrics = json.loads((tmp_path / "metrics/evaluate.json").read_text())
    assert "over always predicting the majority class" in result.stderr
    table = pd.read_csv(tmp_path / "plots/evaluate/predictions.csv")
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
    assert (
        f"| cat | {metrics['per_class']['cat']['precision']:.4f}"
        in (tmp_path / "metrics/report.md").read_text()
    )
    for png in ("confusion_matrix.png", "curves.png", "mistakes.png"):
        width, height = png_size(tmp_path / "plots/evaluate" / png)
        assert 300 < width < 6000 and 200 < height < 6000, (png, width, height)
