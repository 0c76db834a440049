"""evaluate: predict the test split once; every number and plot comes from those predictions.

So the report, the confusion matrix and the metrics cannot disagree. Writes the metrics
JSON (with the margins over the baseline stage's simple models, the calibration error
before and after train's calibration, and what the unsure threshold does), a Markdown
classification report, and into --plots: predictions.csv (for DVC's confusion template,
the gradcam stage and `compare`), confusion_matrix.png, curves.png, mistakes.png,
reliability.png and its bins, calibration.csv.
"""

import json
import logging

import numpy as np

from image_classifier.atomic import write_csv, write_json, write_text
from image_classifier.console import parse_paths, run_stage
from image_classifier.data.dataset import load_subset
from image_classifier.model.card import read_card
from image_classifier.params import EvaluateParams, read_params
from image_classifier.report.charts import (
    Panel,
    confusion_figure,
    curves_figure,
    image_grid_figure,
    reliability_figure,
    save_figure,
)
from image_classifier.report.scoring import (
    WHAT_TO_TRY,
    Predictions,
    comparison_text,
    loses_to_a_baseline,
    no_better_than_majority,
    report,
    report_markdown,
    trust_text,
    warning,
)
from image_classifier.report.tables import (
    PREDICTIONS_FILE,
    caption,
    most_confident_mistakes,
    prediction_table,
    read_history,
    reliability_table,
)

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> None:
    args = parse_paths(
        argv,
        __doc__,
        "resized",
        "split",
        "model",
        live="train's DVCLive folder",
        train_metrics="train's JSON",
        baselines="the baseline stage's JSON",
        metrics="metrics JSON to write",
        report="Markdown report to write",
        plots="folder for CSV and PNGs",
    )
    params = EvaluateParams.from_params(read_params())
    card = read_card(args.model)
    test = load_subset(args.resized, args.split, "test")

    from image_classifier.model.architectures import load_trained_model
    from image_classifier.model.calibration import calibration_report

    model = load_trained_model(args.model)
    # uint8 in: Keras converts each batch to the model's float input, so the test set is
    # never copied whole as float32 (4x its size).
    logits = model.predict(test.images, batch_size=params.batch_size, verbose=0)
    predictions = Predictions(test.labels, np.asarray(logits, np.float64), test.class_names)

    baselines = json.loads(args.baselines.read_text())
    training = json.loads(args.train_metrics.read_text())
    metrics = report(predictions, baselines)
    trust, diagrams = calibration_report(
        predictions.logits, test.labels, card.unsure_below, training["calibration"]
    )
    metrics |= trust
    write_json(args.metrics, metrics)
    write_text(args.report, report_markdown(metrics, baselines))
    table = prediction_table(predictions, test.paths, card.unsure_below)
    write_csv(args.plots / PREDICTIONS_FILE, table)
    write_csv(args.plots / "calibration.csv", reliability_table(*diagrams.values()))
    figures = {
        "reliability.png": reliability_figure(diagrams, card.unsure_below),
        "confusion_matrix.png": confusion_figure(
            predictions.confusion(), test.class_names, metrics["accuracy"]
        ),
        "curves.png": curves_figure(
            read_history(args.live), training["best_epoch"], training["monitor"]
        ),
        "mistakes.png": mistakes_figure(table, test.images, predictions, params.mistakes_shown),
    }
    for name, figure in figures.items():
        save_figure(figure, args.plots / name)
    log_verdict(metrics)


def mistakes_figure(table, images, predictions: Predictions, shown: int):
    mistakes = most_confident_mistakes(table, shown)
    panels = [Panel(images[i], caption(table.loc[i])) for i in mistakes]
    wrong = int((predictions.predicted != predictions.labels).sum())
    return image_grid_figure([panels], f"The {len(mistakes)} most confident mistakes (of {wrong})")


def log_verdict(metrics: dict) -> None:
    log.info(
        "evaluate: test accuracy %.4f, balanced accuracy %.4f, macro F1 %.4f on %d images; %s",
        metrics["accuracy"],
        metrics["balanced_accuracy"],
        metrics["macro_f1"],
        metrics["images"],
        comparison_text(metrics),
    )
    log.info("evaluate: %s", trust_text(metrics))
    if loses_to_a_baseline(metrics):
        log.warning("evaluate: warning: the model %s. %s", comparison_text(metrics), WHAT_TO_TRY)
    if no_better_than_majority(metrics):
        log.warning("evaluate: warning: %s", warning(metrics))


if __name__ == "__main__":
    run_stage(main)
