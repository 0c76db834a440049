"""The peer recipe: what a Keras user would try instead of this pipeline.

The Keras team's example "Image classification from scratch" (keras.io/examples/vision/
image_classification_from_scratch): a small Xception (a strided Conv2D entry, four residual
blocks of two SeparableConv2D + BatchNormalization with 128 to 728 filters, a 1024-filter
SeparableConv2D, global average pooling, Dropout 0.5), horizontal flips and RandomRotation
0.1 on the input pipeline, Adam at 1e-3, batch 128. It is trained on the pipeline's own
split of the resized images for the same wall time as ours took, checked after every
step (it is several times slower per image, so it gets the time, not the epochs), and the
checkpoint with the best val accuracy is kept, as the example's per-epoch checkpoints let
a user do. XLA is off: on a CPU it made steps slower.
"""

import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from bench.budget import Budget

BATCH_SIZE = 128
LEARNING_RATE = 1e-3
STEPS_PER_CHECK = 40  # steps between validations, so short budgets still keep a best one


def small_xception(size: int, num_classes: int) -> keras.Model:
    inputs = keras.Input((size, size, 3))
    x = layers.Rescaling(1 / 255)(inputs)
    for filters, strides in ((32, 2), (64, 1)):
        x = layers.Conv2D(filters, 3, strides=strides, padding="same")(x)
        x = layers.Activation("relu")(layers.BatchNormalization()(x))
    shortcut = x
    for filters in (128, 256, 512, 728):
        for _ in range(2):
            x = layers.Activation("relu")(x)
            x = layers.BatchNormalization()(layers.SeparableConv2D(filters, 3, padding="same")(x))
        x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
        projected = layers.Conv2D(filters, 1, strides=2, padding="same")(shortcut)
        x = shortcut = layers.add([x, projected])
    x = layers.SeparableConv2D(1024, 3, padding="same")(x)
    x = layers.Activation("relu")(layers.BatchNormalization()(x))
    x = layers.Dropout(0.5)(layers.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, layers.Dense(num_classes, activation="softmax")(x))


def train_peer(train, val, seconds: float, seed: int) -> tuple[keras.Model, dict]:
    """The example's model and recipe on Subsets `train` and `val`, for `seconds`."""
    keras.utils.set_random_seed(seed)
    augment = keras.Sequential([layers.RandomFlip("horizontal"), layers.RandomRotation(0.1)])
    data = (
        tf.data.Dataset.from_tensor_slices((train.images, train.labels))
        .shuffle(len(train.labels), seed=seed)
        .repeat()
        .batch(BATCH_SIZE)
        .map(
            lambda x, y: (augment(tf.cast(x, tf.float32), training=True), y),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        .prefetch(tf.data.AUTOTUNE)
    )
    model = small_xception(train.images.shape[1], train.num_classes)
    model.compile(
        keras.optimizers.Adam(LEARNING_RATE),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="peer-") as folder:
        best = Path(folder) / "best.weights.h5"
        keeper = keras.callbacks.ModelCheckpoint(
            best, monitor="val_accuracy", save_best_only=True, save_weights_only=True
        )
        history = model.fit(
            data,
            validation_data=(val.images, val.labels),
            steps_per_epoch=STEPS_PER_CHECK,
            epochs=10_000,
            callbacks=[Budget(seconds), keeper],
            verbose=0,
            shuffle=False,  # the dataset shuffles itself
        )
        model.load_weights(best)
    steps = len(history.history["loss"]) * STEPS_PER_CHECK
    return model, {
        "seconds": round(time.perf_counter() - started, 1),
        "images_seen": steps * BATCH_SIZE,
        "passes": round(steps * BATCH_SIZE / len(train.labels), 2),
        "params": model.count_params(),
    }


def predict_classes(model: keras.Model, images: np.ndarray) -> np.ndarray:
    return model.predict(images, batch_size=BATCH_SIZE, verbose=0).argmax(axis=1)
