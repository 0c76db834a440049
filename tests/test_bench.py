"""The benchmark's own instruments: photo generation and process-tree memory sampling."""

import sys

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


def test_real_photo_table_summarises_seeds():
    from bench.real import table

    def row(seed, ours, linear):
        scores = {"accuracy": ours, "balanced_accuracy": ours, "macro_f1": ours}
        return {
            "dataset": "fashion-mnist", "variant": "small", "seed": seed, "train_images": 425,
            "test_images": 1000,
            "majority": {"accuracy": 0.1, "balanced_accuracy": 0.1, "macro_f1": 0.018},
            "logistic_regression": {**scores, "macro_f1": linear},
            "pipeline": {**scores, "train_seconds": 100.0, "epochs": 20},
        }  # fmt: skip

    results = {"commit": "abc1234", "date": "2026-11-24", "machine": "m", "matmul_gflops": 100,
               "minutes": 1.0, "rows": [row(42, 0.80, 0.76), row(1, 0.84, 0.76)]}  # fmt: skip
    lines = table(results).splitlines()
    assert "| small (seed 42) |" in lines[4] and "| +0.040 |" in lines[4]
    assert "| small (seed 1) |" in lines[5] and "| +0.080 |" in lines[5]
    # mean and sample standard deviation of the two seeds, for ours and for the margin
    assert "mean ± sd of 2 seeds" in lines[6]
    assert "**0.820 ± 0.028**" in lines[6] and "| +0.060 ± 0.028 |" in lines[6]
    assert len(lines) == 7
