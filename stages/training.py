"""How train and sweep fit a model: devices, seeds, the input pipeline, compile and fit.

Both stages call `fit_model`, so a sweep result is a statement about the train stage.
"""

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf
from sklearn.utils.class_weight import compute_class_weight

from stages.data import Subset
from stages.models import build_model, count_flops, unfreeze_top
from stages.params import TrainParams


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


def configure_devices() -> Devices:
    """Mixed precision and XLA where they pay (GPUs); one replica per GPU when there are several.

    On a CPU both are off: float16 is emulated there, and XLA made a step here several
    times slower.
    """
    gpus = len(tf.config.list_physical_devices("GPU"))
    keras.mixed_precision.set_global_policy("mixed_float16" if gpus else "float32")
    # MultiWorkerMirroredStrategy fails with model.fit in Keras 3 (keras#20585); Mirrored works.
    strategy = tf.distribute.MirroredStrategy() if gpus > 1 else tf.distribute.get_strategy()
    return Devices(gpus, mixed_precision=bool(gpus), jit_compile=bool(gpus), strategy=strategy)


def seed_everything(seed: int) -> None:
    """Same params and seed, same model: seeds Python, NumPy, TF, and makes TF ops deterministic."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def augmentation_model(size: int, flip: bool, rotation: float, zoom: float) -> keras.Model | None:
    """Random flips, rotations and zooms; uncovered borders are filled by reflection, which
    suits both photos and Animal-MNIST's white-on-black silhouettes."""
    inputs = keras.Input((size, size, 3))
    x = inputs
    if flip:
        x = keras.layers.RandomFlip("horizontal")(x)
    if rotation:
        x = keras.layers.RandomRotation(rotation)(x)
    if zoom:
        x = keras.layers.RandomZoom(zoom)(x)
    return keras.Model(inputs, x, name="augmentation") if x is not inputs else None


def make_dataset(
    subset: Subset,
    batch_size: int,
    shuffle_seed: int | None = None,
    augment: keras.Model | None = None,
) -> tf.data.Dataset:
    """uint8 images in memory -> shuffled, augmented float batches, prepared ahead of the step.

    Images were decoded and resized once by the resize stage, so nothing is decoded here.
    The pipeline shuffles and batches indices and gathers each batch from the NumPy array:
    unlike `from_tensor_slices(images)`, this keeps no second copy of the dataset (0.8 GB
    for Animals-10). Augmentation runs on whole batches (vectorised) in parallel with
    training, which keeps the model itself free of random layers (and XLA-compilable on GPUs).
    """
    images, labels = subset.images, subset.labels

    def gather(indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return images[indices].astype(np.float32), labels[indices]

    def load(indices: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        batch_images, batch_labels = tf.numpy_function(
            gather, [indices], (tf.float32, tf.int32), stateful=False
        )
        batch_images.set_shape((None, *images.shape[1:]))
        batch_labels.set_shape((None,))
        return batch_images, batch_labels

    dataset = tf.data.Dataset.range(len(labels))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(labels), seed=shuffle_seed)
    dataset = dataset.batch(batch_size).map(load)
    if augment is not None:
        dataset = dataset.map(
            lambda images, labels: (augment(images, training=True), labels),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    return dataset.prefetch(tf.data.AUTOTUNE)


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
    model.compile(
        optimizer=make_optimizer(params, learning_rate, steps),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        jit_compile=devices.jit_compile,
    )


class BestWeights(keras.callbacks.Callback):
    """Remembers the weights of the epoch with the best val_accuracy (lowest val_loss on ties)."""

    def __init__(self) -> None:
        super().__init__()
        self.best: tuple[float, float] | None = None
        self.best_epoch = -1
        self.weights: list | None = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        score = (logs["val_accuracy"], -logs["val_loss"])
        if self.best is None or score > self.best:
            self.best, self.best_epoch = score, epoch
            self.weights = [np.copy(w) for w in self.model.get_weights()]


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


def fit_model(
    params: TrainParams,
    train: Subset,
    val: Subset,
    seed: int,
    devices: Devices,
    callbacks: list[keras.callbacks.Callback] = (),
    verbose: int | None = None,
    on_phase: Callable[[str], None] = lambda phase: None,
) -> FitResult:
    """Build and train `params.model` on `train`, scored on `val`; the best epoch's weights win.

    Transfer models may get a second phase (params.fine_tune_epochs) with the top of their
    base unfrozen at a lower learning rate.
    """
    seed_everything(seed)
    size = train.images.shape[1]
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2  # a bar in a terminal, a line per epoch in logs
    augment = augmentation_model(size, params.flip, params.rotation, params.zoom)
    train_batches = make_dataset(train, params.batch_size, shuffle_seed=seed, augment=augment)
    val_batches = make_dataset(val, params.batch_size)
    steps_per_epoch = int(np.ceil(len(train.labels) / params.batch_size))
    weights = class_weights(train.labels, train.num_classes) if params.class_weights else None
    best, clock = BestWeights(), TrainingClock()
    stop = (
        [keras.callbacks.EarlyStopping("val_accuracy", patience=params.early_stopping_patience)]
        if params.early_stopping_patience
        else []
    )
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
        compile_model(model, params, params.learning_rate, steps_per_epoch * params.epochs, devices)
    phases = [(params.epochs, params.learning_rate)]
    if params.model != "separable_cnn" and params.fine_tune_epochs:
        phases.append((params.fine_tune_epochs, params.fine_tune_learning_rate))

    history: dict[str, list[float]] = {}
    epochs_done, started = 0, time.perf_counter()
    for phase, (epochs, learning_rate) in enumerate(phases):
        if phase:
            on_phase(f"fine-tuning {', '.join(unfreeze_top(model, params.fine_tune_layers))}")
            with devices.strategy.scope():
                compile_model(model, params, learning_rate, steps_per_epoch * epochs, devices)
        result = model.fit(
            train_batches,
            validation_data=val_batches,
            epochs=epochs_done + epochs,
            initial_epoch=epochs_done,
            class_weight=weights,
            shuffle=False,  # the dataset shuffles itself, with the seed
            callbacks=[best, clock, *stop, *callbacks],
            verbose=verbose,
        )
        for name, values in result.history.items():
            history.setdefault(name, []).extend(float(v) for v in values)
        epochs_done = len(history["loss"])
    seconds = time.perf_counter() - started
    model.set_weights(best.weights)
    return FitResult(
        model=model,
        history=history,
        best_epoch=best.best_epoch,
        seconds=seconds,
        images_per_second=len(train.labels) * epochs_done / max(clock.seconds, 1e-9),
        flops_per_image=count_flops(model),
    )
