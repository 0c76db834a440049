"""The real-photo benchmark: the pipeline at its default params against the simple models of
its own baseline stage, on real photos, all measured in the same run.

    python -m bench.real --seeds 42,1,2        # every row, three seeds (~4 hours on 2 cores)
    python -m bench.real --only elpv           # the rows whose name contains "elpv"
    python -m bench.real --set train.flip=false   # a variant of the defaults
    python -m bench.real --peer                # also the Keras example (first seed)
    python -m bench.real --combine bench/a.json bench/b.json   # one table of runs made apart

Each dataset of bench/real_photos.py is written as a photo folder and run through the real
stages in a clone of this repository: `dvc repro evaluate` with `data.source: folder`,
every other param as committed (or as --set). The baselines are the baseline stage's
(majority class, logistic regression and gradient boosting on raw pixels, their settings
picked on val, on the same split). The peer is the Keras team's "image classification from
scratch" trained for the same wall time on the same split (bench/peer.py). Long-tailed sets
are scored on a test split with the train prior, as a user's stratified split is, and on a
balanced test set beside it. Writes bench/real_results.{md,json}.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.real_photos import Dataset, datasets
from bench.record import Results, add_combine_option, combine_files, parse_overrides
from bench.workspace import ROOT, clone, dvc, set_params
from image_classifier.report.scoring import headline_scores

BASELINES = ("majority", "logistic_regression", "gradient_boosting")
MODELS = (*BASELINES, "peer", "ours")
LABELS = {
    "majority": "majority class",
    "logistic_regression": "logistic regression",
    "gradient_boosting": "gradient boosting",
    "peer": "Keras example",
    "ours": "ours",
}
SCORES = ("accuracy", "macro_f1")
PICK = ("accuracy", "balanced_accuracy", "macro_f1")


def load_split(repo: Path, part: str):
    from image_classifier.data.dataset import load_subset

    return load_subset(repo / "data/resized", repo / "data/split.csv", part)


def balanced_test(folder: Path, class_names: list[str], size: int):
    """The balanced test set, decoded as the resize stage decodes: (images, labels)."""
    from image_classifier.data.decode import load_image

    paths = sorted(folder.glob("*/*.png"))
    images = np.stack([load_image(path, size, "squash", 10**9) for path in paths])
    return images, np.array([class_names.index(path.parent.name) for path in paths])


def balanced_scores(repo: Path, extra: Path, seed: int, monitor: str) -> dict:
    """Ours and the baselines (refitted as the stage fits them) on the balanced test set."""
    from image_classifier.model.architectures import load_trained_model
    from image_classifier.report.baselines import fit_baselines, pixel_features

    train, val = load_split(repo, "train"), load_split(repo, "val")
    classes = list(range(train.num_classes))
    images, labels = balanced_test(extra, train.class_names, train.images.shape[1])
    fitted, gray = fit_baselines(train, val, seed, monitor)
    scores = {}
    for model in fitted:
        features = pixel_features(images, gray, model.pixels) if model.pixels else labels
        scores[model.name] = headline_scores(labels, model.predict(features), classes)
    model = load_trained_model(repo / "models/model.keras")
    scores["ours"] = headline_scores(labels, model.predict(images, verbose=0).argmax(1), classes)
    return scores


def peer_scores(repo: Path, seconds: float, seed: int, extra: Path | None) -> tuple[dict, dict]:
    from bench.peer import predict_classes, train_peer

    train, val, test = (load_split(repo, part) for part in ("train", "val", "test"))
    classes = list(range(train.num_classes))
    model, details = train_peer(train, val, seconds, seed)
    tests = {"test": (test.images, test.labels)}
    if extra:
        tests["balanced"] = balanced_test(extra, train.class_names, train.images.shape[1])
    scores = {
        name: headline_scores(y, predict_classes(model, x), classes)
        for name, (x, y) in tests.items()
    }
    return scores, details


def run_row(
    dataset: Dataset,
    photos: Path,
    extra: Path | None,
    work: Path,
    seed: int,
    overrides: dict,
    peer: bool,
) -> dict:
    repo = clone(work / f"clone-{dataset.key}-{seed}")
    set_params(
        repo,
        **{
            **overrides,
            "base": {"seed": seed},
            "data": {"source": "folder", "folder": str(photos)},
        },
    )
    started = time.perf_counter()
    dvc("repro", "evaluate", cwd=repo)
    repro_seconds = time.perf_counter() - started
    evaluation, baselines, training = (
        json.loads((repo / f"metrics/{name}.json").read_text())
        for name in ("evaluate", "baseline", "train")
    )
    test = {name: {k: baselines[name][k] for k in PICK} for name in BASELINES}
    test["ours"] = {k: evaluation[k] for k in PICK}
    row = {
        "dataset": dataset.name,
        "variant": dataset.variant.name,
        "seed": seed,
        "notes": dataset.notes,
        "train_images": baselines["train_images"],
        "test_images": baselines["test_images"],
        "train_seconds": training["seconds"],
        "best_epoch": training["best_epoch"],
        "epochs": training["epochs_run"],
        "repro_seconds": round(repro_seconds, 1),
        "baseline_pixels": {name: baselines[name]["pixels"] for name in BASELINES[1:]},
        "baseline_seconds": round(sum(baselines[name]["seconds"] for name in BASELINES), 1),
        "calibration": evaluation["calibration"],
        "unsure": evaluation["unsure"],
        "tests": {"stratified" if extra else "test": test},
    }
    if extra:
        monitor = training["monitor"]
        row["tests"]["balanced"] = balanced_scores(repo, extra, seed, monitor)
    if peer:
        scores, row["peer"] = peer_scores(repo, training["seconds"], seed, extra)
        for name, values in scores.items():
            row["tests"]["stratified" if name == "test" and extra else name]["peer"] = values
    return row


def mean_sd(values: list[float]) -> tuple[float, float]:
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def summary(rows: list[dict]) -> list[dict]:
    """One entry per (dataset, variant, test split): each model's mean and sd over the seeds,
    and ours minus the best baseline (by mean) in each score, with the sd over the seeds of
    ours minus that seed's best baseline."""
    groups: dict[tuple, list[tuple[dict, dict]]] = {}
    for row in rows:
        for test, scores in row["tests"].items():
            groups.setdefault((row["dataset"], row["variant"], test), []).append((row, scores))
    result = []
    for (dataset, variant, test), members in groups.items():
        seconds = [row["train_seconds"] for row, _ in members]
        entry = {
            "dataset": dataset,
            "variant": variant,
            "test": test,
            "seeds": len(members),
            "train_images": members[0][0]["train_images"],
            "train_seconds": float(np.mean(seconds)),
        }
        for model in MODELS:
            present = [scores[model] for _, scores in members if model in scores]
            if present:
                entry[model] = {s: mean_sd([p[s] for p in present]) for s in SCORES}
        entry["margin"] = {}
        for score in SCORES:
            best = max(BASELINES, key=lambda model: entry[model][score][0])
            per_seed = [
                scores["ours"][score] - max(scores[m][score] for m in BASELINES)
                for _, scores in members
            ]
            mean = entry["ours"][score][0] - entry[best][score][0]
            entry["margin"][score] = {"over": best, "mean": mean, "sd": mean_sd(per_seed)[1]}
        result.append(entry)
    return result


