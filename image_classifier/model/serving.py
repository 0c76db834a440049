"""The trained model for serving: one file per format, each run back in its own runtime.

saved_model/   TensorFlow SavedModel (Keras' ExportArchive): endpoint `serve` takes float32
               images, `serve_uint8` uint8 ones, both (n, size, size, 3) RGB 0-255, and
               both return class probabilities
model.tflite   LiteRT/TFLite (Keras' `model.export`): float32 images in, probabilities out
model.onnx     ONNX (Keras' `model.export`, through tf2onnx): the same, for ONNX Runtime
model_int8.tflite  LiteRT with full-integer quantization (weights and activations int8,
               calibrated on train images): uint8 images in, uint8 probabilities out (scale
               1/256), about 4x smaller; checked class by class, since quantization can
               ruin one class while the overall accuracy barely moves
"""

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.metrics import recall_score

from image_classifier.console import StageError
from image_classifier.quiet import filtered_stderr

ARTIFACTS = {
    "saved_model": "saved_model",
    "tflite": "model.tflite",
    "onnx": "model.onnx",
    "int8": "model_int8.tflite",
}
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


def export_int8(serving, path: Path, calibration_images: np.ndarray) -> None:
    """Full-integer LiteRT: every op int8, the ranges of activations taken from
    `calibration_images` (train images), uint8 input and output so that a phone or a
    microcontroller runs no float op at all."""
    import tensorflow as tf

    def representative_dataset():
        for image in calibration_images:
            yield [image[None].astype(np.float32)]

    with filtered_stderr():  # the converter prints its MLIR passes and a calibration line
        serving.export(
            str(path),
            format="litert",
            verbose=False,
            optimizations=[tf.lite.Optimize.DEFAULT],
            representative_dataset=representative_dataset,
            target_spec={"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]},
            inference_input_type=tf.uint8,
            inference_output_type=tf.uint8,
        )


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


def quantize(values: np.ndarray, details: dict) -> np.ndarray:
    """Float values -> the integer type of a LiteRT tensor (unchanged for a float tensor)."""
    dtype = details["dtype"]
    scale, zero_point = details["quantization"]
    if not np.issubdtype(dtype, np.integer):
        return values.astype(dtype)
    limits = np.iinfo(dtype)
    scaled = np.round(values / scale + zero_point) if scale else values
    return np.clip(scaled, limits.min, limits.max).astype(dtype)


def dequantize(values: np.ndarray, details: dict) -> np.ndarray:
    scale, zero_point = details["quantization"]
    if not np.issubdtype(details["dtype"], np.integer) or not scale:
        return values.astype(np.float32)
    return ((values.astype(np.float32) - zero_point) * scale).astype(np.float32)


def tflite_runner(path: Path) -> Runner:
    """The .tflite file in LiteRT's interpreter (ai-edge-litert, which replaces the deprecated
    tf.lite.Interpreter), sized to each batch; a quantized model's input and output are
    converted from and to float values as its tensors' scales say."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    source, target = interpreter.get_input_details()[0], interpreter.get_output_details()[0]

    def run(images: np.ndarray) -> np.ndarray:
        interpreter.resize_tensor_input(source["index"], images.shape)
        with filtered_stderr():  # the first allocation announces the XNNPACK delegate
            interpreter.allocate_tensors()
        interpreter.set_tensor(source["index"], quantize(np.asarray(images, np.float32), source))
        interpreter.invoke()
        return dequantize(interpreter.get_tensor(target["index"]).copy(), target)

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
    "int8": tflite_runner,
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


def footprint(path: Path, run: Runner, image: np.ndarray) -> dict:
    return {"bytes": size_in_bytes(path), "latency_ms": latency_ms(run, image)}


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


def quantization_scores(
    labels: np.ndarray, expected: np.ndarray, actual: np.ndarray, class_names: list[str]
) -> dict:
    """How a quantized model's answers differ from the float model's on labelled images:
    top-1 agreement, and each class's recall under both (a drop is float minus quantized)."""
    expected_top, actual_top = expected.argmax(axis=1), actual.argmax(axis=1)
    classes = list(range(len(class_names)))
    before, after = (
        recall_score(labels, top, labels=classes, average=None, zero_division=0)
        for top in (expected_top, actual_top)
    )
    drops = before - after
    worst = int(np.argmax(drops))
    return {
        "images": len(labels),
        "top1_agreement": round(float((expected_top == actual_top).mean()), 4),
        "accuracy": {
            "keras": round(float((expected_top == labels).mean()), 4),
            "int8": round(float((actual_top == labels).mean()), 4),
        },
        "largest_recall_drop": {"class": class_names[worst], "drop": round(float(drops[worst]), 4)},
        "per_class_recall": {
            name: {"keras": round(float(b), 4), "int8": round(float(a), 4)}
            for name, b, a in zip(class_names, before, after, strict=True)
        },
    }


def check_quantized(scores: dict, min_agreement: float, max_recall_drop: float) -> None:
    """Stop when the int8 model answers too differently, overall or for one class."""
    advice = (
        "do not ship it: keep the float model.tflite, or export.formats without int8, or "
        "loosen the gate if the test split is too small to judge"
    )
    if scores["top1_agreement"] < min_agreement:
        raise StageError(
            f"the int8 export agrees with the Keras model on {scores['top1_agreement']:.2%} of "
            f"the {scores['images']} test images (export.int8_min_agreement = "
            f"{min_agreement}): {advice}"
        )
    worst = scores["largest_recall_drop"]
    if worst["drop"] > max_recall_drop:
        recall = scores["per_class_recall"][worst["class"]]
        raise StageError(
            f"the int8 export's recall of class {worst['class']!r} is {recall['int8']:.2%} "
            f"against {recall['keras']:.2%} for the Keras model on the test split (-"
            f"{100 * worst['drop']:.1f} points; export.int8_max_recall_drop = "
            f"{max_recall_drop}): {advice}"
        )


def export_format(
    name: str, serving, size: int, path: Path, calibration_images: np.ndarray | None = None
) -> None:
    """Write `serving` (a probabilities model) to `path` in export format `name`; int8
    needs `calibration_images` (train images) for the ranges of its activations."""
    if name == "saved_model":
        export_saved_model(serving, size, path)
    elif name == "tflite":
        export_tflite(serving, path)
    elif name == "int8":
        export_int8(serving, path, calibration_images)
    else:
        export_onnx(serving, path)


@dataclass(frozen=True)
class Reference:
    """What every export is judged against: the Keras model's probabilities on the test split.
    Float exports are compared on the first `check_images`; int8 on all, class by class."""

    images: np.ndarray
    labels: np.ndarray
    probabilities: np.ndarray
    check_images: int
    class_names: list[str]


def judge(
    name: str, run: Runner, reference: Reference, min_agreement: float, max_recall_drop: float
) -> tuple[dict, str]:
    """An export's scores against the Keras model, and a phrase for the log; stops the stage
    (StageError) when they are out of bounds."""
    if name == "int8":
        scores = quantization_scores(
            reference.labels, reference.probabilities, run(reference.images), reference.class_names
        )
        check_quantized(scores, min_agreement, max_recall_drop)
        worst = scores["largest_recall_drop"]
        return scores, (
            f"top-1 agreement with Keras {100 * scores['top1_agreement']:.2f}% on "
            f"{scores['images']} test images, largest recall drop {100 * worst['drop']:.1f} "
            f"points ({worst['class']})"
        )
    count = reference.check_images
    scores = agreement(
        reference.probabilities[:count], run(reference.images[:count].astype(np.float32))
    )
    check(name, scores)
    return scores, f"probabilities within {scores['max_probability_difference']:.1e} of Keras"
