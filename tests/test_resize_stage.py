"""The resize stage end to end: good files become rows, bad ones a report, data/raw untouched."""

import csv
import json

import numpy as np

from stages.images import load_image
from tests.conftest import make_class_tree, run_stage, tree_digest, write_params
from tests.test_images import png_header_only, truncated_jpeg


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
    write_manifest(raw)
    before = tree_digest(raw)
    write_params(tmp_path, resize__size=32, resize__workers=2)

    run_stage("resize", "--raw", "data/raw", "--out", "data/resized",
              "--metrics", "metrics/resize.json", cwd=tmp_path)  # fmt: skip

    assert tree_digest(raw) == before
    out = tmp_path / "data" / "resized"
    images = np.load(out / "images.npy")
    with (out / "index.csv").open() as file:
        index = list(csv.DictReader(file))
    with (out / "rejected.csv").open() as file:
        rejected = {row["path"]: row["reason"] for row in csv.DictReader(file)}
    assert images.shape == (12, 32, 32, 3) and images.dtype == np.uint8
    assert [row["path"] for row in index][:2] == ["cat/000.png", "cat/001.png"]
    assert rejected == {
        "cat/cut.jpg": "truncated",
        "cat/empty.jpg": "empty",
        "dog/bomb.png": "too_large",
        "dog/notes.jpg": "not_an_image",
    }
    # Rows line up with the index, even after the rejected files were dropped.
    for row_number in (0, 7, 11):
        expected = load_image(raw / index[row_number]["path"], 32, "squash", 10**8)
        assert (images[row_number] == expected).all()
    assert len({row["pixel_hash"] for row in index}) == 12
    metrics = json.loads((tmp_path / "metrics" / "resize.json").read_text())
    assert metrics["images"] == 12 and metrics["rejected"] == 4
    assert metrics["rejected_by_reason"] == {
        "empty": 1, "not_an_image": 1, "too_large": 1, "truncated": 1,
    }  # fmt: skip


def test_resize_without_download(tmp_path):
    write_params(tmp_path)
    result = run_stage("resize", "--raw", "data/raw", "--out", "data/resized",
                       "--metrics", "m.json", cwd=tmp_path, check=False)  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "resize: error: data/raw/manifest.csv not found: run the download stage first"
    )
    assert not (tmp_path / "data" / "resized").exists()
