"""Figures 4 and 5 of bench.run: training time to 0.95 val accuracy on the embedded data
against a seed-notebook setup (image_dataset_from_directory decoding the files every epoch,
a CNN whose first Conv2D runs at full resolution), and the training step's FLOP/s."""

import time
from pathlib import Path

import keras
import numpy as np

from bench.budget import Budget
from bench.workspace import ROOT, read_yaml

TARGET_ACCURACY = 0.95


def baseline_cnn(size: int, num_classes: int):
    """A seed-notebook CNN: plain Conv2D from full resolution, Flatten, Dense."""
    from keras import layers

    inputs = keras.Input((size, size, 3))
    x = layers.Rescaling(1 / 255)(inputs)
    for filters in (32, 64, 128):
        x = layers.Conv2D(filters, 3, activation="relu")(x)
        x = layers.MaxPooling2D()(x)
    x = layers.Flatten()(x)
    x = layers.Dense(128, activation="relu")(x)
    x = layers.Dropout(0.3)(x)
    return keras.Model(inputs, layers.Dense(num_classes)(x))


def ours_to_target(data: Path, limit_seconds: float) -> dict:
    from image_classifier.data.dataset import load_subset
    from image_classifier.model.fitting import configure_devices, fit_model
    from image_classifier.params import TrainParams

    params = TrainParams.from_params(read_yaml(ROOT / "params.yaml"))
    train = load_subset(data / "resized", data / "split.csv", "train")
    val = load_subset(data / "resized", data / "split.csv", "val")
    stop = Budget(limit_seconds, TARGET_ACCURACY)
    result = fit_model(params, train, val, 42, configure_devices(), callbacks=[stop], verbose=2)
    return {
        "seconds_to_target": stop.reached_after,
        "epochs": len(result.history["loss"]),
        "images_per_second": result.images_per_second,
        "flops_per_image": result.flops_per_image,
    }


def baseline_to_target(data: Path, limit_seconds: float) -> dict:
    import tensorflow as tf

    from image_classifier.model.architectures import count_flops

    keras.utils.set_random_seed(42)
    common = {"image_size": (120, 120), "batch_size": 32, "seed": 42, "label_mode": "int"}
    train_files, val_files = keras.utils.image_dataset_from_directory(
        data / "raw", validation_split=0.15, subset="both", **common
    )
    model = baseline_cnn(120, len(train_files.class_names))
    model.compile(
        keras.optimizers.Adam(1e-3),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    stop = Budget(limit_seconds, TARGET_ACCURACY)
    started = time.perf_counter()
    history = model.fit(
        train_files.prefetch(tf.data.AUTOTUNE),
        validation_data=val_files,
        epochs=100,
        callbacks=[stop],
        verbose=2,
    )
    seconds = time.perf_counter() - started
    epochs = len(history.history["loss"])
    train_images = sum(int(labels.shape[0]) for _, labels in train_files)
    return {
        "seconds_to_target": stop.reached_after,
        "seconds_run": seconds,
        "epochs": epochs,
        "best_val_accuracy": max(history.history["val_accuracy"]),
        "images_per_second": train_images * epochs / seconds,
        "flops_per_image": count_flops(model),
    }


def bench_training(data: Path, limit_seconds: float) -> dict:
    ours, baseline = ours_to_target(data, limit_seconds), baseline_to_target(data, limit_seconds)
    if ours["seconds_to_target"] and baseline["seconds_to_target"]:
        speedup, bound = baseline["seconds_to_target"] / ours["seconds_to_target"], "="
    else:  # the baseline ran out of time: its cap gives a lower bound
        speedup, bound = baseline["seconds_run"] / (ours["seconds_to_target"] or np.inf), ">="
    return {"ours": ours, "baseline": baseline, "speedup": speedup, "speedup_bound": bound}
