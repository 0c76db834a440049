"""Train, val and test: stratified, with no image in two splits.

Exact duplicates (same pixels after resize) are kept once: the other copies are marked
`duplicate` and used nowhere, so a test image can never also be a training image. A source
that came with its own test split keeps it; val is then carved from its train part.
"""

import math

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from image_classifier.console import StageError
from image_classifier.data.corrections import EXCLUDED
from image_classifier.data.dataset import SPLITS

DUPLICATE = "duplicate"


def minimum_per_class(fractions: list[float]) -> int:
    """Distinct images a class needs so that every split gets at least one."""
    return math.ceil(1 / min(fractions) - 1e-9)


GIVEN_ORDER = {"test": 0, "val": 1, "train": 2, "": 2}  # which copy of a duplicate is kept


def split_indices(
    labels: np.ndarray,
    groups: np.ndarray,
    given: np.ndarray,
    val_fraction: float,
    test_fraction: float,
    seed: int,
) -> np.ndarray:
    """Assign every row to train, val, test or duplicate.

    labels: class of each row; groups: rows with equal group are copies of one image;
    given: the split the source itself put each row in ("train", "val", "test"; "" when it
    came unsplit). A given val or test split is kept whole. What is not given is carved,
    stratified, from the rest: without any given split the fractions are of all distinct
    images; otherwise a fraction is the share of the given train part.
    """
    labels, groups, given = map(np.asarray, (labels, groups, given))
    frame = pd.DataFrame({"label": labels, "group": groups, "given": given})
    check_classes(frame["label"])
    # One representative per group, a given-test copy first (then val): given splits stay whole.
    order = frame.assign(rank=frame["given"].map(GIVEN_ORDER)).sort_values("rank", kind="stable")
    representatives = order.drop_duplicates("group").sort_index()
    assignment = np.full(len(frame), DUPLICATE, dtype=object)

    has = {split: bool((given == split).any()) for split in ("val", "test")}
    pool = representatives[representatives["given"].isin(["", "train"])]
    for split in ("val", "test"):
        if has[split]:
            assignment[representatives.index[representatives["given"] == split]] = split
    if not any(has.values()):
        val_share, test_share = val_fraction / (1 - test_fraction), test_fraction
        fractions = [val_fraction, test_fraction]
    else:
        val_share, test_share = val_fraction, test_fraction
        fractions = [
            share for split, share in (("val", val_share), ("test", test_share)) if not has[split]
        ]
    _check_class_sizes(frame, pool["label"], minimum_per_class(fractions) if fractions else 1)

    if not has["test"]:
        pool, test = train_test_split(
            pool, test_size=test_share, stratify=pool["label"], random_state=seed
        )
        assignment[test.index] = "test"
    if not has["val"]:
        pool, val = train_test_split(
            pool, test_size=val_share, stratify=pool["label"], random_state=seed
        )
        assignment[val.index] = "val"
    assignment[pool.index] = "train"
    return assignment


def check_classes(labels: pd.Series) -> None:
    """A classifier needs two classes; one is a folder layout gone wrong more often than not."""
    names = sorted(labels.unique())
    if len(names) < 2:
        raise StageError(
            f"the data has {len(names)} class ({', '.join(map(repr, names))}): a classifier needs "
            "at least two class folders (<class>/<image>)"
        )


def _check_class_sizes(frame: pd.DataFrame, pool: pd.Series, needed: int) -> None:
    """Every class must have `needed` distinct images left to split into train (and val, test).

    A class can have none at all: all of its images in a given val or test split, or all
    exact duplicates of another class's images (whose label the kept copy carries).
    """
    counts = pool.value_counts().reindex(sorted(frame["label"].unique()), fill_value=0)
    for name, count in counts.items():
        if count >= needed:
            continue
        rows = frame[frame["label"] == name]
        if count == 0 and rows["given"].isin(["val", "test"]).all():
            where = "/".join(sorted(rows["given"].unique()))
            raise StageError(
                f"class {name!r} appears only in the given {where} split ({len(rows)} images), "
                "so it would never be trained on: add train/<class> images of it or remove it"
            )
        if count == 0:
            raise StageError(
                f"class {name!r} has no image of its own: all {len(rows)} are exact duplicates "
                "(same pixels after resize) of images of another class; relabel or remove them"
            )
        raise StageError(
            f"class {name!r} has {count} distinct image(s); splitting needs at least {needed} per "
            "class so every split gets one: add images or raise split.val_fraction/test_fraction"
        )


def count_table(table: pd.DataFrame) -> pd.DataFrame:
    """Images per class (rows) and split (columns train, val, test)."""
    used = table[table["split"].isin(SPLITS)]
    counts = pd.crosstab(used["class"], used["split"])
    return counts.reindex(columns=list(SPLITS), fill_value=0)


def summary(table: pd.DataFrame, relabelled: int = 0) -> dict:
    counts = count_table(table)
    duplicates = table[table["split"] == DUPLICATE]
    labels_per_group = table.groupby("pixel_hash")["class"].nunique()
    return {
        **{split: int(counts[split].sum()) for split in SPLITS},
        "duplicates_dropped": len(duplicates),
        "relabelled": relabelled,
        "excluded": int((table["split"] == EXCLUDED).sum()),
        "duplicates_with_another_class": int((labels_per_group > 1).sum()),
        "per_class": {
            name: {split: int(counts.loc[name, split]) for split in SPLITS} for name in counts.index
        },
    }


def assign_splits(
    index: pd.DataFrame,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    excluded: pd.Series | None = None,
):
    """The resize stage's index with a `row` (into images.npy) and each row's split; rows
    marked `excluded` (by the corrections) get the split `excluded` and are used nowhere."""
    table = index.copy()
    table.insert(0, "row", np.arange(len(table)))
    kept = ~excluded.to_numpy() if excluded is not None else np.ones(len(table), bool)
    given = table["split"].to_numpy()
    assignment = np.full(len(table), EXCLUDED, dtype=object)
    assignment[kept] = split_indices(
        table["class"].to_numpy()[kept],
        table["pixel_hash"].to_numpy()[kept],
        given[kept],
        val_fraction,
        test_fraction,
        seed,
    )
    table["split"] = assignment
    return table
