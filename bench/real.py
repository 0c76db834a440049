"""The real-photo benchmark: the pipeline at its default params against simple baselines and
a peer recipe, on real photos, all measured in the same run.

    python -m bench.real --seeds 42,1,2        # every row, three seeds (about 3 hours on 2 cores)
    python -m bench.real --only defects        # the rows whose name contains "defects"
    python -m bench.real --set train.class_weights=true   # a variant of the defaults
    python -m bench.real --combine bench/a.json bench/b.json   # one table of runs made apart

Each dataset of bench/real_photos.py is written as a photo folder and run through the real
stages in a clone of this repository: `dvc repro evaluate` with `data.source: folder`,
every other param as committed (or as --set). The baselines are the pipeline's own baseline
stage (majority class, logistic regression and gradient boosting on 16x16 pixels, on the
same split), and the peer recipe is the Keras team's "image classification from scratch"
trained for the same wall time on the same split (bench/peer.py; on the first seed only).
Long-tailed sets are scored on a test split with the train prior, as a user's stratified
split is, and on a balanced test set beside it. Writes bench/real_results.{md,json}.
Results of runs made before train.flip_average became a default (commit 0c7c459 to the one
that made it) also hold a probe column, the same trained model with its logits averaged over
each photo and its mirror image; the table shows it where a row measured it.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from ruamel.yaml import YAML

from bench.machine import describe_machine, matmul_gflops
from bench.real_photos import Dataset, datasets
from bench.record import combine, git_commit
from bench.workspace import ROOT, clone, dvc, set_params
from image_classifier.report.scoring import headline_scores

MODELS = ("majority", "logistic_regression", "gradient_boosting", "peer", "ours")
# Probes: the same trained model answering another way, scored beside ours, outside the
# margins. Older results hold the first (then a candidate default); rows measured with
# train.flip_average hold the second, which shows what the averaging adds on that machine.
PROBE = "ours_flip_average"
ALONE = "ours_photo_alone"
PROBES = (PROBE, ALONE)
LABELS = {
    "majority": "majority class",
    "logistic_regression": "logistic regression",
    "gradient_boosting": "gradient boosting",
    "peer": "Keras example (1 seed)",
    "ours": "ours",
    PROBE: "ours, flip average (probe)",
    ALONE: "ours, each photo alone (probe)",
}
SCORES = ("accuracy", "macro_f1")


def parse_overrides(pairs: list[str]) -> dict[str, dict]:
    """["train.zoom=0.08", ...] -> {"train": {"zoom": 0.08}}, values read as YAML."""
    sections: dict[str, dict] = {}
    for pair in pairs:
        key, _, text = pair.partition("=")
        section, _, name = key.partition(".")
        sections.setdefault(section, {})[name] = YAML(typ="safe").load(text)
    return sections


def load_split(repo: Path, part: str):
    from image_classifier.data.dataset import load_subset

    return load_subset(repo / "data/resized", repo / "data/split.csv", part)


def extra_test(folder: Path, class_names: list[str], size: int):
    """The balanced test set, decoded as the resize stage decodes (images, labels)."""
    from image_classifier.data.decode import load_image

    paths = sorted(folder.glob("*/*.png"))
    images = np.stack([load_image(path, size, "squash", 10**9) for path in paths])
    return images, np.array([class_names.index(path.parent.name) for path in paths])


def run_row(dataset: Dataset, photos: Path, extra: Path | None, work: Path, seed: int,
            overrides: dict, peer: bool) -> dict:  # fmt: skip
    repo = clone(work / f"clone-{dataset.name}-{dataset.variant.name}-{seed}")
    set_params(repo, **{**overrides, "base": {"seed": seed},
                        "data": {"source": "folder", "folder": str(photos)}})  # fmt: skip
    started = time.perf_counter()
    dvc("repro", "evaluate", cwd=repo)
    repro_seconds = time.perf_counter() - started
    evaluation = json.loads((repo / "metrics/evaluate.json").read_text())
    baselines = json.loads((repo / "metrics/baseline.json").read_text())
    training = json.loads((repo / "metrics/train.json").read_text())
    card = json.loads((repo / "models/model.json").read_text())
    pick = ("accuracy", "balanced_accuracy", "macro_f1")
    stratified = {name: {k: baselines[name][k] for k in pick} for name in MODELS[:3]}
    stratified["ours"] = {k: evaluation[k] for k in pick}
    row = {
        "dataset": dataset.name, "variant": dataset.variant.name, "seed": seed,
        "notes": dataset.notes, "train_images": baselines["train_images"],
        "test_images": baselines["test_images"], "train_seconds": training["seconds"],
        "epochs": training["epochs_run"], "repro_seconds": round(repro_seconds, 1),
        "flip_average": card["flip_average"],
        "tests": {"stratified" if extra else "test": stratified},
    }  # fmt: skip
    import keras

    from image_classifier.model.architectures import load_trained_model
    from image_classifier.model.mirror import without_mirror_average
    from image_classifier.report.baselines import fit_baselines, pixel_features

    train, val, test = (load_split(repo, part) for part in ("train", "val", "test"))
    classes = list(range(train.num_classes))
    model = load_trained_model(repo / "models/model.keras")
    alone = without_mirror_average(model) if card["flip_average"] else None
    if alone:
        row["tests"]["stratified" if extra else "test"][ALONE] = headline_scores(
            test.labels, alone.predict(test.images, verbose=0).argmax(1), classes
        )
    if extra:
        images, labels = extra_test(extra, train.class_names, train.images.shape[1])
        fitted, gray = fit_baselines(train, val, seed)
        features = pixel_features(images, gray)
        balanced = {m.name: headline_scores(labels, m.predict(features), classes) for m in fitted}
        logits = model.predict(images, verbose=0)
        balanced["ours"] = headline_scores(labels, logits.argmax(1), classes)
        if alone:
            predicted = alone.predict(images, verbose=0).argmax(1)
            balanced[ALONE] = headline_scores(labels, predicted, classes)
        row["tests"]["balanced"] = balanced
    if peer:
        from bench.peer import predict_classes, train_peer

        keras.backend.clear_session()
        peer_model, row["peer"] = train_peer(train, val, training["seconds"], seed)
        scored = {"balanced": (images, labels)} if extra else {}
        for name, scores in row["tests"].items():
            x, y = scored.get(name, (test.images, test.labels))
            scores["peer"] = headline_scores(y, predict_classes(peer_model, x), classes)
    return row


def mean_sd(values: list[float]) -> tuple[float, float]:
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def summary(rows: list[dict]) -> list[dict]:
    """One entry per (dataset, variant, test): each model's mean and sd over the seeds, and
    ours minus the best of the others (by mean; the peer has one seed) in each score."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        for test, scores in row["tests"].items():
            groups.setdefault((row["dataset"], row["variant"], test), []).append((row, scores))
    result = []
    for (dataset, variant, test), members in groups.items():
        seconds = [row["train_seconds"] for row, _ in members]
        entry = {"dataset": dataset, "variant": variant, "test": test, "seeds": len(members),
                 # Rows measured before train.flip_average existed answered on the photo alone.
                 "flip_average": all(row.get("flip_average", False) for row, _ in members),
                 "train_images": members[0][0]["train_images"],
                 "train_seconds": float(np.mean(seconds))}  # fmt: skip
        for model in (*MODELS, *PROBES):
            present = [scores[model] for _, scores in members if model in scores]
            if present:
                entry[model] = {s: mean_sd([p[s] for p in present]) for s in SCORES}
        margins = {}
        for score in SCORES:
            others = {m: entry[m][score][0] for m in MODELS[:-1] if m in entry}
            best = max(others, key=others.get)
            per_seed = [scores["ours"][score] - max(scores[m][score] for m in others
                        if m in scores and m != "peer") for _, scores in members]  # fmt: skip
            margins[score] = {"over": best, "mean": entry["ours"][score][0] - others[best],
                              "sd": mean_sd(per_seed)[1]}  # fmt: skip
        entry["margin"] = margins
        result.append(entry)
    return result


