"""predict: classify photos with the trained model: the top classes of each, optionally Grad-CAM.

    python -m image_classifier.predict PATH [PATH ...] [--out predictions.csv] [--gradcam DIR]

PATH is a photo, a folder (searched recursively) or a glob. Each photo is decoded and
fitted exactly as the resize stage does it (data/decode.py, with the size and fit in the
model's card, models/model.json), so a test photo gets the prediction evaluate gave it. A
file that cannot be used is listed with its reason (the same reasons as rejected.csv) and
the others are still classified. The probabilities are calibrated (train folds a
temperature into the model), and an answer below the card's `unsure_below` confidence
(chosen on val by train; `--min-confidence` overrides it) is marked unsure. Not a pipeline
stage: nothing in dvc.yaml runs it.
"""

import argparse
import glob
import logging
import os
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import softmax

from image_classifier.atomic import atomic_path
from image_classifier.console import StageError, progress, run_stage
from image_classifier.data.decode import RejectedImage, load_image
from image_classifier.data.filenames import is_image_name
from image_classifier.model.card import ModelCard, card_path, read_card
from image_classifier.report.charts import Panel, image_grid_figure, save_figure

log = logging.getLogger(__name__)

GLOB_CHARACTERS = frozenset("*?[")


@dataclass(frozen=True)
class Photo:
    path: Path
    image: np.ndarray | None  # (size, size, 3) uint8, or None when rejected
    reason: str = ""
    detail: str = ""


@dataclass(frozen=True)
class Found:
    paths: list[Path]  # photos to classify, each once, in the order first named
    not_photos: Counter  # files in the folders named that are not photos, by suffix


def find_photos(arguments: list[str]) -> Found:
    """Files as given, folders searched recursively for image files (hidden ones skipped),
    globs expanded; a path or glob that names nothing is kept, to be reported as not found."""
    found: list[Path] = []
    not_photos: Counter = Counter()
    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            files = [
                file
                for file in sorted(path.rglob("*"))
                if file.is_file()
                and not any(part.startswith(".") for part in file.relative_to(path).parts)
            ]
            found.extend(file for file in files if is_image_name(file))
            not_photos.update(
                file.suffix.lower() or file.name for file in files if not is_image_name(file)
            )
        elif not path.exists() and GLOB_CHARACTERS & set(argument):
            matches = sorted(Path(match) for match in glob.glob(argument, recursive=True))
            found.extend(match for match in matches if match.is_file())
            if not matches:
                found.append(path)
        else:
            found.append(path)
    return Found(list(dict.fromkeys(found)), not_photos)


def decode(path: Path, card: ModelCard) -> Photo:
    try:
        return Photo(path, load_image(path, card.image_size, card.fit, card.max_pixels))
    except RejectedImage as rejected:
        return Photo(path, None, rejected.reason, rejected.detail)


def decode_all(paths: list[Path], card: ModelCard, batch_size: int) -> Iterator[list[Photo]]:
    """Batches of decoded photos, in order. Pillow decodes outside the GIL, so on threads;
    the next batch is decoded while this one is predicted, and no more, so memory stays flat
    whatever the number of photos."""
    batches = [paths[start : start + batch_size] for start in range(0, len(paths), batch_size)]
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:

        def submit(index: int) -> list:
            batch = batches[index] if index < len(batches) else []
            return [pool.submit(decode, path, card) for path in batch]

        ahead = submit(0)
        with progress(None, "predict", len(paths), "photo") as bar:
            for index in range(len(batches)):
                current, ahead = ahead, submit(index + 1)
                photos = [future.result() for future in current]
                bar.update(len(photos))
                yield photos


def top_classes(probabilities: np.ndarray, class_names: list[str], k: int) -> pd.DataFrame:
    """class_1, probability_1, ... class_k, probability_k: the k most probable, best first."""
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    names = np.asarray(class_names)
    columns = {}
    for rank in range(k):
        columns[f"class_{rank + 1}"] = names[order[:, rank]]
        picked = np.take_along_axis(probabilities, order[:, rank : rank + 1], axis=1)[:, 0]
        columns[f"probability_{rank + 1}"] = picked.round(4)
    return pd.DataFrame(columns)


