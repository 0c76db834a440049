"""download from a local folder and from the embedded Animal-MNIST package."""

import csv
from pathlib import Path

import numpy as np
import pytest

from image_classifier.console import StageError
from image_classifier.data.sources import find_source_files
from tests.conftest import make_class_tree, run_stage, save_image, tree_digest, write_params


def manifest(raw: Path) -> list[dict[str, str]]:
    with (raw / "manifest.csv").open() as file:
        return list(csv.DictReader(file))


def test_class_folders_in_a_wrapper_folder(tmp_path):
    root = tmp_path / "export"
    make_class_tree(root / "photos", classes=("cat", "dog"), per_class=3)
    save_image(root / "photos" / "cat" / "nested" / "deep.jpg")
    (root / "photos" / "cat" / ".DS_Store").write_bytes(b"\0")
    (root / "photos" / ".hidden").mkdir()
    (root / "README.txt").write_text("not a class")
    files, skipped = find_source_files(root)
    assert skipped == []
    assert [(f.label, f.name, f.split) for f in files] == [
        ("cat", "000.png", ""),
        ("cat", "001.png", ""),
        ("cat", "002.png", ""),
        ("cat", "nested__deep.jpg", ""),
        ("dog", "000.png", ""),
        ("dog", "001.png", ""),
        ("dog", "002.png", ""),
    ]


def test_given_train_test_split_is_kept_and_names_do_not_collide(tmp_path):
    make_class_tree(tmp_path / "train", classes=("cat", "dog"), per_class=4)
    make_class_tree(tmp_path / "test", classes=("cat", "dog"), per_class=2)
    files, _ = find_source_files(tmp_path, max_per_class=3)
    assert [(f.label, f.split) for f in files].count(("cat", "train")) == 3
    assert [(f.label, f.split) for f in files].count(("dog", "test")) == 2
    names = [f"{f.label}/{f.name}" for f in files]
    assert len(names) == len(set(names))
    assert "cat/test__000.png" in names and "cat/train__000.png" in names


def test_folder_without_class_folders(tmp_path):
    save_image(tmp_path / "loose.jpg")
    with pytest.raises(StageError, match="has no class folders: expected <class>/<image>"):
        find_source_files(tmp_path)


def test_class_without_images(tmp_path):
    make_class_tree(tmp_path, classes=("cat",), per_class=2)
    (tmp_path / "dog").mkdir()
    (tmp_path / "dog" / "notes.txt").write_text("no photos yet")
    with pytest.raises(StageError, match=r"class folder .*dog holds no images"):
        find_source_files(tmp_path)


def test_train_val_test_folders_are_splits_not_classes(tmp_path):
    for split, count in (("train", 4), ("val", 2), ("test", 2)):
        make_class_tree(tmp_path / split, classes=("cat", "dog"), per_class=count)
    files, _ = find_source_files(tmp_path, step_into_wrappers=False)
    assert {f.label for f in files} == {"cat", "dog"}
    assert [f.split for f in files].count("val") == 4
    assert {f.split for f in files} == {"train", "val", "test"}


@pytest.mark.parametrize(
    ("folders", "message"),
    [
        (
            ("train/cat", "test/cat", "dog"),
            r"mixes split folders \(test, train\) with other folders \(dog\): expected <class>/<image>",
        ),
        (("test/cat", "val/cat"), r"has test, val/ but no train/"),
        (
            ("cats/indoor", "cats/outdoor"),
            r"holds one folder \(cats\) and no photos: expected one folder per class",
        ),
    ],
)
def test_a_layout_that_cannot_be_read_unambiguously_is_refused(tmp_path, folders, message):
    for folder in folders:
        make_class_tree(tmp_path / folder, classes=("x",), per_class=1)
    with pytest.raises(StageError, match=message):
        find_source_files(tmp_path, step_into_wrappers=False)


def test_photos_outside_class_folders_are_reported(tmp_path):
    make_class_tree(tmp_path, classes=("cat", "dog"), per_class=2)
    save_image(tmp_path / "loose.jpg")
    files, skipped = find_source_files(tmp_path, step_into_wrappers=False)
    assert len(files) == 4
    assert [(item.path, item.reason) for item in skipped] == [("loose.jpg", "no_class")]


def test_symlinks_inside_the_folder_are_followed_and_others_reported(tmp_path):
    photos = make_class_tree(tmp_path / "photos", classes=("cat", "dog"), per_class=2)
    outside = save_image(tmp_path / "elsewhere" / "secret.png")
    (photos / "cat" / "linked.png").symlink_to(photos / "dog" / "000.png")
    (photos / "cat" / "outside.png").symlink_to(outside)
    (photos / "cat" / "broken.png").symlink_to(photos / "gone.png")
    (photos / "cat" / "loop").symlink_to(photos / "cat")
    (photos / "root").symlink_to("/")
    files, skipped = find_source_files(photos, step_into_wrappers=False)
    assert "linked.png" in [f.name for f in files if f.label == "cat"]
    assert {item.path: item.reason for item in skipped} == {
        "cat/outside.png": "link_outside",
        "cat/broken.png": "broken_link",
        "cat/loop": "link_loop",
        "root": "link_outside",
    }


