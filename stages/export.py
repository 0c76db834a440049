"""export: the trained model for serving, each format checked against the Keras model.

Writes into --out (models/export/) one file per format in export.formats (SavedModel,
LiteRT, int8 LiteRT, ONNX; see image_classifier/model/serving.py) and the model's card,
and to --metrics, per format: size, single-image latency, and how far its probabilities
are from the Keras model's on `export.check_images` test images. The int8 export is judged
on the whole test split instead: its top-1 agreement with Keras and every class's recall.
An export that disagrees stops the stage.
"""

import logging

import numpy as np
from scipy.special import softmax

from image_classifier.atomic import atomic_directory, write_json
from image_classifier.console import parse_paths, run_stage
from image_classifier.data.dataset import load_subset
from image_classifier.model.card import card_path, read_card
from image_classifier.params import BaseParams, EvaluateParams, ExportParams, read_params

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> None:
    args = parse_paths(
        argv,
        __doc__,
        "model",
        "resized",
        "split",
        out="the folder to write",
        metrics="sizes, latencies and agreement JSON to write",
    )
    params = read_params()
    base, export = BaseParams.from_params(params), ExportParams.from_params(params)
    evaluate = EvaluateParams.from_params(params)  # its inference batch size
    card = read_card(args.model)
    from image_classifier.model import serving
    from image_classifier.model.architectures import load_trained_model

    model = load_trained_model(args.model)
    test = load_subset(args.resized, args.split, "test")
    probabilities = softmax(
        model.predict(test.images, batch_size=evaluate.batch_size, verbose=0), axis=1
    )
    check_images = min(export.check_images, len(test.labels))
    reference = serving.Reference(
        test.images, test.labels, probabilities, check_images, card.class_names
    )
    calibration = int8_calibration_images(args, export, base.seed)
    served, image = serving.probabilities_model(model), test.images[0].astype(np.float32)
    metrics: dict = {
        "check_images": check_images,
        "keras": serving.footprint(args.model, served.predict_on_batch, image),
    }
    with atomic_directory(args.out) as out:
        write_json(out / card_path(args.model).name, card.model_dump())
        for name in export.formats:
            path = out / serving.ARTIFACTS[name]
            serving.export_format(name, served, card.image_size, path, calibration)
            run = serving.RUNNERS[name](path)
            scores, summary = serving.judge(
                name, run, reference, export.int8_min_agreement, export.int8_max_recall_drop
            )
            metrics[name] = serving.footprint(path, run, image) | scores
            log.info(
                "export: %s, %.1f MB, %.2f ms per image, %s",
                args.out / serving.ARTIFACTS[name],
                metrics[name]["bytes"] / 1e6,
                metrics[name]["latency_ms"],
                summary,
            )
    write_json(args.metrics, metrics)


def int8_calibration_images(args, export: ExportParams, seed: int) -> np.ndarray | None:
    """A random sample of train images (base.seed), for the int8 export's activation ranges."""
    if "int8" not in export.formats:
        return None
    train = load_subset(args.resized, args.split, "train")
    chosen = np.random.default_rng(seed).permutation(len(train.labels))
    return train.images[np.sort(chosen[: export.int8_calibration_images])]


if __name__ == "__main__":
    run_stage(main)
