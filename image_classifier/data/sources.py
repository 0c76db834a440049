"""Where the photos come from, laid out as <class>/<image> whatever the source.

Sources (params `data.source`):
  animal-mnist  the 10,000 silhouettes shipped inside the PyPI package animal-mnist (offline)
  kaggle        a Kaggle dataset through Kaggle's client kagglehub (Animals-10 by default)
  folder        a local tree <class>/<image> or train|val|test/<class>/<image>

Besides the class folders, data/raw/manifest.csv lists every file with its class, its given
split (train or test) when the source came already split, which `split` keeps, and the
source it came from (for Kaggle, the exact version that was downloaded).
"""

import contextlib
import csv
import hashlib
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from image_classifier.console import StageError, progress
from image_classifier.data.archives import extract_archive_replacing
from image_classifier.data.filenames import MANIFEST_FILE, SKIPPED_FILE, is_image_name
from image_classifier.params import DataParams

# Labels 0-9 of Animal-MNIST, checked by eye against the images.
ANIMAL_MNIST_CLASSES = (
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
)
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
# Split folder names a photo tree may come with, and the split each means.
SPLIT_FOLDERS = {
    "train": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
}
SPLITS_IN_ORDER = ("train", "val", "test")
IGNORED_NAMES = frozenset({"__MACOSX", "Thumbs.db", "desktop.ini"})
MAX_NAME_BYTES = 200  # file systems allow 255 bytes a name; a flattened name can be longer
LAYOUTS = "<class>/<image>, or train/<class>/<image> + test/<class>/<image> (val/ optional)"


@dataclass(frozen=True)
class SourceFile:
    path: Path  # where the file is now
    label: str  # class name
    split: str  # "train", "val" or "test" when the source came split, else ""
    name: str  # file name inside data/raw/<class>/


@dataclass(frozen=True)
class Skipped:
    """A file of the source that is not used, and why (reported in data/resized/rejected.csv)."""

    path: str  # relative to the source folder
    reason: str
    detail: str


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


def dvc_cache_folders() -> list[Path]:
    """The DVC cache of the repository the stage runs in: where `dvc add` with cache.type
    symlink points a tracked photo folder's files."""
    try:
        from dvc.repo import Repo

        with Repo(".") as repo:
            return [Path(repo.cache.local.path).resolve().parent.parent]
    except Exception:  # not in a DVC repository, or no local cache: no such links to follow
        return []


class Walk:
    """The files of a source folder, hidden ones left out, in a fixed order. Symlinks are
    followed into the folder itself and into DVC's cache; links elsewhere, broken links and
    links back to a folder already read are skipped, with the reason."""

    def __init__(self, top: Path) -> None:
        self.top = top
        self.allowed = [top.resolve(), *dvc_cache_folders()]
        self.skipped: list[Skipped] = []
        self.folders_read: set[Path] = set()

    def skip(self, path: Path, reason: str, detail: str) -> None:
        self.skipped.append(Skipped(path.relative_to(self.top).as_posix(), reason, detail))

    def usable(self, path: Path) -> bool:
        """False (and recorded) for a link that must not be followed."""
        if not path.is_symlink():
            return True
        target = Path(os.path.realpath(path))
        if not any(target.is_relative_to(root) for root in self.allowed):
            self.skip(path, "link_outside", f"links to {target}, outside {self.top}")
            return False
        if not target.exists():
            self.skip(path, "broken_link", f"links to {target}, which does not exist")
            return False
        return True

    def children(self, folder: Path) -> list[Path]:
        try:
            return [child for child in visible_children(folder) if self.usable(child)]
        except OSError as error:
            self.skip(folder, "unreadable", error.strerror or str(error))
            return []

    def files(self, folder: Path) -> Iterator[Path]:
        real = Path(os.path.realpath(folder))
        if real in self.folders_read:
            self.skip(folder, "link_loop", f"{real} is read already")
            return
        self.folders_read.add(real)
        for child in self.children(folder):
            if child.is_dir():
                yield from self.files(child)
            elif child.is_file():
                yield child


def flat_name(parts: tuple[str, ...], prefix: str) -> str:
    """A file's path inside its class folder as one name (sub/folder/x.jpg -> sub__folder__x.jpg);
    one too long for a file system is shortened, with a hash of the whole path kept unique."""
    name = prefix + "__".join(parts)
    if len(name.encode()) <= MAX_NAME_BYTES:
        return name
    digest = hashlib.blake2b(name.encode(), digest_size=8).hexdigest()
    stem, suffix = Path(parts[-1]).stem, Path(parts[-1]).suffix[:16]
    keep = MAX_NAME_BYTES - len(digest) - len(suffix) - 2
    return f"{digest}__{stem.encode()[:keep].decode(errors='ignore')}{suffix}"


