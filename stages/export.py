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
from image_classifier.params import ExportParams, read_params

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> None:
    args = parse_paths(
        argv,
        __doc__,
        model="the trained .keras model (its card beside it)",
        resized="the data/resized folder",
        split="the split CSV",
        out="the folder to write",
        metrics="sizes, latencies and agreement JSON to write",
    )
    params = ExportParams.from_params(read_params())
    card = read_card(args.model)
    from image_classifier.model.architectures import load_trained_model
    from image_classifier.model.serving import (
        ARTIFACTS,
        RUNNERS,
        agreement,
        check,
        check_quantized,
        export_format,
        latency_ms,
        probabilities_model,
        quantization_scores,
        size_in_bytes,
    )

    model = load_trained_model(args.model)
    test = load_subset(args.resized, args.split, "test")
    every_test = softmax(model.predict(test.images, batch_size=256, verbose=0), axis=1)
    images = test.images[: params.check_images].astype(np.float32)
    expected = every_test[: params.check_images]
    calibration = None
    if "int8" in params.formats:
        train = load_subset(args.resized, args.split, "train")
        chosen = np.random.default_rng(0).permutation(len(train.labels))
        calibration = train.images[np.sort(chosen[: params.int8_calibration_images])]
    serving = probabilities_model(model)
    keras_latency = latency_ms(serving.predict_on_batch, images[0])
    metrics: dict = {
        "check_images": len(images),
        "keras": {"bytes": size_in_bytes(args.model), "latency_ms": keras_latency},
    }
    with atomic_directory(args.out) as out:
        write_json(out / card_path(args.model).name, card.model_dump())
        for name in params.formats:
            path = out / ARTIFACTS[name]
            export_format(name, serving, card.image_size, path, calibration)
            run = RUNNERS[name](path)
            if name == "int8":
                scores = quantization_scores(
                    test.labels, every_test, run(test.images), card.class_names
                )
                check_quantized(scores, params.int8_min_agreement, params.int8_max_recall_drop)
            else:
                scores = agreement(expected, run(images))
                check(name, scores)
            metrics[name] = {
                "bytes": size_in_bytes(path),
                "latency_ms": latency_ms(run, images[0]),
                **scores,
            }
            if name == "int8":
                worst = scores["largest_recall_drop"]
                log.info(
                    "export: %s, %.1f MB, %.2f ms per image, top-1 agreement with Keras %.2f%% "
                    "on %d test images, largest recall drop %.1f points (%s)",
                    args.out / ARTIFACTS[name], metrics[name]["bytes"] / 1e6,
                    metrics[name]["latency_ms"], 100 * scores["top1_agreement"],
                    scores["images"], 100 * worst["drop"], worst["class"],
                )  # fmt: skip
                continue
            log.info(
                "export: %s, %.1f MB, %.2f ms per image, probabilities within %.1e of Keras",
                args.out / ARTIFACTS[name], metrics[name]["bytes"] / 1e6,
                metrics[name]["latency_ms"], scores["max_probability_difference"],
            )  # fmt: skip
    write_json(args.metrics, metrics)


if __name__ == "__main__":
    run_stage(main)
