"""Every architecture the pipeline trains, as Functional Keras models.

All models take float RGB images in [0, 255] of shape (size, size, 3) and return logits
(the output layer stays float32 under mixed precision). Augmentation is not part of them:
it runs in the input pipeline (model/fitting.py), so a saved model is exactly what
evaluate and gradcam use.
"""

import zipfile
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from keras import layers

from image_classifier.console import StageError

CONVOLUTIONS = (layers.Conv2D, layers.SeparableConv2D, layers.DepthwiseConv2D)
CAFFE_PREPROCESS = "caffe_preprocess"
IMAGENET_BGR_MEAN = (103.939, 116.779, 123.68)


def caffe_preprocess() -> layers.Dense:
    """ImageNet 'caffe' preprocessing (RGB -> BGR, minus the ImageNet mean) that VGG16 and
    ResNet50 weights expect, as a frozen Dense on the channels: a layer Keras ships, so the
    saved model loads with plain `keras.models.load_model`."""
    layer = layers.Dense(3, name=CAFFE_PREPROCESS, trainable=False)
    layer.build((None, 3))
    layer.set_weights([np.eye(3, dtype=np.float32)[::-1], -np.array(IMAGENET_BGR_MEAN, np.float32)])
    return layer


@dataclass(frozen=True)
class Backbone:
    build: object  # the keras.applications constructor
    caffe_preprocess: bool  # False: the backbone preprocesses [0, 255] input itself
    min_size: int = 32


BACKBONES = {
    "vgg16": Backbone(keras.applications.VGG16, caffe_preprocess=True),
    "resnet50": Backbone(keras.applications.ResNet50, caffe_preprocess=True),
    "efficientnetv2b0": Backbone(keras.applications.EfficientNetV2B0, caffe_preprocess=False),
    "mobilenetv3small": Backbone(keras.applications.MobileNetV3Small, caffe_preprocess=False),
}
MIN_SIZE = {"separable_cnn": 16} | {name: b.min_size for name, b in BACKBONES.items()}


def check_input_size(model: str, size: int) -> None:
    if size < MIN_SIZE[model]:
        raise StageError(
            f"images are {size}x{size} (resize.size = {size}) but train.model = {model} "
            f"needs at least {MIN_SIZE[model]}x{MIN_SIZE[model]}: raise resize.size"
        )


HEAD_LAYERS = ("pool", "head_dropout", "logits")


def classifier_head(features, num_classes: int, dropout: float):
    features = layers.GlobalAveragePooling2D(name="pool")(features)
    features = layers.Dropout(dropout, name="head_dropout")(features)
    # float32 logits even under mixed precision: softmax/loss in float16 lose accuracy.
    return layers.Dense(num_classes, dtype="float32", name="logits")(features)


