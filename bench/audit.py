"""The audit benchmark: does the audit stage find planted label errors and duplicates, and
does correcting what it finds win back what the noise cost?

    python -m bench.audit                     # embedded, fashion-mnist-600, lookalikes-aligned
    python -m bench.audit --only embedded     # one dataset
    python -m bench.audit --duplicates-only   # only the planted copies (minutes)

For each dataset, a photo folder with a fixed train / val / test split (the pipeline's own
split of it, so that labels can change without moving an image to another split):
- clean: `dvc repro evaluate audit` as the data ships: the scores, and what the audit finds;
- noisy: 5% of the train photos moved into another class's folder at random: the scores,
  and the precision and recall with which the audit's suspect labels find those flips;
- corrected: the noisy run with the audit's suggestions for train photos applied as
  data/corrections.csv (the review loop, with every suggestion accepted): the scores, and
  the share of the accuracy the noise cost that they win back;
- planted: 100 edited copies of test photos put into train (20 each resized, recompressed as
  JPEG, cropped a little, brightened, and all four at once), the audit's near-duplicate
  detector run on the resized images: the recall of those pairs, and the false pairs that
  involve a planted copy. The pairs the detector finds in the clean data are the data's own.
Writes bench/audit_results.{md,json}.
"""

import argparse
import io
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageEnhance

from bench.real_photos import Dataset, Variant, datasets, write_fashion
from bench.record import Results, markdown_table
from bench.workspace import ROOT, clone, dvc, set_params

NOISE = 0.05
# Ten distinct classes of real product photos, 600 each: shaped like Animals-10 (distinct
# classes, a few thousand photos), where a wrong label is a photo of another kind of thing.
FASHION_600 = Dataset(
    "fashion-mnist",
    Variant("600", [600] * 10),
    write_fashion,
    "600 photos of each of the 10 Fashion-MNIST classes",
)
PLANTED_PER_KIND = 20
EDITS = ("resized", "jpeg", "cropped", "brightened", "all")


def split_tree(repo: Path, target: Path) -> Path:
    """The photos of `repo` (a clone whose split ran) as <split>/<class>/<file>, so that a
    folder source keeps this very split."""
    table = pd.read_csv(repo / "data/split.csv")
    table = table[table["split"].isin(["train", "val", "test"])]
    for path, label, split in zip(table["path"], table["class"], table["split"], strict=True):
        name = Path(path).name.split("__", 1)[-1]  # drop a given split's prefix
        destination = target / split / label / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(repo / "data/raw" / path, destination)
    return target


def raw_path(split: str, label: str, name: str) -> str:
    """Where download puts a photo of a split folder: data/raw/<class>/<split>__<name>."""
    return f"{label}/{split}__{name}"


def flip_labels(tree: Path, share: float, seed: int) -> set[str]:
    """Move `share` of the train photos into another class's folder; their new raw paths."""
    rng = np.random.default_rng(seed)
    classes = sorted(folder.name for folder in (tree / "train").iterdir())
    files = sorted((tree / "train").glob("*/*"))
    flipped = set()
    for file in rng.choice(files, round(share * len(files)), replace=False):
        label = rng.choice([name for name in classes if name != file.parent.name])
        file.rename(tree / "train" / label / file.name)
        flipped.add(raw_path("train", label, file.name))
    return flipped


