"""split: stratified, seeded, duplicates never in two splits, a given test split kept."""

import numpy as np
import pandas as pd
import pytest

from image_classifier.console import StageError
from image_classifier.data.partition import DUPLICATE, count_table, split_indices, summary


def dataset(per_class=(100, 60, 40), duplicates=0, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.concatenate([[f"c{i}"] * n for i, n in enumerate(per_class)])
    groups = np.array([f"g{i}" for i in range(len(labels))], dtype=object)
    for copy in rng.choice(len(labels), duplicates, replace=False):
        original = (copy + 1) % len(labels)
        groups[copy], labels[copy] = groups[original], labels[original]
    return labels, groups


def test_same_seed_same_split_and_another_seed_another():
    labels, groups = dataset()
    no_test = np.full(len(labels), "", dtype=object)
    first = split_indices(labels, groups, no_test, 0.2, 0.1, seed=7)
    again = split_indices(labels, groups, no_test, 0.2, 0.1, seed=7)
    other = split_indices(labels, groups, no_test, 0.2, 0.1, seed=8)
    assert (first == again).all()
    assert (first != other).any()


def test_every_class_is_split_in_proportion():
    labels, groups = dataset(per_class=(200, 100, 50))
    splits = split_indices(labels, groups, np.full(len(labels), "", dtype=object), 0.2, 0.1, seed=0)
    counts = count_table(pd.DataFrame({"class": labels, "split": splits}))
    for name, row in counts.iterrows():
        total = row.sum()
        assert abs(row["val"] - 0.2 * total) <= 1, name
        assert abs(row["test"] - 0.1 * total) <= 1, name


def test_duplicates_are_kept_once():
    labels, groups = dataset(duplicates=30)
    splits = split_indices(labels, groups, np.full(len(labels), "", dtype=object), 0.2, 0.2, seed=1)
    table = pd.DataFrame({"group": groups, "split": splits})
    used = table[table["split"] != DUPLICATE]
    assert used["group"].is_unique  # one copy per image, so no image in two splits
    assert (table["split"] == DUPLICATE).sum() == len(groups) - len(set(groups))
    assert set(used["group"]) == set(groups)


def test_given_test_split_stays_whole():
    labels, groups = dataset(per_class=(50, 50))
    given_test = np.full(len(labels), "", dtype=object)
    given_test[[0, 1, 2, 50, 51]] = "test"
    groups[10] = groups[0]  # a train copy of a given test image
    splits = split_indices(labels, groups, given_test, 0.2, 0.5, seed=0)
    assert list(np.flatnonzero(splits == "test")) == [0, 1, 2, 50, 51]
    assert splits[10] == DUPLICATE
    train_val = (splits == "train").sum() + (splits == "val").sum()
    assert (splits == "val").sum() == pytest.approx(0.2 * train_val, abs=1)


def test_too_few_images_in_a_class():
    labels, groups = dataset(per_class=(40, 3))
    with pytest.raises(
        StageError, match=r"class 'c1' has 3 distinct image\(s\); splitting needs at least 7"
    ):
        split_indices(labels, groups, np.full(len(labels), "", dtype=object), 0.15, 0.15, seed=0)


def test_summary_counts():
    labels, groups = dataset(per_class=(20, 20), duplicates=4)
    splits = split_indices(
        labels, groups, np.full(len(labels), "", dtype=object), 0.25, 0.25, seed=0
    )
    table = pd.DataFrame({"class": labels, "split": splits, "pixel_hash": groups})
    result = summary(table)
    assert result["train"] + result["val"] + result["test"] == 36
    assert result["duplicates_dropped"] == 4
    assert (
        sum(result["per_class"]["c0"].values())
        == (labels == "c0").sum() - ((splits == DUPLICATE) & (labels == "c0")).sum()
    )


def test_a_class_only_in_the_given_test_split_is_an_error():
    labels, groups = dataset(per_class=(30, 30, 5))
    given_test = np.full(len(labels), "", dtype=object)
    given_test[-5:] = "test"  # all of c2, and nothing else
    with pytest.raises(StageError) as error:
        split_indices(labels, groups, given_test, 0.2, 0.2, seed=0)
    assert str(error.value) == (
        "class 'c2' appears only in the given test split (5 images), so it would never be "
        "trained on: add train/<class> images of it or remove it"
    )


def test_a_class_whose_images_all_belong_to_another_is_an_error():
    labels, groups = dataset(per_class=(30, 30, 4))
    # Every c2 image has the same pixels as a c0 image listed before it.
    for copy in range(60, 64):
        groups[copy] = groups[copy - 60]
    with pytest.raises(StageError) as error:
        split_indices(labels, groups, np.full(len(labels), "", dtype=object), 0.2, 0.2, seed=0)
    assert str(error.value) == (
        "class 'c2' has no image of its own: all 4 are exact duplicates (same pixels after "
        "resize) of images of another class; relabel or remove them"
    )


def test_given_val_and_test_splits_stay_whole_and_train_is_the_rest():
    labels, groups = dataset(per_class=(40, 40))
    given = np.full(len(labels), "train", dtype=object)
    given[[0, 1, 40, 41]] = "val"
    given[[2, 3, 42, 43]] = "test"
    splits = split_indices(labels, groups, given, 0.2, 0.2, seed=0)
    assert list(np.flatnonzero(splits == "val")) == [0, 1, 40, 41]
    assert list(np.flatnonzero(splits == "test")) == [2, 3, 42, 43]
    assert (splits == "train").sum() == len(labels) - 8  # nothing carved from train


def test_a_given_val_split_without_test_carves_test_from_train():
    labels, groups = dataset(per_class=(50, 50))
    given = np.full(len(labels), "train", dtype=object)
    given[[0, 50]] = "val"
    splits = split_indices(labels, groups, given, 0.2, 0.2, seed=0)
    assert list(np.flatnonzero(splits == "val")) == [0, 50]
    assert (splits == "test").sum() == pytest.approx(0.2 * 98, abs=1)


def test_one_class_is_refused_before_training():
    labels, groups = dataset(per_class=(30,))
    with pytest.raises(StageError, match=r"the data has 1 class \('c0'\): a classifier needs"):
        split_indices(labels, groups, np.full(len(labels), ""), 0.2, 0.2, seed=0)


def corrections_file(tmp_path, text: str) -> pd.DataFrame:
    from image_classifier.data.corrections import read_corrections

    path = tmp_path / "corrections.csv"
    path.write_text("path,action,label,note\n" + text)
    return read_corrections(path)


def small_index():
    return pd.DataFrame(
        {
            "path": ["cat/1.png", "cat/2.png", "dog/1.png", "dog/2.png"],
            "class": ["cat", "cat", "dog", "dog"],
        }
    )


def test_corrections_relabel_and_exclude_exactly_the_rows_they_name(tmp_path):
    from image_classifier.data.corrections import apply_corrections

    index = small_index()
    corrections = corrections_file(
        tmp_path, "cat/2.png,relabel,dog,looks like a dog\ndog/1.png,exclude,,blurred\n"
    )
    classes, excluded = apply_corrections(index["class"], index["path"], corrections, "c.csv")
    assert classes.tolist() == ["cat", "dog", "dog", "dog"]
    assert excluded.tolist() == [False, False, True, False]
    assert index["class"].tolist() == ["cat", "cat", "dog", "dog"]  # the input is not changed


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ("cat/9.png,exclude,,\n", "c.csv line 2: 'cat/9.png' is not an image of the data"),
        (
            "cat/1.png,relabel,cow,\n",
            "c.csv line 2: class 'cow' is not one of the classes (cat, dog)",
        ),
        (
            "cat/1.png,exclude,,\ndog/2.png,exclude,,\ncat/1.png,relabel,dog,\n",
            "c.csv line 4: 'cat/1.png' is listed twice (first on line 2)",
        ),
        ("cat/1.png,delete,,\n", "c.csv line 2: action 'delete' is not one of relabel, exclude"),
        ("cat/1.png,relabel,,\n", "c.csv line 2: class '' is not one of the classes (cat, dog)"),
    ],
)
def test_a_bad_correction_is_refused_with_its_line(tmp_path, rows, expected):
    from image_classifier.data.corrections import apply_corrections

    index = small_index()
    with pytest.raises(StageError) as error:
        apply_corrections(index["class"], index["path"], corrections_file(tmp_path, rows), "c.csv")
    assert str(error.value).startswith(expected)
    assert "\n" not in str(error.value)


def test_excluded_images_are_in_no_split():
    from image_classifier.data.partition import assign_splits

    labels, groups = dataset(per_class=(40, 40))
    index = pd.DataFrame(
        {"path": [f"p{i}" for i in range(80)], "class": labels, "split": "", "pixel_hash": groups}
    )
    excluded = pd.Series(np.arange(80) % 10 == 0)
    table = assign_splits(index, 0.2, 0.2, seed=0, excluded=excluded)
    assert (table.loc[excluded, "split"] == "excluded").all()
    assert table.loc[~excluded, "split"].isin(["train", "val", "test"]).all()
    assert table["row"].tolist() == list(range(80))  # rows still point into images.npy
    assert summary(table, relabelled=3)["excluded"] == 8
    assert summary(table, relabelled=3)["relabelled"] == 3
