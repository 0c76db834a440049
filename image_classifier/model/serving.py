"""The trained model for serving: one file per format, each run back in its own runtime.

saved_model/   TensorFlow SavedModel (Keras' ExportArchive): endpoint `serve` takes float32
               images, `serve_uint8` uint8 ones, both (n, size, size, 3) RGB 0-255, and
               both return class probabilities
model.tflite   LiteRT/TFLite (Keras' `model.export`): float32 images in, probabilities out
model.onnx     ONNX (Keras' `model.export`, through tf2onnx): the same, for ONNX Runtime
"""

import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from image_classifier.console import StageError
from image_classifier.quiet import filtered_stderr

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
    with warnings.catch_warnings():
        # Keras' tf2onnx patch probes `np.object`, which NumPy 2 warns about; nothing to fix.
        warnings.filterwarnings("ignore", message=".*np.object.*", category=FutureWarning)
        serving.export(str(path), format="onnx", verbose=False)


def saved_model_runner(path: Path, endpoint: str = "serve") -> Runner:
    """The SavedModel as TensorFlow Serving would run it: tf.saved_model.load, no Keras."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))  # held by the closure: its variables must live
    dtype = tf.uint8 if endpoint == "serve_uint8" else tf.float32
    return lambda images: getattr(loaded, endpoint)(tf.constant(images, dtype)).numpy()


def tflite_runner(path: Path) -> Runner:
    """The .tflite file in LiteRT's interpreter (ai-edge-litert, which replaces the deprecated
    tf.lite.Interpreter), sized to each batch."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    source = interpreter.get_input_details()[0]["index"]
    target = interpreter.get_output_details()[0]["index"]

    def run(images: np.ndarray) -> np.ndarray:
        interpreter.resize_tensor_input(source, images.shape)
        with filtered_stderr():  # the first allocation announces the XNNPACK delegate
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


def export_format(name: str, serving, size: int, path: Path) -> None:
    """Write `serving` (a probabilities model) to `path` in export format `name`."""
    if name == "saved_model":
        export_saved_model(serving, size, path)
    elif name == "tflite":
        export_tflite(serving, path)
    else:
        export_onnx(serving, path)