def edit(picture: Image.Image, kind: str, rng: np.random.Generator) -> tuple[Image.Image, str]:
    """An edited copy of a photo, and the file format to save it in."""
    picture = picture.convert("RGB")
    if kind in ("cropped", "all"):
        width, height = picture.size
        # 2-5% of each side in all, at least a pixel: the content moves and grows a little.
        cut = np.maximum(2, np.round(rng.uniform(0.02, 0.05) * np.array([width, height])))
        left, top = (np.maximum(1, rng.uniform(0.3, 0.7, 2) * cut)).astype(int)
        picture = picture.crop((left, top, width - int(cut[0]) + left, height - int(cut[1]) + top))
    if kind in ("resized", "all"):
        scale = rng.uniform(1.5, 2.5) if min(picture.size) < 100 else rng.uniform(0.5, 0.8)
        picture = picture.resize(
            (round(picture.width * scale), round(picture.height * scale)), Image.BICUBIC
        )
    if kind in ("brightened", "all"):
        picture = ImageEnhance.Brightness(picture).enhance(rng.uniform(1.1, 1.3))
    if kind in ("jpeg", "all"):
        buffer = io.BytesIO()
        picture.save(buffer, "JPEG", quality=int(rng.integers(60, 86)))
        return Image.open(buffer), "jpg"
    return picture, "png"


