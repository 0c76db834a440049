"""Synthetic 'real photos': random crops of scikit-learn's two sample photographs, saved as
JPEGs of roughly Animals-10's size (~300x250), in a <class>/<image> tree."""

from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_sample_images


def make_photos(root: Path, count: int, classes: int = 10, seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    sources = load_sample_images().images  # two 427x640 RGB photos
    paths = []
    for index in range(count):
        source = sources[index % len(sources)]
        width, height = int(rng.integers(260, 341)), int(rng.integers(210, 291))
        top = int(rng.integers(0, source.shape[0] - height))
        left = int(rng.integers(0, source.shape[1] - width))
        crop = source[top : top + height, left : left + width]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        path = root / f"class{index % classes}" / f"{index:06d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.ascontiguousarray(crop)).save(path, quality=90)
        paths.append(path)
    return paths
