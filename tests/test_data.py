"""Loading a split: the right rows, in order, held in memory once."""

import tracemalloc

import numpy as np
import pandas as pd

from image_classifier.data.dataset import load_subset


def write_dataset(folder, rows=3000, size=64):
    resized = folder / "resized"
    resized.mkdir()
    images = np.random.default_rng(0).integers(0, 256, (rows, size, size, 3), dtype=np.uint8)
    np.save(resized / "images.npy", images)
    table = pd.DataFrame(
        {
            "row": range(rows),
            "path": [f"c{i % 3}/{i}.png" for i in range(rows)],
            "class": [f"c{i % 3}" for i in range(rows)],
            "split": ["train" if i % 5 else "test" for i in range(rows)],
        }
    )
    table.to_csv(folder / "split.csv", index=False)
    return resized, images, table


def test_subset_rows_labels_and_paths_line_up(tmp_path):
    resized, images, table = write_dataset(tmp_path)
    subset = load_subset(resized, tmp_path / "split.csv", "test")
    expected = table[table["split"] == "test"]
    assert np.array_equal(subset.images, images[expected["row"].to_numpy()])
    assert subset.paths == expected["path"].tolist()
    assert subset.class_names == ["c0", "c1", "c2"]
    assert [subset.class_names[label] for label in subset.labels] == expected["class"].tolist()


def test_a_split_is_held_in_memory_once(tmp_path):
    resized, images, _ = write_dataset(tmp_path)
    del images
    tracemalloc.start()
    try:
        subset = load_subset(resized, tmp_path / "split.csv", "train")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The result itself, plus a chunk and the table's overhead; a second full copy would
    # double it.
    assert peak < 1.35 * subset.images.nbytes, (peak, subset.images.nbytes)
