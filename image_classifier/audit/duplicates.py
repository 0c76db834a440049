"""Near-duplicates: the same photo after resizing, recompression, a small crop or a change
of brightness, told apart from photos that merely look alike.

A fixed similarity cut cannot do that on every set: where every photo is framed alike
(solar cells, product shots, centred garments) unrelated photos correlate as well as copies
elsewhere do. So the decision is relative to the set (docs/defaults.md measures it):
1. detail: each photo's grayscale thumbnail band-passed (blur at 1 px minus blur at 3 px:
   print, texture, cracks, edges; not the outline and shading many photos share), with what
   the whole set shares removed (its mean and its leading principal components);
2. candidates: each photo's nearest neighbours by small thumbnail (sklearn; a recompression
   hardly moves it), and the photos nearest its centre enlarged as a crop enlarges it
   (where every photo is framed alike, a crop moves the frame more than two photos differ);
3. score: the correlation of two photos' detail at the best of small shifts and zooms (a
   crop of a few percent shifts and enlarges the content);
4. decision: a pair is a copy when its score is far above what each of the two photos
   scores with its ordinary neighbours: 1 - score at most `relative_distance` times
   1 - the median score of the photo's neighbours, and the score at least `min_correlation`;
5. consistency: copies of one picture are copies of each other. A pair (b, x) is dropped
   when b is a copy of some a that it matches better than x, and a and x are no pair: x is
   then a look-alike of b's picture (a neighbouring solar cell cut from the same wafer as
   the copied one, say), not another copy of it.
"""

import numpy as np
import pandas as pd
from PIL import Image
from scipy.ndimage import gaussian_filter

COARSE = 16  # side of the thumbnails whose nearest neighbours are candidates
DETAIL = 48  # side of the detail thumbnails that are correlated
BAND = (1.0, 3.0)  # the detail: blur at the first sigma minus blur at the second (pixels)
SHARED_COMPONENTS = 20  # leading principal components of the set's detail removed (SAMPLE // 100)
SAMPLE = 2000  # photos the shared part is fitted on
MAX_SHIFT = 2  # detail pixels (5 px at 120) the content may move
ZOOMS = (1.0, 1.02, 1.04, 1.06)  # how much larger a cropped copy's content may be
CROP_ZOOMS = (1.05,)  # a photo's centre enlarged by these is what its crops look like
CHUNK = 2048  # windows whose shared part is removed at once


def grays(image: np.ndarray, side: int, zooms: tuple[float, ...]) -> np.ndarray:
    """(len(zooms), side, side) float32: grayscale thumbnails of the (square) image's centre
    1/zoom at each zoom."""
    picture = Image.fromarray(image).convert("L")
    size = picture.size[0]
    margins = (size * (1 - 1 / zoom) / 2 for zoom in zooms)
    return np.stack(
        [
            np.asarray(
                picture.crop((m, m, size - m, size - m)).resize((side, side), Image.BILINEAR),
                np.float32,
            )
            for m in margins
        ]
    )


def pairs_of(photo: np.ndarray, other: np.ndarray) -> np.ndarray:
    """(n, 2) int: each photo with its other, the lower index first."""
    return np.sort(np.stack([photo, other], axis=1), axis=1).astype(int)


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Each row centred and scaled to length 1, so that a dot product is a correlation."""
    vectors = vectors - vectors.mean(axis=1, keepdims=True)
    return vectors / (np.linalg.norm(vectors, axis=1, keepdims=True) + 1e-6)


def thumbnails(images: np.ndarray, zooms: tuple[float, ...]) -> np.ndarray:
    """(len(zooms), n, COARSE * COARSE): unit rows of blurred COARSE-pixel thumbnails of each
    photo's centre 1/zoom."""
    thumbs = np.stack([grays(image, COARSE, zooms) for image in images], axis=1)
    thumbs = gaussian_filter(thumbs, (0, 0, 1.0, 1.0)).reshape(len(zooms), len(images), -1)
    return np.stack([unit_rows(level) for level in thumbs])


