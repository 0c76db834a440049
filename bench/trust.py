"""The trust benchmark: calibration, the unsure answer, the int8 export, and the comparison
of two runs, measured on the embedded data and on real-photo sets.

    python -m bench.trust   # embedded, lookalikes-aligned, textures-balanced, fashion-mnist-small
    python -m bench.trust --only embedded
    python -m bench.trust --combine bench/trust_results.json new.json   # rows run apart

For each dataset, a clone runs `dvc repro evaluate export` at the committed params
(`data.source: folder` for a bench.real set), and the table gives: the calibration error
(ECE) of the test answers before and after train's temperature, the share of test answers
marked unsure and the accuracy of the others, the share of photos from another dataset
that `predict` marks unsure (photos of things the model has no class for), and the int8
export's size, latency, top-1 agreement with Keras and largest per-class recall drop.
Where a set can give them, the calibration is also measured on 3,000 more photos like its
test split that the pipeline never saw: a few hundred test photos cannot tell an ECE of
0.03 from one of 0.04 (the table gives each estimate's noise floor).
On the embedded data it also trains the sweep's best pair as a DVC experiment and runs
`python -m image_classifier.compare main <experiment>` on it, the committed run against
that experiment, image by image. Writes bench/trust_results.{md,json}.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from scipy.special import softmax

from bench.real_photos import datasets, fashion_mnist, write_held_out
from bench.record import Results, add_combine_option, combine_files, markdown_table
from bench.workspace import ROOT, clone, command_env, dvc, set_params
from image_classifier.model.card import read_card

DEFAULT = "embedded,lookalikes-aligned,textures-balanced,fashion-mnist-small"
OTHER_PHOTOS = 300  # photos of another dataset shown to each model
HELD_OUT_PHOTOS = 3000  # unseen photos like the test split's, where a set can give them


def other_photos(target: Path, dataset: str, seed: int = 0) -> Path:
    """Photos the model has no class for: Fashion-MNIST products for the embedded animals'
    model, Animal-MNIST silhouettes for the others, and in both cases the photographs in
    scikit-image's and scikit-learn's packages (a cat, an astronaut, coffee, a temple...)."""
    from skimage import data
    from sklearn.datasets import load_sample_images

    target.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    if dataset == "embedded":
        images, _ = fashion_mnist()
    else:
        from animal_mnist.dataset_Loader import load_animal_mnist_dataset

        images, _ = load_animal_mnist_dataset()
    for index in rng.choice(len(images), OTHER_PHOTOS, replace=False):
        Image.fromarray(np.asarray(images[index]).squeeze().astype(np.uint8)).save(
            target / f"other-{index}.png"
        )
    photos = [
        "astronaut",
        "coffee",
        "chelsea",
        "rocket",
        "camera",
        "moon",
        "page",
        "horse",
        "clock",
        "coins",
        "immunohistochemistry",
        "retina",
        "hubble_deep_field",
    ]
    for name in photos:
        picture = getattr(data, name)()
        if picture.dtype != np.uint8:
            picture = (255 * (picture / picture.max())).astype(np.uint8)
        Image.fromarray(picture[..., :3] if picture.ndim == 3 else picture).save(
            target / f"photo-{name}.png"
        )
    for number, picture in enumerate(load_sample_images().images):
        Image.fromarray(picture).save(target / f"photo-sample-{number}.png")
    return target


def ece_noise_floor(confidence: np.ndarray, draws: int = 200) -> float:
    """The ECE a perfectly calibrated model with these confidences would show on this many
    images: each answer right with the probability it states (mean of `draws`). On a few
    hundred images the estimate itself is that far from 0."""
    from image_classifier.model.calibration import binned

    rng = np.random.default_rng(0)
    eces = [binned(confidence, rng.random(len(confidence)) < confidence).ece for _ in range(draws)]
    return round(float(np.mean(eces)), 4)


def held_out_calibration(repo: Path, photos: Path) -> dict:
    """The trained model's calibration on photos the pipeline never saw, many more than its
    test split: the ECE before and after its temperature, with the estimate's noise floor."""
    from image_classifier.data.decode import load_image
    from image_classifier.model.architectures import load_trained_model
    from image_classifier.model.calibration import calibration_report

    model_path = repo / "models/model.keras"
    card, model = read_card(model_path), load_trained_model(model_path)
    paths = sorted(photos.rglob("*.png"))
    labels = np.array([card.class_names.index(path.parent.name) for path in paths])
    images = np.stack(
        [load_image(path, card.image_size, card.fit, card.max_pixels) for path in paths]
    )
    logits = np.asarray(model.predict(images, batch_size=256, verbose=0), np.float64)
    applied = json.loads((repo / "metrics/train.json").read_text())["calibration"]
    metrics, _ = calibration_report(logits, labels, card.unsure_below, applied)
    confidence = softmax(logits, axis=1).max(axis=1)
    return {
        "images": len(paths),
        "accuracy": round(float((logits.argmax(1) == labels).mean()), 4),
        **metrics,
        "ece_noise_floor": ece_noise_floor(confidence),
    }


