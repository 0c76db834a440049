"""Real photographs that install offline, laid out as photo folders the pipeline reads
(`data.source: folder`): balanced, long-tailed and small variants, and two sets shaped like
users' aligned photos of one kind of object, imbalanced 57 / 27 / 11 / 4 %.

- Fashion-MNIST (Debian's `dataset-fashion-mnist`: 70,000 28x28 grayscale product photos,
  10 classes), read from its idx files.
- Textures: crops of the real photos shipped inside scikit-image's wheel (the brick, grass
  and gravel textures, and coffee beans, a cat's fur, a rocket, an astronaut, the Hubble
  deep field), in grayscale so that colour gives no class away. Train and val crops come
  from the top 70% of each photo, test crops from the bottom 30%, so no test pixel was
  ever seen in training.
- ELPV (PyPI `elpv-dataset`, Deitsch et al., Solar Energy 2019; CC BY-NC-SA 4.0, so it is
  downloaded into a cache at bench time and never committed): 2,624 300x300 grayscale
  electroluminescence photos of solar cells from 44 modules, framed alike, each with an
  expert's defect probability 0, 1/3, 2/3 or 1: as 4 classes, and as 2 (p < 0.5 or not).
- Clip art (Debian's `openclipart-png`, public domain): drawings of people, food,
  transportation, animals, tools and plants at any position and scale, PNGs of every size
  and mode, 4.2:1 between the largest class and the smallest.
- Defects: 300x300 grayscale photos of one kind of part, framed alike: a crop of a real
  texture photo (the part's surface) inside a dark border with three dark bars at fixed
  places, and thin dark cracks and dark patches of four graded severities drawn on it
  (neighbouring grades overlap). Like electroluminescence photos of solar cells.

A set's test split is given when its test photos must come from elsewhere (the official
test part, unseen rows); then it is balanced, or, for long-tailed sets, has the train
prior, as a user's stratified split does, with a balanced test set scored beside it. The
aligned sets have no given split: the pipeline's own stratified split is used, as for a
user's folder.
"""

import gzip
import shutil
import struct
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

FASHION_FOLDER = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = (
    "tshirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle_boot",
)
TEXTURE_SOURCES = (
    "brick",
    "grass",
    "gravel",
    "coffee",
    "chelsea",
    "rocket",
    "astronaut",
    "hubble_deep_field",
)
TEST_REGION = 0.3  # the bottom share of each texture photo that only test crops come from


@dataclass(frozen=True)
class Variant:
    """How many photos each class gets (largest first). With `test`, a given test split of
    that many per class (one number: balanced); with `balanced_test`, also a balanced test
    set of that many per class, outside the photo folder, scored beside the pipeline's."""

    name: str
    counts: list[int]
    test: list[int] | None = None
    balanced_test: int = 0


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


def with_prior(counts: list[int], total: int) -> list[int]:
    """Test counts with the same class shares as `counts`, `total` in all (at least 1 each)."""
    return [max(1, round(count * total / sum(counts))) for count in counts]


def shares(total: int, fractions: tuple[float, ...]) -> list[int]:
    return [round(total * fraction / sum(fractions)) for fraction in fractions]


def write_fashion(root: Path, variant: Variant, classes=FASHION_CLASSES, seed: int = 0):
    """PNGs of Fashion-MNIST `classes` (the first the largest, in that order when they are
    named, else in a seeded order): <class>/ from all 70,000 when no test split is given,
    else train/<class>/ from the official train part and test/<class>/ (and a balanced
    test set) from the official test part. Returns (photo folder, balanced test folder)."""
    images, labels = fashion_mnist()
    rng = np.random.default_rng(seed)
    labels_of = [FASHION_CLASSES.index(name) for name in classes]
    if classes == FASHION_CLASSES:
        labels_of = list(rng.permutation(labels_of))  # which class is largest
    official_train, official_test = np.arange(60_000), np.arange(60_000, 70_000)
    extra = root.with_name(f"{root.name}-balanced-test") if variant.balanced_test else None
    for rank, label in enumerate(labels_of):
        name = FASHION_CLASSES[label]
        if variant.test is None:
            pool = np.flatnonzero(labels == label)
            for index in rng.choice(pool, variant.counts[rank], replace=False):
                save(images[index], root / name / f"{index}.png")
            continue
        pool = official_train[labels[official_train] == label]
        for index in rng.choice(pool, variant.counts[rank], replace=False):
            save(images[index], root / "train" / name / f"{index}.png")
        pool = official_test[labels[official_test] == label]
        chosen = rng.choice(pool, variant.test[rank] + variant.balanced_test, replace=False)
        for index in chosen[: variant.test[rank]]:
            save(images[index], root / "test" / name / f"{index}.png")
        for index in chosen[variant.test[rank] :]:
            save(images[index], extra / name / f"{index}.png")
    return root, extra


