"""How train and sweep fit a model: devices, seeds, the input pipeline, compile and fit.

Both stages call `fit_model`, so a sweep result is a statement about the train stage.
"""

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf
from sklearn.utils.class_weight import compute_class_weight

from image_classifier.data.dataset import Subset
from image_classifier.model.architectures import build_model, count_flops, unfreeze_top
from image_classifier.model.augmentation import Augmentation, augment
from image_classifier.model.metrics import BalancedAccuracy, MacroF1
from image_classifier.model.resume import Backup, RestoreState, SaveState
from image_classifier.params import MONITORS, VAL_SCORES, TrainParams


@dataclass(frozen=True)
class Devices:
    gpus: int
    mixed_precision: bool
    jit_compile: bool
    strategy: tf.distribute.Strategy

    def describe(self) -> str:
        where = f"{self.gpus} GPU(s)" if self.gpus else "CPU"
        state = {True: "on", False: "off"}
        precision, xla = state[self.mixed_precision], state[self.jit_compile]
        return f"{where}, mixed precision {precision}, XLA {xla}"


def configure_devices(accelerators: list | None = None) -> Devices:
    """Mixed precision and XLA where they pay (GPUs); one replica per GPU when there are several.

    On a CPU both are off: float16 is emulated there, and XLA made a step here several
    times slower. `accelerators` are the logical devices to train on, by default every GPU
    TensorFlow sees.
    """
    if accelerators is None:
        accelerators = tf.config.list_logical_devices("GPU")
    count = len(accelerators)
    keras.mixed_precision.set_global_policy("mixed_float16" if count else "float32")
    # MultiWorkerMirroredStrategy fails with model.fit in Keras 3 (keras#20585); Mirrored works.
    strategy = (
        tf.distribute.MirroredStrategy([device.name for device in accelerators])
        if count > 1
        else tf.distribute.get_strategy()
    )
    return Devices(count, mixed_precision=bool(count), jit_compile=bool(count), strategy=strategy)


