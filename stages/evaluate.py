"""evaluate: predict the test split once; every number and plot comes from those predictions.

So the report, the confusion matrix and the metrics cannot disagree. Writes the metrics
JSON, a Markdown classification report, and into --plots: predictions.csv (for DVC's
confusion template and the gradcam stage), confusion_matrix.png, curves.png, mistakes.png.
"""

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import classification_report

from stages.charts import (
    Panel,
    confusion_figure,
    curves_figure,
    image_grid_figure,
    save_figure,
)
from stages.cli import parse_paths, run_stage
from stages.data import Subset, load_subset
from stages.files import write_csv, write_json, write_text
from stages.params import EvaluateParams, read_params
from stages.predictions import (
    PREDICTIONS_FILE,
    Predictions,
    caption,
    most_confident_mistakes,
    prediction_table,
)

log = logging.getLogger(__name__)


def report(predictions: Predictions) -> dict:
    """accuracy, loss, top-3 accuracy, macro/weighted and per-class precision/recall/F1."""
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

    return {
        "accuracy": round(float((predictions.predicted == predictions.labels).mean()), 4),
        "loss": round(predictions.cross_entropy(), 4),
        "top3_accuracy": round(predictions.top_k_accuracy(min(3, len(classes))), 4),
        "macro": rounded(sklearn["macro avg"]),
        "weighted": rounded(sklearn["weighted avg"]),
        "per_class": {name: rounded(sklearn[name]) for name in predictions.class_names},
        "images": len(predictions.labels),
    }


def report_markdown(metrics: dict) -> str:
    """The classification report as a Markdown table (readable as plain text too)."""
    lines = [
        f"# Test set: {metrics['images']} images",
        "",
        f"accuracy {metrics['accuracy']:.4f} · loss {metrics['loss']:.4f} · "
        f"top-3 accuracy {metrics['top3_accuracy']:.4f}",
        "",
        "| class | precision | recall | F1 | support |",
        "|---|---:|---:|---:|---:|",
    ]
    rows = [*metrics["per_class"].items(), ("**macro avg**", metrics["macro"])]
    rows.append(("**weighted avg**", metrics["weighted"]))
    for name, scores in rows:
        lines.append(
            f"| {name} | {scores['precision']:.4f} | {scores['recall']:.4f} | "
            f"{scores['f1']:.4f} | {scores['support']} |"
        )
    return "\n".join(lines) + "\n"


def read_history(live: Path) -> pd.DataFrame:
    """DVCLive's per-epoch TSVs -> columns epoch (1-based), split, accuracy, loss."""
    frames = []
    for folder, split in (("train", "train"), ("eval", "val")):
        metrics = [
            pd.read_csv(live / "plots" / "metrics" / folder / f"{name}.tsv", sep="\t")
            for name in ("accuracy", "loss")
        ]
        frame = metrics[0].merge(metrics[1], on="step")
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

    metrics = report(predictions)
    write_json(args.metrics, metrics)
    write_text(args.report, report_markdown(metrics))
    table = prediction_table(predictions, test.paths)
    write_csv(args.plots / PREDICTIONS_FILE, table)
    save_figure(
        confusion_figure(predictions.confusion(), test.class_names, metrics["accuracy"]),
        args.plots / "confusion_matrix.png",
    )
    best_epoch = json.loads(args.train_metrics.read_text())["best_epoch"]
    save_figure(curves_figure(read_history(args.live), best_epoch), args.plots / "curves.png")
    mistakes = most_confident_mistakes(table, params.mistakes_shown)
    panels = [Panel(test.images[i], caption(table.loc[i])) for i in mistakes]
    wrong = int((predictions.predicted != predictions.labels).sum())
    title = f"The {len(mistakes)} most confident mistakes (of {wrong})"
    save_figure(image_grid_figure([panels], title), args.plots / "mistakes.png")
    log.info(
        "evaluate: test accuracy %.4f, loss %.4f, top-3 %.4f, macro F1 %.4f on %d images",
        metrics["accuracy"], metrics["loss"], metrics["top3_accuracy"], metrics["macro"]["f1"],
        metrics["images"],
    )  # fmt: skip


if __name__ == "__main__":
    run_stage(main)