def write_textures(root: Path, variant: Variant, seed: int = 0):
    """train/<class>/ and test/<class>/ PNG crops of the scikit-image photos (and a balanced
    test set), test crops from rows no train crop touches."""
    rng = np.random.default_rng(seed)
    photos = texture_photos()
    order = rng.permutation(len(TEXTURE_SOURCES))
    extra = root.with_name(f"{root.name}-balanced-test") if variant.balanced_test else None
    for rank, index in enumerate(order):
        name = TEXTURE_SOURCES[index]
        photo = photos[name]
        boundary = int(photo.shape[0] * (1 - TEST_REGION))
        for number in range(variant.counts[rank]):
            crop = random_crop(photo, 0, boundary, rng)
            save(crop, root / "train" / name / f"{number:05d}.png")
        for number in range(variant.test[rank]):
            crop = random_crop(photo, boundary, photo.shape[0], rng)
            save(crop, root / "test" / name / f"{number:05d}.png")
        for number in range(variant.balanced_test):
            crop = random_crop(photo, boundary, photo.shape[0], rng)
            save(crop, extra / name / f"{number:05d}.png")
    return root, extra


# Graded like the electroluminescence photos of solar cells users bring: no defect, two
# grades between, and clearly defective; the grades between are the rare ones.
DEFECT_GRADES = ("intact", "defective", "minor", "moderate")
DEFECT_SHARES = (0.57, 0.27, 0.11, 0.04)
DEFECT_SURFACES = ("brick", "grass", "gravel")
DEFECT_SIDE = 300
# Per grade: cracks (count range), crack length and darkness (ranges, px and grey levels),
# dark patch probability and radius range. Neighbouring grades overlap.
SEVERITY = {
    "intact": dict(
        cracks=(0, 0), length=(0, 0), darkness=(0, 0), width=(1, 1), patch=0.0, radius=(0, 0)
    ),
    "minor": dict(
        cracks=(1, 1), length=(30, 90), darkness=(30, 60), width=(1, 2), patch=0.0, radius=(0, 0)
    ),
    "moderate": dict(
        cracks=(1, 2), length=(60, 160), darkness=(45, 80), width=(2, 2), patch=0.3, radius=(6, 14)
    ),
    "defective": dict(
        cracks=(1, 4),
        length=(90, 260),
        darkness=(60, 110),
        width=(2, 3),
        patch=0.7,
        radius=(10, 45),
    ),
}


def defect_photo(surfaces: dict[str, np.ndarray], grade: str, rng) -> np.ndarray:
    """One 300x300 part: a real surface, the frame and bars, the grade's cracks and patches."""
    from PIL import ImageDraw, ImageFilter

    side = DEFECT_SIDE
    surface = surfaces[DEFECT_SURFACES[int(rng.integers(len(DEFECT_SURFACES)))]]
    top, left = (int(rng.integers(0, surface.shape[axis] - side)) for axis in (0, 1))
    texture = surface[top : top + side, left : left + side].astype(np.float32)
    texture = (texture - texture.mean()) / (texture.std() + 1e-6)
    part = 150 + rng.uniform(-12, 12) + texture * rng.uniform(10, 18)
    image = Image.fromarray(np.clip(part, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    dy, dx = (int(rng.integers(-3, 4)) for _ in range(2))  # framed alike, within a few px
    draw.rectangle([dx, dy, side - 1 + dx, side - 1 + dy], outline=60, width=7)
    for bar in (75, 150, 225):
        draw.rectangle([0, bar + dy - 2, side, bar + dy + 2], fill=80)
    severity = SEVERITY[grade]
    for _ in range(int(rng.integers(severity["cracks"][0], severity["cracks"][1] + 1))):
        length, darkness = rng.uniform(*severity["length"]), rng.uniform(*severity["darkness"])
        point = rng.uniform(30, side - 30, 2)
        heading, points, drawn = rng.uniform(0, 2 * np.pi), [tuple(point)], 0.0
        while drawn < length:
            step = rng.uniform(8, 20)
            heading += rng.normal(0, 0.35)
            point = np.clip(
                point + step * np.array([np.cos(heading), np.sin(heading)]), 5, side - 5
            )
            points.append(tuple(point))
            drawn += step
        width = int(rng.integers(severity["width"][0], severity["width"][1] + 1))
        draw.line(points, fill=int(max(0, 150 - darkness)), width=width)
    if rng.random() < severity["patch"]:
        radius, centre = rng.uniform(*severity["radius"]), rng.uniform(40, side - 40, 2)
        box = [*(centre - radius), *(centre + radius * rng.uniform(0.5, 1.5, 2))]
        draw.ellipse(box, fill=int(rng.uniform(70, 105)))
    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.4, 0.9)))
    noisy = np.asarray(image, np.float32) + rng.normal(0, 3, (side, side))
    return np.clip(noisy, 0, 255).astype(np.uint8)