def seed_everything(seed: int) -> None:
    """Same params and seed, same model: seeds Python, NumPy, TF, and makes TF ops deterministic."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def make_dataset(
    subset: Subset,
    batch_size: int,
    shuffle_seed: int | None = None,
    augmentation: Augmentation | None = None,
    repeat: bool = False,
    skip_batches: int = 0,
) -> tf.data.Dataset:
    """uint8 images in memory -> (shuffled, augmented) batches, prepared ahead of the step.

    Images were decoded and resized once by the resize stage, so nothing is decoded here.
    The pipeline shuffles and batches indices and gathers each batch from the NumPy array:
    unlike `from_tensor_slices(images)`, this keeps no second copy of the dataset (0.8 GB
    for Animals-10). Batches stay uint8 until augmentation (or the model) turns them into
    floats, and are prepared on every core in parallel with training. Each batch's
    augmentation has its own seed, drawn from `shuffle_seed` and new every epoch.
    `skip_batches` starts the stream that far in (a resumed training), with the same order
    and the same seeds as if the batches before had been drawn.
    """
    images, labels = subset.images, subset.labels

    def gather(indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        indices = np.sort(indices)  # rows in memory order copy fastest; the batch is shuffled
        return images[indices], labels[indices]

    def load(indices: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        batch_images, batch_labels = tf.numpy_function(
            gather, [indices], (tf.uint8, tf.int32), stateful=False
        )
        batch_images.set_shape((None, *images.shape[1:]))
        batch_labels.set_shape((None,))
        return batch_images, batch_labels

    batches = tf.data.Dataset.range(len(labels))
    if shuffle_seed is not None:
        batches = batches.shuffle(len(labels), seed=shuffle_seed, reshuffle_each_iteration=True)
    if repeat:  # one endless stream of passes, each in a new order: every batch is full
        batches = batches.repeat()
    batches = batches.batch(batch_size)
    augmenting = augmentation is not None and augmentation.active
    if augmenting:  # each batch of indices paired with its seed before anything is skipped
        seeds = tf.data.Dataset.random(seed=shuffle_seed, rerandomize_each_iteration=True)
        batches = tf.data.Dataset.zip(batches, seeds.batch(2))
    if skip_batches:
        batches = batches.skip(skip_batches)  # indices and seeds only: nothing is gathered
    if augmenting:
        dataset = batches.map(
            lambda indices, seed: (*load(indices), seed), num_parallel_calls=tf.data.AUTOTUNE
        ).map(
            lambda images, labels, seed: (augment(images, augmentation, seed), labels),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    else:
        dataset = batches.map(load, num_parallel_calls=tf.data.AUTOTUNE)
    options = tf.data.Options()
    # One thread per input op: augmentation then runs beside the training step on the other
    # core instead of fighting it for both (measured on 2 cores: 0.94 -> 1.73 cores busy,
    # 738 -> 855 images/s).
    options.threading.max_intra_op_parallelism = 1
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(options)


def class_weights(labels: np.ndarray, num_classes: int) -> dict[int, float]:
    """Inverse-frequency weights, so a 3.4:1 imbalance does not become a bias for dogs."""
    present = np.unique(labels)
    weights = compute_class_weight("balanced", classes=present, y=labels)
    result = dict.fromkeys(range(num_classes), 1.0)
    result.update({int(c): float(w) for c, w in zip(present, weights, strict=True)})
    return result


def make_optimizer(params: TrainParams, learning_rate: float, steps: int) -> keras.Optimizer:
    schedule = (
        keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=max(steps, 1))
        if params.lr_schedule == "cosine"
        else learning_rate
    )
    if params.optimizer == "sgd":
        return keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True)
    if params.optimizer == "adamw":
        return keras.optimizers.AdamW(schedule)
    return keras.optimizers.Adam(schedule)


def compile_model(
    model: keras.Model, params: TrainParams, learning_rate: float, steps: int, devices: Devices
) -> None:
    num_classes = model.output.shape[-1]
    model.compile(
        optimizer=make_optimizer(params, learning_rate, steps),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[
            keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
            BalancedAccuracy(num_classes),
            MacroF1(num_classes),
        ],
        jit_compile=devices.jit_compile,
    )


def monitor_score(logs: dict, monitor: str) -> tuple[float, float]:
    """A sortable score, higher is better: the monitored metric, then the lower val_loss."""
    value = logs[monitor] if MONITORS[monitor] == "max" else -logs[monitor]
    return (value, -logs["val_loss"])


class BestWeights(keras.callbacks.Callback):
    """Remembers the weights of the epoch with the best `monitor` (lowest val_loss on ties)."""

    def __init__(self, monitor: str) -> None:
        super().__init__()
        self.monitor = monitor
        self.best: tuple[float, float] | None = None
        self.best_epoch = -1
        self.weights: list | None = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        score = monitor_score(logs, self.monitor)
        if self.best is None or score > self.best:
            self.best, self.best_epoch = score, epoch
            self.weights = [np.copy(w) for w in self.model.get_weights()]


def steps_per_epoch(params: TrainParams, images: int) -> int:
    """One pass over the train split, or more: with train.min_steps, each of the train.epochs
    epochs takes at least min_steps / epochs steps. A few hundred photos at batch 64 make a
    handful of steps per pass, far too few to learn from; repeating them within an epoch
    keeps epochs (validation, early stopping, the curves) meaning the same at any size."""
    return max(math.ceil(images / params.batch_size), math.ceil(params.min_steps / params.epochs))


def early_stopping(params: TrainParams, epochs: int) -> list[keras.callbacks.Callback]:
    """Stop when `train.monitor` has not improved for `train.early_stopping_patience` epochs,
    never in the first half of the run, while the learning rate is still high."""
    if not params.early_stopping_patience:
        return []
    return [
        keras.callbacks.EarlyStopping(
            params.monitor,
            mode=MONITORS[params.monitor],
            patience=params.early_stopping_patience,
            start_from_epoch=epochs // 2,
        )
    ]


class Record(keras.callbacks.Callback):
    """Every epoch's logs into one history over all phases (and over a resumed run)."""

    def __init__(self, history: dict[str, list[float]]) -> None:
        super().__init__()
        self.history = history

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        for name, value in (logs or {}).items():
            self.history.setdefault(name, []).append(float(value))


