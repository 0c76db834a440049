"""baseline: the simple models any data scientist tries first, scored like the network.

The majority class, logistic regression and gradient boosting on raw pixels of the resized
images, fitted on the train split, their thumbnail side and settings picked on the val split
by the score train.monitor names, and scored on the test split with evaluate's own scoring
function. Writes --metrics, which evaluate measures the network against.
"""

import logging

from image_classifier.atomic import write_json
from image_classifier.console import parse_paths, run_stage
from image_classifier.data.dataset import load_subset
from image_classifier.params import BaseParams, TrainParams, read_params
from image_classifier.report.baselines import fit_baselines, score_baselines
from image_classifier.report.scoring import baseline_name

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> None:
    args = parse_paths(
        argv,
        __doc__,
        "resized",
        "split",
        metrics="baselines JSON to write",
    )
    params = read_params()
    base, training = BaseParams.from_params(params), TrainParams.from_params(params)
    train, val, test = (
        load_subset(args.resized, args.split, part) for part in ("train", "val", "test")
    )
    fitted, gray = fit_baselines(train, val, base.seed, training.monitor)
    result = score_baselines(fitted, gray, test, len(train.labels))
    write_json(args.metrics, result)
    for model in fitted:
        scores = result[model.name]
        log.info(
            "baseline: %s: test accuracy %.4f, macro F1 %.4f (%.1f s)",
            baseline_name(model.name, model.pixels),
            scores["accuracy"],
            scores["macro_f1"],
            model.seconds,
        )


if __name__ == "__main__":
    run_stage(main)