def write_defects(root: Path, variant: Variant, seed: int = 0):
    """<grade>/<n>.png: parts of four graded defect severities, no given split."""
    from skimage import data

    rng = np.random.default_rng(seed)
    surfaces = {name: getattr(data, name)() for name in DEFECT_SURFACES}
    for grade, count in zip(DEFECT_GRADES, variant.counts, strict=True):
        for number in range(count):
            save(defect_photo(surfaces, grade, rng), root / grade / f"{number:05d}.png")
    return root, None


# Four look-alike garments: shirts blur into T-shirts, pullovers and coats. The rare
# classes are the ambiguous ones, as in graded defect photos.
LOOKALIKES = ("tshirt", "pullover", "shirt", "coat")
ALIGNED_TOTAL = 2624  # photos in each aligned set, as in the users' set that prompted them


def write_lookalikes(root: Path, variant: Variant, seed: int = 0):
    return write_fashion(root, variant, classes=LOOKALIKES, seed=seed)


def write_held_out(dataset: "Dataset", photos: Path, target: Path, total: int, seed: int = 1):
    """`total` more photos like the set's test split (its class shares) that the pipeline
    never saw, as <class>/<name>.png, for scores that a few hundred test photos cannot
    measure (a calibration error of 0.03 needs thousands): unused Fashion-MNIST photos, or
    new parts for the defects. None for the textures, whose photos are all used."""
    variant = dataset.variant
    counts = shares(total, tuple(variant.test or variant.counts))
    if dataset.write is write_defects:
        return write_defects(target, Variant("held-out", counts), seed=seed)[0]
    if dataset.write not in (write_fashion, write_lookalikes):
        return None
    images, labels = fashion_mnist()
    used = {
        int(path.stem)
        for folder in (photos, photos.with_name(f"{photos.name}-balanced-test"))
        for path in folder.rglob("*.png")
    }
    rng = np.random.default_rng(seed)
    classes = {path.parent.name for path in photos.rglob("*.png")}
    # Each class's share as in the set's test split: largest first, as write_fashion ranks them.
    ranked = sorted(classes, key=lambda name: -sum(1 for _ in photos.rglob(f"{name}/*.png")))
    for name, count in zip(ranked, counts, strict=True):
        pool = np.setdiff1d(np.flatnonzero(labels == FASHION_CLASSES.index(name)), list(used))
        for index in rng.choice(pool, count, replace=False):
            save(images[index], target / name / f"{index}.png")
    return target


ELPV_WHEEL = "elpv-dataset==1.0.0.post1"
ELPV_CACHE = Path.home() / ".cache" / "image-classifier-bench" / "elpv"
# Defect probability -> class, for the 4-class and the 2-class task.
ELPV_CLASSES = {
    4: {0.0: "functional", 1 / 3: "mild", 2 / 3: "moderate", 1.0: "defective"},
    2: {0.0: "functional", 1 / 3: "functional", 2 / 3: "defective", 1.0: "defective"},
}


