"""The resized images: every raw file decoded once into one uint8 array, or rejected.

images.npy    (N, size, size, 3) uint8, one row per accepted image, in manifest order
index.csv     row-aligned with images.npy: path, class, given split, pixel hash
rejected.csv  every file that could not be used, with the reason
"""

import csv
import hashlib
import math
import multiprocessing
import os
from collections import Counter
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from image_classifier.atomic import write_csv
from image_classifier.console import StageError, progress
from image_classifier.data.decode import RejectedImage, load_image
from image_classifier.data.filenames import (
    IMAGES_FILE,
    INDEX_FILE,
    MANIFEST_FILE,
    REJECTED_FILE,
    SKIPPED_FILE,
)
from image_classifier.params import ResizeParams

INDEX_COLUMNS = ("path", "class", "split", "pixel_hash")
REJECTED_COLUMNS = ["path", "reason", "detail"]


@dataclass(frozen=True)
class Outcome:
    image: np.ndarray | None
    pixel_hash: str = ""
    reason: str = ""
    detail: str = ""


def read_manifest(raw: Path) -> list[dict[str, str]]:
    try:
        with (raw / MANIFEST_FILE).open(newline="") as manifest:
            return list(csv.DictReader(manifest))
    except FileNotFoundError:
        raise StageError(f"{raw / MANIFEST_FILE} not found: run the download stage first") from None


def read_skipped(raw: Path) -> list[dict[str, str]]:
    """Source files download did not copy (not in a class folder, links not followed)."""
    try:
        with (raw / SKIPPED_FILE).open(newline="") as skipped:
            return list(csv.DictReader(skipped))
    except FileNotFoundError:  # Animal-MNIST, or data/raw from before the file existed
        return []


def pixel_hash(image: np.ndarray) -> str:
    """Identical pixels, identical hash: how `split` finds exact duplicates."""
    return hashlib.blake2b(image.tobytes(), digest_size=16).hexdigest()


def process_file(path: Path, size: int, fit: str, max_pixels: int) -> Outcome:
    """One file -> its pixels, or the reason it was rejected."""
    try:
        image = load_image(path, size, fit, max_pixels)
    except RejectedImage as rejected:
        return Outcome(None, reason=rejected.reason, detail=rejected.detail)
    return Outcome(image, pixel_hash(image))


def available_cores() -> int:
    """Cores this process may use: the affinity mask on Linux, every core elsewhere (macOS)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


CHUNK = 32  # files a worker decodes per task


def worker_count(requested: int, files: int = 10**9) -> int:
    """resize.workers (0: every core), but no more than there are chunks of files to share:
    each worker process costs a start-up, and more of them than tasks only waits."""
    return max(1, min(requested or available_cores(), math.ceil(files / CHUNK)))


def resize_all(
    raw: Path, rows: list[dict[str, str]], params: ResizeParams, out: Path
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Decode every manifest row in parallel into out/images.npy; return (index, rejected)."""
    shape = (params.size, params.size, 3)
    images = np.lib.format.open_memmap(out / IMAGES_FILE, "w+", np.uint8, (len(rows), *shape))
    work = partial(
        process_file,
        size=params.size,
        fit=params.fit,
        max_pixels=int(params.max_megapixels * 1e6),
    )
    index, rejected = [], []
    paths = [raw / row["path"] for row in rows]
    # spawn, the one start method every OS has (macOS has no safe fork): workers import
    # only image_classifier.data.decode and Pillow, so starting them costs well under a second.
    workers = worker_count(params.workers, len(paths))
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        outcomes = pool.imap(work, paths, chunksize=CHUNK)
        for row, outcome in zip(
            rows, progress(outcomes, "resize", len(rows), "image"), strict=True
        ):
            if outcome.image is None:
                rejected.append(
                    {"path": row["path"], "reason": outcome.reason, "detail": outcome.detail}
                )
                continue
            images[len(index)] = outcome.image
            index.append({**row, "pixel_hash": outcome.pixel_hash})
    images.flush()
    del images
    if rejected:
        _truncate_rows(out / IMAGES_FILE, len(index))
    return index, rejected


def _truncate_rows(path: Path, count: int) -> None:
    """Keep the first `count` rows of an .npy file (rejected files left unused rows at the end)."""
    full = np.load(path, mmap_mode="r")
    kept_path = path.with_suffix(".kept.npy")
    kept = np.lib.format.open_memmap(kept_path, "w+", np.uint8, (count, *full.shape[1:]))
    for start in range(0, count, 1024):
        stop = min(start + 1024, count)
        kept[start:stop] = full[start:stop]
    kept.flush()
    del kept, full
    os.replace(kept_path, path)


def summary(index: list, rejected: list, seconds: float) -> dict:
    return {
        "images": len(index),
        "rejected": len(rejected),
        "rejected_by_reason": dict(sorted(Counter(row["reason"] for row in rejected).items())),
        "seconds": round(seconds, 2),
        "images_per_second": round((len(index) + len(rejected)) / max(seconds, 1e-9), 1),
    }


def write_tables(out: Path, index: list[dict], rejected: list[dict]) -> None:
    write_csv(out / INDEX_FILE, pd.DataFrame(index, columns=list(INDEX_COLUMNS)))
    write_csv(out / REJECTED_FILE, pd.DataFrame(rejected, columns=REJECTED_COLUMNS))
