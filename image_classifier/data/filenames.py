"""Names of the files the data stages hand to each other, and which files count as images."""

from pathlib import Path

MANIFEST_FILE = "manifest.csv"  # in data/raw: path, class and given split of every file
SKIPPED_FILE = "skipped.csv"  # in data/raw: source files not used (no class, links), and why
IMAGES_FILE = "images.npy"  # in data/resized: (N, size, size, 3) uint8
INDEX_FILE = "index.csv"  # in data/resized: one row per image of images.npy
REJECTED_FILE = "rejected.csv"  # in data/resized: files that could not be used, and why
CONTRACT_FILE = "contract.json"  # in data/resized: how every image was made, for the card

# Extensions that count as images when a class folder is checked for content; the decoder
# itself trusts the bytes, not the name.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"})


def is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES
