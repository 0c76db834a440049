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
    # One thread per input op: augmentation then runs beside the training step on another
    # core instead of fighting it for all of them (docs/benchmarks.md measures it).
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
    keeps epochs (validation, early stopping, the curves) meaning the same at any size.
    With train.max_steps, fewer: each epoch of a large split then sees a part of it, a new
    part each time (the stream of batches runs on across epochs)."""
    steps = max(math.ceil(images / params.batch_size), math.ceil(params.min_steps / params.epochs))
    return min(steps, params.max_steps // params.epochs) if params.max_steps else steps


def repeats_the_split(params: TrainParams, images: int) -> bool:
    """Whether train.min_steps makes each epoch more than one pass over the train split."""
    return math.ceil(params.min_steps / params.epochs) > math.ceil(images / params.batch_size)


def member_count(params: TrainParams, images: int) -> int:
    """train.members, with auto resolved: two networks where min_steps repeats a small train
    split (every photo is seen many times, so a second random start adds more than more
    steps do), one where each epoch sees new photos."""
    if params.members != "auto":
        return params.members
    return 2 if repeats_the_split(params, images) else 1


def member_params(params: TrainParams, members: int) -> TrainParams:
    """The train params of each of `members` networks: each trains the whole budget (epochs,
    min_steps, max_steps), so training takes `members` times as long. Halving the budget
    of each instead cost the small sets it is meant for (docs/defaults.md)."""
    return params.model_copy(update={"members": members})


def step_cap_note(params: TrainParams, images: int) -> str:
    """What train.max_steps does to this split, or "" when it does not bind."""
    steps = steps_per_epoch(params, images)
    one_pass = math.ceil(images / params.batch_size)
    if steps >= one_pass:
        return ""
    return (
        f"train.max_steps {params.max_steps} caps each epoch at {steps} steps, "
        f"{steps / one_pass:.0%} of the train split (0: whole passes)"
    )


class EarlyStop(keras.callbacks.Callback):
    """Stops a fit when `monitor` has not improved for `patience` epochs, counting from epoch
    `start` on, as keras.callbacks.EarlyStopping does; its counters (`state`, `restore`) are
    this class's own, so a resumed run restores them without writing into Keras' internals."""

    def __init__(self, monitor: str, patience: int, start: int) -> None:
        super().__init__()
        self.monitor, self.patience, self.start = monitor, patience, start
        self.sign = 1.0 if MONITORS[monitor] == "max" else -1.0
        self.wait, self.best = 0, None

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.wait, self.best = 0, None  # each phase's fit starts counting afresh

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if epoch < self.start:
            return
        value = self.sign * float(logs[self.monitor])
        self.wait += 1
        if self.best is None or value > self.best:
            self.best, self.wait = value, 0
        elif self.wait >= self.patience:
            self.model.stop_training = True

    def state(self) -> dict:
        return {"wait": self.wait, "best": self.best}

    def restore(self, state: dict) -> None:
        self.wait, self.best = state["wait"], state["best"]


def early_stopping(params: TrainParams, epochs: int) -> list[EarlyStop]:
    """Stop when `train.monitor` has not improved for `train.early_stopping_patience` epochs,
    never in the first half of the run, while the learning rate is still high."""
    if not params.early_stopping_patience:
        return []
    return [EarlyStop(params.monitor, params.early_stopping_patience, start=epochs // 2)]


class Record(keras.callbacks.Callback):
    """Every epoch's logs into one history over all phases (and over a resumed run)."""

    def __init__(self, history: dict[str, list[float]]) -> None:
        super().__init__()
        self.history = history

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        for name, value in (logs or {}).items():
            self.history.setdefault(name, []).append(float(value))


