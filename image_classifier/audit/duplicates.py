"""Near-duplicates: the same photo after resizing, recompression, a small crop or a change
of brightness.

Two steps, because neither alone tells such a copy from a similar photo (measured in
bench/audit.py): a perceptual hash (imagehash's pHash of 16x16 DCT signs, 256 bits that
these edits barely move) finds the candidates fast, and the correlation of the two photos'
blurred grayscale thumbnails, at the best of small shifts (a crop moves the content),
keeps only the pairs that are the same picture.
"""

import numpy as np
import pandas as pd
from PIL import Image, ImageFilter

HASH_SIZE = 16  # pHash of the 16x16 lowest DCT frequencies: 256 bits
THUMBNAIL = 36  # side of the grayscale thumbnails compared
BLUR = 1.0  # Gaussian blur (px, at the thumbnail's size) before comparing
MAX_SHIFT = 2  # thumbnail pixels (about 7 px at 120) a crop may move the content
PAIR_CHUNK = 128  # hash rows compared at once (~100 MB at 26,000 images)
VERIFY_CHUNK = 4096  # candidate pairs correlated at once


def perceptual_hashes(images: np.ndarray) -> np.ndarray:
    """(n, 4) uint64: each image's 256-bit pHash."""
    import imagehash

    bits = [imagehash.phash(Image.fromarray(image), hash_size=HASH_SIZE).hash.ravel()
            for image in images]  # fmt: skip
    return np.packbits(np.asarray(bits, bool), axis=1).view(np.uint64)


def hash_candidates(hashes: np.ndarray, max_distance: int) -> pd.DataFrame:
    """Every pair (first < second) whose hashes differ in at most `max_distance` bits."""
    firsts, seconds, distances = [], [], []
    for start in range(0, len(hashes), PAIR_CHUNK):
        block = hashes[start : start + PAIR_CHUNK]
        distance = np.bitwise_count(block[:, None, :] ^ hashes[None, :, :]).sum(axis=2)
        rows, columns = np.nonzero(distance <= max_distance)
        later = columns > rows + start
        rows, columns = rows[later], columns[later]
        firsts.append(rows + start)
        seconds.append(columns)
        distances.append(distance[rows, columns])
    return pd.DataFrame({
        "first": np.concatenate(firsts).astype(int) if firsts else np.zeros(0, int),
        "second": np.concatenate(seconds).astype(int) if seconds else np.zeros(0, int),
        "distance": np.concatenate(distances).astype(int) if distances else np.zeros(0, int),
    })  # fmt: skip


def thumbnails(images: np.ndarray) -> np.ndarray:
    """(n, THUMBNAIL, THUMBNAIL) float32 blurred grayscale versions of the images."""
    small = []
    for image in images:
        gray = Image.fromarray(image).convert("L").resize((THUMBNAIL, THUMBNAIL), Image.BILINEAR)
        small.append(np.asarray(gray.filter(ImageFilter.GaussianBlur(BLUR)), np.float32))
    return np.stack(small) if small else np.zeros((0, THUMBNAIL, THUMBNAIL), np.float32)


def _normalised(windows: np.ndarray) -> np.ndarray:
    flat = windows.reshape(len(windows), -1)
    flat = flat - flat.mean(axis=1, keepdims=True)
    return flat / (np.linalg.norm(flat, axis=1, keepdims=True) + 1e-6)


def shifted_correlation(thumbs: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """For each pair, the highest correlation (-1..1) of the first thumbnail's centre with
    the second's, shifted by up to MAX_SHIFT pixels each way."""
    side = THUMBNAIL - 2 * MAX_SHIFT
    best = np.full(len(first), -1.0, np.float32)
    for start in range(0, len(first), VERIFY_CHUNK):
        pairs = slice(start, start + VERIFY_CHUNK)
        centre = _normalised(thumbs[first[pairs], MAX_SHIFT:-MAX_SHIFT, MAX_SHIFT:-MAX_SHIFT])
        for dy in range(2 * MAX_SHIFT + 1):
            for dx in range(2 * MAX_SHIFT + 1):
                moved = _normalised(thumbs[second[pairs], dy : dy + side, dx : dx + side])
                best[pairs] = np.maximum(best[pairs], (centre * moved).sum(axis=1))
    return best


def near_duplicate_pairs(
    images: np.ndarray, max_hash_distance: int, min_correlation: float
) -> pd.DataFrame:
    """Pairs (first < second, indices into `images`) that are the same picture: hashes at
    most `max_hash_distance` bits apart and thumbnails correlated at `min_correlation` or
    more; with both figures."""
    candidates = hash_candidates(perceptual_hashes(images), max_hash_distance)
    correlation = shifted_correlation(
        thumbnails(images), candidates["first"].to_numpy(), candidates["second"].to_numpy()
    )
    pairs = candidates.assign(correlation=correlation.round(4))
    return pairs[pairs["correlation"] >= min_correlation].reset_index(drop=True)


def describe_pairs(pairs: pd.DataFrame, splits: np.ndarray, labels: np.ndarray) -> pd.DataFrame:
    """Each pair with what makes it a problem: `across_splits` (the same photo in train and
    test, say, which inflates the test score), `across_classes` (the same photo with two
    labels: one of them is wrong), or neither (`within_split`: a wasted repeat)."""
    first, second = pairs["first"].to_numpy(), pairs["second"].to_numpy()
    return pairs.assign(
        across_splits=splits[first] != splits[second],
        across_classes=labels[first] != labels[second],
        within_split=(splits[first] == splits[second]) & (labels[first] == labels[second]),
    )