def table(results: dict) -> str:
    head = (
        f"Commit {results['commit']}, measured {results['date']} on {results['machine']}; "
        f"dense matmul {results['matmul_gflops']:.0f} GFLOP/s; {results['minutes']:.0f} min in "
        f"all; seeds {results['seeds']}{results['variant']}."
    )
    # A probe's column only where some row measured it.
    tests = [test for row in results["rows"] for test in row["tests"].values()]
    shown = (*MODELS, *(probe for probe in PROBES if any(probe in test for test in tests)))
    lines = [
        head, "",
        "Accuracy / macro F1 on the test split, mean ± sd over the seeds; the margin is ours "
        "minus the best other model in each score (by mean; its sd is over the seeds' margins "
        "against the best baseline of each seed).", "",
        "| dataset | test split | train photos | " + " | ".join(LABELS[m] for m in shown)
        + " | ours - best, accuracy | ours - best, macro F1 | ours: train time |",
        "|---|---|---|" + "---|" * len(shown) + "---|---|---|",
    ]  # fmt: skip

    def cell(entry, model):
        if model not in entry:
            return "-"
        (accuracy, a_sd), (f1, f_sd) = (entry[model][s] for s in SCORES)
        spread = f" (±{a_sd:.3f} / ±{f_sd:.3f})" if entry["seeds"] > 1 and model != "peer" else ""
        text = f"{accuracy:.3f} / {f1:.3f}{spread}"
        return f"**{text}**" if model == "ours" else text

    for entry in summary(results["rows"]):
        margins = [
            f"{entry['margin'][s]['mean']:+.3f}"
            + (f" ± {entry['margin'][s]['sd']:.3f}" if entry["seeds"] > 1 else "")
            + f" ({LABELS[entry['margin'][s]['over']]})"
            for s in SCORES
        ]
        name = f"{entry['dataset']} {entry['variant']}" + ("" if entry["flip_average"] else " †")
        lines.append(
            f"| {name} | {entry['test']} | {entry['train_images']} | "
            + " | ".join(cell(entry, m) for m in shown)
            + f" | {margins[0]} | {margins[1]} | {entry['train_seconds']:.0f} s |"
        )
    if not all(entry["flip_average"] for entry in summary(results["rows"])):
        lines += ["", "†: measured before `train.flip_average` (ours answered on each photo "
                  "alone, not averaged with its mirror image)."]  # fmt: skip
    lines += ["", "Per seed (accuracy / macro F1):", "",
              "| dataset | seed | test split | " + " | ".join(LABELS[m] for m in shown) + " |",
              "|---|---|---|" + "---|" * len(shown)]  # fmt: skip
    for row in results["rows"]:
        for test, scores in row["tests"].items():
            cells = [f"{scores[m]['accuracy']:.3f} / {scores[m]['macro_f1']:.3f}" if m in scores
                     else "-" for m in shown]  # fmt: skip
            lines.append(f"| {row['dataset']} {row['variant']} | {row['seed']} | {test} | "
                         + " | ".join(cells) + " |")  # fmt: skip
    return "\n".join(lines) + "\n"


