"""Shared test helpers: params files, small image trees, a git+DVC repository of this project."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests.workspace import (  # noqa: F401  (re-exported for the tests)
    ROOT,
    dvc,
    read_yaml,
    run,
    run_predict,
    run_stage,
    set_param,
    stage_env,
    write_params,
)

PROJECT_FILES = (
    "dvc.yaml",
    "params.yaml",
    "params.schema.json",
    "stages",
    "image_classifier",
    "photos",
    "weights",
    "data/corrections.csv",
)


def save_image(path: Path, size=(40, 30), color=(200, 30, 30), mode="RGB", **save_args) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", size, color)
    # A gradient, so that resized images of different sizes differ in their pixels.
    pixels = np.asarray(image).copy()
    pixels[..., 1] = np.linspace(0, 255, size[0], dtype=np.uint8)[None, :]
    Image.fromarray(pixels).convert(mode).save(path, **save_args)
    return path


def save_detailed_image(path: Path, size=(60, 40), seed=0) -> Path:
    """Random pixels in both directions, so that squash, crop and pad of a non-square photo
    differ (a one-way gradient survives a crop across it unchanged)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def make_class_tree(root: Path, classes=("cat", "dog", "cow"), per_class=10, seed=0) -> Path:
    """<class>/<image>.png with distinct random pixels (no accidental duplicates)."""
    rng = np.random.default_rng(seed)
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            pixels = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{index:03d}.png")
    return root


def tree_digest(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.fixture
def dvc_repo(tmp_path: Path) -> Path:
    return make_dvc_repo(tmp_path)


def make_dvc_repo(folder: Path) -> Path:
    """A fresh git + DVC repository holding this project's pipeline, committed."""
    repo = folder / "repo"
    repo.mkdir()
    for name in PROJECT_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, repo / name)
    shutil.copy2(ROOT / ".gitignore", repo / ".gitignore")
    run(["git", "init", "-q", "-b", "main"], repo)
    dvc("init", "-q", cwd=repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "pipeline"], repo)
    return repo


# A slice of the embedded data through every stage in seconds: what the DVC tests run.
TINY_PIPELINE = {
    "data__max_images_per_class": 10,
    "resize__size": 32,
    # Two networks of 2 epochs each, so that every stage and every export meets the averaged
    # model (train.members: auto would train one on photos this few with min_steps 0).
    "train__members": 2,
    "train__epochs": 4,
    "train__min_steps": 0,
    "train__batch_size": 16,
    "train__filters": [8, 16],
    "sweep__learning_rates": [0.001, 0.01],
    "sweep__batch_sizes": [16],
    "sweep__epochs": 1,
    "sweep__train_fraction": 1.0,
    "evaluate__mistakes_shown": 4,
    "gradcam__correct_per_class": 1,
    "gradcam__wrong_per_class": 1,
    # Every format, int8 (opt-in) too. A model of 2 epochs on 10 photos per class answers
    # near chance, and 1 or 2 test photos a class make every recall 0 or 1: the int8 gate is
    # tested on models made for it.
    "export__formats": ["saved_model", "tflite", "int8", "onnx"],
    "export__int8_min_agreement": 0.0,
    "export__int8_max_recall_drop": 1.0,
}


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory):
    """The tiny pipeline reproduced once, whole, and committed: (repo, the repro's output).
    Tests work on copies of it (copy_repo), so that none sees what another changed. Built
    once for all pytest-xdist workers: the first builds it under a lock, the others wait."""
    from filelock import FileLock

    # Under xdist each worker's temporary folder is in the run's own: share that one.
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent
    folder, output = shared / "tiny-pipeline", shared / "tiny-pipeline.json"
    with FileLock(shared / "tiny-pipeline.lock"):
        if not output.exists():
            folder.mkdir()
            repo = make_dvc_repo(folder)
            write_params(repo, **TINY_PIPELINE)
            result = dvc("repro", cwd=repo)
            run(["git", "add", "-A"], repo)
            run(["git", "commit", "-q", "-m", "baseline"], repo)
            output.write_text(json.dumps({"stdout": result.stdout, "stderr": result.stderr}))
    printed = json.loads(output.read_text())
    return folder / "repo", subprocess.CompletedProcess(["dvc", "repro"], 0, **printed)


def copy_repo(repo: Path, folder: Path) -> Path:
    """A copy of a git + DVC repository, its cache included, as folder/repo."""
    return Path(shutil.copytree(repo, folder / "repo", symlinks=True))


# The stage options naming make_resized_dataset's output, run from its folder.
FIXTURE_INPUTS = ("--resized", "resized", "--split", "split.csv")


def make_resized_dataset(
    folder: Path, size=32, per_class=24, classes=("cat", "dog", "cow"), seed=0
):
    """A resize+split output of learnable synthetic images: each class is a bright square in
    its own corner on noise. Writes folder/resized/{images.npy,index.csv} and folder/split.csv."""
    rng = np.random.default_rng(seed)
    images, rows = [], []
    quarter = size // 2
    for label, name in enumerate(classes):
        for index in range(per_class):
            image = rng.integers(0, 90, (size, size, 3), dtype=np.uint8)
            top, left = divmod(label % 4, 2)
            image[top * quarter : (top + 1) * quarter, left * quarter : (left + 1) * quarter] = 230
            images.append(image)
            split = ("train", "train", "train", "val", "test", "train")[index % 6]
            rows.append({"path": f"{name}/{index}.png", "class": name, "split": split})
    resized = folder / "resized"
    resized.mkdir(parents=True, exist_ok=True)
    np.save(resized / "images.npy", np.stack(images))
    contract = {"image_size": size, "fit": "squash", "max_megapixels": 40}
    (resized / "contract.json").write_text(json.dumps(contract))
    table = pd.DataFrame(rows)
    table.assign(split="", pixel_hash=[f"h{i}" for i in range(len(table))]).to_csv(
        resized / "index.csv", index=False
    )
    table.insert(0, "row", range(len(table)))
    table.to_csv(folder / "split.csv", index=False)
    return resized, folder / "split.csv"


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) of a PNG, decoded in full: a PNG that does not decode fails here."""
    with Image.open(path) as image:
        assert image.format == "PNG", path
        image.load()
        return image.size