def neighbours(images: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, count): each photo's nearest other photos by thumbnail, its ordinary neighbours;
    and (m, 2) more candidate pairs (first < second): each photo with the count // 4 photos
    nearest its centre at every CROP_ZOOMS, where a crop of it would be found."""
    from sklearn.neighbors import NearestNeighbors

    count = min(count, len(images) - 1)
    plain, *enlarged = thumbnails(images, (1.0, *CROP_ZOOMS))
    index = NearestNeighbors(n_neighbors=count + 1).fit(plain)
    nearest = index.kneighbors(plain, return_distance=False)
    own = nearest == np.arange(len(images))[:, None]
    # itself is usually first, but an exact copy may tie with it: drop itself wherever it is
    keep = np.where(own.any(axis=1, keepdims=True), ~own, np.arange(count + 1) < count)
    ordinary = nearest[keep].reshape(len(images), count)
    crops = [
        index.kneighbors(thumbs, max(count // 4, 1), return_distance=False) for thumbs in enlarged
    ]
    photo = np.repeat(np.arange(len(images)), sum(part.shape[1] for part in crops))
    other = np.concatenate(crops, axis=1).ravel()
    return ordinary, pairs_of(photo, other)[photo != other]


def details(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each photo's band-passed thumbnail: (n, side, side) float32 as it is, with a margin of
    MAX_SHIFT pixels for the shifts; and (n, len(ZOOMS), DETAIL * DETAIL) float32, the
    centre at every zoom."""
    side = DETAIL + 2 * MAX_SHIFT
    inner = slice(MAX_SHIFT, MAX_SHIFT + DETAIL)
    padded = np.empty((len(images), side, side), np.float32)
    centred = np.empty((len(images), len(ZOOMS), DETAIL * DETAIL), np.float32)
    for start in range(0, len(images), CHUNK):
        thumbs = np.stack([grays(image, side, ZOOMS) for image in images[start : start + CHUNK]])
        # One filter call per chunk: sigma 0 leaves the photo and zoom axes alone.
        low, high = ((0, 0, sigma, sigma) for sigma in BAND)
        band = gaussian_filter(thumbs, low) - gaussian_filter(thumbs, high)
        padded[start : start + CHUNK] = band[:, 0]
        centred[start : start + CHUNK] = band[:, :, inner, inner].reshape(len(band), len(ZOOMS), -1)
    return padded, centred


