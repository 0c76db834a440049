"""sweep: train briefly with every (learning rate, batch size) pair; rank them by train.monitor.

Each pair goes through exactly the train stage's code (stages/training.py) with the train
params, except for the learning rate, the batch size and a short budget of its own
(sweep.epochs, on a stratified sweep.train_fraction of the train split; no fine-tuning, no
early stopping). Writes the results table, a heatmap, and the best pair as metrics, and
prints the `dvc exp run` command that trains the full model with it.
"""

import itertools
import logging
import time

import pandas as pd

from stages.charts import save_figure, sweep_heatmap_figure
from stages.cli import parse_paths, progress, run_stage
from stages.data import image_size, load_subset
from stages.files import write_csv, write_json
from stages.params import MONITORS, VAL_SCORES, BaseParams, SweepParams, TrainParams, read_params

log = logging.getLogger(__name__)


def pair_params(train: TrainParams, sweep: SweepParams, learning_rate: float, batch_size: int):
    return train.model_copy(
        update={
            "learning_rate": learning_rate,
            "batch_size": batch_size,
            "epochs": sweep.epochs,
            "min_steps": 0,  # the sweep's budget is sweep.epochs, whatever the data size
            "early_stopping_patience": 0,
            "fine_tune_epochs": 0,
        }
    )


def run_pairs(pairs, train, sweep, train_set, val_set, seed, devices) -> list[dict]:
    """Train every (learning rate, batch size) pair; one result row each."""
    import keras

    from stages.training import fit_model

    rows = []
    bar = progress(pairs, "sweep", unit="pair")
    for learning_rate, batch_size in bar:
        bar.set_postfix(learning_rate=learning_rate, batch_size=batch_size, refresh=False)
        result = fit_model(
            pair_params(train, sweep, learning_rate, batch_size),
            train_set, val_set, seed, devices, verbose=0,
        )  # fmt: skip
        history, best_epoch = result.history, result.best_epoch
        scores = {name: round(history[name][best_epoch], 4) for name in VAL_SCORES}
        rows.append(
            {
                "pair": f"lr={learning_rate:g} batch={batch_size}",
                "learning_rate": learning_rate,
                "batch_size": batch_size,
                "score": scores[train.monitor],
                **scores,
                "epochs": len(history["loss"]),
                "seconds": round(result.seconds, 1),
            }
        )
        bar.write(f"sweep: {rows[-1]['pair']} -> {train.monitor} {rows[-1]['score']:.4f}")
        # Each pair's model, optimizer and traced functions stay in Keras' global state
        # until cleared, so memory would grow with the grid.
        del result
        keras.backend.clear_session()
    return rows


def best_pair(results: pd.DataFrame, monitor: str) -> pd.Series:
    """The best `score` (the train.monitor value); on a tie, the lower val loss."""
    higher_is_better = MONITORS[monitor] == "max"
    ranked = results.sort_values(["score", "val_loss"], ascending=[not higher_is_better, True])
    return ranked.iloc[0]


def experiment_command(best: pd.Series) -> str:
    return (
        f"dvc exp run -S train.learning_rate={best['learning_rate']:g} "
        f"-S train.batch_size={int(best['batch_size'])}"
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_paths(
        argv,
        __doc__,
        resized="the data/resized folder",
        split="the split CSV",
        results="results CSV to write",
        heatmap="heatmap PNG to write",
        metrics="best pair JSON to write",
    )
    params = read_params()
    base, train = BaseParams.from_params(params), TrainParams.from_params(params)
    sweep = SweepParams.from_params(params)
    # Keras is imported only now, after the params were found valid.
    from stages.models import check_input_size

    check_input_size(train.model, image_size(args.resized))

    from stages.training import configure_devices

    devices = configure_devices()
    train_set = load_subset(args.resized, args.split, "train", sweep.train_fraction, base.seed)
    val_set = load_subset(args.resized, args.split, "val")
    pairs = list(itertools.product(sweep.learning_rates, sweep.batch_sizes))
    log.info(
        "sweep: %d pairs x %d epoch(s) of %s on %d images (val %d), %s",
        len(pairs), sweep.epochs, train.model, len(train_set.labels), len(val_set.labels),
        devices.describe(),
    )  # fmt: skip
    started = time.perf_counter()
    rows = run_pairs(pairs, train, sweep, train_set, val_set, base.seed, devices)
    results = pd.DataFrame(rows)
    best = best_pair(results, train.monitor)
    write_csv(args.results, results)
    save_figure(sweep_heatmap_figure(results, best, train.monitor), args.heatmap)
    write_json(
        args.metrics,
        {
            "best": {
                "learning_rate": float(best["learning_rate"]),
                "batch_size": int(best["batch_size"]),
                **{name: float(best[name]) for name in VAL_SCORES},
            },
            "monitor": train.monitor,
            "pairs": len(results),
            "seconds": round(time.perf_counter() - started, 1),
        },
    )
    log.info(
        "sweep: best %s (%s %.4f). Train the full model with it:\n  %s",
        best["pair"], train.monitor, best["score"], experiment_command(best),
    )  # fmt: skip


if __name__ == "__main__":
    run_stage(main)
