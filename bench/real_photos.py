"""Real photographs that install offline, laid out as photo folders the pipeline reads
(`data.source: folder`), each in three variants: balanced, long-tailed and small.

- Fashion-MNIST (Debian's `dataset-fashion-mnist`: 70,000 28x28 grayscale product photos,
  10 classes), read from its idx files.
- Textures: crops of the real photos shipped inside scikit-image's wheel (the brick, grass
  and gravel textures, and coffee beans, a cat's fur, a rocket, an astronaut, the Hubble
  deep field), in grayscale so that colour gives no class away. Train and val crops come
  from the top 70% of each photo, test crops from the bottom 30%, so no test pixel was
  ever seen in training.
"""

import gzip
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

FASHION_FOLDER = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = (
    "tshirt", "trouser", "pullover", "dress", "coat",
    "sandal", "shirt", "sneaker", "bag", "ankle_boot",
)  # fmt: skip
TEXTURE_SOURCES = (
    "brick", "grass", "gravel", "coffee", "chelsea", "rocket", "astronaut", "hubble_deep_field",
)  # fmt: skip
TEST_REGION = 0.3  # the bottom share of each texture photo that only test crops come from


@dataclass(frozen=True)
class Variant:
    """How many photos each class gets: train counts (per class, largest first) and test."""

    name: str
    train: list[int]
    test: int


def long_tail(largest: int, classes: int, ratio: float = 10.0) -> list[int]:
    """Geometric class sizes from `largest` down to `largest / ratio`."""
    return [round(largest * ratio ** (-i / (classes - 1))) for i in range(classes)]


def read_idx(path: Path) -> np.ndarray:
    """An MNIST-style idx file (gzipped): uint8 images (n, h, w) or labels (n,)."""
    with gzip.open(path, "rb") as file:
        data = file.read()
    _, kind, dimensions = struct.unpack(">HBB", data[:4])
    if kind != 0x08:
        raise ValueError(f"{path}: not a uint8 idx file")
    shape = struct.unpack(f">{dimensions}I", data[4 : 4 + 4 * dimensions])
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dimensions).reshape(shape)


def fashion_mnist(folder: Path = FASHION_FOLDER) -> tuple[np.ndarray, np.ndarray]:
    """All 70,000 images and labels, the official train part first."""
    if not (folder / "train-images-idx3-ubyte.gz").exists():
        raise SystemExit(
            f"Fashion-MNIST not found in {folder}: sudo apt-get install dataset-fashion-mnist"
        )
    images = [read_idx(folder / f"{part}-images-idx3-ubyte.gz") for part in ("train", "t10k")]
    labels = [read_idx(folder / f"{part}-labels-idx1-ubyte.gz") for part in ("train", "t10k")]
    return np.concatenate(images), np.concatenate(labels)


def texture_photos() -> dict[str, np.ndarray]:
    """The scikit-image photos, as 8-bit grayscale arrays."""
    from skimage import data
    from skimage.color import rgb2gray

    photos = {}
    for name in TEXTURE_SOURCES:
        photo = getattr(data, name)()
        if photo.ndim == 3:
            photo = (rgb2gray(photo) * 255).round().astype(np.uint8)
        photos[name] = photo
    return photos


def random_crop(photo: np.ndarray, top: int, bottom: int, rng: np.random.Generator) -> np.ndarray:
    """A square crop of random size (40 to 96 px) and orientation between rows top..bottom."""
    side = int(rng.integers(40, min(97, bottom - top, photo.shape[1])))
    row = int(rng.integers(top, bottom - side + 1))
    column = int(rng.integers(0, photo.shape[1] - side + 1))
    crop = photo[row : row + side, column : column + side]
    crop = np.rot90(crop, int(rng.integers(4)))
    return np.ascontiguousarray(crop[:, ::-1] if rng.random() < 0.5 else crop)


def save(image: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)


def write_fashion(root: Path, variant: Variant, seed: int = 0) -> Path:
    """train/<class>/ and test/<class>/ PNGs: train from the official train part (the largest
    class first in a fixed, seeded order of classes), test from the official test part."""
    images, labels = fashion_mnist()
    rng = np.random.default_rng(seed)
    official_train = np.arange(60_000)
    order = rng.permutation(len(FASHION_CLASSES))  # which class is largest
    for count, label in zip(variant.train, order, strict=True):
        pool = official_train[labels[official_train] == label]
        for index in rng.choice(pool, count, replace=False):
            save(images[index], root / "train" / FASHION_CLASSES[label] / f"{index}.png")
    for label, name in enumerate(FASHION_CLASSES):
        pool = 60_000 + np.flatnonzero(labels[60_000:] == label)
        for index in rng.choice(pool, variant.test, replace=False):
            save(images[index], root / "test" / name / f"{index}.png")
    return root


def write_textures(root: Path, variant: Variant, seed: int = 0) -> Path:
    """train/<class>/ and test/<class>/ PNG crops of the scikit-image photos."""
    rng = np.random.default_rng(seed)
    photos = texture_photos()
    order = rng.permutation(len(TEXTURE_SOURCES))
    for count, index in zip(variant.train, order, strict=True):
        name = TEXTURE_SOURCES[index]
        photo = photos[name]
        boundary = int(photo.shape[0] * (1 - TEST_REGION))
        for number in range(count):
            crop = random_crop(photo, 0, boundary, rng)
            save(crop, root / "train" / name / f"{number:05d}.png")
        for number in range(variant.test):
            crop = random_crop(photo, boundary, photo.shape[0], rng)
            save(crop, root / "test" / name / f"{number:05d}.png")
    return root


@dataclass(frozen=True)
class Dataset:
    name: str
    variant: Variant
    write: Callable[[Path, Variant], Path]
    notes: str


def datasets() -> list[Dataset]:
    fashion, textures = len(FASHION_CLASSES), len(TEXTURE_SOURCES)
    return [
        Dataset("fashion-mnist", Variant("balanced", [2400] * fashion, 300), write_fashion,
                "2,400 train photos per class (20,400 after val), 300 test"),
        # The head class at its full size, the others shrinking to 1/10 (as in CIFAR-10-LT).
        Dataset("fashion-mnist", Variant("long-tailed", long_tail(6000, fashion), 100),
                write_fashion, "6,000 down to 600 train photos per class (10:1), 100 test"),
        Dataset("fashion-mnist", Variant("small", [50] * fashion, 100), write_fashion,
                "50 train photos per class (42 after val), 100 test"),
        Dataset("textures", Variant("balanced", [500] * textures, 100), write_textures,
                "500 train crops per class, 100 test crops from unseen rows"),
        Dataset("textures", Variant("long-tailed", long_tail(500, textures), 100),
                write_textures, "500 down to 50 train crops per class (10:1), 100 test"),
        Dataset("textures", Variant("small", [50] * textures, 100), write_textures,
                "50 train crops per class (42 after val), 100 test"),
    ]  # fmt: skip
