"""The dataset files passed between stages, and the splits as uint8 images with integer labels."""

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from image_classifier.console import StageError
from image_classifier.data.filenames import CONTRACT_FILE, IMAGES_FILE

SPLITS = ("train", "val", "test")


def read_csv(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise StageError(f"{path} not found: run the stage that writes it first") from None
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise StageError(f"{path} lacks the column {missing[0]!r}: re-run the stage that writes it")
    return table


def class_names(labels: pd.Series) -> list[str]:
    """Class names in label order: sorted, so label numbers never depend on file order."""
    return sorted(labels.unique())


def fitting_batch_size(key: str, batch_size: int, images: int) -> tuple[int, str]:
    """The batch size to train with: at most the number of training images (a larger batch
    only repeats them, at a memory cost that grows with it), and a warning when cut."""
    if batch_size <= images:
        return batch_size, ""
    return images, (
        f"{key} = {batch_size} is more than the {images} training images: batches of "
        f"{images} instead"
    )


def read_contract(resized: Path) -> dict:
    """How resize made every image (image_size, fit, max_megapixels): what predict must repeat."""
    try:
        return json.loads((resized / CONTRACT_FILE).read_text())
    except FileNotFoundError:
        raise StageError(
            f"{resized / CONTRACT_FILE} not found: run the resize stage again (dvc repro resize)"
        ) from None


def image_size(resized: Path) -> int:
    """Side of the stored square images, read from the .npy header without loading them."""
    try:
        return int(np.load(resized / IMAGES_FILE, mmap_mode="r").shape[1])
    except FileNotFoundError:
        raise StageError(f"{resized / IMAGES_FILE} not found: run the resize stage first") from None


CHUNK_BYTES = 8 * 2**20


def gather_rows(array: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """array[rows] read into one new array, a chunk at a time.

    `array[rows]` on a memory map builds the whole result as a temporary and then copies
    it, so a split would be held in memory twice (~5 GB for Animals-10 at 224 px).
    """
    result = np.empty((len(rows), *array.shape[1:]), array.dtype)
    chunk_rows = max(1, CHUNK_BYTES // max(result[:1].nbytes, 1))
    for start in range(0, len(rows), chunk_rows):
        chunk = rows[start : start + chunk_rows]
        order = np.argsort(chunk, kind="stable")  # file order reads a memory map fastest
        result[start + order] = array[chunk[order]]
    return result


class StoredRows(Sequence):
    """Rows of a memory-mapped images.npy, each read when it is indexed: every photo of the
    data without a copy of them all in memory (1.1 GB at Animals-10's size)."""

    def __init__(self, stored: np.ndarray, rows: np.ndarray) -> None:
        self.stored, self.rows = stored, np.asarray(rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> np.ndarray:
        return np.asarray(self.stored[self.rows[index]])

    def batches(self, size: int) -> Iterator[tuple[np.ndarray]]:
        """The rows in batches, as 1-tuples (model.predict's form for a generator)."""
        for start in range(0, len(self.rows), size):
            yield (gather_rows(self.stored, self.rows[start : start + size]),)


@dataclass(frozen=True)
class Subset:
    images: np.ndarray  # (n, size, size, 3) uint8
    labels: np.ndarray  # (n,) int32
    paths: list[str]
    class_names: list[str]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def load_subset(
    resized: Path,
    split_file: Path,
    split: str,
    fraction: float = 1.0,
    seed: int = 0,
    at_most: int = 0,
) -> Subset:
    """The images of one split, read once into memory from the memory-mapped array.

    `fraction` < 1 keeps a stratified sample of the split (quick sweeps), chosen by `seed`;
    `at_most` > 0 caps the sample's size.
    """
    table = read_csv(split_file, ("row", "class", "split", "path"))
    names = class_names(table["class"])
    chosen = table[table["split"] == split]
    if chosen.empty:
        raise StageError(f"{split_file} has no {split!r} images")
    capped = at_most > 0 and fraction * len(chosen) > at_most
    if fraction < 1 or capped:
        try:
            chosen, _ = train_test_split(
                chosen,
                train_size=at_most if capped else fraction,
                stratify=chosen["class"],
                random_state=seed,
            )
        except ValueError:
            kept = f"{at_most}" if capped else f"a fraction {fraction}"
            raise StageError(
                f"{kept} of the {len(chosen)} {split} images is too few to keep every class: "
                "raise it"
            ) from None
        chosen = chosen.sort_index()
    rows = chosen["row"].astype(int).to_numpy()
    images = gather_rows(np.load(resized / IMAGES_FILE, mmap_mode="r"), rows)
    labels = chosen["class"].map({name: i for i, name in enumerate(names)}).to_numpy(np.int32)
    return Subset(images, labels, chosen["path"].tolist(), names)
