"""predict: classify photos with the trained model: the top classes of each, optionally Grad-CAM.

    python -m image_classifier.predict PATH [PATH ...] [--out predictions.csv] [--gradcam DIR]

PATH is a photo, a folder (searched recursively) or a glob. Each photo is decoded and
fitted exactly as the resize stage does it (data/decode.py, with the size and fit in the
model's card, models/model.json), so a test photo gets the prediction evaluate gave it. A
file that cannot be used is listed with its reason (the same reasons as rejected.csv) and
the others are still classified. Not a pipeline stage: nothing in dvc.yaml runs it.
"""

import argparse
import glob
import logging
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from image_classifier.atomic import write_csv
from image_classifier.console import StageError, progress, run_stage
from image_classifier.data.decode import RejectedImage, load_image
from image_classifier.data.filenames import is_image_name
from image_classifier.model.card import ModelCard, read_card
from image_classifier.model.probabilities import softmax
from image_classifier.report.charts import Panel, image_grid_figure, save_figure

log = logging.getLogger(__name__)

GLOB_CHARACTERS = frozenset("*?[")


@dataclass(frozen=True)
class Photo:
    path: Path
    image: np.ndarray | None  # (size, size, 3) uint8, or None when rejected
    reason: str = ""
    detail: str = ""


def find_photos(arguments: list[str]) -> list[Path]:
    """Files as given, folders searched recursively for image files (hidden ones skipped),
    globs expanded; a path or glob that names nothing is kept, to be reported as not found."""
    found: list[Path] = []
    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            found.extend(
                sorted(
                    file
                    for file in path.rglob("*")
                    if file.is_file()
                    and is_image_name(file)
                    and not any(part.startswith(".") for part in file.relative_to(path).parts)
                )
            )
        elif not path.exists() and GLOB_CHARACTERS & set(argument):
            matches = sorted(Path(match) for match in glob.glob(argument, recursive=True))
            found.extend(match for match in matches if match.is_file())
            if not matches:
                found.append(path)
        else:
            found.append(path)
    return list(dict.fromkeys(found))  # each photo once, in the order first named


def decode(path: Path, card: ModelCard) -> Photo:
    try:
        return Photo(path, load_image(path, card.image_size, card.fit, card.max_pixels))
    except RejectedImage as rejected:
        return Photo(path, None, rejected.reason, rejected.detail)


def decode_all(paths: list[Path], card: ModelCard, batch_size: int) -> Iterator[list[Photo]]:
    """Batches of decoded photos, in order; Pillow decodes outside the GIL, so on threads."""
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        decoded = pool.map(lambda path: decode(path, card), paths)
        photos = progress(decoded, "predict", len(paths), "photo")
        batch: list[Photo] = []
        for photo in photos:
            batch.append(photo)
            if len(batch) == batch_size:
                yield batch
                batch = []
        if batch:
            yield batch


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


def result_table(photos: list[Photo], probabilities: np.ndarray, card: ModelCard, k: int):
    """One row per photo: path, its top-k classes, and reason/detail when it was rejected."""
    used = [photo.image is not None for photo in photos]
    top = top_classes(probabilities, card.class_names, k)
    top.index = np.flatnonzero(used)
    table = pd.DataFrame(
        {
            "path": [str(photo.path) for photo in photos],
            "reason": [photo.reason for photo in photos],
            "detail": [photo.detail for photo in photos],
        }
    )
    return pd.concat([table[["path"]], top, table[["reason", "detail"]]], axis=1)


def printable(table: pd.DataFrame, k: int) -> str:
    """The table as a person reads it: `cat 91% · dog 6%`, or why a photo was not used."""

    def describe(row) -> str:
        if row["reason"]:
            return f"not used: {row['reason']} ({row['detail']})"
        return " · ".join(
            f"{row[f'class_{rank}']} {row[f'probability_{rank}']:.0%}" for rank in range(1, k + 1)
        )

    width = max([len("photo"), *map(len, table["path"])])
    lines = [f"{'photo':<{width}}  prediction"]
    lines += [f"{row['path']:<{width}}  {describe(row)}" for _, row in table.iterrows()]
    return "\n".join(lines)


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
    args = parser.parse_args(argv)
    if args.top_k < 1 or args.batch_size < 1:
        parser.error("--top-k and --batch-size must be at least 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_arguments(argv)
    # The model and its card first: without them there is nothing to do.
    card = read_card(args.model)
    from image_classifier.model.architectures import load_trained_model
    from image_classifier.model.attribution import last_conv_layer

    model = load_trained_model(args.model)
    paths = find_photos(args.paths)
    k = min(args.top_k, len(card.class_names))
    layer = last_conv_layer(model) if args.gradcam else None
    if args.gradcam:
        args.gradcam.mkdir(parents=True, exist_ok=True)
    taken: set[str] = set()
    photos: list[Photo] = []
    probabilities: list[np.ndarray] = []
    for batch in decode_all(paths, card, args.batch_size):
        photos.extend(batch)
        usable = [photo for photo in batch if photo.image is not None]
        if not usable:
            continue
        logits = model.predict(np.stack([photo.image for photo in usable]), verbose=0)
        batch_probabilities = softmax(logits)
        probabilities.append(batch_probabilities)
        if args.gradcam:
            save_heatmaps(model, layer, usable, batch_probabilities, card, args.gradcam, taken)
    classes = len(card.class_names)
    stacked = np.concatenate(probabilities) if probabilities else np.zeros((0, classes))
    table = result_table(photos, stacked, card, k)
    write_csv(args.out, table)
    print(printable(table, k))
    rejected = int((table["reason"] != "").sum())
    log.info(
        "predict: %d photos classified, %d not used -> %s%s",
        len(table) - rejected, rejected, args.out,
        f", Grad-CAM in {args.gradcam}" if args.gradcam else "",
    )  # fmt: skip
    if rejected == len(table):
        raise StageError(f"none of the {len(table)} files named is a usable photo")


def cli() -> None:
    """The console script `image-classifier-predict`."""
    run_stage(main, name="predict")


if __name__ == "__main__":
    cli()