class SharedDetail:
    """What the whole set's detail shares (its mean and leading principal components, in the
    frame of a centred window), removed from every window compared: framing common to every
    photo is no evidence that two photos are one. The windows are compared after they are
    cut, so that a shifted or cropped copy is aligned before the shared part goes."""

    def __init__(self, centred: np.ndarray, seed: int = 0):
        from sklearn.decomposition import PCA

        sample = centred[np.random.default_rng(seed).permutation(len(centred))[:SAMPLE]]
        self.mean = sample.mean(axis=0)
        count = min(SHARED_COMPONENTS, len(sample) // 100)  # a few photos share no structure
        self.components = np.zeros((0, sample.shape[1]), np.float32)
        if count:
            pca = PCA(count, svd_solver="randomized", random_state=seed).fit(sample)
            self.components = pca.components_.astype(np.float32)

    def residual(self, windows: np.ndarray) -> np.ndarray:
        """Unit rows of the windows (n, DETAIL * DETAIL) less the shared part."""
        vectors = windows - self.mean
        return unit_rows(vectors - (vectors @ self.components.T) @ self.components)


def shifted_windows(padded: np.ndarray) -> np.ndarray:
    """(shifts, DETAIL * DETAIL): every DETAIL-pixel window of one padded thumbnail."""
    span = 2 * MAX_SHIFT + 1
    return np.stack(
        [
            padded[dy : dy + DETAIL, dx : dx + DETAIL].ravel()
            for dy in range(span)
            for dx in range(span)
        ]
    )


def without_shared_part(centred: np.ndarray) -> SharedDetail:
    """Removes the set's shared part from every zoom of `centred`, in place (a chunk at a
    time: a copy would double the largest array of the audit); returns that shared part."""
    shared = SharedDetail(centred[:, 0])
    for level in range(len(ZOOMS)):
        for start in range(0, len(centred), CHUNK):
            block = centred[start : start + CHUNK, level]
            centred[start : start + CHUNK, level] = shared.residual(block)
    return shared


def correlation(
    padded: np.ndarray,
    centred: np.ndarray,
    shared: SharedDetail,
    first: np.ndarray,
    second: np.ndarray,
) -> np.ndarray:
    """For each pair, the highest correlation (-1..1) of the two photos' detail less the
    shared part (`centred` already without it): either photo's windows shifted by up to
    MAX_SHIFT pixels against the other's centre at every zoom (a crop of a few percent shifts
    and enlarges the content). Each photo's windows are cut once, for all its pairs."""
    pair = np.concatenate([np.arange(len(first))] * 2)
    photo, other = np.concatenate([first, second]), np.concatenate([second, first])
    order = np.argsort(photo, kind="stable")
    pair, photo, other = pair[order], photo[order], other[order]
    bounds = np.searchsorted(photo, np.arange(len(padded) + 1))
    best = np.full(len(first), -1.0, np.float32)
    for index in np.unique(photo):
        mine = slice(bounds[index], bounds[index + 1])
        windows = shared.residual(shifted_windows(padded[index]))
        others = centred[other[mine]]  # (pairs, zooms, pixels)
        scores = others.reshape(-1, others.shape[2]) @ windows.T  # 3x faster than transposed
        scores = scores.reshape(*others.shape[:2], len(windows)).max(axis=(1, 2))
        np.maximum.at(best, pair[mine], scores)
    return best


def triangles(found: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every found pair (b, x) and every stronger found pair (b, a) of one of its photos:
    the index of (b, x) in `found`, and (k, 2) the pair (a, x) that would close the
    triangle. Where (a, x) is no copy, (b, x) is contradicted."""
    ends = np.concatenate([found, found[:, ::-1]])  # (photo, other) both ways
    links = pd.DataFrame(
        {
            "photo": ends[:, 0],
            "other": ends[:, 1],
            "score": np.tile(scores, 2),
            "pair": np.tile(np.arange(len(found)), 2),
        }
    )
    joined = links.merge(links, on="photo", suffixes=("", "_stronger"))
    joined = joined[
        (joined["other_stronger"] != joined["other"]) & (joined["score_stronger"] > joined["score"])
    ]
    closing = pairs_of(joined["other_stronger"].to_numpy(), joined["other"].to_numpy())
    return joined["pair"].to_numpy(), closing


def near_duplicate_pairs(
    images: np.ndarray, candidates: int, min_correlation: float, relative_distance: float
) -> pd.DataFrame:
    """Pairs (first < second, indices into `images`) that are the same picture, with their
    detail correlation and the typical correlation of the two photos with their neighbours
    (`ordinary`, the higher of the two)."""
    columns = {"first": int, "second": int, "correlation": float, "ordinary": float}
    if len(images) < 2:
        return pd.DataFrame({name: pd.Series(dtype=kind) for name, kind in columns.items()})
    nearest, crop_pairs = neighbours(images, candidates)
    ordinary_pairs = pairs_of(np.repeat(np.arange(len(images)), nearest.shape[1]), nearest.ravel())
    unique, position = np.unique(
        np.concatenate([ordinary_pairs, crop_pairs]), axis=0, return_inverse=True
    )
    padded, centred = details(images)
    shared = without_shared_part(centred)
    scores = correlation(padded, centred, shared, unique[:, 0], unique[:, 1])
    # what a photo ordinarily scores: with its nearest thumbnails, not with the crop search's
    typical = np.median(scores[position.ravel()[: nearest.size]].reshape(nearest.shape), axis=1)

    def ordinary(pairs: np.ndarray) -> np.ndarray:
        return np.maximum(typical[pairs[:, 0]], typical[pairs[:, 1]])

    def is_copy(pairs: np.ndarray, score: np.ndarray) -> np.ndarray:
        return (score >= min_correlation) & (1 - score <= relative_distance * (1 - ordinary(pairs)))

    found = np.flatnonzero(is_copy(unique, scores))
    pair, closing = triangles(unique[found], scores[found])
    closing, where = np.unique(closing.reshape(-1, 2), axis=0, return_inverse=True)
    closing_scores = correlation(padded, centred, shared, closing[:, 0], closing[:, 1])
    contradicted = np.zeros(len(found), bool)
    contradicted[pair[~is_copy(closing, closing_scores)[where.ravel()]]] = True
    kept = found[~contradicted]
    pairs = pd.DataFrame(
        {
            "first": unique[kept, 0],
            "second": unique[kept, 1],
            "correlation": scores[kept].round(4),
            "ordinary": ordinary(unique[kept]).round(4),
        }
    )
    return pairs.astype(columns).sort_values(["first", "second"], ignore_index=True)


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
