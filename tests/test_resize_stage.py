"""The resize stage end to end: good files become rows, bad ones a report, data/raw untouched."""

import csv
import io
import json
import multiprocessing
import os
import struct
import warnings

import numpy as np
import pytest
from PIL import Image, ImageOps

from image_classifier.data import image_store
from image_classifier.data.decode import load_image
from image_classifier.params import ResizeParams
from tests.conftest import (
    make_class_tree,
    run_stage,
    save_detailed_image,
    tree_digest,
    write_params,
)
from tests.test_images import png_header_only, truncated_jpeg

RESIZE_ARGS = ("--raw", "data/raw", "--out", "data/resized", "--metrics", "metrics/resize.json")


def jpeg_with_bad_exif_type() -> bytes:
    """A JPEG whose EXIF entry has an unknown type: Pillow's EXIF writer, called by
    exif_transpose, raises struct.error on it (not an OSError)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "cam"
    exif[0x8769] = {0x9003: "2020"}
    buffer = io.BytesIO()
    pixels = np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, "JPEG", exif=exif.tobytes())
    data = bytearray(buffer.getvalue())
    data[41] = 40  # the type field of an EXIF entry
    return bytes(data)


def dds_with_unknown_pixel_format() -> bytes:
    """A DDS header with a pixel format Pillow's plugin raises NotImplementedError on."""
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buffer, "DDS")
    data = bytearray(buffer.getvalue())
    data[25], data[80], data[147] = 114, 22, 156
    return bytes(data)


def test_the_hostile_files_do_break_pillow(tmp_path):
    """The files above are only worth testing while Pillow itself fails on them this way."""
    for data, error in (
        (jpeg_with_bad_exif_type(), struct.error),
        (dds_with_unknown_pixel_format(), NotImplementedError),
    ):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises(error), Image.open(io.BytesIO(data)) as image:
                image.load()
                ImageOps.exif_transpose(image)


def write_manifest(raw):
    rows = [("path", "class", "split")]
    rows += [(p.relative_to(raw).as_posix(), p.parent.name, "") for p in sorted(raw.glob("*/*"))]
    with (raw / "manifest.csv").open("w", newline="") as file:
        csv.writer(file).writerows(rows)


def test_resize_stage(tmp_path):
    raw = make_class_tree(tmp_path / "data" / "raw", classes=("cat", "dog"), per_class=6)
    (raw / "cat" / "empty.jpg").write_bytes(b"")
    (raw / "cat" / "cut.jpg").write_bytes(truncated_jpeg())
    (raw / "dog" / "notes.jpg").write_text("hello")
    (raw / "dog" / "bomb.png").write_bytes(png_header_only(40_000, 40_000))
    (raw / "dog" / "bad-exif.jpg").write_bytes(jpeg_with_bad_exif_type())
    (raw / "cat" / "odd.dds").write_bytes(dds_with_unknown_pixel_format())
    write_manifest(raw)
    before = tree_digest(raw)
    write_params(tmp_path, resize__size=32, resize__workers=2)

    run_stage(
        "resize",
        *RESIZE_ARGS,
        cwd=tmp_path,
    )

    assert tree_digest(raw) == before
    out = tmp_path / "data" / "resized"
    images = np.load(out / "images.npy")
    with (out / "index.csv").open() as file:
        index = list(csv.DictReader(file))
    with (out / "rejected.csv").open() as file:
        rejected = {row["path"]: row["reason"] for row in csv.DictReader(file)}
    assert images.shape == (12, 32, 32, 3) and images.dtype == np.uint8
    # What train copies into the model's card, so predict resizes as this stage did.
    contract = json.loads((out / "contract.json").read_text())
    assert contract == {"image_size": 32, "fit": "squash", "max_megapixels": 50}
    assert [row["path"] for row in index][:2] == ["cat/000.png", "cat/001.png"]
    assert rejected == {
        "cat/cut.jpg": "truncated",
        "cat/empty.jpg": "empty",
        "cat/odd.dds": "unreadable",
        "dog/bad-exif.jpg": "unreadable",
        "dog/bomb.png": "too_large",
        "dog/notes.jpg": "not_an_image",
    }
    # Rows line up with the index, even after the rejected files were dropped.
    for row_number in (0, 7, 11):
        expected = load_image(raw / index[row_number]["path"], 32, "squash", 10**8)
        assert (images[row_number] == expected).all()
    assert len({row["pixel_hash"] for row in index}) == 12
    metrics = json.loads((tmp_path / "metrics" / "resize.json").read_text())
    assert metrics["images"] == 12 and metrics["rejected"] == 6
    assert metrics["rejected_by_reason"] == {
        "empty": 1,
        "not_an_image": 1,
        "too_large": 1,
        "truncated": 1,
        "unreadable": 2,
    }


