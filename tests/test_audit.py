"""audit: suspect labels and near-duplicates found where they were planted, and nowhere else."""

import io
import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageEnhance

from image_classifier.audit.duplicates import describe_pairs, near_duplicate_pairs
from tests.conftest import FIXTURE_INPUTS, png_size, run_stage, write_params
from tests.test_train import TINY, train_args


def edited_copy(image: np.ndarray, crop: int = 3, brightness: float = 1.15) -> np.ndarray:
    """The same picture cropped a few pixels, resized back, brightened and saved as JPEG."""
    size = image.shape[0]
    picture = Image.fromarray(image).crop((crop, crop // 2, size - crop // 2, size - crop))
    picture = ImageEnhance.Brightness(picture.resize((size, size))).enhance(brightness)
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=80)
    return np.asarray(Image.open(buffer).convert("RGB"))


def photos(count: int, size: int = 120, seed: int = 0) -> np.ndarray:
    """Distinct photo-like grayscale images: random fields at four scales, each weaker as it
    gets finer (as in photographs, whose detail falls off with frequency)."""
    rng = np.random.default_rng(seed)
    result = np.zeros((count, size, size))
    for cells, weight in ((4, 1.0), (8, 0.6), (16, 0.35), (32, 0.2)):
        for index in range(count):
            field = Image.fromarray(rng.normal(0, 1, (cells, cells)).astype(np.float32))
            result[index] += weight * np.asarray(field.resize((size, size), Image.BICUBIC))
    result = 110 + 35 * result / result.std()
    return np.repeat(result.clip(0, 200).astype(np.uint8)[..., None], 3, axis=3)


def test_near_duplicates_are_edited_copies_and_not_similar_photos():
    images = photos(40)
    copies = [edited_copy(images[0]), edited_copy(images[7], crop=4, brightness=1.2)]
    pairs = near_duplicate_pairs(np.concatenate([images, copies]), 20, 0.8, 0.5)
    assert sorted(zip(pairs["first"], pairs["second"], strict=True)) == [(0, 40), (7, 41)]
    splits = np.array(["train"] * 40 + ["test", "train"])
    labels = np.array([0] * 41 + [1])
    described = describe_pairs(pairs.sort_values("first"), splits, labels)
    assert described["across_splits"].tolist() == [True, False]
    assert described["across_classes"].tolist() == [False, True]


def framed_alike(count: int) -> np.ndarray:
    """Photos that share a strong frame (dark lines, as the bus bars and edges of solar
    cells), each with its own faint texture: every pair correlates well."""
    lines = np.zeros((120, 120))
    lines[:, ::30] = lines[:, 1::30] = lines[::40, :] = 1
    texture = photos(count)[..., 0].astype(float) - 110
    framed = (120 + 0.25 * texture - 30 * lines).clip(0, 255).astype(np.uint8)
    return np.repeat(framed[..., None], 3, axis=3)


def test_near_duplicates_are_copies_where_every_photo_is_framed_alike():
    """The decision is relative to the set: the shared frame does not make a pair (a fixed
    correlation cut paired 225 of these photos), the copies' own texture does."""
    images = framed_alike(40)
    copies = [edited_copy(images[0]), edited_copy(images[7], crop=4, brightness=1.2)]
    pairs = near_duplicate_pairs(np.concatenate([images, copies]), 20, 0.8, 0.5)
    assert sorted(zip(pairs["first"], pairs["second"], strict=True)) == [(0, 40), (7, 41)]
    assert (pairs["ordinary"] < 0.5).all()


def centre_crop(image: np.ndarray, share: float) -> np.ndarray:
    """The image without `share` of each side's length, half at either end, resized back."""
    size, margin = image.shape[0], round(image.shape[0] * share / 2)
    picture = Image.fromarray(image).crop((margin, margin, size - margin, size - margin))
    return np.asarray(picture.resize((size, size), Image.BICUBIC))


def cells_at_scales(count: int) -> np.ndarray:
    """Photos alike as solar cells are: one strong frame (bus bars and edges) photographed at
    five scales, 2% apart, each photo with its own fine texture (too fine for a thumbnail)."""
    lines = np.zeros((120, 120))
    lines[:, 29:31] = lines[:, 89:91] = 1
    lines[:8, :] = lines[-8:, :] = lines[:, :8] = lines[:, -8:] = 1
    frame = np.repeat((140 - 80 * lines).astype(np.uint8)[..., None], 3, axis=2)
    rng = np.random.default_rng(0)
    result = []
    for index in range(count):
        grain = Image.fromarray(rng.normal(0, 12, (40, 40)).astype(np.float32))
        scaled = centre_crop(frame, 0.02 * (index % 5)).astype(float)
        result.append(scaled + np.asarray(grain.resize((120, 120), Image.BICUBIC))[..., None])
    return np.stack(result).clip(0, 255).astype(np.uint8)


def test_a_crop_is_found_where_it_moves_the_frame_more_than_photos_differ():
    """A 6% crop enlarges the frame to another scale of the set: by thumbnail, 22 photos are
    nearer the crop than its source is, so the crop is no ordinary neighbour of its source.
    Its source's centre, enlarged as a crop enlarges it, finds it."""
    images = cells_at_scales(50)
    pairs = near_duplicate_pairs(
        np.concatenate([images, [centre_crop(images[0], 0.06)]]), 4, 0.8, 0.5
    )
    assert sorted(zip(pairs["first"], pairs["second"], strict=True)) == [(0, 50)]


def blend(image: np.ndarray, other: np.ndarray, weight: float) -> np.ndarray:
    return (weight * image.astype(float) + (1 - weight) * other).astype(np.uint8)


def test_a_pair_its_group_contradicts_is_no_copy():
    """Copies of one picture are copies of each other. The look-alike shares much of the
    copy's picture but not enough of the source's (as a neighbouring solar cell cut from the
    same wafer as the copied one): it correlates 0.83 with the copy, a pair by the rule, and
    0.77 with the source, none. The copy matches its source better (0.93), so the look-alike's
    pair with the copy goes."""
    images = photos(42)
    copy = edited_copy(blend(images[0], images[40], 0.8))
    look_alike = edited_copy(blend(copy, images[41], 0.62), crop=2, brightness=1.0)
    pairs = near_duplicate_pairs(np.concatenate([images[:40], [copy, look_alike]]), 20, 0.8, 0.5)
    assert sorted(zip(pairs["first"], pairs["second"], strict=True)) == [(0, 40)]


CLASSES = ("cat", "cow", "dog")


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    """Photos whose class is a tint (red, green or blue), with 3 train labels flipped, an
    edited copy of a test photo added to train (leakage), and a train photo copied under
    another class (a label conflict)."""
    folder = tmp_path_factory.mktemp("audit")
    per_class = 40
    images = photos(per_class * len(CLASSES), seed=1).astype(np.int16)
    labels = np.repeat(np.arange(len(CLASSES)), per_class)
    images[np.arange(len(images)), :, :, labels] += 55  # the tint gives the class away
    images = images.clip(0, 255).astype(np.uint8)
    split = pd.DataFrame(
        {
            "row": np.arange(len(images)),
            "path": [f"{CLASSES[label]}/{index}.png" for index, label in enumerate(labels)],
            "class": [CLASSES[label] for label in labels],
            "split": [
                ("train", "train", "train", "val", "test")[i % 5] for i in range(len(images))
            ],
        }
    )
    train = split.index[split["split"] == "train"]
    flipped = train[[0, 30, 60]]  # a cat, a cow and a dog
    rename = {"cat": "cow", "cow": "dog", "dog": "cat"}
    split.loc[flipped, "class"] = split.loc[flipped, "class"].map(rename)
    leaked, conflict = split.index[split["split"] == "test"][5], train[10]
    extra = np.stack([edited_copy(images[leaked]), edited_copy(images[conflict], crop=2)])
    rows = pd.DataFrame(
        {
            "row": [len(images), len(images) + 1],
            "path": ["extra/leak.jpg", "extra/twin.jpg"],
            "class": [split.loc[leaked, "class"], rename[split.loc[conflict, "class"]]],
            "split": ["train", "train"],
        }
    )
    (folder / "resized").mkdir()
    np.save(folder / "resized/images.npy", np.concatenate([images, extra]))
    contract = {"image_size": images.shape[1], "fit": "squash", "max_megapixels": 40}
    (folder / "resized/contract.json").write_text(json.dumps(contract))
    pd.concat([split, rows]).to_csv(folder / "split.csv", index=False)
    write_params(folder, **TINY | {"train__epochs": 4})
    run_stage("train", *train_args(folder), cwd=folder)
    result = run_stage(
        "audit",
        *FIXTURE_INPUTS,
        "--model",
        "models/model.keras",
        "--metrics",
        "audit.json",
        "--out",
        "audit",
        cwd=folder,
    )
    planted = {
        "flipped": set(split.loc[flipped, "path"]),
        "leaked": split.loc[leaked, "path"],
        "conflict": split.loc[conflict, "path"],
    }
    return folder, result, planted


def test_the_audit_finds_the_flipped_labels(audited):
    folder, _, planted = audited
    findings = pd.read_csv(folder / "audit/findings.csv", keep_default_na=False)
    suspects = findings[findings["kind"] == "suspect_label"]
    found = set(suspects["path"]) & planted["flipped"]
    assert len(found) >= 2, suspects
    assert len(suspects) <= 2 * len(planted["flipped"])  # few false alarms besides them
    # A flipped image's suggestion is its true class, and the review file says so.
    suggested = pd.read_csv(folder / "audit/suggested_corrections.csv", keep_default_na=False)
    for path in found:
        row = suggested[suggested["path"] == path].iloc[0]
        assert row["action"] == "relabel" and path.startswith(row["label"] + "/")


def test_the_audit_finds_the_planted_duplicates(audited):
    folder, result, planted = audited
    findings = pd.read_csv(folder / "audit/findings.csv", keep_default_na=False)
    pairs = findings[findings["kind"] == "near_duplicate"]
    found = [frozenset({row.path, row.duplicate_path}) for row in pairs.itertuples()]
    assert sorted(found, key=sorted) == sorted(
        [
            frozenset({planted["leaked"], "extra/leak.jpg"}),
            frozenset({planted["conflict"], "extra/twin.jpg"}),
        ],
        key=sorted,
    )
    metrics = json.loads((folder / "audit.json").read_text())
    duplicates = metrics["near_duplicates"]
    assert (duplicates["pairs"], duplicates["across_splits"], duplicates["across_classes"]) == (
        2,
        1,
        1,
    )
    assert duplicates["across_split_pairs"] == {"test-train": 1}
    assert metrics["suspect_labels"]["total"] == len(findings[findings["kind"] == "suspect_label"])
    assert "near-duplicate pairs: 1 across splits, 1 across classes" in result.stderr
    assert "Warning" not in result.stderr, result.stderr  # e.g. Keras' "ran out of data"
    for gallery in ("suspect_labels.png", "near_duplicates.png"):
        width, height = png_size(folder / "audit" / gallery)
        assert width > 300 and height > 150


def test_no_findings_make_empty_tables_with_their_headers():
    """A clean set: no suspects and no pairs are tables with headers, not a crash."""
    from image_classifier.audit.findings import (
        audit_metrics,
        duplicate_findings,
        label_findings,
        suggested_corrections,
    )

    used = pd.DataFrame(
        {"path": ["a/1.png", "b/2.png"], "class": ["a", "b"], "split": ["train", "test"]}
    )
    none = pd.DataFrame({"index": [], "given": [], "suggested": [], "score": []}, dtype=int)
    suspects = label_findings(none, used, ["a", "b"])
    corrections = suggested_corrections(suspects)
    assert corrections.columns.tolist() == ["path", "action", "label", "note"]
    assert corrections.empty
    pairs = pd.DataFrame(
        {
            "first": [],
            "second": [],
            "correlation": [],
            "ordinary": [],
            "across_splits": [],
            "across_classes": [],
            "within_split": [],
        }
    )
    metrics = audit_metrics(suspects, duplicate_findings(pairs.astype(int), used), used, ["a", "b"])
    assert metrics["suspect_labels"]["total"] == 0 and metrics["near_duplicates"]["pairs"] == 0


def test_the_models_fit_to_its_train_labels_is_measured_per_split():
    from image_classifier.audit.labels import given_label_accuracy

    probabilities = np.eye(3)[[0, 1, 2, 0, 1, 1]]
    labels = np.array([0, 1, 2, 0, 2, 0])  # train: all 3 given; val: 1 of 3
    splits = np.array(["train", "train", "train", "val", "val", "val"])
    assert given_label_accuracy(probabilities, labels, splits) == {
        "train_accuracy": 1.0,
        "val_accuracy": round(1 / 3, 4),
    }
