"""Loading a split: the right rows, in order, held in memory once."""

import tracemalloc

import numpy as np
import pandas as pd

from image_classifier.data.dataset import StoredRows, gather_rows, load_subset


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


def test_stored_rows_read_each_photo_when_asked_and_never_all_at_once(tmp_path):
    """The audit reads its photos through StoredRows: the same rows as gather_rows, in
    batches or one by one, with no copy of them all in memory."""
    resized, images, _ = write_dataset(tmp_path)
    rows = np.random.default_rng(1).permutation(len(images))[:2000]
    stored = StoredRows(np.load(resized / "images.npy", mmap_mode="r"), rows)
    tracemalloc.start()
    try:
        batch_sums = [int(batch.sum(dtype=np.int64)) for (batch,) in stored.batches(256)]
        photo_sums = [int(photo.sum(dtype=np.int64)) for photo in stored]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    expected = gather_rows(images, rows).astype(np.int64)
    assert batch_sums == [int(expected[i : i + 256].sum()) for i in range(0, 2000, 256)]
    assert photo_sums == expected.sum(axis=(1, 2, 3)).tolist()
    assert np.array_equal(stored[7], images[rows[7]])
    # A batch at a time (3 MB of the 24 MB of photos, and its temporaries): never them all.
    assert peak < 0.5 * len(rows) * images[0].nbytes, peak


def test_a_sample_keeps_its_fraction_up_to_its_cap_and_every_class(tmp_path):
    resized, images, table = write_dataset(tmp_path, rows=600, size=8)
    split = tmp_path / "split.csv"
    train = table[table["split"] == "train"]  # 480, 160 a class
    half = load_subset(resized, split, "train", 0.5, seed=1)
    assert len(half.labels) == 240
    same = load_subset(resized, split, "train", 0.5, seed=1, at_most=300)
    assert same.paths == half.paths  # a cap above the fraction changes nothing
    capped = load_subset(resized, split, "train", 0.5, seed=1, at_most=90)
    assert len(capped.labels) == 90
    assert np.bincount(capped.labels).tolist() == [30, 30, 30]
    assert set(capped.paths) <= set(train["path"])
    rows = table.set_index("path").loc[capped.paths, "row"].to_numpy()
    assert np.array_equal(capped.images, images[rows])