def elpv_data(cache: Path = ELPV_CACHE) -> Path:
    """The folder holding ELPV's labels.csv and images/, from its wheel (pip download into
    `cache` the first time: its licence allows no redistribution, so it is never committed)."""
    data = cache / "elpv_dataset" / "data"
    if (data / "labels.csv").exists():
        return data
    cache.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            ELPV_WHEEL,
            "-d",
            str(cache),
        ],
        check=True,
    )
    wheel = next(cache.glob("elpv_dataset-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(cache, [n for n in archive.namelist() if n.startswith("elpv_dataset/")])
    return data


def write_elpv(root: Path, variant: Variant, seed: int = 0):
    """<class>/<mono|poly>_cellNNNN.png, one class per defect probability (4 classes) or
    below and above one half (2); no given split."""
    data = elpv_data()
    classes = ELPV_CLASSES[len(variant.counts)]
    for line in (data / "labels.csv").read_text().splitlines():
        path, probability, kind = line.split()
        name = min(classes.items(), key=lambda item: abs(item[0] - float(probability)))[1]
        target = root / name / f"{kind}_{Path(path).name}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data / path, target)
    return root, None


CLIPART_FOLDER = Path("/usr/share/openclipart/png")
CLIPART_CLASSES = ("people", "food", "transportation", "animals", "tools", "plants")


def write_clipart(root: Path, variant: Variant, seed: int = 0):
    """<class>/<n>_<name>.png: every PNG under the category folder (subfolders included), as
    Debian ships it: exact copies and all, as a user's folder would hold them."""
    if not CLIPART_FOLDER.is_dir():
        raise SystemExit(
            f"clip art not found in {CLIPART_FOLDER}: sudo apt-get install openclipart-png"
        )
    for name in CLIPART_CLASSES:
        for number, path in enumerate(sorted((CLIPART_FOLDER / name).rglob("*.png"))):
            target = root / name / f"{number:04d}_{path.name}"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    return root, None


@dataclass(frozen=True)
class Dataset:
    name: str
    variant: Variant
    write: Callable[[Path, Variant], tuple[Path, Path | None]]
    notes: str

    @property
    def key(self) -> str:
        return f"{self.name}-{self.variant.name}"


def datasets() -> list[Dataset]:
    fashion, textures = len(FASHION_CLASSES), len(TEXTURE_SOURCES)
    fashion_tail, texture_tail = long_tail(6000, fashion), long_tail(500, textures)
    aligned = shares(ALIGNED_TOTAL, DEFECT_SHARES)
    return [
        Dataset(
            "elpv",
            Variant("4-class", [1508, 715, 295, 106]),
            write_elpv,
            "2,624 solar cells, functional / defective / mild / moderate at 57 / 27 / 11 "
            "/ 4 %; the pipeline's own split",
        ),
        Dataset(
            "elpv",
            Variant("2-class", [1803, 821]),
            write_elpv,
            "2,624 solar cells, functional (p < 0.5) / defective at 69 / 31 %; the "
            "pipeline's own split",
        ),
        Dataset(
            "clipart",
            Variant("unaligned", [400, 369, 366, 316, 149, 95]),
            write_clipart,
            "1,695 drawings (192 exact copies) of 6 subjects at 24 / 22 / 22 / 19 / 9 / 6 "
            "%; the pipeline's own split",
        ),
        Dataset(
            "fashion-mnist",
            Variant("balanced", [2400] * fashion, [300] * fashion),
            write_fashion,
            "2,400 train photos per class (20,400 after val), 300 test",
        ),
        # The head class at its full size, the others shrinking to 1/10 (as in CIFAR-10-LT);
        # the test split has the train prior, a balanced test set is scored beside it.
        Dataset(
            "fashion-mnist",
            Variant("long-tailed", fashion_tail, with_prior(fashion_tail, 1500), balanced_test=100),
            write_fashion,
            "6,000 down to 600 train photos per class (10:1); 1,500 test "
            "with the train prior, and 100 per class balanced",
        ),
        Dataset(
            "fashion-mnist",
            Variant("small", [50] * fashion, [100] * fashion),
            write_fashion,
            "50 train photos per class (42 after val), 100 test",
        ),
        Dataset(
            "textures",
            Variant("balanced", [500] * textures, [100] * textures),
            write_textures,
            "500 train crops per class, 100 test crops from unseen rows",
        ),
        Dataset(
            "textures",
            Variant("long-tailed", texture_tail, with_prior(texture_tail, 800), balanced_test=100),
            write_textures,
            "500 down to 50 train crops per class (10:1); 800 test with "
            "the train prior, and 100 per class balanced",
        ),
        Dataset(
            "textures",
            Variant("small", [50] * textures, [100] * textures),
            write_textures,
            "50 train crops per class (42 after val), 100 test",
        ),
        Dataset(
            "lookalikes",
            Variant("aligned", aligned),
            write_lookalikes,
            "T-shirt / pullover / shirt / coat at 57 / 27 / 11 / 4 %, 2,624 in all; "
            "the pipeline's own split",
        ),
        Dataset(
            "defects",
            Variant("aligned", aligned),
            write_defects,
            "300x300 parts, intact / defective / minor / moderate at 57 / 27 / 11 / 4 %, "
            "2,624 in all; the pipeline's own split",
        ),
    ]