def separable_cnn(
    size: int, num_classes: int, filters: list[int], dropout: float, l2: float
) -> keras.Model:
    """A compact CNN built for speed.

    A 4x4 stride-4 'patchify' stem brings 120x120 down to 30x30 in one cheap step, so no
    layer runs at full resolution; then stages of two SeparableConv2D (depthwise 3x3 +
    pointwise 1x1, ~8x fewer FLOPs than Conv2D) with BatchNormalization, halving the
    resolution between stages.
    """
    regularizer = keras.regularizers.L2(l2) if l2 else None
    inputs = keras.Input((size, size, 3), name="image")
    x = layers.Rescaling(1 / 255, name="rescale")(inputs)
    x = layers.Conv2D(
        filters[0], 4, strides=4, use_bias=False, kernel_regularizer=regularizer, name="stem"
    )(x)
    x = layers.BatchNormalization(momentum=0.9, name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    for stage, width in enumerate(filters, start=1):
        if stage > 1:
            x = layers.MaxPooling2D(2, padding="same", name=f"stage{stage}_pool")(x)
        for block in (1, 2):
            name = f"stage{stage}_block{block}"
            x = layers.SeparableConv2D(
                width,
                3,
                padding="same",
                use_bias=False,
                depthwise_regularizer=regularizer,
                pointwise_regularizer=regularizer,
                name=f"{name}_sepconv",
            )(x)
            # momentum 0.9, not 0.99: the moving statistics catch up within an epoch, so
            # validation is not judged with stale ones early in a short training.
            x = layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
            x = layers.ReLU(name=f"{name}_relu")(x)
    return keras.Model(inputs, classifier_head(x, num_classes, dropout), name="separable_cnn")


def transfer_model(
    name: str, size: int, num_classes: int, weights: str, dropout: float
) -> keras.Model:
    """A keras.applications backbone, frozen, under a new head.

    The backbone is built on this model's own graph (`input_tensor=`), not nested as one
    layer, so Grad-CAM can reach its last convolution.
    """
    backbone = BACKBONES[name]
    inputs = keras.Input((size, size, 3), name="image")
    x = caffe_preprocess()(inputs) if backbone.caffe_preprocess else inputs
    try:
        base = backbone.build(
            include_top=False, weights=None if weights == "none" else weights, input_tensor=x
        )
    except Exception as error:  # keras.utils.get_file raises a bare Exception when offline
        if weights != "imagenet":  # a local file that is not this backbone's weights
            detail = f"{type(error).__name__}: {error}".splitlines()[0][:160]
            raise StageError(
                f"params.yaml: train.weights = {weights!r} cannot be loaded into {name} "
                f"({detail}): it must be {name}'s weights saved without its top "
                "(include_top=False), as an .h5 file"
            ) from None
        reason = str(error).splitlines()[0].split(" -- ")[-1]
        raise StageError(
            f"cannot download the ImageNet weights of {name} ({reason}): check the network, "
            "or set train.weights to a local weights file, or to none to train from scratch"
        ) from None
    base.trainable = False
    return keras.Model(inputs, classifier_head(base.output, num_classes, dropout), name=name)


def build_model(
    architecture: str,
    size: int,
    num_classes: int,
    *,
    filters: list[int] = (32, 64, 128),
    dropout: float = 0.2,
    l2: float = 0.0,
    weights: str = "none",
) -> keras.Model:
    check_input_size(architecture, size)
    if architecture == "separable_cnn":
        return separable_cnn(size, num_classes, list(filters), dropout, l2)
    return transfer_model(architecture, size, num_classes, weights, dropout)


def load_trained_model(path: Path) -> keras.Model:
    """A model the pipeline wrote, loaded in safe mode (no arbitrary code from the file);
    it holds only layers Keras ships, so `keras.models.load_model` alone reads it too."""
    if not Path(path).is_file():
        raise StageError(f"{path} not found: run `dvc repro train` (or `dvc pull`) first")
    if not zipfile.is_zipfile(path):  # Keras would say "File not found" of a text file
        raise StageError(f"{path} is not a Keras model file (a .keras file is a zip archive)")
    try:
        return keras.models.load_model(path, safe_mode=True, compile=False)
    except Exception as error:  # a damaged or foreign .keras file: anything can be raised
        detail = f"{type(error).__name__}: {error}".splitlines()[0][:200]
        raise StageError(
            f"{path} cannot be loaded as a model this pipeline wrote ({detail}): fetch it again "
            "(`dvc repro train`, `dvc pull` or `dvc artifacts get`)"
        ) from None


def embedding_model(model: keras.Model) -> keras.Model:
    """The trained model returning (embedding, logits): the pooled features its classifier
    sees (the input of the head's `logits` layer, in every architecture here; averaged over
    the photo and its mirror image in a flip-averaged model) beside its answer."""
    return keras.Model(model.inputs, [model.get_layer("logits").input, model.output])


def unfreeze_top(model: keras.Model, count: int) -> list[str]:
    """Make the last `count` weighted layers of a transfer model's base trainable.

    BatchNormalization layers stay frozen: unfreezing them on a small dataset wrecks the
    statistics the pretrained weights rely on.
    """
    not_base = {*HEAD_LAYERS, CAFFE_PREPROCESS}  # the backbone is every other weighted layer
    candidates = [
        layer
        for layer in model.layers
        if layer.name not in not_base
        and layer.weights
        and not isinstance(layer, layers.BatchNormalization)
    ]
    for layer in candidates[-count:]:
        layer.trainable = True
    return [layer.name for layer in candidates[-count:]]


def count_flops(model: keras.Model) -> int:
    """Forward FLOPs per image (2 per multiply-add) of the convolution and dense layers."""
    total = 0
    for layer in model.layers:
        if not isinstance(layer, (*CONVOLUTIONS, layers.Dense)):
            continue
        output_shape = layer.output.shape
        input_channels = layer.input.shape[-1]
        if isinstance(layer, layers.Dense):
            total += input_channels * output_shape[-1]
            continue
        height, width = output_shape[1], output_shape[2]
        positions = height * width * layer.kernel_size[0] * layer.kernel_size[1]
        if isinstance(layer, layers.SeparableConv2D):
            depthwise = positions * input_channels * layer.depth_multiplier
            pointwise = height * width * input_channels * layer.depth_multiplier * output_shape[-1]
            total += depthwise + pointwise
        elif isinstance(layer, layers.DepthwiseConv2D):
            total += positions * input_channels * layer.depth_multiplier
        else:
            total += positions * input_channels * output_shape[-1]
    return 2 * total
