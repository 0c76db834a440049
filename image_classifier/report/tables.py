"""The tables stages pass on: test predictions (for DVC's confusion template and gradcam),
and the per-epoch history DVCLive wrote. What two stages need of them is here, once."""

import functools
from pathlib import Path

import numpy as np
import pandas as pd

from image_classifier.report.scoring import Predictions

PREDICTIONS_FILE = "predictions.csv"
TABLE_COLUMNS = ("path", "actual", "predicted", "confidence", "unsure")


def prediction_table(
    predictions: Predictions, paths: list[str], unsure_below: float = 0.0
) -> pd.DataFrame:
    """One row per image: what DVC's confusion template, the gradcam stage and `compare`
    read; `unsure` marks the answers predict would call unsure."""
    names = np.array(predictions.class_names)
    return pd.DataFrame(
        {
            "path": paths,
            "actual": names[predictions.labels],
            "predicted": names[predictions.predicted],
            "confidence": predictions.confidence.round(4),
            "unsure": predictions.confidence < unsure_below,
        }
    )


def most_confident_mistakes(table: pd.DataFrame, count: int, actual: str | None = None):
    """Index labels of wrong rows of a prediction table, the most confident first (ties keep
    table order); only rows of the true class `actual` when it is given."""
    wrong = table[table["actual"] != table["predicted"]]
    if actual is not None:
        wrong = wrong[wrong["actual"] == actual]
    return wrong.sort_values("confidence", ascending=False, kind="stable").index[:count]


def choose_examples(
    predictions: pd.DataFrame, name: str, correct: int, wrong: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of `correct` right answers for class `name` (a random, seeded sample) and
    of its `wrong` most confident mistakes."""
    actual = predictions["actual"] == name
    right = predictions.index[actual & (predictions["predicted"] == name)].to_numpy()
    rng = np.random.default_rng(seed)
    right = np.sort(rng.choice(right, min(correct, len(right)), replace=False))
    return right, most_confident_mistakes(predictions, wrong, actual=name).to_numpy()


def caption(row: pd.Series) -> str:
    return f"true {row['actual']}\npredicted {row['predicted']} ({row['confidence']:.0%})"


def read_history(live: Path) -> pd.DataFrame:
    """DVCLive's per-epoch TSVs -> columns epoch (1-based), split, and one per metric."""
    frames = []
    for folder, split in (("train", "train"), ("eval", "val")):
        metrics = [
            pd.read_csv(table, sep="\t")
            for table in sorted((live / "plots" / "metrics" / folder).glob("*.tsv"))
        ]
        frame = functools.reduce(lambda left, right: left.merge(right, on="step"), metrics)
        frames.append(frame.assign(epoch=frame["step"] + 1, split=split))
    return pd.concat(frames, ignore_index=True)


def reliability_table(before, after) -> pd.DataFrame:
    """Two reliability diagrams' bins (model/calibration.py's Reliability), one row per bin:
    its range, and without a temperature (before) and with the one fitted on val (after,
    applied or not) how many answers fell in it, their mean confidence and their accuracy."""
    table = pd.DataFrame(
        {
            "bin_from": before.lower.round(4),
            "bin_to": (before.lower + 1 / len(before.lower)).round(4),
        }
    )
    for name, diagram in (("before", before), ("after", after)):
        table[f"answers_{name}"] = diagram.count
        table[f"confidence_{name}"] = diagram.confidence.round(4)
        table[f"accuracy_{name}"] = diagram.accuracy.round(4)
    return table