def result_table(
    photos: list[Photo], probabilities: np.ndarray, card: ModelCard, k: int, min_confidence: float
):
    """One row per photo: path, whether the answer is unsure (its top probability below
    `min_confidence`), its top-k classes, and reason/detail when it was rejected."""
    used = [photo.image is not None for photo in photos]
    top = top_classes(probabilities, card.class_names, k)
    top.index = np.flatnonzero(used)
    unsure = pd.Series(probabilities.max(axis=1, initial=0) < min_confidence, index=top.index)
    table = pd.DataFrame(
        {
            "path": [str(photo.path) for photo in photos],
            "unsure": unsure.reindex(range(len(photos)), fill_value=False).astype(bool),
            "reason": [photo.reason for photo in photos],
            "detail": [photo.detail for photo in photos],
        }
    )
    return pd.concat([table[["path", "unsure"]], top, table[["reason", "detail"]]], axis=1)


def printable(table: pd.DataFrame, k: int, width: int) -> list[str]:
    """The rows as a person reads them: `cat 91% · dog 6%`, or why a photo was not used."""

    def describe(row) -> str:
        if row["reason"]:
            return f"not used: {row['reason']} ({row['detail']})"
        answer = " · ".join(
            f"{row[f'class_{rank}']} {row[f'probability_{rank}']:.0%}" for rank in range(1, k + 1)
        )
        return f"unsure: {answer}" if row["unsure"] else answer

    return [f"{row['path']:<{width}}  {describe(row)}" for _, row in table.iterrows()]


def check_against_card(model, card: ModelCard, model_path: Path) -> None:
    """A model and a card from different runs would print confident nonsense."""
    outputs, size = model.output.shape[-1], tuple(model.input.shape[1:3])
    problem = None
    if outputs != len(card.class_names):
        problem = f"has {outputs} outputs but its card names {len(card.class_names)} classes"
    elif size != (card.image_size, card.image_size):
        problem = f"takes {size[0]}x{size[1]} images but its card says {card.image_size}"
    if problem:
        raise StageError(
            f"{model_path} {problem} ({card_path(model_path)}): they are from different runs; "
            "fetch both again (`dvc repro train`, `dvc pull` or `dvc artifacts get`)"
        )


def check_out(out: Path) -> None:
    if out.is_dir():
        raise StageError(
            f"--out {out} is a folder: give the CSV's file name, e.g. {out / 'predictions.csv'}"
        )


def not_photos_note(found: Found) -> str:
    if not found.not_photos:
        return ""
    kinds = ", ".join(f"{count} {suffix}" for suffix, count in found.not_photos.most_common())
    hint = " (convert HEIC photos to JPEG first)" if ".heic" in found.not_photos else ""
    return f"; skipped {sum(found.not_photos.values())} files that are not photos: {kinds}{hint}"


def heatmap_file(out: Path, path: Path, taken: set[str]) -> Path:
    """out/<photo name>.png, numbered when two photos share a name."""
    name, number = path.stem, 1
    while name in taken:
        number += 1
        name = f"{path.stem}-{number}"
    taken.add(name)
    return out / f"{name}.png"


