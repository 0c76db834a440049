"""The train stage: input pipeline, reproducibility, outputs, and one-line errors."""

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import keras
import numpy as np
import pytest

from stages.data import load_subset
from stages.params import SweepParams, TrainParams, read_params
from stages.sweep import run_pairs
from stages.training import augmentation_model, class_weights, configure_devices, make_dataset
from tests.conftest import (
    make_resized_dataset,
    run,
    run_stage,
    stage_env,
    tree_digest,
    write_params,
)

TINY = {"train__epochs": 2, "train__batch_size": 8, "train__filters": [8, 16]}


def train_args(folder):
    return ("--resized", "resized", "--split", "split.csv", "--model", "models/model.keras",
            "--live", "plots/training", "--metrics", "metrics/train.json")  # fmt: skip


@pytest.fixture
def tiny(tmp_path):
    make_resized_dataset(tmp_path)
    return tmp_path


def test_dataset_batches_are_float_shuffled_by_seed_and_augmented(tiny):
    subset = load_subset(tiny / "resized", tiny / "split.csv", "train")
    plain = list(make_dataset(subset, batch_size=8))
    images, _ = plain[0]
    assert images.dtype == "float32" and images.shape == (8, 32, 32, 3)
    assert np.array_equal(images.numpy(), subset.images[:8].astype("float32"))
    assert sum(len(batch[1]) for batch in plain) == len(subset.labels)

    def order(seed):
        return np.concatenate([b[1].numpy() for b in make_dataset(subset, 8, shuffle_seed=seed)])

    assert np.array_equal(order(1), order(1))
    assert not np.array_equal(order(1), order(2))
    assert sorted(order(1)) == sorted(subset.labels)

    keras.utils.set_random_seed(0)
    augment = augmentation_model(32, flip=True, rotation=0.1, zoom=0.2)
    augmented, _ = next(iter(make_dataset(subset, 8, augment=augment)))
    assert augmented.shape == images.shape
    assert not np.allclose(augmented.numpy(), images.numpy())
    assert float(np.min(augmented)) >= 0 and float(np.max(augmented)) <= 255.001
    assert augmentation_model(32, flip=False, rotation=0, zoom=0) is None


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
    assert first["epochs_run"] == 2 and 1 <= first["best_epoch"] <= 2
    assert first["params"] == model.count_params() and first["flops_per_image"] > 0
    curve = (tiny / "plots/training/plots/metrics/eval/accuracy.tsv").read_text().splitlines()
    assert curve[0] == "step\taccuracy" and len(curve) == 3


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"train__batch_size": 0},
         "train: error: params.yaml: train.batch_size = 0 is not allowed: must be an integer >= 1 and <= 65536"),
        ({"train__learning_rate": -0.01},
         "train: error: params.yaml: train.learning_rate = -0.01 is not allowed: must be a finite number > 0 and <= 10"),
        ({"train__model": "resnet9000"},
         "train: error: params.yaml: train.model = 'resnet9000' is not allowed: must be one of separable_cnn, vgg16"),
        ({"train__model": "vgg16", "train__weights": "none"},
         "train: error: images are 24x24 (resize.size = 24) but train.model = vgg16 needs at least 32x32"),
    ],
)  # fmt: skip
def test_bad_values_stop_with_one_line(tmp_path, overrides, expected):
    make_resized_dataset(tmp_path, size=24)
    write_params(tmp_path, **overrides)
    result = run_stage("train", *train_args(tmp_path), cwd=tmp_path, check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith(expected)
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "models").exists()


def test_mirrored_strategy_on_two_logical_cpus(tiny):
    """The multi-GPU path (MirroredStrategy) trained on two logical CPU devices."""
    script = textwrap.dedent(
        """
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        import dataclasses
        from pathlib import Path
        from stages.data import load_subset
        from stages.params import TrainParams, read_params
        from stages.training import configure_devices, fit_model
        params = TrainParams.from_params(read_params())
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        devices = dataclasses.replace(configure_devices(), strategy=strategy)
        train = load_subset(Path("resized"), Path("split.csv"), "train")
        val = load_subset(Path("resized"), Path("split.csv"), "val")
        result = fit_model(params, train, val, 0, devices, verbose=0)
        print("replicas", strategy.num_replicas_in_sync, "epochs", len(result.history["loss"]))
        """
    )
    write_params(tiny, **TINY)
    result = run([sys.executable, "-c", script], tiny)
    assert "replicas 2 epochs 2" in result.stdout


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
    write_params(tiny, **{**TINY, "train__epochs": 500})
    process = subprocess.Popen(
        [sys.executable, "-m", "stages.train", *train_args(tiny)], cwd=tiny, env=stage_env(),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        # Kill it once it has logged its first epoch (one row after the header), wherever.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            tables = (tiny / "plots").rglob("eval/accuracy.tsv")
            if any(len(table.read_text().splitlines()) == 2 for table in tables):
                break
            time.sleep(0.1)
        assert process.poll() is None, "train ended before it could be killed"
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert tree_digest(curves) == before


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