def predict_unsure(repo: Path, photos: Path) -> dict:
    """`predict` on a folder, as a user runs it: the share of answers marked unsure."""
    out = repo / "other-predictions.csv"
    subprocess.run(
        [sys.executable, "-m", "image_classifier.predict", str(photos), "--out", str(out)],
        cwd=repo,
        env=command_env(),
        check=True,
        capture_output=True,
        text=True,
    )
    table = pd.read_csv(out, keep_default_na=False)
    table = table[table["reason"] == ""]
    photos_only = table[table["path"].str.contains("photo-")]
    unsure = table["unsure"].astype(str) == "True"
    return {
        "images": len(table),
        "unsure_share": round(float(unsure.mean()), 4),
        "photographs_unsure": f"{int(unsure[photos_only.index].sum())} of {len(photos_only)}",
        "median_confidence": round(float(table["probability_1"].astype(float).median()), 4),
    }


def compare_with_the_sweeps_best(repo: Path) -> dict:
    """The sweep's best pair trained in full as an experiment, compared with the run as
    committed, image by image."""
    best = json.loads((repo / "metrics/sweep.json").read_text())["best"]
    for key, value in (("user.name", "bench"), ("user.email", "bench@example.com")):
        subprocess.run(["git", "config", key, value], cwd=repo, check=True)
    dvc(
        "exp",
        "run",
        "-n",
        "sweep-best",
        "-S",
        f"train.learning_rate={best['learning_rate']}",
        "-S",
        f"train.batch_size={best['batch_size']}",
        cwd=repo,
    )
    result = subprocess.run(
        [sys.executable, "-m", "image_classifier.compare", "main", "sweep-best"],
        cwd=repo,
        env=command_env(),
        check=True,
        capture_output=True,
        text=True,
    )
    comparison = json.loads((repo / "comparison/comparison.json").read_text())
    return {"pair": best, "printed": result.stdout.strip(), **comparison}


def run_dataset(name: str, work: Path) -> dict:
    repo = clone(work / name)
    if name != "embedded":
        dataset = next(d for d in datasets() if f"{d.name}-{d.variant.name}" == name)
        photos, _ = dataset.write(work / f"{name}-photos", dataset.variant)
        set_params(repo, data={"source": "folder", "folder": str(photos)})
    # int8 is opt-in: export it, with its gate open, to measure what the gate would see.
    set_params(
        repo,
        export={
            "formats": ["saved_model", "tflite", "int8", "onnx"],
            "int8_min_agreement": 0.0,
            "int8_max_recall_drop": 1.0,
        },
    )
    started = time.perf_counter()
    dvc("repro", *(["evaluate", "export"] if name != "embedded" else []), cwd=repo)
    row = {"dataset": name, "repro_seconds": round(time.perf_counter() - started, 1)}
    evaluation = json.loads((repo / "metrics/evaluate.json").read_text())
    export = json.loads((repo / "metrics/export.json").read_text())
    row |= {
        "accuracy": evaluation["accuracy"],
        "test_images": evaluation["images"],
        "calibration": evaluation["calibration"],
        "ece_noise_floor": ece_noise_floor(
            pd.read_csv(repo / "plots/evaluate/predictions.csv")["confidence"].to_numpy()
        ),
        "unsure": evaluation["unsure"],
        "int8": export["int8"],
        "float_tflite": {key: export["tflite"][key] for key in ("bytes", "latency_ms")},
        "other_photos": predict_unsure(repo, other_photos(work / f"{name}-other", name)),
    }
    if name != "embedded":
        held_out = write_held_out(dataset, photos, work / f"{name}-held-out", HELD_OUT_PHOTOS)
        if held_out:
            row["held_out"] = held_out_calibration(repo, held_out)
    if name == "embedded":
        row["comparison"] = compare_with_the_sweeps_best(repo)
    print(json.dumps(row), flush=True)
    return row


