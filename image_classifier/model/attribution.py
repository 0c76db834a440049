"""Grad-CAM: which pixels made a model predict a class, for the gradcam stage and predict."""

import numpy as np

from image_classifier.console import StageError

NOT_FEATURE_MAPS = ("Pooling", "Dropout", "Flatten")  # 4-D outputs that are not a conv's map
# 4-D, but still the image (MirrorImages: the image and its mirror image, model/mirror.py)
BEFORE_FEATURES = ("InputLayer", "MirrorImages", "Rescaling", "CaffePreprocess")


def is_feature_map(layer) -> bool:
    kind = type(layer).__name__
    return (
        len(layer.output.shape) == 4
        and not any(word in kind for word in NOT_FEATURE_MAPS)
        and kind not in BEFORE_FEATURES
    )


def last_conv_layer(model) -> str:
    """The last layer that outputs a spatial feature map (rank 4), pooling excluded."""
    for layer in reversed(model.layers):
        if is_feature_map(layer):
            return layer.name
        if type(layer).__name__ in BEFORE_FEATURES:
            break
    raise StageError(f"model {model.name} has no convolutional feature map for Grad-CAM")


def choose_layer(model, requested: str) -> str:
    """gradcam.layer, checked against the model, or the last feature map when it is ""."""
    if not requested:
        return last_conv_layer(model)
    layers = {layer.name: layer for layer in model.layers}
    problem = None
    if requested not in layers:
        problem = "it is not a layer of the model"
    elif not is_feature_map(layers[requested]):
        shape = tuple(layers[requested].output.shape)
        problem = f"its output {shape} is not a feature map (batch, height, width, channels)"
    if problem:
        raise StageError(
            f"params.yaml: gradcam.layer = {requested!r} is not allowed: {problem}; "
            f'use "" for the last one ({last_conv_layer(model)})'
        )
    return requested


def gradcam_heatmap(model, images: np.ndarray, class_index, layer_name: str) -> np.ndarray:
    """Grad-CAM: gradients of each image's `class_index` logit w.r.t. the feature map of
    `layer_name`, averaged per channel, weight the channels; ReLU; scaled to [0, 1] per image;
    resized to the image. `class_index` is one class for all images or one per image.

    In a flip-averaged model (model/mirror.py) the feature maps hold each image and then its
    mirror image; the answer is the sum of both, so the two maps are added, the mirror's
    flipped back.

    Returns (n, height, width) float32; a map with no positive evidence is all zeros.
    """
    import keras
    import tensorflow as tf

    images = tf.convert_to_tensor(images, tf.float32)
    count = images.shape[0]
    classes = tf.broadcast_to(tf.cast(class_index, tf.int32), (count,))
    probe = keras.Model(model.inputs, [model.get_layer(layer_name).output, model.output])
    with tf.GradientTape() as tape:
        feature_maps, logits = probe(images, training=False)
        feature_maps = tf.cast(feature_maps, tf.float32)
        scores = tf.gather(tf.cast(logits, tf.float32), classes, axis=1, batch_dims=1)
    gradients = tape.gradient(scores, feature_maps)
    channel_weights = tf.reduce_mean(gradients, axis=(1, 2))
    cam = tf.einsum("nhwc,nc->nhw", feature_maps, channel_weights)
    if cam.shape[0] == 2 * count:
        cam = cam[:count] + tf.reverse(cam[count:], axis=[2])
    cam = tf.nn.relu(cam)
    peak = tf.reduce_max(cam, axis=(1, 2), keepdims=True)
    cam = tf.math.divide_no_nan(cam, peak)
    cam = tf.image.resize(cam[..., None], images.shape[1:3], method="bilinear")[..., 0]
    return np.clip(cam.numpy(), 0.0, 1.0).astype(np.float32)
