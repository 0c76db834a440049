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