def table(results: dict) -> str:
    entries = summary(results["rows"])
    shown = [m for m in MODELS if any(m in entry for entry in entries)]

    def cell(entry: dict, model: str) -> str:
        if model not in entry:
            return "-"
        (accuracy, a_sd), (f1, f_sd) = (entry[model][s] for s in SCORES)
        spread = f" (±{a_sd:.3f} / ±{f_sd:.3f})" if entry["seeds"] > 1 else ""
        text = f"{accuracy:.3f} / {f1:.3f}{spread}"
        return f"**{text}**" if model == "ours" else text

    def margin(entry: dict, score: str) -> str:
        value = entry["margin"][score]
        spread = f" ± {value['sd']:.3f}" if entry["seeds"] > 1 else ""
        return f"{value['mean']:+.3f}{spread} ({LABELS[value['over']]})"

    overview = pd.DataFrame(
        [
            {
                "dataset": f"{e['dataset']} {e['variant']}",
                "test split": e["test"],
                "seeds": e["seeds"],
                "train photos": e["train_images"],
                **{LABELS[m]: cell(e, m) for m in shown},
                "ours - best baseline, accuracy": margin(e, "accuracy"),
                "ours - best baseline, macro F1": margin(e, "macro_f1"),
                "ours: train time": f"{e['train_seconds']:.0f} s",
            }
            for e in entries
        ]
    )
    per_seed = pd.DataFrame(
        [
            {
                "dataset": f"{row['dataset']} {row['variant']}",
                "seed": row["seed"],
                "test split": test,
                **{
                    LABELS[m]: (
                        f"{scores[m]['accuracy']:.3f} / {scores[m]['macro_f1']:.3f}"
                        if m in scores
                        else "-"
                    )
                    for m in shown
                },
                "baselines' pixels (LR, GB)": "{logistic_regression}, {gradient_boosting}".format(
                    **row["baseline_pixels"]
                ),
                "ours: best epoch": f"{row['best_epoch']} of {row['epochs']}",
                "ours: train time": f"{row['train_seconds']:.0f} s",
            }
            for row in results["rows"]
            for test, scores in row["tests"].items()
        ]
    )
    return "\n".join(
        [
            Results.heading(results),
            "",
            "Accuracy / macro F1 on the test split, mean (± sd) over the seeds. The margin is ours "
            "minus the best baseline in each score (by mean), ± the sd over the seeds of ours "
            "minus that seed's best baseline.",
            "",
            overview.to_markdown(index=False),
            "",
            "Per seed (accuracy / macro F1):",
            "",
            per_seed.to_markdown(index=False),
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="only rows whose 'name-variant' contains one of these (a,b)")
    parser.add_argument("--seeds", default="42", help="comma-separated base.seed values")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="a param other than the committed one, for every row",
    )
    parser.add_argument("--peer", action="store_true", help="also the Keras example (first seed)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench")
    parser.add_argument("--name", default="real_results", help="file name of the results")
    add_combine_option(parser)
    args = parser.parse_args()
    results = Results(args.out, args.name, table)
    if args.combine:
        results.write(combine_files(args.combine, replace_by=("dataset", "variant", "seed")))
        return
    seeds = [int(seed) for seed in args.seeds.split(",")]
    overrides = parse_overrides(args.set)
    chosen = [
        d
        for d in datasets()
        if not args.only or any(part in d.key for part in args.only.split(","))
    ]
    with results.run(seeds=args.seeds, variant=", ".join(args.set)) as (record, work):
        for dataset in chosen:
            print(f"{dataset.key}: writing photos ({dataset.notes})", flush=True)
            photos, extra = dataset.write(work / dataset.key, dataset.variant)
            for index, seed in enumerate(seeds):
                print(f"{dataset.key}: dvc repro evaluate, seed {seed}", flush=True)
                record(
                    run_row(
                        dataset, photos, extra, work, seed, overrides, peer=args.peer and index == 0
                    )
                )


if __name__ == "__main__":
    sys.exit(main())
