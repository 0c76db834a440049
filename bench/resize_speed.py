"""Figure 1 of bench.run: the resize stage against a one-process PIL loop."""

import json
import subprocess
import sys
import time
from pathlib import Path

from bench.photos import make_photos
from bench.workspace import ROOT, command_env, set_params


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
    command = [sys.executable, "-m", "stages.resize", "--raw", "raw", "--out", "resized"]
    started = time.perf_counter()
    subprocess.run(
        [*command, "--metrics", "resize.json"],
        cwd=work,
        env=command_env(),
        check=True,
        capture_output=True,
    )
    ours = time.perf_counter() - started
    assert json.loads((work / "resize.json").read_text())["images"] == count
    return {
        "images": count,
        "ours_images_per_second": count / ours,
        "baseline_images_per_second": count / baseline,
        "speedup": baseline / ours,
    }
