"""Where the photos come from, laid out as <class>/<image> whatever the source.

Sources (params `data.source`):
  animal-mnist  the 10,000 silhouettes shipped inside the PyPI package animal-mnist (offline)
  kaggle        a Kaggle dataset through Kaggle's client kagglehub (Animals-10 by default)
  folder        a local tree <class>/<image> or train|test/<class>/<image>

Besides the class folders, data/raw/manifest.csv lists every file with its class, its given
split (train or test) when the source came already split, which `split` keeps, and the
source it came from (for Kaggle, the exact version that was downloaded).
"""

import contextlib
import csv
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from image_classifier.console import StageError, progress
from image_classifier.data.archives import extract_archive_replacing
from image_classifier.data.filenames import MANIFEST_FILE, is_image_name
from image_classifier.params import DataParams

# Labels 0-9 of Animal-MNIST, checked by eye against the images.
ANIMAL_MNIST_CLASSES = (
    "bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep", "zebra",
)  # fmt: skip
# Animals-10's folders are Italian; the translate.py in its archive is wrong (no ragno,
# cavallo twice), so this is our own map.
ITALIAN_CLASS_NAMES = {
    "cane": "dog",
    "cavallo": "horse",
    "elefante": "elephant",
    "farfalla": "butterfly",
    "gallina": "chicken",
    "gatto": "cat",
    "mucca": "cow",
    "pecora": "sheep",
    "ragno": "spider",
    "scoiattolo": "squirrel",
}
GIVEN_SPLITS = ("train", "test")
IGNORED_NAMES = frozenset({"__MACOSX", "Thumbs.db", "desktop.ini"})


@dataclass(frozen=True)
class SourceFile:
    path: Path  # where the file is now
    label: str  # class name
    split: str  # "train" or "test" when the source came split, else ""
    name: str  # file name inside data/raw/<class>/


def visible(path: Path) -> bool:
    return not path.name.startswith(".") and path.name not in IGNORED_NAMES


def visible_children(folder: Path) -> list[Path]:
    return sorted(child for child in folder.iterdir() if visible(child))


def dataset_root(root: Path) -> Path:
    """Step down through wrapper folders (such as Animals-10's raw-img) to the class folders."""
    while True:
        folders = [child for child in visible_children(root) if child.is_dir()]
        has_images = any(is_image_name(child) for child in visible_children(root))
        if len(folders) == 1 and not has_images:
            root = folders[0]
        else:
            return root


def files_under(folder: Path) -> Iterator[Path]:
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if (
            path.is_file()
            and not path.is_symlink()
            and all(visible(Path(p)) for p in relative.parts)
        ):
            yield path


def find_source_files(
    root: Path, class_names: dict[str, str] | None = None, max_per_class: int = 0
) -> list[SourceFile]:
    """Every file of a `<class>/<image>` or `train|test/<class>/<image>` tree, in a fixed order."""
    root = dataset_root(root)
    folders = {child.name: child for child in visible_children(root) if child.is_dir()}
    if set(folders) == set(GIVEN_SPLITS):
        groups = [(split, folders[split]) for split in GIVEN_SPLITS]
    else:
        groups = [("", root)]
    files = []
    for split, split_folder in groups:
        class_folders = [child for child in visible_children(split_folder) if child.is_dir()]
        if not class_folders:
            raise StageError(
                f"{split_folder} has no class folders: expected <class>/<image> "
                "or train|test/<class>/<image>"
            )
        for class_folder in class_folders:
            label = (class_names or {}).get(class_folder.name, class_folder.name)
            paths = list(files_under(class_folder))
            if not any(is_image_name(path) for path in paths):
                raise StageError(f"class folder {class_folder} holds no images")
            if max_per_class:
                paths = paths[:max_per_class]
            prefix = f"{split}__" if split else ""
            for path in paths:
                name = prefix + "__".join(path.relative_to(class_folder).parts)
                files.append(SourceFile(path, label, split, name))
    return files


def write_manifest(rows: list[tuple[str, str, str]], target: Path, source: str) -> None:
    with (target / MANIFEST_FILE).open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["path", "class", "split", "source"])
        writer.writerows((*row, source) for row in rows)


