"""Grad-CAM: which pixels made a model predict a class, for the gradcam stage and predict."""

import numpy as np

from image_classifier.console import StageError

NOT_FEATURE_MAPS = ("Pooling", "Dropout", "Flatten")  # 4-D outputs that are not a conv's map
BEFORE_FEATURES = ("InputLayer", "Rescaling")  # 4-D, but still the image
# By name: still the image (architectures.py's preprocessing, mirror.py's flip)
IMAGE_LAYERS = ("caffe_preprocess", "mirror")


def is_feature_map(layer) -> bool:
    kind = type(layer).__name__
    return (
        len(layer.output.shape) == 4
        and not any(word in kind for word in NOT_FEATURE_MAPS)
        and kind not in BEFORE_FEATURES
        and layer.name not in IMAGE_LAYERS
    )


def last_conv_layer(model) -> str:
    """The last layer that outputs a spatial feature map (rank 4), pooling excluded."""
    from image_classifier.model.mirror import views

    for layer in reversed(views(model)[0][0].layers):
        if is_feature_map(layer):
            return layer.name
        if type(layer).__name__ in BEFORE_FEATURES or layer.name in IMAGE_LAYERS:
            break
    raise StageError(f"model {model.name} has no convolutional feature map for Grad-CAM")


def choose_layer(model, requested: str) -> str:
    """gradcam.layer, checked against the model, or the last feature map when it is ""."""
    from image_classifier.model.mirror import views

    if not requested:
        return last_conv_layer(model)
    layers = {layer.name: layer for layer in [*model.layers, *views(model)[0][0].layers]}
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

    In an averaged model (model/mirror.py) the answer comes from the image and its mirror
    image, and from every member: all their maps are added, the mirror's flipped back.

    Returns (n, height, width) float32; a map with no positive evidence is all zeros.
    """
    import keras
    import tensorflow as tf

    from image_classifier.model.mirror import head, views

    images = tf.convert_to_tensor(images, tf.float32)
    count = images.shape[0]
    classes = tf.broadcast_to(tf.cast(class_index, tf.int32), (count,))
    probes = [
        (keras.Model(trunk.inputs, [trunk.get_layer(layer_name).output, trunk.output]), flips)
        for trunk, flips in views(model)
    ]
    with tf.GradientTape() as tape:
        feature_maps, flipped, pooled = [], [], []
        for probe, flips in probes:
            outputs = [
                probe(tf.reverse(images, [2]) if f else images, training=False) for f in flips
            ]
            feature_maps += [tf.cast(maps, tf.float32) for maps, _ in outputs]
            flipped += flips
            pooled.append(tf.add_n([features for _, features in outputs]) / len(outputs))
        pooled = tf.concat(pooled, axis=-1) if len(pooled) > 1 else pooled[0]
        logits = tf.cast(head(model, pooled), tf.float32)
        scores = tf.gather(logits, classes, axis=1, batch_dims=1)
    gradients = tape.gradient(scores, feature_maps)
    cam = 0.0
    for flip, maps, slopes in zip(flipped, feature_maps, gradients, strict=True):
        view = tf.einsum("nhwc,nc->nhw", maps, tf.reduce_mean(slopes, axis=(1, 2)))
        cam += tf.reverse(view, axis=[2]) if flip else view
    cam = tf.nn.relu(cam)
    peak = tf.reduce_max(cam, axis=(1, 2), keepdims=True)
    cam = tf.math.divide_no_nan(cam, peak)
    cam = tf.image.resize(cam[..., None], images.shape[1:3], method="bilinear")[..., 0]
    return np.clip(cam.numpy(), 0.0, 1.0).astype(np.float32)