def test_a_folder_tracked_by_dvc_with_symlinked_files_is_read(tmp_path):
    """`dvc add photos` with cache.type symlink turns every photo into a link to the cache."""
    from tests.conftest import dvc, run

    repo = tmp_path / "repo"
    make_class_tree(repo / "photos", classes=("cat", "dog"), per_class=3)
    run(["git", "init", "-q"], repo)
    dvc("init", "-q", cwd=repo)
    dvc("config", "cache.type", "symlink", cwd=repo)
    dvc("add", "-q", "photos", cwd=repo)
    assert all(path.is_symlink() for path in (repo / "photos").glob("*/*.png"))
    write_params(repo, data__source="folder", data__folder="photos")
    run_stage("download", "--out", "data/raw", cwd=repo)
    assert len(manifest(repo / "data/raw")) == 6
    assert not (repo / "data/raw/dog/000.png").is_symlink()  # a copy, not a link to the cache


def test_long_names_in_subfolders_are_shortened_uniquely(tmp_path):
    deep = tmp_path / "cat" / ("a" * 120) / ("b" * 120)
    save_image(deep / "photo.jpg")
    save_image(deep / "other.jpg")
    make_class_tree(tmp_path, classes=("dog",), per_class=1)
    files, _ = find_source_files(tmp_path, step_into_wrappers=False)
    names = [f.name for f in files if f.label == "cat"]
    assert len(set(names)) == 2 and all(len(name.encode()) <= 200 for name in names)
    assert names[0].endswith(".jpg")


def test_folder_stage_copies_and_leaves_the_source_alone(tmp_path):
    source = make_class_tree(tmp_path / "mine", classes=("cat", "dog"), per_class=5)
    save_image(source / "unsorted.jpg")
    before = tree_digest(source)
    work = tmp_path / "work"
    work.mkdir()
    write_params(work, data__source="folder", data__folder=str(source), resize__size=16)
    result = run_stage("download", "--out", "data/raw", cwd=work)
    raw = work / "data" / "raw"
    assert tree_digest(source) == before
    assert (raw / "dog" / "004.png").read_bytes() == (source / "dog" / "004.png").read_bytes()
    assert len(manifest(raw)) == 10
    assert "warning: 1 source file not used (1 no_class)" in result.stderr
    run_stage(
        "resize", "--raw", "data/raw", "--out", "data/resized", "--metrics", "r.json", cwd=work
    )
    rejected = (work / "data/resized/rejected.csv").read_text()
    assert "unsorted.jpg,no_class,not inside a class folder" in rejected
    assert not [p for p in work.rglob("*.tmp")]  # nothing left behind


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (
            {"data__source": "folder", "data__folder": "/no/such/folder"},
            "download: error: params.yaml: data.folder = '/no/such/folder' is not allowed",
        ),
        (
            {"data__source": "folder", "data__folder": "empty"},
            "download: error: empty has no class folders",
        ),
        (
            {"data__source": "folder", "data__folder": "one"},
            "download: error: one holds one folder (cats) and no photos",
        ),
        (
            {"data__source": "dropbox"},
            "download: error: params.yaml: data.source = 'dropbox' is not allowed: must be one of",
        ),
    ],
)
def test_failures_are_one_line_and_keep_the_old_data(tmp_path, params, expected):
    (tmp_path / "empty").mkdir()
    make_class_tree(tmp_path / "one" / "cats", classes=("indoor", "outdoor"), per_class=1)
    (tmp_path / "data" / "raw").mkdir(parents=True)
    (tmp_path / "data" / "raw" / "kept.txt").write_text("previous")
    write_params(tmp_path, **params)
    result = run_stage("download", "--out", "data/raw", cwd=tmp_path, check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith(expected)
    assert "Traceback" not in result.stderr
    assert (tmp_path / "data" / "raw" / "kept.txt").read_text() == "previous"


def test_animal_mnist_slice(tmp_path):
    write_params(tmp_path, data__max_images_per_class=3)
    run_stage("download", "--out", "data/raw", cwd=tmp_path)
    raw = tmp_path / "data" / "raw"
    rows = manifest(raw)
    classes = [
        "bear",
        "bird",
        "cat",
        "cow",
        "dog",
        "elephant",
        "giraffe",
        "horse",
        "sheep",
        "zebra",
    ]
    assert sorted({row["class"] for row in rows}) == classes
    assert len(rows) == 30
    from PIL import Image

    with Image.open(raw / rows[0]["path"]) as image:
        assert image.size == (28, 28)
        assert image.mode == "L"
        assert np.asarray(image).std() > 0
