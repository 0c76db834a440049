"""Benchmarks: the pipeline against naive baselines and the machine's limit, in one run.

    python -m bench.run            # ~20 minutes on 2 cores; writes bench/results.{md,json}

Every figure is a ratio against a baseline measured in the same run, on the same machine,
and every absolute time is printed beside this machine's dense matmul GFLOP/s:
1. resize throughput on ~300x250 JPEG photos vs a one-process PIL loop;
2. the whole default pipeline from scratch, stage by stage, and `dvc repro` with nothing to do;
3. feed efficiency: the train stage's images/s against the same model fed one batch that is
   already in memory, the CPU cores busy during its epochs, and the same fit with
   augmentation off (what the input pipeline costs apart from the resampling);
4. training time to 0.95 val accuracy on the embedded data vs a seed-notebook baseline
   (image_dataset_from_directory decoding files every epoch, a full-resolution Conv2D CNN);
5. the training step's GFLOP/s vs dense matmul;
6. peak memory of resize, split and one training epoch on 26,000 photos (Animals-10's size).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import keras
import numpy as np

from bench.machine import cores, describe_machine, matmul_gflops
from bench.measure import run_measured
from bench.photos import make_photos
from bench.workspace import ROOT, clone, command_env, read_yaml, set_params

TARGET_ACCURACY = 0.95


# 1. resize ---------------------------------------------------------------------------------


def naive_resize(paths: list[Path], out: Path, size: int) -> None:
    """The loop a first notebook writes: open, convert, resize, save; one process."""
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    for index, path in enumerate(paths):
        with Image.open(path) as image:
            image.convert("RGB").resize((size, size)).save(out / f"{index}.png")


def bench_resize(work: Path, count: int) -> dict:
    """The resize stage as `dvc repro` runs it (its own process, default params, every core)
    against one process decoding and resizing the same photos with PIL in a loop.

    The stage runs as a command, not in this process: its spawned workers would otherwise
    re-import this module, and with it Keras, before resizing anything."""
    from image_classifier.data.sources import copy_into, find_source_files

    photos = work / "photos"
    paths = make_photos(photos, count)
    raw = work / "raw"
    raw.mkdir()
    files, skipped = find_source_files(photos, step_into_wrappers=False)
    copy_into(files, raw, source="folder:photos", skipped=skipped)
    set_params(work, source=ROOT / "params.yaml")

    started = time.perf_counter()
    naive_resize(paths, work / "naive", 120)
    baseline = time.perf_counter() - started
    command = [
        sys.executable,
        "-m",
        "stages.resize",
        "--raw",
        "raw",
        "--out",
        "resized",
        "--metrics",
        "resize.json",
    ]
    started = time.perf_counter()
    subprocess.run(command, cwd=work, env=command_env(), check=True, capture_output=True)
    ours = time.perf_counter() - started
    assert json.loads((work / "resize.json").read_text())["images"] == count
    return {
        "images": count,
        "ours_images_per_second": count / ours,
        "baseline_images_per_second": count / baseline,
        "speedup": baseline / ours,
    }


# 2. DVC ------------------------------------------------------------------------------------


def bench_dvc(work: Path) -> dict:
    """Each stage of the default pipeline from scratch, in order, in a fresh clone."""
    repo = clone(work / "clone")
    env = command_env()
    stages = list(read_yaml(repo / "dvc.yaml")["stages"])  # written in the order they run
    seconds = {}
    for stage in stages:
        # --force: a clone already holds the committed results of the stages whose outputs
        # are all in git (sweep), and DVC would rightly skip them.
        command = [sys.executable, "-m", "dvc", "repro", "--force", "--single-item", stage]
        run = run_measured(command, repo, env)
        assert f"Running stage '{stage}'" in run.output, run.output[-2000:]
        seconds[stage] = run.seconds
    noop = [run_measured([sys.executable, "-m", "dvc", "repro"], repo, env) for _ in range(3)]
    assert "Running stage" not in noop[0].output
    training = json.loads((repo / "metrics/train.json").read_text())
    return {
        "stage_seconds": seconds,
        "full_seconds": sum(seconds.values()),
        "noop_seconds": float(np.median([run.seconds for run in noop])),
        "train_stage_images_per_second": training["images_per_second"],
        "clone": repo,
    }


# 3. feed -----------------------------------------------------------------------------------


class EpochMeter(keras.callbacks.Callback):
    """Wall and CPU seconds (all threads of this process) of the training part of each epoch
    after the first: the first also traces and compiles the step, which the steady state
    that both sides are compared in does not."""

    def __init__(self) -> None:
        super().__init__()
        self.epochs: list[tuple[float, float]] = []
        self._started = None

    def on_epoch_begin(self, epoch, logs=None):
        self._started = (time.perf_counter(), time.process_time())

    def on_test_begin(self, logs=None):
        self._stop()

    def on_epoch_end(self, epoch, logs=None):
        self._stop()  # a fit without validation never calls on_test_begin

    def _stop(self):
        if self._started is not None:
            wall = time.perf_counter() - self._started[0]
            self.epochs.append((wall, time.process_time() - self._started[1]))
            self._started = None

    @property
    def wall(self) -> float:
        return sum(wall for wall, _ in self.epochs[1:])

    @property
    def cpu(self) -> float:
        return sum(cpu for _, cpu in self.epochs[1:])


def bench_feed(data: Path, epochs: int = 4) -> dict:
    """The train stage's own fit (fit_model, default params) against the same model fitting
    one batch that is already in memory, repeated: what the model alone can do. Both in
    their steady state: every epoch but the first (tracing, compiling, filling buffers)."""
    import tensorflow as tf

    from image_classifier.data.dataset import load_subset
    from image_classifier.model.architectures import build_model
    from image_classifier.model.fitting import (
        compile_model,
        configure_devices,
        fit_model,
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

    model = build_model(
        params.model,
        train.images.shape[1],
        train.num_classes,
        filters=params.filters,
        dropout=params.dropout,
        l2=params.l2,
    )
    compile_model(model, params, params.learning_rate, steps * epochs, devices)
    batch = (train.images[: params.batch_size], train.labels[: params.batch_size])
    in_memory = tf.data.Dataset.from_tensors(batch).repeat()
    alone = EpochMeter()
    model.fit(in_memory, steps_per_epoch=steps, epochs=epochs, verbose=0, callbacks=[alone])

    meter = EpochMeter()
    fit_model(params, train, val, 42, devices, callbacks=[meter], verbose=0)
    # The same fit with augmentation off: the input pipeline's own cost, apart from the
    # augmentation's resampling, which the recipe asks for.
    plain = EpochMeter()
    unaugmented = params.model_copy(
        update={"flip": False, "rotation": 0, "zoom": 0, "translation": 0}
    )
    fit_model(unaugmented, train, val, 42, devices, callbacks=[plain], verbose=0)
    images = steps * params.batch_size * (epochs - 1)
    return {
        "model_alone_images_per_second": images / alone.wall,
        "model_alone_cores": alone.cpu / alone.wall,
        "train_images_per_second": images / meter.wall,
        "train_cores": meter.cpu / meter.wall,
        "unaugmented_images_per_second": images / plain.wall,
        "unaugmented_cores": plain.cpu / plain.wall,
        "batch_size": params.batch_size,
        "first_epoch_images_per_second": steps * params.batch_size / meter.epochs[0][0],
        "cores": cores(),
        "epochs": epochs,
    }


# 4 and 5. training -------------------------------------------------------------------------


class StopAt(keras.callbacks.Callback):
    """Stop once val_accuracy reaches `target` (remembering when), or when time runs out."""

    def __init__(self, target: float, limit_seconds: float) -> None:
        super().__init__()
        self.target, self.limit_seconds = target, limit_seconds
        self.started, self.reached_after = 0.0, None

    def on_train_begin(self, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        elapsed = time.perf_counter() - self.started
        if logs["val_accuracy"] >= self.target and self.reached_after is None:
            self.reached_after = elapsed
            self.model.stop_training = True
        elif elapsed > self.limit_seconds:
            self.model.stop_training = True


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


def bench_training(data: Path, limit_seconds: float) -> dict:
    import tensorflow as tf

    from image_classifier.data.dataset import load_subset
    from image_classifier.model.architectures import count_flops
    from image_classifier.model.fitting import configure_devices, fit_model
    from image_classifier.params import TrainParams

    params = TrainParams.from_params(read_yaml(ROOT / "params.yaml"))
    devices = configure_devices()
    train = load_subset(data / "resized", data / "split.csv", "train")
    val = load_subset(data / "resized", data / "split.csv", "val")
    stop = StopAt(TARGET_ACCURACY, limit_seconds)
    result = fit_model(params, train, val, 42, devices, callbacks=[stop], verbose=2)
    ours = {
        "seconds_to_target": stop.reached_after,
        "epochs": len(result.history["loss"]),
        "images_per_second": result.images_per_second,
        "flops_per_image": result.flops_per_image,
    }

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
    stop_baseline = StopAt(TARGET_ACCURACY, limit_seconds)
    started = time.perf_counter()
    history = model.fit(
        train_files.prefetch(tf.data.AUTOTUNE),
        validation_data=val_files,
        epochs=100,
        callbacks=[stop_baseline],
        verbose=2,
    )
    seconds = time.perf_counter() - started
    epochs = len(history.history["loss"])
    train_images = sum(int(labels.shape[0]) for _, labels in train_files)
    baseline = {
        "seconds_to_target": stop_baseline.reached_after,
        "seconds_run": seconds,
        "epochs": epochs,
        "best_val_accuracy": max(history.history["val_accuracy"]),
        "images_per_second": train_images * epochs / seconds,
        "flops_per_image": count_flops(model),
    }
    if ours["seconds_to_target"] and baseline["seconds_to_target"]:
        speedup, bound = baseline["seconds_to_target"] / ours["seconds_to_target"], "="
    else:  # the baseline ran out of time: its cap gives a lower bound
        speedup, bound = seconds / (ours["seconds_to_target"] or np.inf), ">="
    return {"ours": ours, "baseline": baseline, "speedup": speedup, "speedup_bound": bound}


# 6. memory ---------------------------------------------------------------------------------


def bench_memory(work: Path, count: int) -> dict:
    photos = work / "big-photos"
    make_photos(photos, count, seed=1)
    space = work / "big"
    space.mkdir()
    set_params(
        space,
        source=ROOT / "params.yaml",
        data={"source": "folder", "folder": str(photos)},
        train={"epochs": 1, "early_stopping_patience": 0},
    )
    env, python = command_env(), sys.executable
    commands = {
        "download": ["--out", "data/raw"],
        "resize": ["--raw", "data/raw", "--out", "data/resized", "--metrics", "m/resize.json"],
        "split": [
            "--resized",
            "data/resized",
            "--out",
            "data/split.csv",
            "--metrics",
            "m/split.json",
            "--plot",
            "m/split.png",
        ],
        "train": [
            "--resized",
            "data/resized",
            "--split",
            "data/split.csv",
            "--model",
            "m/model.keras",
            "--live",
            "m/live",
            "--metrics",
            "m/train.json",
            "--backup",
            "m/backup",
        ],
    }
    result = {}
    for stage, arguments in commands.items():
        run = run_measured([python, "-m", f"stages.{stage}", *arguments], space, env)
        result[stage] = {"seconds": run.seconds, "peak_bytes": run.peak_bytes}
    result["images"] = count
    return result


# report ------------------------------------------------------------------------------------


def table(results: dict) -> str:
    resize, training, feed = results["resize"], results["training"], results["feed"]
    flops, dvc, memory = results["flops"], results["dvc"], results["memory"]
    gflops = f"{results['matmul_gflops']:.0f}"
    ours_t, base_t = training["ours"], training["baseline"]
    base_time = (
        f"{base_t['seconds_to_target']:.0f} s"
        if base_t["seconds_to_target"]
        else f"not reached in {base_t['seconds_run']:.0f} s (best {base_t['best_val_accuracy']:.3f})"
    )
    ours_time = (
        f"{ours_t['seconds_to_target']:.0f} s ({ours_t['epochs']} epochs)"
        if ours_t["seconds_to_target"]
        else "not reached"
    )
    stages = ", ".join(
        f"{stage} {seconds:.0f} s ({seconds / dvc['full_seconds']:.0%})"
        for stage, seconds in dvc["stage_seconds"].items()
    )
    efficiency = feed["train_images_per_second"] / feed["model_alone_images_per_second"]
    unaugmented = feed["unaugmented_images_per_second"] / feed["model_alone_images_per_second"]
    # CPU time per image with augmentation minus without, for one batch
    augmentation_ms = (
        1000
        * feed["batch_size"]
        * (
            feed["train_cores"] / feed["train_images_per_second"]
            - feed["unaugmented_cores"] / feed["unaugmented_images_per_second"]
        )
    )
    gib = 2**30
    rows = [
        (
            "1. resize, ~300x250 JPEG -> 120x120 (images/s)",
            f"{resize['ours_images_per_second']:.0f}",
            f"{resize['baseline_images_per_second']:.0f} (one-process PIL loop)",
            f"{resize['speedup']:.1f}x",
            ">= 3x",
            resize["speedup"] >= 3,
            gflops,
        ),
        (
            "2a. whole default pipeline from scratch",
            f"{dvc['full_seconds'] / 60:.1f} min: {stages}",
            "target 10 min",
            f"{dvc['full_seconds'] / 600:.0%} of target",
            "< 10 min",
            dvc["full_seconds"] < 600,
            gflops,
        ),
        (
            "2b. `dvc repro` with nothing to do",
            f"{dvc['noop_seconds']:.2f} s",
            "target 3 s",
            f"{dvc['noop_seconds'] / 3:.0%} of target",
            "< 3 s",
            dvc["noop_seconds"] < 3,
            gflops,
        ),
        (
            "3a. feed efficiency: train stage's fit vs the model alone (images/s, epochs 2-4; "
            "the stage's first epoch, tracing included: "
            f"{feed['first_epoch_images_per_second']:.0f})",
            f"{feed['train_images_per_second']:.0f}",
            f"{feed['model_alone_images_per_second']:.0f} (one batch in memory, repeated)",
            f"{efficiency:.2f}",
            ">= 0.85",
            efficiency >= 0.85,
            gflops,
        ),
        (
            f"3b. CPU cores busy during the train stage's epochs 2-4 (of {feed['cores']})",
            f"{feed['train_cores']:.3f}",
            f"{feed['model_alone_cores']:.3f} (the model alone)",
            f"{feed['train_cores'] / feed['cores']:.0%} of the cores",
            ">= 1.8",
            feed["train_cores"] >= 1.8,
            "",
        ),
        (
            "3c. the same fit with augmentation off: the input pipeline alone (images/s; "
            f"augmentation costs {augmentation_ms:.0f} core-ms per batch of {feed['batch_size']})",
            f"{feed['unaugmented_images_per_second']:.0f}",
            f"{feed['model_alone_images_per_second']:.0f} (the model alone, as in 3a)",
            f"{unaugmented:.2f}",
            "",
            None,
            gflops,
        ),
        (
            "4. training time to 0.95 val accuracy",
            ours_time,
            f"{base_time} (files decoded per epoch, full-res Conv2D)",
            f"{training['speedup_bound'].replace('=', '')}{training['speedup']:.1f}x less time",
            ">= 6x",
            training["speedup"] >= 6,
            gflops,
        ),
        (
            "5. training step GFLOP/s vs dense matmul GFLOP/s",
            f"{flops['training_gflops']:.1f}",
            f"{results['matmul_gflops']:.1f} (tf.matmul 2048x2048)",
            f"{flops['training_gflops'] / results['matmul_gflops']:.1%} of matmul",
            "",
            None,
            gflops,
        ),
    ]
    for stage in ("resize", "split", "train"):
        peak = memory[stage]["peak_bytes"]
        label = "one training epoch" if stage == "train" else stage
        rows.append(
            (
                f"6. peak memory, {label}, {memory['images']} photos",
                f"{peak / gib:.2f} GiB",
                "target 4 GiB",
                f"{peak / (4 * gib):.0%} of target",
                "< 4 GiB",
                peak < 4 * gib,
                "",
            )
        )
    lines = [
        f"Measured {results['date']} on {results['machine']}; dense matmul {gflops} GFLOP/s; "
        f"{results['minutes']:.1f} min in all.",
        "",
        "| figure | ours | baseline (same run) | ratio | target | met | matmul GFLOP/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, ours, baseline, ratio, target, met, machine in rows:
        mark = "" if met is None else ("yes" if met else "**no**")
        lines.append(f"| {name} | {ours} | {baseline} | {ratio} | {target} | {mark} | {machine} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=2000, help="photos for the resize figure")
    parser.add_argument("--memory-photos", type=int, default=26000, help="for the memory figure")
    parser.add_argument("--limit", type=float, default=300, help="seconds per training run")
    parser.add_argument("--out", type=Path, default=ROOT / "bench")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    started = time.perf_counter()
    results = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": describe_machine(),
        "matmul_gflops": matmul_gflops(),
    }
    with tempfile.TemporaryDirectory(prefix="bench-") as folder:
        work = Path(folder)
        print("1. resize", flush=True)
        results["resize"] = bench_resize(work, args.photos)
        print(
            "2. the default pipeline from scratch, stage by stage; then with nothing to do",
            flush=True,
        )
        dvc = bench_dvc(work)
        clone = dvc.pop("clone")
        results["dvc"] = dvc
        print("3. feed efficiency and CPU use of training", flush=True)
        results["feed"] = bench_feed(clone / "data")
        print("4. training to 0.95 val accuracy, ours then the baseline", flush=True)
        results["training"] = bench_training(clone / "data", args.limit)
        ours = results["training"]["ours"]
        results["flops"] = {
            "training_gflops": 3 * ours["flops_per_image"] * ours["images_per_second"] / 1e9,
        }
        shutil.rmtree(clone / ".dvc" / "cache", ignore_errors=True)
        print("6. peak memory on Animals-10-sized data", flush=True)
        results["memory"] = bench_memory(work, args.memory_photos)
    results["minutes"] = (time.perf_counter() - started) / 60
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    (args.out / "results.md").write_text(table(results))
    print(table(results))


if __name__ == "__main__":
    main()