def split_folders(root: Path, folders: list[Path]) -> dict[str, Path]:
    """The given split folders of a tree (train/, val/, test/), or {} for a <class>/ tree;
    a tree that mixes them with other folders, or names a split twice, is refused."""
    given = [folder for folder in folders if folder.name.lower() in SPLIT_FOLDERS]
    if not given:
        return {}
    others = [folder.name for folder in folders if folder not in given]
    if others:
        raise StageError(
            f"{root} mixes split folders ({', '.join(f.name for f in given)}) with other "
            f"folders ({', '.join(others)}): expected {LAYOUTS}"
        )
    splits: dict[str, Path] = {}
    for folder in given:
        split = SPLIT_FOLDERS[folder.name.lower()]
        if split in splits:
            raise StageError(
                f"{root} names the {split} split twice ({splits[split].name} and {folder.name})"
            )
        splits[split] = folder
    if "train" not in splits:
        raise StageError(
            f"{root} has {', '.join(sorted(splits))}/ but no train/: expected {LAYOUTS}"
        )
    return {split: splits[split] for split in SPLITS_IN_ORDER if split in splits}


def find_source_files(
    root: Path,
    class_names: dict[str, str] | None = None,
    max_per_class: int = 0,
    step_into_wrappers: bool = True,
) -> tuple[list[SourceFile], list[Skipped]]:
    """Every file of a <class>/<image> or train|val|test/<class>/<image> tree, in a fixed
    order, and the files that are not used (not in a class folder, links not followed).

    A downloaded archive often wraps the tree in a folder (Animals-10's raw-img), which
    `step_into_wrappers` steps through; a folder the user names is read as it is, since a
    lone folder there is as likely one class as a wrapper."""
    top = root
    if step_into_wrappers:
        root = dataset_root(root)
    walk = Walk(top)
    children = walk.children(root)
    folders = [child for child in children if child.is_dir()]
    splits = split_folders(root, folders)
    loose = [child for child in children if child.is_file() and is_image_name(child)]
    if not splits and len(folders) == 1 and not loose:
        raise StageError(
            f"{root} holds one folder ({folders[0].name}) and no photos: expected one folder "
            f"per class ({LAYOUTS}), at least two classes; if {folders[0].name}/ holds the "
            "class folders, point data.folder at it"
        )
    files = []
    for split, split_folder in splits.items() or [("", root)]:
        entries = children if split_folder == root else walk.children(split_folder)
        class_folders = [entry for entry in entries if entry.is_dir()]
        for photo in (entry for entry in entries if entry.is_file() and is_image_name(entry)):
            walk.skip(photo, "no_class", f"not inside a class folder of {split_folder}")
        if not class_folders:
            raise StageError(f"{split_folder} has no class folders: expected {LAYOUTS}")
        for class_folder in class_folders:
            label = (class_names or {}).get(class_folder.name, class_folder.name)
            paths = list(walk.files(class_folder))
            if not any(is_image_name(path) for path in paths):
                raise StageError(f"class folder {class_folder} holds no images")
            if max_per_class:
                paths = paths[:max_per_class]
            prefix = f"{split}__" if split else ""
            for path in paths:
                name = flat_name(path.relative_to(class_folder).parts, prefix)
                files.append(SourceFile(path, label, split, name))
    return files, walk.skipped


def write_manifest(rows: list[tuple[str, str, str]], target: Path, source: str) -> None:
    with (target / MANIFEST_FILE).open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["path", "class", "split", "source"])
        writer.writerows((*row, source) for row in rows)


def write_skipped(skipped: list[Skipped], target: Path) -> None:
    with (target / SKIPPED_FILE).open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["path", "reason", "detail"])
        writer.writerows((item.path, item.reason, item.detail) for item in skipped)


def copy_into(
    files: list[SourceFile], target: Path, source: str, skipped: list[Skipped] = ()
) -> None:
    rows, seen = [], set()
    for file in progress(files, "copy images", unit="file"):
        relative = f"{file.label}/{file.name}"
        if relative in seen:
            raise StageError(f"two source files would both become data/raw/{relative}")
        seen.add(relative)
        (target / file.label).mkdir(exist_ok=True)
        shutil.copyfile(file.path, target / relative)  # a followed link: its target's bytes
        rows.append((relative, file.label, file.split))
    write_manifest(rows, target, source)
    write_skipped(list(skipped), target)


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
    write_skipped([], target)


@contextlib.contextmanager
def safe_kagglehub_extraction(max_members: int, max_bytes: int) -> Iterator[None]:
    """kagglehub extracts with a plain extractall (no size or count cap); swap in ours.

    A private hook, kept for want of a public way: kagglehub 1.0.2 has no call that downloads
    a dataset's archive unextracted, and the official `kaggle` client (1.7.4.5) refuses to be
    imported without credentials, even for a public dataset. An upgrade without the hook is
    refused below rather than extracting uncapped."""
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
    files, skipped = find_source_files(
        root, class_names, data.max_images_per_class, step_into_wrappers=data.source == "kaggle"
    )
    copy_into(files, target, source, skipped)
    return source