class TrainingClock(keras.callbacks.Callback):
    """Seconds spent in training steps only (validation excluded), for images/s."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds = 0.0
        self._started = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._started = time.perf_counter()

    def on_test_begin(self, logs: dict | None = None) -> None:
        self.seconds += time.perf_counter() - self._started


@dataclass
class FitResult:
    model: keras.Model
    history: dict[str, list[float]]
    best_epoch: int  # 0-based, over both phases
    seconds: float
    images_per_second: float
    flops_per_image: int
    resumed_from: int = 0  # epochs a killed run had finished, 0 when it started afresh


def fit_model(
    params: TrainParams,
    train: Subset,
    val: Subset,
    seed: int,
    devices: Devices,
    callbacks: list[keras.callbacks.Callback] = (),
    verbose: int | None = None,
    on_phase: Callable[[str], None] = lambda phase: None,
    backup: Backup | None = None,
) -> FitResult:
    """Build and train `params.model` on `train`, scored on `val`; the best epoch's weights win.

    Transfer models may get a second phase (params.fine_tune_epochs) with the top of their
    base unfrozen at a lower learning rate. With a `backup`, every finished epoch is saved,
    and a backup of a killed run is resumed from its last finished epoch.
    """
    seed_everything(seed)
    size = train.images.shape[1]
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2  # a bar in a terminal, a line per epoch in logs
    augmentation = Augmentation(
        params.flip, params.rotation, params.zoom, params.translation, params.interpolation
    )
    val_batches = make_dataset(val, params.batch_size)
    steps = steps_per_epoch(params, len(train.labels))
    weights = class_weights(train.labels, train.num_classes) if params.class_weights else None
    best, clock = BestWeights(params.monitor), TrainingClock()
    stop = early_stopping(params, params.epochs)
    with devices.strategy.scope():
        model = build_model(
            params.model,
            size,
            train.num_classes,
            filters=params.filters,
            dropout=params.dropout,
            l2=params.l2,
            weights=params.weights,
        )
        compile_model(model, params, params.learning_rate, steps * params.epochs, devices)
    phases = [(params.epochs, params.learning_rate)]
    if params.model != "separable_cnn" and params.fine_tune_epochs:
        phases.append((params.fine_tune_epochs, params.fine_tune_learning_rate))

    state = backup.state if backup else None
    history: dict[str, list[float]] = (
        {k: list(v) for k, v in state["history"].items()} if state else {}
    )
    resumed_phase, resumed_from = (state["phase"], state["epochs_done"]) if state else (0, 0)
    epochs_done, started = 0, time.perf_counter()
    for phase, (epochs, learning_rate) in enumerate(phases):
        if phase:
            on_phase(f"fine-tuning {', '.join(unfreeze_top(model, params.fine_tune_layers))}")
            with devices.strategy.scope():
                compile_model(model, params, learning_rate, steps * epochs, devices)
        if phase < resumed_phase:  # finished before the kill; the saved weights come later
            epochs_done += epochs
            continue
        initial = resumed_from if state and phase == resumed_phase else epochs_done
        extra = [Record(history)]
        if backup:
            if initial > epochs_done:
                backup.load_model_weights(model)
                extra.append(RestoreState(backup, best, clock, stop))
            extra.append(SaveState(backup, phase, best, clock, stop, history))
        # Each fit reads the stream from its start; a resumed one skips what it trained on.
        train_batches = make_dataset(
            train, params.batch_size, seed, augmentation, repeat=True,
            skip_batches=(initial - epochs_done) * steps,
        )  # fmt: skip
        model.fit(
            train_batches,
            validation_data=val_batches,
            steps_per_epoch=steps,
            epochs=epochs_done + epochs,
            initial_epoch=initial,
            class_weight=weights,
            shuffle=False,  # the dataset shuffles itself, with the seed, every pass
            callbacks=[best, clock, *stop, *callbacks, *extra],
            verbose=verbose,
        )
        epochs_done = len(history["loss"])
        state = None
    seconds = time.perf_counter() - started
    model.set_weights(best.weights)
    return FitResult(
        model=model,
        history=history,
        best_epoch=best.best_epoch,
        seconds=seconds,
        images_per_second=steps * params.batch_size * epochs_done / max(clock.seconds, 1e-9),
        flops_per_image=count_flops(model),
        resumed_from=resumed_from,
    )


def fit_summary(result: FitResult, monitor: str) -> dict:
    """Best-epoch and last-epoch figures of a FitResult, as flat numbers for `dvc metrics`."""
    history, best = result.history, result.best_epoch

    def at(epoch: int) -> dict[str, float]:
        scores = {name: round(history[name][epoch], 4) for name in VAL_SCORES}
        return {
            **scores,
            "train_macro_f1": round(history["macro_f1"][epoch], 4),
            "train_accuracy": round(history["accuracy"][epoch], 4),
            "train_loss": round(history["loss"][epoch], 4),
        }

    return {
        **at(best),
        "monitor": monitor,
        "best_epoch": best + 1,
        "epochs_run": len(history["loss"]),
        "last": at(-1),
        "seconds": round(result.seconds, 1),
        "images_per_second": round(result.images_per_second, 1),
        "params": result.model.count_params(),
        "flops_per_image": result.flops_per_image,
    }
