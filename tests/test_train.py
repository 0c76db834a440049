"""The train stage: input pipeline, reproducibility, outputs, and one-line errors."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from image_classifier.data.dataset import load_subset
from image_classifier.model.augmentation import (
    Augmentation,
    affine_transforms,
    augment,
    random_transforms,
    transform,
)
from image_classifier.model.fitting import (
    class_weights,
    configure_devices,
    fit_model,
    make_dataset,
    member_count,
    steps_per_epoch,
)
from image_classifier.model.mirror import MIRROR, is_mirror_averaged
from image_classifier.model.search import run_pairs
from image_classifier.params import SweepParams, TrainParams, read_params
from tests.conftest import (
    FIXTURE_INPUTS,
    make_resized_dataset,
    run,
    run_stage,
    stage_env,
    tree_digest,
    write_params,
)

# min_steps 0: one pass per epoch; these tests check the mechanics, not what is learnt.
TINY = {
    "train__members": 1,
    "train__epochs": 2,
    "train__min_steps": 0,
    "train__batch_size": 8,
    "train__filters": [8, 16],
}


def train_args(folder):
    return (
        *FIXTURE_INPUTS,
        "--model",
        "models/model.keras",
        "--live",
        "plots/training",
        "--metrics",
        "metrics/train.json",
        "--backup",
        "backup",
    )


@pytest.fixture
def tiny(tmp_path):
    make_resized_dataset(tmp_path)
    return tmp_path


def test_dataset_batches_are_uint8_shuffled_by_seed_and_augmented(tiny):
    subset = load_subset(tiny / "resized", tiny / "split.csv", "train")
    plain = list(make_dataset(subset, batch_size=8))
    images, labels = plain[0]
    assert images.dtype == "uint8" and images.shape == (8, 32, 32, 3)  # 4x fewer bytes
    assert np.array_equal(images.numpy(), subset.images[:8])
    assert np.array_equal(labels.numpy(), subset.labels[:8])
    assert sum(len(batch[1]) for batch in plain) == len(subset.labels)

    def epochs(seed, augmentation=None, count=2):
        dataset = make_dataset(subset, 8, shuffle_seed=seed, augmentation=augmentation)
        return [[(x.numpy(), y.numpy()) for x, y in dataset] for _ in range(count)]

    def order(epoch):
        return np.concatenate([labels for _, labels in epoch])

    first, second = epochs(1)
    assert np.array_equal(order(first), order(epochs(1)[0]))  # same seed, same order
    assert not np.array_equal(order(first), order(second))  # a new order every epoch
    assert not np.array_equal(order(first), order(epochs(2)[0]))
    assert sorted(order(first)) == sorted(subset.labels)

    augmentation = Augmentation(flip=True, rotation=0.1, zoom=0.2)
    one, two = epochs(1, augmentation)
    again = epochs(1, augmentation)[0]
    augmented = one[0][0]
    assert augmented.dtype == np.float32 and augmented.shape == (8, 32, 32, 3)
    assert augmented.min() >= 0 and augmented.max() <= 255.001
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(one, again))  # reproducible
    assert not np.allclose(one[0][0], two[0][0])  # new augmentations every epoch
    assert not Augmentation(flip=False, rotation=0, zoom=0).active


def dot_image(row=16, column=2, size=33) -> tf.Tensor:
    image = np.zeros((1, size, size, 1), np.float32)
    image[0, row, column] = 255
    return tf.constant(image)


def where(images: tf.Tensor) -> tuple[int, int]:
    """(row, column) of the brightest pixel of the first image."""
    image = images.numpy()[0, ..., 0]
    return tuple(int(i) for i in np.unravel_index(image.argmax(), image.shape))


@pytest.mark.parametrize(
    ("mirror", "angle", "scale", "shift", "expected"),
    [
        (1, 0, 1, (0, 0), (16, 8)),  # identity
        (-1, 0, 1, (0, 0), (16, 24)),  # a horizontal flip
        (1, np.pi / 2, 1, (0, 0), (24, 16)),  # a quarter turn: left of the centre -> below it
        (1, 0, 2, (0, 0), (16, 12)),  # zoomed out 2x: half as far from the centre
        (1, 0, 0.5, (0, 0), (16, 0)),  # zoomed in 2x: twice as far
        (1, 0, 1, (5, -3), (13, 13)),  # shifted 5 right, 3 up
        (-1, 0, 1, (-4, 0), (16, 20)),  # flipped, then shifted 4 left
    ],
)
def test_affine_transforms_move_pixels_as_asked(mirror, angle, scale, shift, expected):
    transforms = affine_transforms([mirror], [angle], [scale], [shift[0]], [shift[1]], 33)
    moved = transform(dot_image(column=8), transforms)
    assert where(moved) == expected and moved.numpy().max() > 100


def test_random_augmentation_draws_from_the_ranges():
    seeds = [tf.constant([i, 7], tf.int64) for i in range(40)]
    flips = [where(augment(dot_image(), Augmentation(True, 0, 0), seed)) for seed in seeds]
    assert set(flips) == {(16, 2), (16, 30)}
    assert 10 <= flips.count((16, 30)) <= 30  # about half
    assert {where(augment(dot_image(), Augmentation(False, 0, 0), seed)) for seed in seeds} == {
        (16, 2)
    }
    turned = [where(augment(dot_image(), Augmentation(False, 0.05, 0), seed)) for seed in seeds]
    # Within +-18 degrees: the dot stays left of the centre, above or below the row.
    assert all(column < 5 for _, column in turned) and len(set(turned)) > 3


@pytest.mark.parametrize(
    ("images", "max_steps", "expected"),
    [
        (18_199, 0, 285),  # one pass per epoch: 20 x 285 steps
        (18_199, 4000, 200),  # capped: 20 x 200 steps, each epoch 70% of a pass
        (400, 4000, 75),  # a small split repeated up to min_steps; the cap does not bind
        (6_000, 4000, 94),  # one pass, under the cap
    ],
)
def test_steps_per_epoch_between_min_steps_and_max_steps(images, max_steps, expected):
    raw = read_params()["train"] | {"epochs": 20, "batch_size": 64, "min_steps": 1500}
    params = TrainParams.model_validate(raw | {"max_steps": max_steps})
    assert steps_per_epoch(params, images) == expected


def test_the_model_returned_has_the_best_epochs_weights(tiny):
    """A constant, too high learning rate: val macro F1 peaks at epoch 2 of 5 and then falls;
    the model returned (and saved) scores the peak, not the last epoch."""
    from sklearn.metrics import f1_score

    raw = read_params()["train"] | {
        "epochs": 5,
        "min_steps": 0,
        "batch_size": 8,
        "filters": [8, 16],
        "lr_schedule": "constant",
        "learning_rate": 0.05,
        "early_stopping_patience": 0,
        # Pinned, so that the setting does not move with the committed defaults.
        "rotation": 0.03,
        "zoom": 0.08,
        "translation": 0.1,
        "interpolation": "bilinear",
        "class_weights": True,
    }
    train, val = (
        load_subset(tiny / "resized", tiny / "split.csv", part) for part in ("train", "val")
    )
    result = fit_model(
        TrainParams.model_validate(raw), train, val, 0, configure_devices(), verbose=0
    )
    history = result.history["val_macro_f1"]
    assert result.best_epoch == 1 and history[1] > history[-1]  # the setting this test needs
    predicted = result.model.predict(val.images, verbose=0).argmax(axis=1)
    assert f1_score(val.labels, predicted, average="macro") == pytest.approx(history[1], abs=1e-4)


def test_class_weights_balance_the_loss():
    weights = class_weights(np.array([0] * 30 + [1] * 10), num_classes=3)
    assert weights[1] == pytest.approx(3 * weights[0])
    assert weights[2] == 1.0  # a class absent from train gets a neutral weight


def test_train_stage_outputs_and_reproducibility(tiny):
    write_params(tiny, **TINY)
    outputs = []
    for _ in range(2):
        run_stage("train", *train_args(tiny), cwd=tiny)
        metrics = json.loads((tiny / "metrics/train.json").read_text())
        model = keras.models.load_model(tiny / "models/model.keras", safe_mode=True)
        outputs.append((metrics, model.get_weights()))
    (first, first_weights), (second, second_weights) = outputs
    for timing in ("seconds", "images_per_second"):
        first.pop(timing), second.pop(timing)
    assert first == second
    assert all(np.array_equal(a, b) for a, b in zip(first_weights, second_weights))
    # base.seed reaches training: another seed, other weights (a hard-coded seed would not);
    # train.max_steps reaches the fit: 2 steps an epoch, and the log says so.
    write_params(tiny, **TINY, base__seed=7, train__max_steps=4)
    capped = run_stage("train", *train_args(tiny), cwd=tiny)
    other = keras.models.load_model(tiny / "models/model.keras", safe_mode=True).get_weights()
    assert not all(np.array_equal(a, b) for a, b in zip(first_weights, other))
    assert "train: train.max_steps 4 caps each epoch at 2 steps" in capped.stderr
    assert re.search(r"^2/2 ", capped.stdout, re.MULTILINE), capped.stdout
    assert first["epochs_run"] == 2 and 1 <= first["best_epoch"] <= 2
    # the learned parameters: the flip averaging's constant exchange matrix is not counted
    constant = model.get_layer(MIRROR).count_params() if is_mirror_averaged(model) else 0
    assert first["params"] == model.count_params() - constant and first["flops_per_image"] > 0
    curve = (tiny / "plots/training/plots/metrics/eval/accuracy.tsv").read_text().splitlines()
    assert curve[0] == "step\taccuracy" and len(curve) == 3


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"train__batch_size": 0},
            "train: error: params.yaml: train.batch_size = 0 is not allowed: must be an integer >= 1 and <= 65536",
        ),
        (
            {"train__learning_rate": -0.01},
            "train: error: params.yaml: train.learning_rate = -0.01 is not allowed: must be a finite number > 0 and <= 10",
        ),
        (
            {"train__model": "resnet9000"},
            "train: error: params.yaml: train.model = 'resnet9000' is not allowed: must be one of separable_cnn, vgg16",
        ),
        (
            {"train__model": "vgg16", "train__weights": "none"},
            "train: error: images are 24x24 (resize.size = 24) but train.model = vgg16 needs at least 32x32",
        ),
    ],
)
def test_bad_values_stop_with_one_line(tmp_path, overrides, expected):
    make_resized_dataset(tmp_path, size=24)
    write_params(tmp_path, **overrides)
    result = run_stage("train", *train_args(tmp_path), cwd=tmp_path, check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith(expected)
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "models").exists()


def test_a_batch_larger_than_the_train_split_is_cut_to_it(tiny):
    write_params(tiny, **{**TINY, "train__batch_size": 1000, "train__epochs": 1})
    result = run_stage("train", *train_args(tiny), cwd=tiny)
    assert (
        "train: warning: train.batch_size = 1000 is more than the 48 training images: "
        "batches of 48 instead"
    ) in result.stderr
    assert json.loads((tiny / "metrics/train.json").read_text())["epochs_run"] == 1


def test_weights_that_are_not_the_backbones_are_one_line(tmp_path):
    make_resized_dataset(tmp_path)
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "vgg16.h5").write_text("a text file, not weights")
    write_params(tmp_path, train__model="vgg16", train__weights="weights/vgg16.h5")
    result = run_stage("train", *train_args(tmp_path), cwd=tmp_path, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith(
            "train: error: params.yaml: train.weights = 'weights/vgg16.h5' cannot be loaded into vgg16 ("
        )
    )
    assert not (tmp_path / "models").exists()


def test_several_accelerators_train_under_mirrored_strategy(tiny):
    """configure_devices' own choice for several devices, trained on two logical CPUs (what
    it does with GPUs), with mixed precision and XLA then switched back off for the CPU."""
    script = textwrap.dedent(
        """
        import dataclasses
        from pathlib import Path
        import keras, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from image_classifier.data.dataset import load_subset
        from image_classifier.model.fitting import configure_devices, fit_model
        from image_classifier.params import TrainParams, read_params
        devices = configure_devices(tf.config.list_logical_devices("CPU"))
        print("chose", type(devices.strategy).__name__, devices.strategy.num_replicas_in_sync,
              devices.mixed_precision, devices.jit_compile)
        keras.mixed_precision.set_global_policy("float32")
        cpu_only = dataclasses.replace(devices, mixed_precision=False, jit_compile=False)
        params = TrainParams.from_params(read_params())
        train = load_subset(Path("resized"), Path("split.csv"), "train")
        val = load_subset(Path("resized"), Path("split.csv"), "val")
        result = fit_model(params, train, val, 0, cpu_only, verbose=0)
        print("epochs", len(result.history["loss"]))
        """
    )
    write_params(tiny, **TINY)
    result = run([sys.executable, "-c", script], tiny)
    assert "chose MirroredStrategy 2 True True" in result.stdout
    assert "epochs 2" in result.stdout


def test_imagenet_weights_offline_is_one_line(tmp_path):
    make_resized_dataset(tmp_path)
    write_params(tmp_path, train__model="vgg16", train__weights="imagenet")
    with socket.socket() as probe:  # a proxy port nothing listens on: no download can succeed
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    env = stage_env(HTTPS_PROXY=closed, https_proxy=closed, KERAS_HOME=str(tmp_path / "keras"))
    result = run_stage("train", *train_args(tmp_path), cwd=tmp_path, check=False, env=env)
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("train: error: cannot download the ImageNet weights of vgg16 (")
    )
    assert "or to none to train from scratch" in result.stderr
    assert not (tmp_path / "models").exists()


def test_a_killed_train_leaves_the_previous_curves_whole(tiny):
    write_params(tiny, **TINY)
    run_stage("train", *train_args(tiny), cwd=tiny)
    curves = tiny / "plots" / "training"
    before = tree_digest(curves)
    # Long enough to be killed mid-run: 500 epochs, no early stop.
    write_params(tiny, **{**TINY, "train__epochs": 500, "train__early_stopping_patience": 0})
    process = start_train(tiny)
    try:
        # Kill it once this run has logged an epoch into its own temporary curves, or as
        # soon as the previous curves change (what the test exists to catch).
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and process.poll() is None:
            tables = tiny.glob("plots/.training.*.tmp/plots/metrics/eval/accuracy.tsv")
            if any(len(table.read_text().splitlines()) >= 2 for table in tables):
                break
            if tree_digest(curves) != before:
                break
            time.sleep(0.1)
        assert process.poll() is None, "train ended before it could be killed"
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert tree_digest(curves) == before


def start_train(folder) -> subprocess.Popen:
    """The train stage in its own process group, to be killed with it."""
    return subprocess.Popen(
        [sys.executable, "-m", "stages.train", *train_args(folder)],
        cwd=folder,
        env=stage_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def start_and_kill_after(folder, epochs_done: int, backups: str = "backup/*/state.json") -> None:
    """Run the train stage and SIGKILL it once a backup holds `epochs_done` epochs."""
    process = start_train(folder)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and process.poll() is None:
            states = [json.loads(p.read_text()) for p in folder.glob(backups)]
            if any(state["epochs_done"] >= epochs_done for state in states):
                break
            time.sleep(0.05)
        assert process.poll() is None, "train ended before it could be killed"
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def test_a_killed_train_resumes_and_ends_with_the_same_model(tiny):
    write_params(tiny, **{**TINY, "train__epochs": 16, "train__early_stopping_patience": 0})
    run_stage("train", *train_args(tiny), cwd=tiny)
    reference = keras.models.load_model(tiny / "models/model.keras").get_weights()
    curves = (tiny / "plots/training/plots/metrics/eval/loss.tsv").read_text()
    summary = json.loads((tiny / "metrics/train.json").read_text())
    assert not (tiny / "backup").exists()  # removed when training finished

    start_and_kill_after(tiny, epochs_done=3)
    [state] = [json.loads(p.read_text()) for p in tiny.glob("backup/*/state.json")]
    result = run_stage("train", *train_args(tiny), cwd=tiny)
    assert f"train: resuming from epoch {state['epochs_done'] + 1}" in result.stderr
    resumed = keras.models.load_model(tiny / "models/model.keras").get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(reference, resumed))  # bit for bit
    assert (tiny / "plots/training/plots/metrics/eval/loss.tsv").read_text() == curves
    again = json.loads((tiny / "metrics/train.json").read_text())
    assert {k: v for k, v in again.items() if k not in ("seconds", "images_per_second")} == {
        k: v for k, v in summary.items() if k not in ("seconds", "images_per_second")
    }
    assert not (tiny / "backup").exists()


@pytest.mark.parametrize(
    ("members", "images", "expected"),
    [
        ("auto", 400, 2),  # 7 steps a pass, 75 an epoch: min_steps repeats the split
        ("auto", 6800, 1),  # 107 steps a pass: every epoch sees new photos
        (3, 6800, 3),
        (1, 400, 1),
    ],
)
def test_members_auto_is_two_where_min_steps_repeats_the_train_split(members, images, expected):
    train = TrainParams.from_params(read_params()).model_copy(
        update={"members": members, "epochs": 20, "min_steps": 1500, "batch_size": 64}
    )
    assert member_count(train, images) == expected


def test_members_train_from_their_own_seeds_and_answer_as_one_model(tiny):
    # Two networks of 2 epochs each: the first is the network one run of 2 epochs trains.
    params = {**TINY, "train__early_stopping_patience": 0}
    write_params(tiny, **params)
    run_stage("train", *train_args(tiny), cwd=tiny)
    single = keras.models.load_model(tiny / "models/model.keras").get_layer("features")
    write_params(tiny, **{**params, "train__members": 2})
    result = run_stage("train", *train_args(tiny), cwd=tiny)
    assert "train: network 2 of 2" in result.stderr
    model = keras.models.load_model(tiny / "models/model.keras")
    first, second = (model.get_layer(f"features_{n}").get_weights() for n in (1, 2))
    # The first network is the one a single-network run trains, bit for bit; the second
    # started from another seed.
    assert all(np.array_equal(a, b) for a, b in zip(single.get_weights(), first))
    assert not all(np.array_equal(a, b) for a, b in zip(first, second))
    assert json.loads((tiny / "models/model.json").read_text())["members"] == 2
    metrics = json.loads((tiny / "metrics/train.json").read_text())
    # Each network trains the whole budget.
    assert [member["epochs_run"] for member in metrics["members"]] == [2, 2]
    assert metrics["params"] == model.count_params() - model.get_layer(MIRROR).count_params()
    curve = tiny / "plots/training/member-2/plots/metrics/eval/accuracy.tsv"
    assert len(curve.read_text().splitlines()) == 3


def test_a_train_killed_in_its_second_network_resumes_there(tiny):
    params = {**TINY, "train__members": 2, "train__epochs": 6, "train__early_stopping_patience": 0}
    write_params(tiny, **params)
    run_stage("train", *train_args(tiny), cwd=tiny)
    reference = keras.models.load_model(tiny / "models/model.keras").get_weights()
    summary = json.loads((tiny / "metrics/train.json").read_text())
    start_and_kill_after(tiny, epochs_done=2, backups="backup/member-2/*/state.json")
    result = run_stage("train", *train_args(tiny), cwd=tiny)
    assert "train: network 1 finished before" in result.stderr
    assert "train: resuming from epoch" in result.stderr
    resumed = keras.models.load_model(tiny / "models/model.keras").get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(reference, resumed))  # bit for bit
    again = json.loads((tiny / "metrics/train.json").read_text())
    assert without_timings(again) == without_timings(summary)
    assert not (tiny / "backup").exists()


def without_timings(metrics: dict) -> dict:
    timings = ("seconds", "images_per_second")
    kept = {k: v for k, v in metrics.items() if k not in timings}
    if "members" in kept:
        kept["members"] = [without_timings(member) for member in kept["members"]]
    return kept


def test_other_params_never_resume_a_backup(tiny):
    write_params(tiny, **{**TINY, "train__epochs": 16, "train__early_stopping_patience": 0})
    start_and_kill_after(tiny, epochs_done=2)
    assert list(tiny.glob("backup/*/state.json"))
    write_params(tiny, **{**TINY, "train__epochs": 3, "train__learning_rate": 0.01})
    result = run_stage("train", *train_args(tiny), cwd=tiny)
    assert "resuming" not in result.stderr
    assert json.loads((tiny / "metrics/train.json").read_text())["epochs_run"] == 3
    assert not (tiny / "backup").exists()  # the other run's backup is gone with this one's


def test_the_sweep_clears_each_pairs_model_from_memory(tiny):
    params = read_params()
    train = TrainParams.from_params(params).model_copy(update={"filters": [4], "flip": False})
    sweep = SweepParams.from_params(params).model_copy(update={"epochs": 1})
    train_set = load_subset(tiny / "resized", tiny / "split.csv", "train")
    val_set = load_subset(tiny / "resized", tiny / "split.csv", "val")
    keras.layers.Dense(1)  # a layer of the session before the sweep
    rows = run_pairs(
        [(0.01, 8), (0.001, 8)], train, sweep, train_set, val_set, 0, configure_devices()
    )
    assert [row["pair"] for row in rows] == ["lr=0.01 batch=8", "lr=0.001 batch=8"]
    # Keras' global state (layer names, traced functions, models) was cleared: naming starts
    # over instead of counting on from the layers of earlier pairs.
    assert keras.layers.Dense(1).name == "dense"


def test_augmentation_resamples_without_rounding():
    """uint8 photos come out exactly as float resampling makes them: resampling uint8 directly
    truncated every interpolated value, 0.5 levels darker on average than the unaugmented
    val and test images."""
    images = np.random.default_rng(0).integers(0, 256, (4, 40, 40, 3), dtype=np.uint8)
    augmentation = Augmentation(flip=True, rotation=0.1, zoom=0.2, translation=0.1)
    seed = tf.constant([3, 4], tf.int64)
    transforms = random_transforms(4, 40, augmentation, seed)
    expected = transform(tf.constant(images, tf.float32), transforms).numpy()
    augmented = augment(tf.constant(images), augmentation, seed).numpy()
    np.testing.assert_allclose(augmented, expected, atol=1e-3)


def test_class_weights_shift_answers_to_the_rare_class_and_the_default_keeps_the_prior():
    """Noise photos labelled 60 / 30 / 10 %: nothing to learn but the prior. Without weights
    (the default) the model answers the rare class about as rarely as it occurs; with
    inverse-frequency weights it answers it far more often, which a stratified test split
    (the train prior) punishes."""
    from image_classifier.data.dataset import Subset

    rng = np.random.default_rng(0)

    def noise(counts):
        labels = np.repeat(np.arange(3), counts).astype(np.int32)
        images = rng.integers(0, 256, (len(labels), 16, 16, 3), dtype=np.uint8)
        return Subset(images, labels, [f"{i}.png" for i in range(len(labels))], ["a", "b", "c"])

    train, val = noise([120, 60, 20]), noise([60, 30, 10])
    raw = read_params()["train"] | {
        "epochs": 4,
        "min_steps": 0,
        "batch_size": 20,
        "filters": [4, 8],
        "l2": 0.0,
        "early_stopping_patience": 0,
    }
    assert read_params()["train"]["class_weights"] is False  # the committed default
    rare_share = {}
    for weighted in (False, True):
        params = TrainParams.model_validate(raw | {"class_weights": weighted})
        result = fit_model(params, train, val, 0, configure_devices(), verbose=0)
        predicted = result.model.predict(val.images, verbose=0).argmax(axis=1)
        rare_share[weighted] = float(np.mean(predicted == 2))
    assert rare_share[False] <= 0.15, rare_share  # about the prior (10 %), not more
    assert rare_share[True] >= rare_share[False] + 0.15, rare_share


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
@pytest.mark.parametrize("size", [39, 40])
def test_flips_alone_are_the_images_the_affine_transform_makes(interpolation, size):
    """Flips without rotation, zoom or shifts skip the resampling: the same images, the same
    flipped ones for a seed, as the transform random_transforms draws."""
    images = np.random.default_rng(1).integers(0, 256, (16, size, size, 3), dtype=np.uint8)
    augmentation = Augmentation(flip=True, rotation=0, zoom=0, interpolation=interpolation)
    seed = tf.constant([5, 6], tf.int64)
    transforms = random_transforms(16, size, augmentation, seed)
    expected = transform(tf.constant(images, tf.float32), transforms, interpolation).numpy()
    augmented = augment(tf.constant(images), augmentation, seed).numpy()
    flipped = [not np.array_equal(a, b) for a, b in zip(augmented, images, strict=True)]
    assert 3 <= sum(flipped) <= 13
    np.testing.assert_array_equal(augmented, expected)
