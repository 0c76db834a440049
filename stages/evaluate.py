"""evaluate: predict the test split once; every number and plot comes from those predictions.

So the report, the confusion matrix and the metrics cannot disagree. Writes the metrics
JSON, a Markdown classification report, and into --plots: predictions.csv (for DVC's
confusion template and the gradcam stage), confusion_matrix.png, curves.png, mistakes.png.
"""

import functools
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    classification_report,
    f1_score,
)

from stages.charts import (
    Panel,
    confusion_figure,
    curves_figure,
    image_grid_figure,
    save_figure,
)
from stages.cli import parse_paths, run_stage
from stages.data import Subset, load_subset, split_labels
from stages.files import write_csv, write_json, write_text
from stages.params import EvaluateParams, read_params
from stages.predictions import (
    PREDICTIONS_FILE,
    Predictions,
    caption,
    majority_class,
    most_confident_mistakes,
    prediction_table,
)

log = logging.getLogger(__name__)

TOP_K = 3
HEADLINE = {
    "accuracy": "accuracy",
    "balanced_accuracy": "balanced accuracy",
    "macro_f1": "macro F1",
}


def report(predictions: Predictions, majority: int) -> dict:
    """accuracy, balanced accuracy, loss, macro/weighted and per-class precision/recall/F1,
    top-3 accuracy (with more than 3 classes), and the same scores of the majority baseline:
    always predicting `majority`, the most frequent training class."""
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
    baseline = headline_scores(
        predictions.labels, np.full_like(predictions.labels, majority), classes
    )
    result = {
        **model,
        "loss": round(predictions.cross_entropy(), 4),
        "macro": rounded(sklearn["macro avg"]),
        "weighted": rounded(sklearn["weighted avg"]),
        "majority_baseline": {"class": predictions.class_names[majority], **baseline},
        "above_majority": {name: round(model[name] - baseline[name], 4) for name in model},
        "per_class": {name: rounded(sklearn[name]) for name in predictions.class_names},
        "images": len(predictions.labels),
    }
    if len(classes) > TOP_K:  # top-k of k or fewer classes is 1 by definition
        result[f"top{TOP_K}_accuracy"] = round(predictions.top_k_accuracy(TOP_K), 4)
    return result


def headline_scores(labels: np.ndarray, predicted: np.ndarray, classes: list[int]) -> dict:
    return {
        "accuracy": round(accuracy_score(labels, predicted), 4),
        "balanced_accuracy": round(balanced_accuracy_score(labels, predicted), 4),
        "macro_f1": round(
            f1_score(labels, predicted, labels=classes, average="macro", zero_division=0), 4
        ),
    }


def no_better_than_majority(metrics: dict) -> bool:
    """Less than 5 points of balanced accuracy above always predicting one class."""
    return metrics["above_majority"]["balanced_accuracy"] < 0.05


def report_markdown(metrics: dict) -> str:
    """The classification report as Markdown tables (readable as plain text too)."""
    baseline, above = metrics["majority_baseline"], metrics["above_majority"]
    extras = [f"loss {metrics['loss']:.4f}"]
    if f"top{TOP_K}_accuracy" in metrics:
        extras.append(f"top-{TOP_K} accuracy {metrics[f'top{TOP_K}_accuracy']:.4f}")
    lines = [
        f"# Test set: {metrics['images']} images, {len(metrics['per_class'])} classes",
        "",
        f"| | model | majority baseline (always {baseline['class']}) | model - baseline |",
        "|---|---:|---:|---:|",
    ]
    for name, label in HEADLINE.items():
        lines.append(
            f"| {label} | {metrics[name]:.4f} | {baseline[name]:.4f} | {above[name]:+.4f} |"
        )
    lines += ["", " · ".join(extras), ""]
    if no_better_than_majority(metrics):
        lines += [f"**Warning: {warning(metrics)}**", ""]
    lines += ["| class | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|"]
    rows = [*metrics["per_class"].items(), ("**macro avg**", metrics["macro"])]
    rows.append(("**weighted avg**", metrics["weighted"]))
    for name, scores in rows:
        lines.append(
            f"| {name} | {scores['precision']:.4f} | {scores['recall']:.4f} | "
            f"{scores['f1']:.4f} | {scores['support']} |"
        )
    return "\n".join(lines) + "\n"


def warning(metrics: dict) -> str:
    baseline = metrics["majority_baseline"]
    return (
        f"the model is no better than always predicting {baseline['class']!r} (balanced "
        f"accuracy {metrics['balanced_accuracy']:.4f} against {baseline['balanced_accuracy']:.4f})"
        ": see metrics/classification_report.md and plots/evaluate/confusion_matrix.png"
    )


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


def predict(model, subset: Subset, batch_size: int) -> Predictions:
    # uint8 in: Keras converts each batch to the model's float input, so the test set is
    # never copied whole as float32 (4x its size).
    logits = model.predict(subset.images, batch_size=batch_size, verbose=0)
    return Predictions(subset.labels, np.asarray(logits, dtype=np.float64), subset.class_names)


def main(argv: list[str] | None = None) -> None:
    args = parse_paths(
        argv,
        __doc__,
        resized="the data/resized folder",
        split="the split CSV",
        model="the trained .keras model",
        live="train's DVCLive folder",
        train_metrics="train's JSON",
        metrics="metrics JSON to write",
        report="Markdown report to write",
        plots="folder for CSV and PNGs",
    )
    params = EvaluateParams.from_params(read_params())
    test = load_subset(args.resized, args.split, "test")

    from stages.models import load_trained_model

    model = load_trained_model(args.model)
    predictions = predict(model, test, params.batch_size)

    train_labels = split_labels(args.split, "train", test.class_names)
    metrics = report(predictions, majority_class(train_labels))
    write_json(args.metrics, metrics)
    write_text(args.report, report_markdown(metrics))
    table = prediction_table(predictions, test.paths)
    write_csv(args.plots / PREDICTIONS_FILE, table)
    save_figure(
        confusion_figure(predictions.confusion(), test.class_names, metrics["accuracy"]),
        args.plots / "confusion_matrix.png",
    )
    training = json.loads(args.train_metrics.read_text())
    save_figure(
        curves_figure(read_history(args.live), training["best_epoch"], training["monitor"]),
        args.plots / "curves.png",
    )
    mistakes = most_confident_mistakes(table, params.mistakes_shown)
    panels = [Panel(test.images[i], caption(table.loc[i])) for i in mistakes]
    wrong = int((predictions.predicted != predictions.labels).sum())
    title = f"The {len(mistakes)} most confident mistakes (of {wrong})"
    save_figure(image_grid_figure([panels], title), args.plots / "mistakes.png")
    baseline, above = metrics["majority_baseline"], metrics["above_majority"]
    log.info(
        "evaluate: test accuracy %.4f, balanced accuracy %.4f, macro F1 %.4f on %d images; "
        "%+.4f / %+.4f / %+.4f over always predicting the majority class %r",
        metrics["accuracy"], metrics["balanced_accuracy"], metrics["macro_f1"],
        metrics["images"], above["accuracy"], above["balanced_accuracy"], above["macro_f1"],
        baseline["class"],
    )  # fmt: skip
    if no_better_than_majority(metrics):
        log.warning("evaluate: warning: %s", warning(metrics))


if __name__ == "__main__":
    run_stage(main)