def calibration_row(row: dict) -> dict:
    calibration, unsure, other = row["calibration"], row["unsure"], row["other_photos"]
    rest = unsure["accuracy_when_sure"]
    return {
        "dataset": row["dataset"],
        "test images": row["test_images"],
        "test accuracy": f"{row['accuracy']:.4f}",
        "temperature": f"{calibration['temperature']:.3f}",
        "ECE before": f"{calibration['ece_before']:.4f}",
        "ECE after": f"{calibration['ece_after']:.4f}",
        "ECE floor": f"{row['ece_noise_floor']:.4f}",
        "unsure below": f"{unsure['threshold']:.0%}",
        "test answers unsure": f"{unsure['unsure_share']:.1%}",
        "accuracy of the rest": f"{rest:.4f}" if rest is not None else "-",
        "other photos unsure (of which photographs)": f"{other['unsure_share']:.1%} of "
        f"{other['images']} ({other['photographs_unsure']})",
    }


def held_out_row(row: dict) -> dict:
    scores, unsure = row["held_out"], row["held_out"]["unsure"]
    return {
        "dataset": row["dataset"],
        "photos": scores["images"],
        "accuracy": f"{scores['accuracy']:.4f}",
        "ECE before": f"{scores['calibration']['ece_before']:.4f}",
        "ECE after": f"{scores['calibration']['ece_after']:.4f}",
        "ECE floor": f"{scores['ece_noise_floor']:.4f}",
        "answers unsure": f"{unsure['unsure_share']:.1%}",
        "accuracy of the rest": f"{unsure['accuracy_when_sure']:.4f}",
    }


def int8_row(row: dict) -> dict:
    int8, float_ = row["int8"], row["float_tflite"]
    worst = int8["largest_recall_drop"]
    return {
        "dataset": row["dataset"],
        "int8 size": f"{int8['bytes'] / 1e3:.0f} kB",
        "float size": f"{float_['bytes'] / 1e3:.0f} kB",
        "int8 latency": f"{int8['latency_ms']:.2f} ms",
        "float latency": f"{float_['latency_ms']:.2f} ms",
        "top-1 agreement": f"{int8['top1_agreement']:.2%}",
        "accuracy Keras / int8": f"{int8['accuracy']['keras']:.4f} / "
        f"{int8['accuracy']['int8']:.4f}",
        "largest recall drop": f"{100 * worst['drop']:.1f} points ({worst['class']})",
    }


def table(results: dict) -> str:
    rows = results["rows"]
    lines = [
        Results.heading(results),
        "",
        "ECE: the expected calibration error of the test answers (15 equal-width bins); the "
        "floor is the ECE a perfectly calibrated model with the same confidences would show on "
        "that many images (the estimate's own noise).",
        "",
        markdown_table([calibration_row(row) for row in rows]),
    ]
    held_out = [row for row in rows if "held_out" in row]
    if held_out:
        lines += [
            "",
            f"The same models on {HELD_OUT_PHOTOS:,} more photos like each test split "
            "that the pipeline never saw (unused Fashion-MNIST photos, new parts), where "
            "the ECE's noise floor is lower:",
            "",
            markdown_table([held_out_row(row) for row in held_out]),
        ]
    lines += [
        "",
        "int8 LiteRT export (full-integer, calibrated on 200 train images), on the "
        "whole test split, against the float LiteRT file. The latencies are per photo on "
        "this machine's CPU; runs may have shared its cores, so compare int8 with float "
        "within a row only.",
        "",
        markdown_table([int8_row(row) for row in rows]),
    ]
    for row in rows:
        if "comparison" in row:
            pair = row["comparison"]["pair"]
            lines += [
                "",
                "`python -m image_classifier.compare main sweep-best` on "
                f"{row['dataset']} (sweep-best: lr {pair['learning_rate']}, batch "
                f"{pair['batch_size']}, trained in full):",
                "",
                "```",
                row["comparison"]["printed"],
                "```",
            ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=DEFAULT, help="embedded and/or bench.real names")
    parser.add_argument("--out", type=Path, default=ROOT / "bench")
    add_combine_option(parser)
    args = parser.parse_args()
    results = Results(args.out, "trust_results", table)
    if args.combine:
        results.write(combine_files(args.combine, replace_by=("dataset",)))
        return
    with results.run() as (record, work):
        for name in args.only.split(","):
            record(run_dataset(name, work))


if __name__ == "__main__":
    sys.exit(main())