def save_heatmaps(model, layer, photos, probabilities, card, out: Path, taken: set[str]) -> None:
    from image_classifier.model.attribution import gradcam_heatmap

    images = np.stack([photo.image for photo in photos])
    predicted = probabilities.argmax(axis=1)
    heatmaps = gradcam_heatmap(model, images, predicted, layer)
    for photo, image, heatmap, index, row in zip(
        photos, images, heatmaps, predicted, probabilities, strict=True
    ):
        caption = f"{card.class_names[index]} ({row[index]:.0%})"
        panels = [Panel(image, "as the model sees it"), Panel(image, caption, heatmap)]
        title = f"{photo.path.name}: Grad-CAM at {layer}\nwarm colours = evidence for {caption}"
        figure = image_grid_figure([panels], title, columns=2)
        save_figure(figure, heatmap_file(out, photo.path, taken), dpi=100)


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", help="photos, folders or globs")
    parser.add_argument("--model", type=Path, default=Path("models/model.keras"))
    parser.add_argument("--out", type=Path, default=Path("predictions.csv"), help="CSV to write")
    parser.add_argument("--top-k", type=int, default=3, help="classes shown per photo")
    parser.add_argument("--gradcam", type=Path, help="folder for one Grad-CAM PNG per photo")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--min-confidence",
        type=float,
        metavar="P",
        help="mark answers whose top probability is below P (0-1) unsure (default: the "
        "threshold train chose on val, `unsure_below` in the model's card)",
    )
    args = parser.parse_args(argv)
    if args.top_k < 1 or args.batch_size < 1:
        parser.error("--top-k and --batch-size must be at least 1")
    if args.min_confidence is not None and not 0 <= args.min_confidence <= 1:
        parser.error(f"--min-confidence must be between 0 and 1, not {args.min_confidence}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_arguments(argv)
    check_out(args.out)
    # The model's card and the photos first: without them there is nothing to do.
    card = read_card(args.model)
    found = find_photos(args.paths)
    if not found.paths:
        raise StageError(f"the paths named hold no photos{not_photos_note(found)}")
    from image_classifier.model.architectures import load_trained_model
    from image_classifier.model.attribution import last_conv_layer

    model = load_trained_model(args.model)
    check_against_card(model, card, args.model)
    k = min(args.top_k, len(card.class_names))
    min_confidence = card.unsure_below if args.min_confidence is None else args.min_confidence
    layer = last_conv_layer(model) if args.gradcam else None
    if args.gradcam:
        args.gradcam.mkdir(parents=True, exist_ok=True)
    taken: set[str] = set()
    width = max(len("photo"), *(len(str(path)) for path in found.paths))
    print(f"{'photo':<{width}}  prediction")
    reasons: Counter = Counter()
    unsure = 0
    # Written a batch at a time into a temporary that replaces --out only at the end: a run
    # that finds nothing usable leaves the previous CSV as it was.
    with atomic_path(args.out) as temporary, temporary.open("w", newline="") as out:
        for number, batch in enumerate(decode_all(found.paths, card, args.batch_size)):
            usable = [photo for photo in batch if photo.image is not None]
            probabilities = np.zeros((0, len(card.class_names)))
            if usable:
                logits = model.predict(np.stack([photo.image for photo in usable]), verbose=0)
                probabilities = softmax(logits, axis=1)
                if args.gradcam:
                    save_heatmaps(model, layer, usable, probabilities, card, args.gradcam, taken)
            table = result_table(batch, probabilities, card, k, min_confidence)
            table.to_csv(out, header=number == 0, index=False)
            print("\n".join(printable(table, k, width)), flush=True)
            reasons.update(photo.reason or "classified" for photo in batch)
            unsure += int(table["unsure"].sum())
        classified = reasons.pop("classified", 0)
        if not classified:
            why = ", ".join(f"{count} {reason}" for reason, count in reasons.most_common())
            raise StageError(
                f"none of the {sum(reasons.values())} files named is a usable photo ({why})"
                f"{not_photos_note(found)}; {args.out} is left as it was"
            )
    log.info(
        "predict: %d photos classified (%d unsure: below %.0f%% confidence), %d not used -> %s%s%s",
        classified,
        unsure,
        100 * min_confidence,
        sum(reasons.values()),
        args.out,
        f", Grad-CAM in {args.gradcam}" if args.gradcam else "",
        not_photos_note(found),
    )


def cli() -> None:
    """The console script `image-classifier-predict`."""
    run_stage(main, name="predict")


if __name__ == "__main__":
    cli()
