"""sweep: train briefly with every (learning rate, batch size) pair; rank them by train.monitor.

Each pair goes through exactly the train stage's code with the train params, except for the
learning rate, the batch size and a short budget of its own (sweep.epochs, on a stratified
sweep.train_fraction of the train split, at most sweep.max_train_images; no fine-tuning, no
early stopping). Writes the results table, a heatmap, and the best pair as metrics, and
prints the `dvc exp run` command that trains the full model with it.
"""

import itertools
import logging
import time

import pandas as pd

from image_classifier.atomic import write_csv, write_json
from image_classifier.console import parse_paths, run_stage
from image_classifier.data.dataset import fitting_batch_size, image_size, load_subset
from image_classifier.params import VAL_SCORES, BaseParams, SweepParams, TrainParams, read_params
from image_classifier.report.charts import save_figure, sweep_heatmap_figure

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> None:
    args = parse_paths(
        argv,
        __doc__,
        "resized",
        "split",
        results="results CSV to write",
        heatmap="heatmap PNG to write",
        metrics="best pair JSON to write",
    )
    params = read_params()
    base, train = BaseParams.from_params(params), TrainParams.from_params(params)
    sweep = SweepParams.from_params(params)
    # Keras is imported only now, after the params were found valid.
    from image_classifier.model.architectures import check_input_size

    check_input_size(train.model, image_size(args.resized))

    from image_classifier.model.fitting import configure_devices
    from image_classifier.model.search import best_pair, experiment_command, run_pairs

    devices = configure_devices()
    train_set = load_subset(
        args.resized,
        args.split,
        "train",
        sweep.train_fraction,
        base.seed,
        sweep.max_train_images,
    )
    val_set = load_subset(args.resized, args.split, "val")
    sweep = with_fitting_batch_sizes(sweep, len(train_set.labels))
    pairs = list(itertools.product(sweep.learning_rates, sweep.batch_sizes))
    log.info(
        "sweep: %d pairs x %d epoch(s) of %s on %d images (val %d), %s",
        len(pairs),
        sweep.epochs,
        train.model,
        len(train_set.labels),
        len(val_set.labels),
        devices.describe(),
    )
    started = time.perf_counter()
    rows = run_pairs(pairs, train, sweep, train_set, val_set, base.seed, devices)
    results = pd.DataFrame(rows)
    best = best_pair(results, train.monitor)
    write_csv(args.results, results)
    save_figure(sweep_heatmap_figure(results, best, train.monitor), args.heatmap)
    seconds = time.perf_counter() - started
    write_json(args.metrics, sweep_metrics(best, train.monitor, len(results), seconds))
    log.info(
        "sweep: best %s (%s %.4f). Train the full model with it:\n  %s",
        best["pair"],
        train.monitor,
        best["score"],
        experiment_command(best),
    )


def with_fitting_batch_sizes(sweep: SweepParams, images: int) -> SweepParams:
    sizes = [fitting_batch_size("sweep.batch_sizes", size, images) for size in sweep.batch_sizes]
    for _, cut in sizes:
        if cut:
            log.warning("sweep: warning: %s (of the sweep's train_fraction)", cut)
    return sweep.model_copy(update={"batch_sizes": sorted({size for size, _ in sizes})})


def sweep_metrics(best: pd.Series, monitor: str, pairs: int, seconds: float) -> dict:
    return {
        "best": {
            "learning_rate": float(best["learning_rate"]),
            "batch_size": int(best["batch_size"]),
            **{name: float(best[name]) for name in VAL_SCORES},
        },
        "monitor": monitor,
        "pairs": pairs,
        "seconds": round(seconds, 1),
    }


if __name__ == "__main__":
    run_stage(main)
