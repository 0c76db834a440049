"""Near-duplicates: the same photo after resizing, recompression, a small crop or a change
of brightness.

Two steps, because nothing cheap tells such a copy from a similar photo (measured in
bench/audit.py and docs/defaults.md):
1. candidates: the pairs whose perceptual hashes (imagehash's pHash of 16x16 DCT signs, 256
   bits) differ in few bits, and each photo's nearest neighbours by its small blurred
   thumbnail (a crop moves the hash bits but hardly the thumbnail);
2. verification: the correlation of the two photos' detail (a grayscale thumbnail minus
   its blur: prints, stripes, texture, edges; not the outline that every T-shirt or
   silhouette shares), at the best of small shifts and zooms (a crop of a few percent
   shifts and enlarges the content).
"""

import numpy as np
import pandas as pd
from PIL import Image
from scipy.ndimage import gaussian_filter

HASH_SIZE = 16  # pHash of the 16x16 lowest DCT frequencies: 256 bits
NEIGHBOURS = 10  # nearest thumbnails per photo taken as candidates
COARSE = 16  # side of the blurred thumbnails whose nearest neighbours are candidates
DETAIL = 48  # side of the detail thumbnails that are correlated
DETAIL_BLUR = 1.5  # the detail is the thumbnail minus its blur at this sigma (pixels)
MAX_SHIFT = 2  # detail pixels (5 px at 120) the content may move
ZOOMS = (1.0, 1.03, 1.06)  # how much larger a cropped copy's content may be
PAIR_CHUNK = 128  # hash rows compared at once (~100 MB at 26,000 images)
VERIFY_CHUNK = 2048  # candidate pairs correlated at once


def perceptual_hashes(images: np.ndarray) -> np.ndarray:
    """(n, 4) uint64: each image's 256-bit pHash."""
    import imagehash

    bits = [imagehash.phash(Image.fromarray(image), hash_size=HASH_SIZE).hash.ravel()
            for image in images]  # fmt: skip
    return np.packbits(np.asarray(bits, bool), axis=1).view(np.uint64)


def _pairs(first, second) -> pd.DataFrame:
    return pd.DataFrame({"first": np.asarray(first, int), "second": np.asarray(second, int)})


def hash_candidates(hashes: np.ndarray, max_distance: int) -> pd.DataFrame:
    """Every pair (first < second) whose hashes differ in at most `max_distance` bits, with
    that distance."""
    firsts, seconds, distances = [np.zeros(0, int)], [np.zeros(0, int)], [np.zeros(0, int)]
    for start in range(0, len(hashes), PAIR_CHUNK):
        block = hashes[start : start + PAIR_CHUNK]
        distance = np.bitwise_count(block[:, None, :] ^ hashes[None, :, :]).sum(axis=2)
        rows, columns = np.nonzero(distance <= max_distance)
        later = columns > rows + start
        rows, columns = rows[later], columns[later]
        firsts.append(rows + start)
        seconds.append(columns)
        distances.append(distance[rows, columns])
    return _pairs(np.concatenate(firsts), np.concatenate(seconds)).assign(
        distance=np.concatenate(distances).astype(int)
    )


def gray(image: np.ndarray, side: int, zoom: float = 1.0) -> np.ndarray:
    """A float32 grayscale thumbnail of the image's centre 1/zoom, side x side."""
    picture = Image.fromarray(image).convert("L")
    if zoom != 1.0:
        size = picture.size[0]
        margin = size * (1 - 1 / zoom) / 2
        picture = picture.crop((margin, margin, size - margin, size - margin))
    return np.asarray(picture.resize((side, side), Image.BILINEAR), np.float32)


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    vectors = vectors - vectors.mean(axis=1, keepdims=True)
    return vectors / (np.linalg.norm(vectors, axis=1, keepdims=True) + 1e-6)


