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


def test_real_photo_summary_is_mean_sd_and_margin_over_the_best_other_model():
    from bench.real import summary, table

    def scores(accuracy, f1):
        return {"accuracy": accuracy, "balanced_accuracy": accuracy, "macro_f1": f1}

    def row(seed, ours, boosting, peer=None):
        tests = {"test": {"majority": scores(0.5, 0.2), "logistic_regression": scores(0.7, 0.75),
                          "gradient_boosting": boosting, "ours": ours}}  # fmt: skip
        if peer:
            tests["test"]["peer"] = peer
        return {"dataset": "defects", "variant": "aligned", "seed": seed, "train_images": 1837,
                "train_seconds": 100.0, "flip_average": True, "tests": tests}  # fmt: skip

    rows = [row(42, scores(0.90, 0.80), scores(0.80, 0.70), peer=scores(0.85, 0.78)),
            row(1, scores(0.86, 0.76), scores(0.82, 0.66))]  # fmt: skip
    [entry] = summary(rows)
    assert entry["ours"]["accuracy"][0] == pytest.approx(0.88)
    assert entry["ours"]["accuracy"][1] == pytest.approx(np.std([0.90, 0.86], ddof=1))
    # accuracy: best other by mean is the peer (0.85, one seed); macro F1: the peer (0.78)
    assert entry["margin"]["accuracy"]["over"] == "peer"
    assert entry["margin"]["accuracy"]["mean"] == pytest.approx(0.88 - 0.85)
    assert entry["margin"]["macro_f1"]["over"] == "peer"
    assert entry["margin"]["macro_f1"]["mean"] == pytest.approx(0.78 - 0.78)
    results = {"commit": "abc1234", "date": "2026-12-02", "machine": "m", "matmul_gflops": 100,
               "minutes": 1.0, "seeds": "42,1", "variant": "", "rows": rows}  # fmt: skip
    text = table(results)
    assert "| defects aligned | test | 1837 |" in text
    assert "**0.880 / 0.780 (±0.028 / ±0.028)**" in text
    # margin sd: per seed, ours minus that seed's best baseline (0.10 and 0.04)
    assert "+0.030 ± 0.042 (Keras example (1 seed))" in text


def test_combined_runs_keep_every_row_and_a_later_row_replaces_a_measured_again_one():
    from bench.record import combine

    def run(commit, minutes, rows):
        return {"commit": commit, "date": "2026-12-03", "machine": "m", "minutes": minutes,
                "matmul_gflops": 90 + minutes, "rows": rows}  # fmt: skip

    first = run("aaa", 1, [{"dataset": "a", "x": 1}, {"dataset": "b", "x": 2}])
    second = run("bbb", 2, [{"dataset": "b", "x": 3}, {"dataset": "c", "x": 4}])
    seeds = combine([first, second])
    assert [row["x"] for row in seeds["rows"]] == [1, 2, 3, 4]
    again = combine([first, second], replace_by=("dataset",))
    assert [(row["dataset"], row["x"]) for row in again["rows"]] == [("a", 1), ("b", 3), ("c", 4)]
    assert again["commit"] == "aaa, bbb" and again["minutes"] == 3
    assert again["matmul_gflops"] == 91  # the slower machine: absolute times are upper bounds


def test_the_flip_average_probe_gets_a_column_outside_the_margins_only_where_measured():
    from bench.real import ALONE, PROBE, summary, table

    def scores(accuracy):
        return {"accuracy": accuracy, "balanced_accuracy": accuracy, "macro_f1": accuracy}

    tests = {"test": {"majority": scores(0.5), "logistic_regression": scores(0.7),
                      "gradient_boosting": scores(0.8), "ours": scores(0.85)}}  # fmt: skip
    row = {"dataset": "defects", "variant": "aligned", "seed": 42, "train_images": 100,
           "train_seconds": 1.0, "tests": tests}  # fmt: skip
    results = {"commit": "a", "date": "d", "machine": "m", "matmul_gflops": 1, "minutes": 1,
               "seeds": "42", "variant": "", "rows": [row]}  # fmt: skip
    assert "flip average" not in table(results)
    tests["test"][PROBE] = scores(0.95)  # better than ours: still not the margin's "best other"
    [entry] = summary([row])
    assert entry[PROBE]["accuracy"][0] == pytest.approx(0.95)
    assert entry["margin"]["accuracy"]["over"] == "gradient_boosting"
    assert "| ours, flip average (probe) |" in table(results)
    assert "| 0.850 / 0.850 | 0.950 / 0.950 |" in table(results)
    tests["test"][ALONE] = scores(0.8)  # the model without flip averaging: its own column
    assert "| ours, flip average (probe) | ours, each photo alone (probe) |" in table(results)
    assert summary([row])[0]["margin"]["accuracy"]["over"] == "gradient_boosting"


def bench_row(seed, ours, peer_accuracy=None, **extra):
    def scores(accuracy):
        return {"accuracy": accuracy, "balanced_accuracy": accuracy, "macro_f1": accuracy}

    tests = {"test": {"majority": scores(0.5), "logistic_regression": scores(0.7),
                      "gradient_boosting": scores(0.8), "ours": scores(ours)}}  # fmt: skip
    if peer_accuracy is not None:
        tests["test"]["peer"] = scores(peer_accuracy)
    return {"dataset": "defects", "variant": "aligned", "seed": seed, "train_images": 100,
            "train_seconds": 1.0, "tests": tests, **extra}  # fmt: skip


def bench_run(commit, rows):
    return {
        "commit": commit,
        "date": "d",
        "machine": "m",
        "matmul_gflops": 1,
        "minutes": 1,
        "seeds": ",".join(str(row["seed"]) for row in rows),
        "variant": "",
        "rows": rows,
    }


def test_rows_measured_before_flip_averaging_are_marked_until_every_seed_is_measured_again():
    from bench.real import combine_seeds, table

    before = bench_run("a", [bench_row(42, 0.85), bench_row(1, 0.86)])
    assert "| defects aligned † | test |" in table(before)
    assert "†: measured before `train.flip_average`" in table(before)
    one_seed = combine_seeds([before, bench_run("b", [bench_row(42, 0.9, flip_average=True)])])
    assert "| defects aligned † | test |" in table(one_seed)  # seed 1 is still the old model
    both = combine_seeds([one_seed, bench_run("c", [bench_row(1, 0.88, flip_average=True)])])
    assert "| defects aligned | test |" in table(both) and "†" not in table(both)


def test_a_row_measured_again_without_the_peer_keeps_the_earlier_peer_scores():
    from bench.real import combine_seeds, summary

    peer_info = {"epochs": 3, "seconds": 1.0}
    before = bench_run("a", [bench_row(42, 0.85, peer_accuracy=0.3, peer=peer_info)])
    again = bench_run("b", [bench_row(42, 0.9, flip_average=True)])
    [row] = combine_seeds([before, again])["rows"]
    assert row["tests"]["test"]["ours"]["accuracy"] == 0.9  # the new measurement...
    assert row["tests"]["test"]["peer"]["accuracy"] == 0.3  # ...beside the earlier peer
    assert row["peer"] == peer_info
    [entry] = summary([row])
    assert entry["peer"]["accuracy"][0] == 0.3
    # A row measured again with its own peer keeps that one.
    with_peer = bench_run("c", [bench_row(42, 0.9, peer_accuracy=0.4, flip_average=True)])
    [row] = combine_seeds([before, with_peer])["rows"]
    assert row["tests"]["test"]["peer"]["accuracy"] == 0.4
