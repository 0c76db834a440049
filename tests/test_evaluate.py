"""evaluate: every figure comes from one set of predictions, so none can contradict another."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score

from stages.evaluate import (
    Predictions,
    most_confident_mistakes,
    prediction_table,
    report,
    report_markdown,
)
from tests.conftest import make_resized_dataset, run_stage, write_params
from tests.test_train import TINY, train_args


def predictions(seed=0, count=200, classes=4, skill=2.0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, count)
    logits = rng.normal(0, 1, (count, classes))
    logits[np.arange(count), labels] += skill
    return Predictions(labels, logits, [f"class{i}" for i in range(classes)])


def test_report_agrees_with_sklearn_and_with_itself():
    p = predictions()
    metrics = report(p)
    assert metrics["accuracy"] == pytest.approx(accuracy_score(p.labels, p.predicted), abs=1e-4)
    assert metrics["macro"]["f1"] == pytest.approx(
        f1_score(p.labels, p.predicted, average="macro"), abs=1e-4
    )
    matrix = p.confusion()
    assert matrix.trace() / matrix.sum() == pytest.approx(metrics["accuracy"], abs=1e-4)
    for index, name in enumerate(p.class_names):
        assert metrics["per_class"][name]["support"] == matrix[index].sum()
        assert metrics["per_class"][name]["recall"] == pytest.approx(
            matrix[index, index] / matrix[index].sum(), abs=1e-4
        )
    assert metrics["accuracy"] <= metrics["top3_accuracy"] <= 1
    table = prediction_table(p, [f"img{i}" for i in range(len(p.labels))])
    assert (table["actual"] == table["predicted"]).mean() == pytest.approx(
        metrics["accuracy"], abs=1e-4
    )
    assert f"accuracy {metrics['accuracy']:.4f}" in report_markdown(metrics)


def test_loss_matches_keras():
    import keras

    p = predictions(seed=1)
    expected = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(p.labels, p.logits)
    assert p.cross_entropy() == pytest.approx(float(expected), rel=1e-5)


def test_most_confident_mistakes_come_first():
    p = Predictions(
        np.array([0, 0, 1, 1]),
        np.array([[0.0, 3.0], [5.0, 0.0], [9.0, 0.0], [0.0, 1.0]]),
        ["a", "b"],
    )
    assert most_confident_mistakes(p, 5).tolist() == [2, 0]


def test_evaluate_stage_outputs_agree(tmp_path):
    make_resized_dataset(tmp_path)
    write_params(tmp_path, **TINY)
    run_stage("train", *train_args(tmp_path), cwd=tmp_path)
    run_stage(
        "evaluate", "--resized", "resized", "--split", "split.csv",
        "--model", "models/model.keras", "--live", "plots/training",
        "--train-metrics", "metrics/train.json", "--metrics", "metrics/evaluate.json",
        "--report", "metrics/report.md", "--plots", "plots/evaluate", cwd=tmp_path,
    )  # fmt: skip
    metrics = json.loads((tmp_path / "metrics/evaluate.json").read_text())
    table = pd.read_csv(tmp_path / "plots/evaluate/predictions.csv")
    split = pd.read_csv(tmp_path / "split.csv")
    assert table["path"].tolist() == split.loc[split["split"] == "test", "path"].tolist()
    assert metrics["images"] == len(table)
    assert (table["actual"] == table["predicted"]).mean() == pytest.approx(
        metrics["accuracy"], abs=1e-4
    )
    for name, scores in metrics["per_class"].items():
        assert scores["support"] == (table["actual"] == name).sum()
    assert (
        f"| cat | {metrics['per_class']['cat']['precision']:.4f}"
        in (tmp_path / "metrics/report.md").read_text()
    )
    for png in ("confusion_matrix.png", "curves.png", "mistakes.png"):
        assert (tmp_path / "plots/evaluate" / png).stat().st_size > 5000