def neighbour_candidates(images: np.ndarray, count: int | None = None) -> pd.DataFrame:
    """Each photo paired with its `count` nearest photos by blurred COARSE x COARSE thumbnail
    (correlation), as pairs first < second."""
    thumbs = np.stack([gaussian_filter(gray(image, COARSE), 1.0).ravel() for image in images])
    vectors = _unit_rows(thumbs)
    firsts, seconds = [np.zeros(0, int)], [np.zeros(0, int)]
    count = min(NEIGHBOURS if count is None else count, len(images) - 1)
    for start in range(0, len(vectors), 1024):
        similarity = vectors[start : start + 1024] @ vectors.T
        rows = np.arange(similarity.shape[0])
        similarity[rows, rows + start] = -np.inf  # not itself
        nearest = (
            np.argpartition(-similarity, count, axis=1)[:, :count]
            if count > 0
            else (np.zeros((len(rows), 0), int))
        )
        firsts.append(np.repeat(rows + start, nearest.shape[1]))
        seconds.append(nearest.ravel())
    first, second = np.concatenate(firsts), np.concatenate(seconds)
    low, high = np.minimum(first, second), np.maximum(first, second)
    return _pairs(low, high).drop_duplicates(ignore_index=True)


def detail_thumbnails(images: np.ndarray) -> np.ndarray:
    """(len(ZOOMS), n, side, side) float32: each image's detail at every zoom, with a margin
    of MAX_SHIFT pixels on every side for the shifts."""
    side = DETAIL + 2 * MAX_SHIFT
    result = np.empty((len(ZOOMS), len(images), side, side), np.float32)
    for level, zoom in enumerate(ZOOMS):
        for index, image in enumerate(images):
            thumb = gray(image, side, zoom)
            result[level, index] = thumb - gaussian_filter(thumb, DETAIL_BLUR)
    return result


def _normalised(windows: np.ndarray) -> np.ndarray:
    return _unit_rows(windows.reshape(len(windows), -1))


def detail_correlation(details: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """For each pair, the highest correlation (-1..1) of the two photos' detail over shifts
    of up to MAX_SHIFT pixels and zooms of either photo by ZOOMS."""
    inner = slice(MAX_SHIFT, MAX_SHIFT + DETAIL)
    best = np.full(len(first), -1.0, np.float32)
    for start in range(0, len(first), VERIFY_CHUNK):
        pair = (first[start : start + VERIFY_CHUNK], second[start : start + VERIFY_CHUNK])
        # One photo centred (unzoomed, or zoomed in as a crop would), the other shifted.
        centred = [(_normalised(details[level, pair[which], inner, inner]), 1 - which)
                   for level in range(len(ZOOMS)) for which in (0, 1)
                   if level or which == 0]  # fmt: skip
        chunk_best = best[start : start + VERIFY_CHUNK]
        for dy in range(2 * MAX_SHIFT + 1):
            for dx in range(2 * MAX_SHIFT + 1):
                moved = [_normalised(details[0, pair[which], dy : dy + DETAIL, dx : dx + DETAIL])
                         for which in (0, 1)]  # fmt: skip
                for centre, other in centred:
                    np.maximum(chunk_best, np.einsum("ij,ij->i", centre, moved[other]),
                               out=chunk_best)  # fmt: skip
    return best


def near_duplicate_pairs(
    images: np.ndarray, max_hash_distance: int, min_correlation: float
) -> pd.DataFrame:
    """Pairs (first < second, indices into `images`) that are the same picture: candidates
    by hash or by thumbnail, kept when their detail correlates at `min_correlation` or more;
    with the hash distance and the correlation."""
    hashes = perceptual_hashes(images)
    candidates = pd.concat(
        [hash_candidates(hashes, max_hash_distance)[["first", "second"]],
         neighbour_candidates(images)], ignore_index=True,
    ).drop_duplicates(ignore_index=True)  # fmt: skip
    first, second = candidates["first"].to_numpy(), candidates["second"].to_numpy()
    correlation = detail_correlation(detail_thumbnails(images), first, second)
    distance = np.bitwise_count(hashes[first] ^ hashes[second]).sum(axis=1)
    pairs = candidates.assign(distance=distance.astype(int), correlation=correlation.round(4))
    kept = pairs[pairs["correlation"] >= min_correlation]
    return kept.sort_values(["first", "second"], ignore_index=True)


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