def plant_copies(tree: Path, seed: int) -> set[frozenset]:
    """Edited copies of test photos put into train; the planted pairs as raw paths."""
    rng = np.random.default_rng(seed)
    tests = sorted((tree / "test").glob("*/*"))
    chosen = rng.choice(tests, PLANTED_PER_KIND * len(EDITS), replace=False)
    pairs = set()
    for number, source in enumerate(chosen):
        kind = EDITS[number // PLANTED_PER_KIND]
        with Image.open(source) as picture:
            copy, suffix = edit(picture, kind, rng)
        name = f"planted-{kind}-{source.stem}.{suffix}"
        copy.save(tree / "train" / source.parent.name / name)
        pairs.add(
            frozenset(
                {
                    raw_path("test", source.parent.name, source.name),
                    raw_path("train", source.parent.name, name),
                }
            )
        )
    return pairs


def run_pipeline(repo: Path, tree: Path, seed: int, *targets: str) -> dict:
    set_params(repo, base={"seed": seed}, data={"source": "folder", "folder": str(tree)})
    started = time.perf_counter()
    dvc("repro", *targets, cwd=repo)
    result = {"seconds": round(time.perf_counter() - started, 1)}
    if "evaluate" in targets:
        evaluation = json.loads((repo / "metrics/evaluate.json").read_text())
        result |= {score: evaluation[score] for score in ("accuracy", "macro_f1")}
    if (repo / "metrics/audit.json").exists() and "audit" in targets:
        result["audit"] = json.loads((repo / "metrics/audit.json").read_text())
    return result


def label_recovery(repo: Path, flipped: set[str]) -> dict:
    findings = pd.read_csv(repo / "plots/audit/findings.csv", keep_default_na=False)
    suspects = findings[(findings["kind"] == "suspect_label") & (findings["split"] == "train")]
    found = set(suspects["path"]) & flipped
    return {
        "flipped": len(flipped),
        "flagged_in_train": len(suspects),
        "found": len(found),
        "precision": round(len(found) / max(len(suspects), 1), 4),
        "recall": round(len(found) / max(len(flipped), 1), 4),
    }


def duplicate_recovery(repo: Path, planted: set[frozenset], audit) -> dict:
    """The detector on the planted run's resized images. A planted copy that `split` already
    dropped as an exact duplicate of its source cannot leak and counts as caught. A pair of
    a copy with a photo other than its source is false unless the detector also pairs that
    photo with the source: the data's own near-duplicates are near-duplicates of the copy."""
    from image_classifier.audit.duplicates import near_duplicate_pairs
    from image_classifier.data.dataset import SPLITS, gather_rows

    table = pd.read_csv(repo / "data/split.csv")
    used = table[table["split"].isin(SPLITS)].reset_index(drop=True)
    images = gather_rows(
        np.load(repo / "data/resized/images.npy", mmap_mode="r"), used["row"].to_numpy()
    )
    started = time.perf_counter()
    pairs = near_duplicate_pairs(
        images, audit.candidates, audit.min_correlation, audit.relative_distance
    )
    seconds = time.perf_counter() - started
    paths = used["path"].to_numpy()
    found = {
        frozenset({paths[a], paths[b]})
        for a, b in zip(pairs["first"], pairs["second"], strict=True)
    }
    dropped = set(table.loc[table["split"] == "duplicate", "path"])
    source_of = {
        path: next(iter(pair - {path})) for pair in planted for path in pair if "planted-" in path
    }
    caught = {pair for pair in planted if pair in found or pair & dropped}
    false = set()
    for pair in found - planted:
        for copy in pair & set(source_of):
            other = next(iter(pair - {copy}))
            if frozenset({source_of[copy], other}) not in found:
                false.add(pair)

    def recall_of(kind: str) -> float:
        mine = [pair for pair in planted if any(f"planted-{kind}-" in path for path in pair)]
        return round(sum(pair in caught for pair in mine) / len(mine), 4)

    copies = set(source_of)
    return {
        "planted": len(planted),
        "found": len(caught),
        "dropped_as_exact_copies": len(copies & dropped),
        "recall": round(len(caught) / len(planted), 4),
        "recall_by_edit": {kind: recall_of(kind) for kind in EDITS},
        "false_pairs_with_a_copy": len(false),
        "other_pairs": len({pair for pair in found if not pair & copies}),
        "seconds": round(seconds, 1),
    }


def prepare(name: str, work: Path, seed: int) -> Path:
    """A clone whose split ran on the dataset `name`; the embedded data or a bench.real set."""
    repo = clone(work / f"{name}-source")
    if name == "embedded":
        set_params(repo, base={"seed": seed})
    else:
        dataset = next(
            d for d in [*datasets(), FASHION_600] if f"{d.name}-{d.variant.name}" == name
        )
        photos, _ = dataset.write(work / f"{name}-photos", dataset.variant)
        set_params(repo, base={"seed": seed}, data={"source": "folder", "folder": str(photos)})
    dvc("repro", "split", cwd=repo)
    return repo


def run_dataset(name: str, work: Path, seed: int, duplicates_only: bool = False) -> dict:
    from image_classifier.params import AuditParams, read_params

    audit = AuditParams.from_params(read_params(ROOT / "params.yaml"))
    source = prepare(name, work, seed)
    clean = split_tree(source, work / f"{name}-clean")
    planted_tree = shutil.copytree(clean, work / f"{name}-planted")
    planted = plant_copies(planted_tree, seed)
    row = {"dataset": name, "seed": seed}
    if not duplicates_only:
        row |= label_rows(name, work, seed, clean)
    print(f"{name}: planted duplicates", flush=True)
    repo = clone(work / f"{name}-d")
    run_pipeline(repo, planted_tree, seed, "split")
    row["duplicates"] = duplicate_recovery(repo, planted, audit)
    print(json.dumps(row), flush=True)
    return row


def label_rows(name: str, work: Path, seed: int, clean: Path) -> dict:
    """The clean, noisy and corrected runs of the pipeline, and the flips the audit found."""
    noisy = shutil.copytree(clean, work / f"{name}-noisy")
    flipped = flip_labels(noisy, NOISE, seed)
    row = {}
    print(f"{name}: clean", flush=True)
    row["clean"] = run_pipeline(clone(work / f"{name}-a"), clean, seed, "evaluate", "audit")
    print(f"{name}: noisy ({len(flipped)} train labels flipped)", flush=True)
    repo = clone(work / f"{name}-b")
    row["noisy"] = run_pipeline(repo, noisy, seed, "evaluate", "audit")
    row["labels"] = label_recovery(repo, flipped)
    suggestions = pd.read_csv(
        repo / "plots/audit/suggested_corrections.csv", dtype=str, keep_default_na=False
    )
    train = pd.read_csv(repo / "data/split.csv").query("split == 'train'")["path"]
    suggestions[suggestions["path"].isin(set(train))].to_csv(
        repo / "data/corrections.csv", index=False
    )
    print(f"{name}: corrected ({len(suggestions)} suggestions, train ones applied)", flush=True)
    row["corrected"] = run_pipeline(repo, noisy, seed, "evaluate")
    cost = row["clean"]["accuracy"] - row["noisy"]["accuracy"]
    won = row["corrected"]["accuracy"] - row["noisy"]["accuracy"]
    row["recovered_share"] = round(won / cost, 3) if cost > 0 else None
    return row


def scores(run: dict) -> str:
    return f"{run['accuracy']:.4f} / {run['macro_f1']:.4f}"


def label_row(row: dict) -> dict:
    labels, share = row["labels"], row["recovered_share"]
    return {
        "dataset": row["dataset"],
        "flipped": labels["flipped"],
        "flagged in train": labels["flagged_in_train"],
        "precision": f"{labels['precision']:.2f}",
        "recall": f"{labels['recall']:.2f}",
        "clean": scores(row["clean"]),
        "noisy": scores(row["noisy"]),
        "corrected": scores(row["corrected"]),
        "accuracy won back": f"{share:.0%}" if share is not None else "- (the noise cost nothing)",
    }


def duplicate_row(row: dict) -> dict:
    found = row["duplicates"]
    return {
        "dataset": row["dataset"],
        "planted": found["planted"],
        "caught": found["found"],
        "recall": f"{found['recall']:.2f}",
        **{kind: f"{found['recall_by_edit'][kind]:.2f}" for kind in EDITS},
        "false pairs with a copy": found["false_pairs_with_a_copy"],
        "the data's own pairs": found["other_pairs"],
        "seconds": f"{found['seconds']:.0f}",
    }


def clean_row(row: dict) -> dict:
    audit = row["clean"]["audit"]
    suspects, pairs = audit["suspect_labels"], audit["near_duplicates"]
    return {
        "dataset": row["dataset"],
        "images": audit["images"],
        "suspect labels": f"{suspects['total']} ({suspects['share']:.1%})",
        "near-duplicate pairs": pairs["pairs"],
        "across splits": pairs["across_splits"],
        "across classes": pairs["across_classes"],
        "repro, seconds": f"{row['clean']['seconds']:.0f}",
    }


def table(results: dict) -> str:
    labelled = [row for row in results["rows"] if "labels" in row]
    lines = [Results.heading(results)]
    if labelled:
        lines += [
            "",
            f"Label errors: {NOISE:.0%} of the train photos moved into another class at "
            "random. Test accuracy / macro F1 of the pipeline trained on the clean, the noisy, "
            "and the corrected labels (the audit's suggestions for train photos applied).",
            "",
            markdown_table([label_row(row) for row in labelled]),
        ]
    lines += [
        "",
        f"Near-duplicates: {PLANTED_PER_KIND} edited copies of test photos per edit put "
        "into train; what the detector finds (each photo's nearest thumbnails, "
        "kept when their detail correlates far better than each photo with its ordinary "
        "neighbours). A copy that split already dropped as an exact duplicate counts as "
        "caught; a pair of a copy with a photo that the detector also pairs with its source "
        "is no false pair (the data's own near-duplicates).",
        "",
        markdown_table([duplicate_row(row) for row in results["rows"]]),
    ]
    if labelled:
        lines += [
            "",
            "What the audit finds in each dataset as it ships (the clean run):",
            "",
            markdown_table([clean_row(row) for row in labelled]),
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        default="embedded,fashion-mnist-600,lookalikes-aligned",
        help="datasets: embedded and/or bench.real names (name-variant)",
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--duplicates-only",
        action="store_true",
        help="only the planted near-duplicates (no training: minutes a row)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench")
    parser.add_argument("--name", default="audit_results", help="file name of the results")
    args = parser.parse_args()
    with Results(args.out, args.name, table).run(seeds=str(args.seed)) as (record, work):
        for name in args.only.split(","):
            record(run_dataset(name, work, args.seed, args.duplicates_only))


if __name__ == "__main__":
    sys.exit(main())