def combine_seeds(runs: list[dict]) -> dict:
    """Runs of this benchmark made apart (seeds or rows) as one table; a row measured again
    (the same dataset, variant and seed, e.g. with the peer) replaces the earlier one.

    A row measured again without the peer (--no-peer) keeps the earlier row's peer scores:
    the peer trains on the same split for our train time, which a change at inference
    (such as train.flip_average) leaves as it was."""
    key = ("dataset", "variant", "seed")
    seeds = dict.fromkeys(str(row["seed"]) for run in runs for row in run["rows"])
    variants = ", ".join(dict.fromkeys(str(run["variant"]) for run in runs))
    peers = {tuple(row[k] for k in key): row for run in runs for row in run["rows"]
             if "peer" in row}  # fmt: skip
    combined = combine(runs, replace_by=key)
    for row in combined["rows"]:
        earlier = peers.get(tuple(row[k] for k in key))
        measured = "peer" in row or any("peer" in scores for scores in row["tests"].values())
        if measured or earlier is None:
            continue
        row["peer"] = earlier["peer"]
        for test, scores in row["tests"].items():
            if "peer" in earlier["tests"].get(test, {}):
                scores["peer"] = earlier["tests"][test]["peer"]
    return combined | {"seeds": ",".join(seeds), "variant": variants}


def write_results(results: dict, out: Path, name: str) -> None:
    (out / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / f"{name}.md").write_text(table(results))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", help="run only datasets whose 'name-variant' contains one of these (a,b,...)"
    )
    parser.add_argument("--seeds", default="42", help="comma-separated base.seed values")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="a param other than the committed one, for every row",
    )
    parser.add_argument("--no-peer", action="store_true", help="skip the peer recipe")
    parser.add_argument("--out", type=Path, default=ROOT / "bench")
    parser.add_argument("--name", default="real_results", help="file name of the results")
    parser.add_argument(
        "--combine", nargs="+", type=Path, metavar="JSON",
        help="write one table of these earlier results (e.g. seeds run apart), run nothing",
    )  # fmt: skip
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.combine:
        results = combine_seeds([json.loads(path.read_text()) for path in args.combine])
        write_results(results, args.out, args.name)
        print(table(results))
        return
    seeds = [int(seed) for seed in args.seeds.split(",")]
    overrides = parse_overrides(args.set)
    started = time.perf_counter()
    results = {
        "date": time.strftime("%Y-%m-%d"), "machine": describe_machine(),
        "matmul_gflops": matmul_gflops(), "commit": git_commit(), "seeds": args.seeds,
        "variant": f"; params {', '.join(args.set)}" if args.set else "", "rows": [],
    }  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-real-") as folder:
        work = Path(folder)
        for dataset in datasets():
            key = f"{dataset.name}-{dataset.variant.name}"
            if args.only and not any(part in key for part in args.only.split(",")):
                continue
            print(f"{key}: writing photos ({dataset.notes})", flush=True)
            photos, extra = dataset.write(work / key, dataset.variant)
            for index, seed in enumerate(seeds):
                print(f"{key}: dvc repro evaluate, seed {seed}", flush=True)
                row = run_row(dataset, photos, extra, work, seed, overrides,
                              peer=index == 0 and not args.no_peer)  # fmt: skip
                results["rows"].append(row)
                print(json.dumps(row), flush=True)
                # Written after every row: a long run that stops keeps what it measured.
                results["minutes"] = (time.perf_counter() - started) / 60
                write_results(results, args.out, args.name)
    print(table(results))


if __name__ == "__main__":
    sys.exit(main())
