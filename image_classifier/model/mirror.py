"""Test-time flip averaging, folded into the model: it answers on each photo and on its
mirror image, and averages the two.

A model trained with random horizontal flips (train.flip) has learnt that a photo and its
mirror image are the same class; asking it both and averaging removes some of the noise of
either answer (docs/defaults.md measures it). The averaged model is built from layers
Keras ships, so `keras.models.load_model` reads it with nothing of this package imported:

    image ----------------------> features (the trained model up to its pooled features) --+
    image -> mirror (EinsumDense) -> features (the same weights)                            +->
        view_average (Average) -> head_dropout -> logits

`mirror` is an EinsumDense whose frozen kernel is the exchange matrix: it reverses the
columns of every image (Keras ships no layer that flips deterministically). The classifier
is linear, so averaging the pooled features equals averaging the two answers' logits; the
temperature folded into the last layer later scales both alike. Being part of the graph,
the saved model, predict and every export do the same, and Grad-CAM adds both views' maps.
"""

import keras
import numpy as np
from keras import layers

POOL_LAYER = "pool"  # the pooled features the classifier reads, in every architecture
FEATURES = "features"  # the nested model image -> pooled features of an averaged model
MIRROR = "mirror"  # attribution.py names it too, to keep it out of Grad-CAM's layers
AVERAGE = "view_average"


def mirror_layer(height: int, width: int, channels: int) -> layers.EinsumDense:
    """Images (n, height, width, channels) -> the same, left and right swapped."""
    layer = layers.EinsumDense(
        "abcd,ce->abed", output_shape=(height, width, channels), name=MIRROR, trainable=False
    )
    layer.build((None, height, width, channels))
    layer.set_weights([np.eye(width, dtype=np.float32)[::-1]])
    return layer


def is_mirror_averaged(model) -> bool:
    return any(layer.name == MIRROR for layer in model.layers)


def copy_layer(layer):
    """A new layer of the same config and weights (the averaged model shares none with the
    trained one, so each of its layers belongs to one graph)."""
    fresh = layer.__class__.from_config(layer.get_config())
    fresh.build(layer.input.shape)
    fresh.set_weights(layer.get_weights())
    return fresh


def with_mirror_average(model: keras.Model) -> keras.Model:
    """A new model of the same weights that runs every image twice, as it is and mirrored,
    and averages the pooled features of the two before the classifier."""
    if is_mirror_averaged(model):
        return model
    if POOL_LAYER not in {layer.name for layer in model.layers}:
        raise ValueError(f"model {model.name} has no {POOL_LAYER!r} layer to average at")
    trained = keras.Model(model.inputs, model.get_layer(POOL_LAYER).output)
    copy = keras.models.clone_model(trained)
    copy.set_weights(trained.get_weights())
    features = keras.Model(copy.inputs, copy.outputs[0], name=FEATURES)
    original = model.inputs[0]
    inputs = keras.Input(batch_shape=original.shape, dtype=original.dtype, name=original.name)
    mirrored = mirror_layer(*original.shape[1:])(inputs)
    x = layers.Average(name=AVERAGE)([features(inputs), features(mirrored)])
    for layer in head_layers(model):
        x = copy_layer(layer)(x)
    return keras.Model(inputs, x, name=model.name)


def views(model) -> tuple[keras.Model, list[bool]]:
    """The model that makes the pooled features, and whether each view it averages is the
    mirror image: (the whole model's trunk, [False]) for a model that answers once."""
    if is_mirror_averaged(model):
        return model.get_layer(FEATURES), [False, True]
    return keras.Model(model.inputs, model.get_layer(POOL_LAYER).output), [False]


def head_layers(model) -> list:
    """The layers after the pooled features (dropout, the classifier), in order: a chain in
    every architecture here."""
    names = [layer.name for layer in model.layers]
    start = names.index(AVERAGE if AVERAGE in names else POOL_LAYER)
    return model.layers[start + 1 :]


def head(model, pooled, training: bool = False):
    """The classifier of `model` applied to pooled features."""
    for layer in head_layers(model):
        pooled = layer(pooled, training=training)
    return pooled