class TrainingClock(keras.callbacks.Callback):
    """Wall and CPU seconds of the training part of each epoch (validation excluded), for
    images/s and the cores busy; `seconds` is their wall total (restored on a resume)."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds = 0.0
        self.epochs: list[tuple[float, float]] = []  # (wall, cpu) of each epoch's training
        self._started: tuple[float, float] | None = None

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._started = (time.perf_counter(), time.process_time())

    def on_test_begin(self, logs: dict | None = None) -> None:
        self._stop()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self._stop()  # a fit without validation never calls on_test_begin

    def _stop(self) -> None:
        if self._started is not None:
            wall = time.perf_counter() - self._started[0]
            self.epochs.append((wall, time.process_time() - self._started[1]))
            self.seconds += wall
            self._started = None


@dataclass
class Tracking:
    """What every phase's fit reports to, and what a backup saves and restores: the best
    epoch and its weights, the clock, early stopping and the history of all phases."""

    best: BestWeights
    clock: TrainingClock
    stop: list[EarlyStop]
    history: dict[str, list[float]]

    @classmethod
    def start(cls, params: TrainParams, state: dict | None) -> "Tracking":
        history = {k: list(v) for k, v in state["history"].items()} if state else {}
        return cls(
            BestWeights(params.monitor),
            TrainingClock(),
            early_stopping(params, params.epochs),
            history,
        )

    @property
    def epochs(self) -> int:
        return len(self.history.get("loss", []))

    def callbacks(self) -> list[keras.callbacks.Callback]:
        return [self.best, self.clock, *self.stop, Record(self.history)]

    def images_per_second(self, steps: int, params: TrainParams) -> float:
        return steps * params.batch_size * self.epochs / max(self.clock.seconds, 1e-9)


def training_phases(params: TrainParams) -> list[tuple[int, float]]:
    """(epochs, learning rate) of each phase: training, then a transfer model's fine-tuning."""
    phases = [(params.epochs, params.learning_rate)]
    if params.model != "separable_cnn" and params.fine_tune_epochs:
        phases.append((params.fine_tune_epochs, params.fine_tune_learning_rate))
    return phases


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
    steps = steps_per_epoch(params, len(train.labels))
    model = new_model(params, train, devices)
    state = backup.state if backup else None
    resumed_from = state["epochs_done"] if state else 0
    tracking, val_batches = Tracking.start(params, state), make_dataset(val, params.batch_size)
    started = time.perf_counter()
    for phase, (epochs, learning_rate) in enumerate(training_phases(params)):
        if phase:
            on_phase(f"fine-tuning {', '.join(unfreeze_top(model, params.fine_tune_layers))}")
        with devices.strategy.scope():
            compile_model(model, params, learning_rate, steps * epochs, devices)
        if state and phase < state["phase"]:
            continue  # finished before the kill; its weights are in the backup
        resuming = bool(state) and phase == state["phase"]
        first = state["phase_first"] if resuming else tracking.epochs
        initial = state["epochs_done"] if resuming else first
        extra = backup_callbacks(backup, model, tracking, phase, first, resuming)
        # Each fit reads the stream from its start; a resumed one skips what it trained on.
        skip = (initial - first) * steps
        batches = make_dataset(train, params.batch_size, seed, augmentation_of(params), True, skip)
        model.fit(
            batches,
            validation_data=val_batches,
            steps_per_epoch=steps,
            epochs=first + epochs,
            initial_epoch=initial,
            class_weight=loss_weights(params, train),
            shuffle=False,  # the dataset shuffles itself, with the seed, every pass
            callbacks=[*tracking.callbacks(), *callbacks, *extra],
            verbose=progress_style() if verbose is None else verbose,
        )
        state = None
    model.set_weights(tracking.best.weights)
    rate, flops = tracking.images_per_second(steps, params), count_flops(model)
    seconds = time.perf_counter() - started
    best = tracking.best.best_epoch
    return FitResult(model, tracking.history, best, seconds, rate, flops, resumed_from)


def progress_style() -> int:
    """Keras' verbosity: a bar in a terminal, a line per epoch in logs."""
    return 1 if sys.stdout.isatty() else 2


def new_model(params: TrainParams, train: Subset, devices: Devices) -> keras.Model:
    with devices.strategy.scope():
        return build_model(
            params.model,
            train.images.shape[1],
            train.num_classes,
            filters=params.filters,
            dropout=params.dropout,
            l2=params.l2,
            weights=params.weights,
        )


def augmentation_of(params: TrainParams) -> Augmentation:
    return Augmentation(
        params.flip, params.rotation, params.zoom, params.translation, params.interpolation
    )


def loss_weights(params: TrainParams, train: Subset) -> dict[int, float] | None:
    return class_weights(train.labels, train.num_classes) if params.class_weights else None


def backup_callbacks(
    backup: Backup | None,
    model: keras.Model,
    tracking: Tracking,
    phase: int,
    first: int,
    resuming: bool,
) -> list[keras.callbacks.Callback]:
    """Save every epoch; on a resumed phase, first the killed run's weights and state."""
    if backup is None:
        return []
    if resuming:
        backup.load_model_weights(model)
        return [RestoreState(backup, tracking), SaveState(backup, phase, first, tracking)]
    return [SaveState(backup, phase, first, tracking)]


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
