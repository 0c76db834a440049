"""Test-time flip averaging, folded into the model: it answers on each photo and on its
mirror image, and averages the two.

A model trained with random horizontal flips (train.flip) has learnt that a photo and its
mirror image are the same class; asking it both and averaging removes some of the noise of
either answer (docs/results.md measures it). The pooled features of the two views are
averaged just before the classifier, which is linear, so this equals averaging the logits;
the temperature folded into the last layer later scales both alike. Being part of the graph,
the saved model, predict and every export do the same, and Grad-CAM sums both views' maps.
"""

import keras
from keras import layers, ops

POOL_LAYER = "pool"  # the pooled features the classifier reads, in every architecture


@keras.saving.register_keras_serializable(package="image_classifier")
class MirrorImages(layers.Layer):
    """A batch of n images -> 2n: the images, then their left-right mirror images."""

    def call(self, images):
        return ops.concatenate([images, ops.flip(images, axis=2)], axis=0)


@keras.saving.register_keras_serializable(package="image_classifier")
class AverageMirrorPairs(layers.Layer):
    """2n rows from MirrorImages' batch -> n: each row averaged with its mirror image's."""

    def call(self, features):
        pairs = ops.reshape(features, (2, -1, features.shape[-1]))
        return ops.mean(pairs, axis=0)


def is_mirror_averaged(model) -> bool:
    return any(isinstance(layer, MirrorImages) for layer in model.layers)


def with_mirror_average(model: keras.Model) -> keras.Model:
    """A new model of the same layers (and weights) that runs every image twice, as it is
    and mirrored, and averages the pooled features of the two before the classifier."""
    if is_mirror_averaged(model):
        return model
    if POOL_LAYER not in {layer.name for layer in model.layers}:
        raise ValueError(f"model {model.name} has no {POOL_LAYER!r} layer to average at")
    original = model.inputs[0]
    inputs = keras.Input(batch_shape=original.shape, dtype=original.dtype, name=original.name)

    def call(layer, *args, **kwargs):
        if args and args[0] is inputs:  # the first layer: give it both views
            args = (MirrorImages(name="mirror_images")(inputs), *args[1:])
        output = layer(*args, **kwargs)
        if layer.name == POOL_LAYER:
            return AverageMirrorPairs(name="mirror_average")(output)
        return output

    def fresh(layer):  # new layers, the trained weights copied below
        return layer.__class__.from_config(layer.get_config())

    mirrored = keras.models.clone_model(
        model, input_tensors=inputs, clone_function=fresh, call_function=call
    )
    for layer in model.layers:
        if layer.weights:
            mirrored.get_layer(layer.name).set_weights(layer.get_weights())
    return mirrored


def without_mirror_average(model: keras.Model) -> keras.Model:
    """The same layers and weights answering on each image alone, as the model was trained:
    what the averaging adds is measured against it (bench/real.py)."""

    def call(layer, *args, **kwargs):
        if isinstance(layer, (MirrorImages, AverageMirrorPairs)):
            return args[0]
        return layer(*args, **kwargs)

    def fresh(layer):
        return layer.__class__.from_config(layer.get_config())

    alone = keras.models.clone_model(model, clone_function=fresh, call_function=call)
    for layer in model.layers:
        if layer.weights:
            alone.get_layer(layer.name).set_weights(layer.get_weights())
    return alone
