"""export: the trained model for serving, each format checked against the Keras model.

Writes into --out (models/export/):
  saved_model/   TensorFlow SavedModel (Keras' ExportArchive): endpoint `serve` takes float32
                 images, `serve_uint8` uint8 ones, both (n, size, size, 3) RGB 0-255, and
                 both return class probabilities
  model.tflite   LiteRT/TFLite (Keras' `model.export`): float32 images in, probabilities out
  model.onnx     ONNX (Keras' `model.export`, through tf2onnx): the same, for ONNX Runtime
  model.json     the model's card: class names (in output order) and input contract
and to --metrics, per format: size, single-image latency, and how far its probabilities are
from the Keras model's on `export.check_images` test images. An export that disagrees with
the model stops the stage.
"""

import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from stages.cli import StageError, parse_paths, run_stage
from stages.data import load_subset
from stages.files import atomic_directory, write_json
from stages.model_card import card_path, read_card
from stages.params import ExportParams, read_params
from stages.predictions import softmax

log = logging.getLogger(__name__)

ARTIFACTS = {"saved_model": "saved_model", "tflite": "model.tflite", "onnx": "model.onnx"}
LATENCY_RUNS = 30
# Stop when an export is further from the model than float32 arithmetic explains.
MAX_DIFFERENCE = 1e-3

Runner = Callable[[np.ndarray], np.ndarray]  # images (n, size, size, 3) -> probabilities


def probabilities_model(model):
    """The trained model with a softmax on its logits: what a server wants to return."""
    import keras

    probabilities = keras.layers.Softmax(name="probabilities", dtype="float32")(model.output)
    return keras.Model(model.inputs, probabilities, name=f"{model.name}_probabilities")


def export_saved_model(serving, size: int, path: Path) -> None:
    import keras
    import tensorflow as tf

    def spec(dtype):
        return [tf.TensorSpec((None, size, size, 3), dtype, name="images")]

    archive = keras.export.ExportArchive()
    archive.track(serving)
    archive.add_endpoint(
        "serve", lambda images: serving(images, training=False), input_signature=spec(tf.float32)
    )
    archive.add_endpoint(
        "serve_uint8",
        lambda images: serving(tf.cast(images, tf.float32), training=False),
        input_signature=spec(tf.uint8),
    )
    archive.write_out(str(path), verbose=False)


def export_tflite(serving, path: Path) -> None:
    serving.export(str(path), format="litert", verbose=False)


def export_onnx(serving, path: Path) -> None:
    serving.export(str(path), format="onnx", verbose=False)


def saved_model_runner(path: Path, endpoint: str = "serve") -> Runner:
    """The SavedModel as TensorFlow Serving would run it: tf.saved_model.load, no Keras."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))  # held by the closure: its variables must live
    dtype = tf.uint8 if endpoint == "serve_uint8" else tf.float32
    return lambda images: getattr(loaded, endpoint)(tf.constant(images, dtype)).numpy()


def tflite_runner(path: Path) -> Runner:
    """The .tflite file in the TFLite interpreter, sized to each batch."""
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_path=str(path))
    source = interpreter.get_input_details()[0]["index"]
    target = interpreter.get_output_details()[0]["index"]

    def run(images: np.ndarray) -> np.ndarray:
        interpreter.resize_tensor_input(source, images.shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(source, images.astype(np.float32))
        interpreter.invoke()
        return interpreter.get_tensor(target).copy()

    return run


def onnx_runner(path: Path) -> Runner:
    """The .onnx file in ONNX Runtime, on the CPU."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    source = session.get_inputs()[0].name
    return lambda images: session.run(None, {source: images.astype(np.float32)})[0]


RUNNERS: dict[str, Callable[[Path], Runner]] = {
    "saved_model": saved_model_runner,
    "tflite": tflite_runner,
    "onnx": onnx_runner,
}


def size_in_bytes(path: Path) -> int:
    if path.is_dir():
        return sum(file.stat().st_size for file in path.rglob("*") if file.is_file())
    return path.stat().st_size


def latency_ms(run: Runner, image: np.ndarray) -> float:
    """Median wall time of one single-image call, after a warm-up call."""
    run(image[None])
    times = []
    for _ in range(LATENCY_RUNS):
        started = time.perf_counter()
        run(image[None])
        times.append(time.perf_counter() - started)
    return round(1000 * float(np.median(times)), 3)


def agreement(expected: np.ndarray, actual: np.ndarray) -> dict:
    """How close an export's probabilities are to the model's on the same images."""
    return {
        "max_probability_difference": float(np.abs(expected - actual).max()),
        "top1_agreement": round(float((expected.argmax(1) == actual.argmax(1)).mean()), 4),
    }


def check(name: str, scores: dict) -> None:
    difference = scores["max_probability_difference"]
    if difference > MAX_DIFFERENCE:
        raise StageError(
            f"the {name} export's probabilities differ from the Keras model's by up to "
            f"{difference:.2g} on test images (allowed {MAX_DIFFERENCE}): do not serve it; "
            "report it with the TensorFlow version"
        )


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
    from stages.models import load_trained_model

    model = load_trained_model(args.model)
    test = load_subset(args.resized, args.split, "test")
    images = test.images[: params.check_images].astype(np.float32)
    expected = softmax(model.predict(images, verbose=0))
    serving = probabilities_model(model)
    keras_latency = latency_ms(serving.predict_on_batch, images[0])
    metrics: dict = {
        "check_images": len(images),
        "keras": {"bytes": size_in_bytes(args.model), "latency_ms": keras_latency},
    }
    exporters = {
        "saved_model": lambda path: export_saved_model(serving, card.image_size, path),
        "tflite": lambda path: export_tflite(serving, path),
        "onnx": lambda path: export_onnx(serving, path),
    }
    with atomic_directory(args.out) as out:
        write_json(out / card_path(args.model).name, card.model_dump())
        for name in params.formats:
            path = out / ARTIFACTS[name]
            exporters[name](path)
            run = RUNNERS[name](path)
            scores = agreement(expected, run(images))
            check(name, scores)
            metrics[name] = {
                "bytes": size_in_bytes(path),
                "latency_ms": latency_ms(run, images[0]),
                **scores,
            }
            log.info(
                "export: %s, %.1f MB, %.2f ms per image, probabilities within %.1e of Keras",
                args.out / ARTIFACTS[name], metrics[name]["bytes"] / 1e6,
                metrics[name]["latency_ms"], scores["max_probability_difference"],
            )  # fmt: skip
    write_json(args.metrics, metrics)


if __name__ == "__main__":
    run_stage(main)