def copy_into(files: list[SourceFile], target: Path, source: str) -> None:
    rows, seen = [], set()
    for file in progress(files, "copy images", unit="file"):
        relative = f"{file.label}/{file.name}"
        if relative in seen:
            raise StageError(f"two source files would both become data/raw/{relative}")
        seen.add(relative)
        (target / file.label).mkdir(exist_ok=True)
        shutil.copyfile(file.path, target / relative)
        rows.append((relative, file.label, file.split))
    write_manifest(rows, target, source)


def write_animal_mnist(target: Path, max_per_class: int) -> None:
    from animal_mnist.dataset_Loader import load_animal_mnist_dataset
    from PIL import Image

    images, labels = load_animal_mnist_dataset()
    rows = []
    for label_index, label in enumerate(ANIMAL_MNIST_CLASSES):
        (target / label).mkdir()
        indices = np.flatnonzero(labels == label_index)[: max_per_class or None]
        rows += [(f"{label}/{label}_{index:05d}.png", label, "", index) for index in indices]
    for relative, _, _, index in progress(rows, "write Animal-MNIST", unit="image"):
        Image.fromarray(images[index]).save(target / relative)
    write_manifest([row[:3] for row in rows], target, "animal-mnist")


@contextlib.contextmanager
def safe_kagglehub_extraction(max_members: int, max_bytes: int) -> Iterator[None]:
    """kagglehub extracts with a plain extractall (no size or count cap); swap in ours."""
    from kagglehub import http_resolver

    original = getattr(http_resolver, "_extract_archive", None)
    if original is None:
        raise StageError("this kagglehub version is not supported: install requirements.txt")
    http_resolver._extract_archive = lambda archive, out: extract_archive_replacing(
        Path(archive), Path(out), max_members=max_members, max_bytes=max_bytes
    )
    try:
        yield
    finally:
        http_resolver._extract_archive = original


def pinned_handle(handle: str, folder: Path) -> str:
    """The handle with the version kagglehub resolved (its cache folder ends in versions/N)."""
    base = re.sub(r"/versions/\d+$", "", handle)
    version = re.search(r"versions/(\d+)$", folder.as_posix())
    return f"{base}/versions/{version.group(1)}" if version else handle


def kaggle_download(handle: str, max_members: int, max_bytes: int) -> Path:
    """Download (or take from kagglehub's cache) a Kaggle dataset; return its folder."""
    import kagglehub
    import requests
    from kagglehub.exceptions import DataCorruptionError, KaggleApiHTTPError

    try:
        with safe_kagglehub_extraction(max_members, max_bytes):
            return Path(kagglehub.dataset_download(handle))
    except KaggleApiHTTPError as error:
        status = error.response.status_code if error.response is not None else None
        if status == 404:
            raise StageError(
                f"Kaggle has no dataset '{handle}' (HTTP 404): check data.kaggle_dataset"
            ) from None
        if status in (401, 403):
            raise StageError(
                f"Kaggle refused '{handle}' (HTTP {status}): for a private dataset or one that "
                "needs consent, accept its terms on kaggle.com and set credentials "
                "(KAGGLE_API_TOKEN, ~/.kaggle/kaggle.json or KAGGLE_USERNAME/KAGGLE_KEY)"
            ) from None
        raise StageError(f"Kaggle answered HTTP {status} for '{handle}': try again later") from None
    except (requests.ConnectionError, requests.Timeout) as error:
        request = getattr(error, "request", None)
        host = urlparse(request.url).hostname if request is not None and request.url else "Kaggle"
        raise StageError(
            f"cannot reach {host} to download '{handle}': check the network, "
            "or use data.source: animal-mnist offline"
        ) from None
    except DataCorruptionError:
        raise StageError(
            f"the download of '{handle}' was corrupt (checksum mismatch): run again"
        ) from None


def download(data: DataParams, target: Path) -> str:
    """Fill `target` (an empty folder) with the data.source's images and the manifest;
    return where they came from (for Kaggle, the exact version)."""
    if data.source == "animal-mnist":
        write_animal_mnist(target, data.max_images_per_class)
        return "animal-mnist"
    if data.source == "kaggle":
        root = kaggle_download(
            data.kaggle_dataset,
            data.max_archive_members,
            int(data.max_archive_gigabytes * 1e9),
        )
        source, class_names = (
            f"kaggle:{pinned_handle(data.kaggle_dataset, root)}",
            ITALIAN_CLASS_NAMES,
        )
    else:
        root, class_names = data.folder_path, None
        source = f"folder:{data.folder}"
    copy_into(find_source_files(root, class_names, data.max_images_per_class), target, source)
    return source
