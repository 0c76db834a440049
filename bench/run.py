"""Benchmarks: the pipeline against naive baselines and the machine's limit, in one run.

    python -m bench.run            # ~25 minutes on 2 cores; writes bench/results.{md,json}
    python -m bench.run --photos 200 --memory-photos 1000 --limit 60   # a quick check

Every figure is a ratio against a baseline measured in the same run, on the same machine,
and every absolute time is printed beside this machine's dense matmul GFLOP/s:
1. resize throughput on ~300x250 JPEG photos vs a one-process PIL loop (bench/resize_speed.py);
2. the whole default pipeline from scratch, stage by stage, and `dvc repro` with nothing to
   do (bench/pipeline_speed.py);
3. feed efficiency: the train stage's images/s against the same model fed one batch that is
   already in memory, the CPU cores busy during its epochs, and the same fit with
   augmentation off (bench/feed.py);
4. training time to 0.95 val accuracy on the embedded data vs a seed-notebook baseline
   (image_dataset_from_directory decoding files every epoch, a full-resolution Conv2D CNN);
5. the training step's GFLOP/s vs dense matmul (both bench/training_speed.py);
6. peak memory of resize, split and one training epoch on 26,000 photos, Animals-10's size
   (bench/memory.py).
"""

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from bench.feed import bench_feed
from bench.machine import describe_machine, matmul_gflops
from bench.memory import bench_memory
from bench.pipeline_speed import bench_dvc
from bench.record import Figure, Target, figures_table
from bench.resize_speed import bench_resize
from bench.training_speed import TARGET_ACCURACY, bench_training
from bench.workspace import ROOT

GIB = 2**30


def training_figure(training: dict, gflops: str) -> Figure:
    ours, baseline = training["ours"], training["baseline"]
    if baseline["seconds_to_target"]:
        base_time = f"{baseline['seconds_to_target']:.0f} s"
    else:
        base_time = (
            f"not reached in {baseline['seconds_run']:.0f} s "
            f"(best {baseline['best_val_accuracy']:.3f})"
        )
    ours_time = (
        f"{ours['seconds_to_target']:.0f} s ({ours['epochs']} epochs)"
        if ours["seconds_to_target"]
        else "not reached"
    )
    bound = training["speedup_bound"].replace("=", "")
    return Figure(
        f"4. training time to {TARGET_ACCURACY} val accuracy",
        ours_time,
        f"{base_time} (files decoded per epoch, full-res Conv2D)",
        f"{bound}{training['speedup']:.1f}x less time",
        training["speedup"],
        Target(6, "x"),
        gflops,
    )


def feed_figures(feed: dict, gflops: str) -> list[Figure]:
    alone = feed["model_alone_images_per_second"]
    efficiency = feed["train_images_per_second"] / alone
    # CPU time per image with augmentation minus without, for one batch
    augmentation_ms = (
        1000
        * feed["batch_size"]
        * (
            feed["train_cores"] / feed["train_images_per_second"]
            - feed["unaugmented_cores"] / feed["unaugmented_images_per_second"]
        )
    )
    return [
        Figure(
            "3a. feed efficiency: train stage's fit vs the model alone (images/s, epochs 2-4; "
            f"the stage's first epoch, tracing included: "
            f"{feed['first_epoch_images_per_second']:.0f})",
            f"{feed['train_images_per_second']:.0f}",
            f"{alone:.0f} (one batch in memory, repeated)",
            f"{efficiency:.2f}",
            efficiency,
            Target(0.85),
            gflops,
        ),
        Figure(
            f"3b. CPU cores busy during the train stage's epochs 2-4 (of {feed['cores']})",
            f"{feed['train_cores']:.3f}",
            f"{feed['model_alone_cores']:.3f} (the model alone)",
            f"{feed['train_cores'] / feed['cores']:.0%} of the cores",
            feed["train_cores"],
            Target(1.8),
        ),
        Figure(
            "3c. the same fit with augmentation off: the input pipeline alone (images/s; "
            f"augmentation costs {augmentation_ms:.0f} core-ms per batch of "
            f"{feed['batch_size']})",
            f"{feed['unaugmented_images_per_second']:.0f}",
            f"{alone:.0f} (the model alone, as in 3a)",
            f"{feed['unaugmented_images_per_second'] / alone:.2f}",
            gflops=gflops,
        ),
    ]


def figures(results: dict) -> list[Figure]:
    resize, dvc, memory = results["resize"], results["dvc"], results["memory"]
    gflops = f"{results['matmul_gflops']:.0f}"
    stages = ", ".join(
        f"{stage} {seconds:.0f} s ({seconds / dvc['full_seconds']:.0%})"
        for stage, seconds in dvc["stage_seconds"].items()
    )
    minutes, training_gflops = dvc["full_seconds"] / 60, results["flops"]["training_gflops"]
    rows = [
        Figure(
            "1. resize, ~300x250 JPEG -> 120x120 (images/s)",
            f"{resize['ours_images_per_second']:.0f}",
            f"{resize['baseline_images_per_second']:.0f} (one-process PIL loop)",
            f"{resize['speedup']:.1f}x",
            resize["speedup"],
            Target(3, "x"),
            gflops,
        ),
        Figure(
            "2a. whole default pipeline from scratch",
            f"{minutes:.1f} min: {stages}",
            "target 10 min",
            f"{minutes / 10:.0%} of target",
            minutes,
            Target(10, " min", at_least=False),
            gflops,
        ),
        Figure(
            "2b. `dvc repro` with nothing to do",
            f"{dvc['noop_seconds']:.2f} s",
            "target 3 s",
            f"{dvc['noop_seconds'] / 3:.0%} of target",
            dvc["noop_seconds"],
            Target(3, " s", at_least=False),
            gflops,
        ),
        *feed_figures(results["feed"], gflops),
        training_figure(results["training"], gflops),
        Figure(
            "5. training step GFLOP/s vs dense matmul GFLOP/s",
            f"{training_gflops:.1f}",
            f"{results['matmul_gflops']:.1f} (tf.matmul 2048x2048)",
            f"{training_gflops / results['matmul_gflops']:.1%} of matmul",
            gflops=gflops,
        ),
    ]
    for stage in ("resize", "split", "train"):
        peak = memory[stage]["peak_bytes"] / GIB
        label = "one training epoch" if stage == "train" else stage
        rows.append(
            Figure(
                f"6. peak memory, {label}, {memory['images']} photos",
                f"{peak:.2f} GiB",
                "target 4 GiB",
                f"{peak / 4:.0%} of target",
                peak,
                Target(4, " GiB", at_least=False),
            )
        )
    return rows


def table(results: dict) -> str:
    return (
        f"Measured {results['date']} on {results['machine']}; dense matmul "
        f"{results['matmul_gflops']:.0f} GFLOP/s; {results['minutes']:.1f} min in all.\n\n"
        + figures_table(figures(results))
        + "\n"
    )


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
        print("2. the default pipeline from scratch, stage by stage; then with nothing to do")
        dvc = bench_dvc(work)
        clone = dvc.pop("clone")
        results["dvc"] = dvc
        print("3. feed efficiency and CPU use of training", flush=True)
        results["feed"] = bench_feed(clone / "data")
        print(f"4. training to {TARGET_ACCURACY} val accuracy, ours then the baseline")
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
