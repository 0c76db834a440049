"""The learning rate x batch size sweep: each pair trained briefly through exactly the train
stage's code (fitting.fit_model), with the train params but for the learning rate, the batch
size and a short budget of the sweep's own, then ranked by train.monitor."""

import keras
import pandas as pd

from image_classifier.console import progress
from image_classifier.model.fitting import fit_model
from image_classifier.params import MONITORS, VAL_SCORES, SweepParams, TrainParams

# The train params a pair does not take from params.yaml: dvc.yaml lists the sweep's deps on
# the others, and tests/test_pipeline.py checks that the two lists make every train param.
SET_BY_THE_SWEEP = (
    "learning_rate",
    "batch_size",
    "epochs",
    "min_steps",
    "max_steps",
    "early_stopping_patience",
    "fine_tune_epochs",
)
# No fine-tuning phase, no calibration, no flip averaging and one network per pair: the train
# stage calibrates the model it keeps and makes it answer on mirror images and with every
# member; the sweep ranks one network on val as trained.
UNUSED_BY_THE_SWEEP = (
    "members",
    "fine_tune_learning_rate",
    "fine_tune_layers",
    "unsure_error_ratio",
    "flip_average",
)


def pair_params(train: TrainParams, sweep: SweepParams, learning_rate: float, batch_size: int):
    update = {
        "learning_rate": learning_rate,
        "batch_size": batch_size,
        "epochs": sweep.epochs,
        "min_steps": 0,  # the sweep's budget is sweep.epochs, whatever the data size
        "max_steps": 0,
        "early_stopping_patience": 0,
        "fine_tune_epochs": 0,
    }
    assert set(update) == set(SET_BY_THE_SWEEP)
    return train.model_copy(update=update)


def run_pairs(pairs, train, sweep, train_set, val_set, seed, devices) -> list[dict]:
    """Train every (learning rate, batch size) pair; one result row each."""
    rows = []
    bar = progress(pairs, "sweep", unit="pair")
    for learning_rate, batch_size in bar:
        bar.set_postfix(learning_rate=learning_rate, batch_size=batch_size, refresh=False)
        result = fit_model(
            pair_params(train, sweep, learning_rate, batch_size),
            train_set,
            val_set,
            seed,
            devices,
            verbose=0,
        )
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