def test_resize_without_download(tmp_path):
    write_params(tmp_path)
    result = run_stage(
        "resize",
        "--raw",
        "data/raw",
        "--out",
        "data/resized",
        "--metrics",
        "m.json",
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "resize: error: data/raw/manifest.csv not found: run the download stage first"
    )
    assert not (tmp_path / "data" / "resized").exists()


def test_core_count_without_sched_getaffinity(monkeypatch):
    """macOS has no os.sched_getaffinity."""
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    assert image_store.worker_count(0) == os.cpu_count()
    assert image_store.worker_count(3) == 3
    # 75 files make 3 chunks: 32 workers would mostly start up and wait (8 images/s).
    assert image_store.worker_count(32, files=75) == 3


def test_workers_are_not_forked(tmp_path, monkeypatch):
    """fork is unsafe on macOS (and after threads start); spawn works on every OS."""
    raw = make_class_tree(tmp_path / "raw", classes=("cat",), per_class=3)
    write_manifest(raw)
    methods = []
    real_get_context = multiprocessing.get_context

    def recording_get_context(method=None):
        methods.append(method)
        return real_get_context(method)

    monkeypatch.setattr(multiprocessing, "get_context", recording_get_context)
    params = ResizeParams(size=8, fit="squash", max_megapixels=1, workers=2)
    (tmp_path / "out").mkdir()
    index, rejected = image_store.resize_all(
        raw, image_store.read_manifest(raw), params, tmp_path / "out"
    )
    assert len(index) == 3 and not rejected
    assert methods == ["spawn"]  # named: get_context() with no name is fork on Linux


def test_a_killed_run_leaves_no_temporary_behind(tmp_path):
    raw = make_class_tree(tmp_path / "data" / "raw", classes=("cat", "dog"), per_class=6)
    write_manifest(raw)
    write_params(tmp_path, resize__size=16)
    # What a killed resize leaves: its half-written temporary folder, next to the output.
    stale = tmp_path / "data" / ".resized.k3j9x2.tmp"
    stale.mkdir()
    (stale / "images.npy").write_bytes(b"\0" * 1000)
    run_stage(
        "resize",
        *RESIZE_ARGS,
        cwd=tmp_path,
    )
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["raw", "resized"]


@pytest.mark.parametrize("fit", ["crop", "pad"])
def test_the_stage_fits_non_square_photos_as_asked(tmp_path, fit):
    """On a square photo squash, crop and pad give the same pixels: these are 3:2 and 1:3."""
    raw = tmp_path / "data" / "raw"
    save_detailed_image(raw / "cat" / "wide.png", size=(60, 40), seed=1)
    save_detailed_image(raw / "dog" / "tall.png", size=(20, 60), seed=2)
    write_manifest(raw)
    write_params(tmp_path, resize__size=16, resize__fit=fit)
    run_stage(
        "resize",
        *RESIZE_ARGS,
        cwd=tmp_path,
    )
    images = np.load(tmp_path / "data/resized/images.npy")
    for row, name in enumerate(("cat/wide.png", "dog/tall.png")):
        expected = load_image(raw / name, 16, fit, 10**8)
        assert np.array_equal(images[row], expected)
        assert not np.array_equal(images[row], load_image(raw / name, 16, "squash", 10**8))
    # The contract train copies into the card says the same fit, for predict to repeat.
    assert json.loads((tmp_path / "data/resized/contract.json").read_text())["fit"] == fit
