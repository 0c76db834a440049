"""Figure 3 of bench.run: the train stage's own fit against the same model fed one batch
that is already in memory (what the model alone can do), and with augmentation off."""

from pathlib import Path

from bench.machine import cores
from bench.workspace import ROOT, read_yaml


def steady(clock) -> tuple[float, float]:
    """(wall, cpu) seconds of every epoch but the first (tracing, compiling, filling buffers)."""
    return sum(w for w, _ in clock.epochs[1:]), sum(c for _, c in clock.epochs[1:])


def bench_feed(data: Path, epochs: int = 4) -> dict:
    import tensorflow as tf

    from image_classifier.data.dataset import load_subset
    from image_classifier.model.fitting import (
        TrainingClock,
        compile_model,
        configure_devices,
        fit_model,
        new_model,
        steps_per_epoch,
    )
    from image_classifier.params import TrainParams

    params = TrainParams.from_params(read_yaml(ROOT / "params.yaml")).model_copy(
        update={"epochs": epochs, "early_stopping_patience": 0}
    )
    devices = configure_devices()
    train = load_subset(data / "resized", data / "split.csv", "train")
    val = load_subset(data / "resized", data / "split.csv", "val")
    steps = steps_per_epoch(params, len(train.labels))

    model = new_model(params.model_copy(update={"weights": "none"}), train, devices)
    compile_model(model, params, params.learning_rate, steps * epochs, devices)
    batch = (train.images[: params.batch_size], train.labels[: params.batch_size])
    alone = TrainingClock()
    model.fit(
        tf.data.Dataset.from_tensors(batch).repeat(),
        steps_per_epoch=steps,
        epochs=epochs,
        verbose=0,
        callbacks=[alone],
        shuffle=False,  # one batch, repeated: nothing to shuffle
    )
    meter = TrainingClock()
    fit_model(params, train, val, 42, devices, callbacks=[meter], verbose=0)
    # The same fit with augmentation off: the input pipeline's own cost, apart from the
    # augmentation's resampling, which the recipe asks for.
    plain = TrainingClock()
    unaugmented = params.model_copy(
        update={"flip": False, "rotation": 0, "zoom": 0, "translation": 0}
    )
    fit_model(unaugmented, train, val, 42, devices, callbacks=[plain], verbose=0)
    images = steps * params.batch_size * (epochs - 1)
    result = {}
    for name, clock in (("model_alone", alone), ("train", meter), ("unaugmented", plain)):
        wall, cpu = steady(clock)
        result[f"{name}_images_per_second"], result[f"{name}_cores"] = images / wall, cpu / wall
    return result | {
        "batch_size": params.batch_size,
        "first_epoch_images_per_second": steps * params.batch_size / meter.epochs[0][0],
        "cores": cores(),
        "epochs": epochs,
    }
