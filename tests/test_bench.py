"""The benchmark's own instruments: photo generation and process-tree memory sampling."""

import sys

import numpy as np
import pytest
from PIL import Image

from bench.measure import run_measured
from bench.photos import make_photos


def test_photos_look_like_animals10(tmp_path):
    paths = make_photos(tmp_path, 12, classes=3)
    assert len({p.parent.name for p in paths}) == 3
    for path in paths:
        with Image.open(path) as image:
            assert image.format == "JPEG" and image.mode == "RGB"
            assert 260 <= image.width <= 340 and 210 <= image.height <= 290
    assert paths[0].read_bytes() != paths[2].read_bytes()


def test_peak_memory_includes_child_processes(tmp_path):
    # A parent that starts a child holding ~300 MB: the sample must see the child's memory.
    child = "import time; block = bytearray(300 * 2**20); block[::4096] = b'x' * len(block[::4096]); time.sleep(1.5)"
    parent = (
        f"import subprocess, sys; subprocess.run([sys.executable, '-c', {child!r}], check=True)"
    )
    run = run_measured([sys.executable, "-c", parent], tmp_path)
    assert run.peak_bytes > 300 * 2**20
    assert run.seconds >= 1.5


def scores(accuracy, f1=None):
    return {
        "accuracy": accuracy,
        "balanced_accuracy": accuracy,
        "macro_f1": accuracy if f1 is None else f1,
    }


def bench_row(seed, ours, boosting, peer=None):
    tests = {
        "test": {
            "majority": scores(0.5, 0.2),
            "logistic_regression": scores(0.7, 0.75),
            "gradient_boosting": boosting,
            "ours": ours,
        }
    }
    if peer:
        tests["test"]["peer"] = peer
    return {
        "dataset": "elpv",
        "variant": "4-class",
        "seed": seed,
        "train_images": 1837,
        "train_seconds": 100.0,
        "best_epoch": 19,
        "epochs": 20,
        "tests": tests,
        "baseline_pixels": {"logistic_regression": 32, "gradient_boosting": 16},
    }


def test_real_photo_summary_is_mean_sd_and_margin_over_the_best_baseline():
    from bench.real import summary, table

    rows = [
        bench_row(42, scores(0.90, 0.80), scores(0.80, 0.70), peer=scores(0.95, 0.9)),
        bench_row(1, scores(0.86, 0.76), scores(0.82, 0.66)),
    ]
    [entry] = summary(rows)
    assert entry["ours"]["accuracy"][0] == pytest.approx(0.88)
    assert entry["ours"]["accuracy"][1] == pytest.approx(np.std([0.90, 0.86], ddof=1))
    # The peer (Keras example) is shown, but the margin is over the best baseline: gradient
    # boosting in accuracy (0.81 by mean), logistic regression in macro F1 (0.75).
    assert entry["peer"]["accuracy"][0] == pytest.approx(0.95)
    assert entry["margin"]["accuracy"]["over"] == "gradient_boosting"
    assert entry["margin"]["accuracy"]["mean"] == pytest.approx(0.88 - 0.81)
    assert entry["margin"]["macro_f1"]["over"] == "logistic_regression"
    assert entry["margin"]["macro_f1"]["mean"] == pytest.approx(0.78 - 0.75)
    results = {
        "commit": "abc1234",
        "date": "2026-12-02",
        "machine": "m",
        "matmul_gflops": 100,
        "minutes": 1.0,
        "seeds": "42,1",
        "variant": "",
        "rows": rows,
    }
    text = table(results)
    assert "Commit abc1234, measured 2026-12-02 on m; dense matmul 100 GFLOP/s" in text
    rows = [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in text.splitlines()
        if line.startswith("| elpv 4-class")
    ]
    overview, first_seed = rows[0], rows[1]
    assert overview[:4] == ["elpv 4-class", "test", "2", "1837"]
    assert "**0.880 / 0.780 (±0.028 / ±0.028)**" in overview
    # accuracy margin sd: per seed, ours minus that seed's best baseline (0.10 and 0.04)
    assert "+0.070 ± 0.042 (gradient boosting)" in overview
    assert first_seed[:3] == ["elpv 4-class", "42", "test"] and "32, 16" in first_seed


def test_combined_runs_keep_every_row_and_a_later_row_replaces_a_measured_again_one():
    from bench.record import combine

    def run(commit, minutes, rows):
        return {
            "commit": commit,
            "date": "2026-12-03",
            "machine": "m",
            "minutes": minutes,
            "matmul_gflops": 90 + minutes,
            "rows": rows,
        }

    first = run("aaa", 1, [{"dataset": "a", "x": 1}, {"dataset": "b", "x": 2}])
    second = run("bbb", 2, [{"dataset": "b", "x": 3}, {"dataset": "c", "x": 4}])
    seeds = combine([first, second])
    assert [row["x"] for row in seeds["rows"]] == [1, 2, 3, 4]
    again = combine([first, second], replace_by=("dataset",))
    assert [(row["dataset"], row["x"]) for row in again["rows"]] == [("a", 1), ("b", 3), ("c", 4)]
    assert again["commit"] == "aaa, bbb" and again["minutes"] == 3
    assert again["matmul_gflops"] == 91  # the slower machine: absolute times are upper bounds
