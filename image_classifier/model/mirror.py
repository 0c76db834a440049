"""Averaged answers, folded into the model: test-time flip averaging, and members.

A model trained with random horizontal flips (train.flip) has learnt that a photo and its
mirror image are the same class; asking it both and averaging removes some of the noise of
either answer. Networks trained alike from different random starts (train.members) make
different mistakes on photos framed alike; averaging them removes more (docs/defaults.md
measures both). The averaged model is built from layers Keras ships, so
`keras.models.load_model` reads it with nothing of this package imported:

    image ----------------------> features_1 (member 1 up to its pooled features) --+
    image -> mirror (EinsumDense) -> features_1 (the same weights)                   +->
        view_average_1 (Average) --+
    ... the same for features_2 ...  +-> members (Concatenate) -> head_dropout -> logits

With one member its nested model is `features` and the average `view_average`, with no
`members`. `mirror` is an EinsumDense whose frozen kernel is the exchange matrix: it
reverses the columns of every image (Keras ships no layer that flips deterministically).
The classifier is linear, so averaging the pooled features of the two views equals
averaging their logits; and a classifier over the members' features laid side by side,
whose kernel stacks theirs divided by the count, returns the mean of their logits. The
temperature folded into the last layer later scales every answer alike. Being part of the
graph, the saved model, predict and every export do the same, and Grad-CAM adds every
view's map.
"""

import keras
import numpy as np
from keras import layers

POOL_LAYER = "pool"  # the pooled features the classifier reads, in every architecture
FEATURES = "features"  # a nested model image -> pooled features, one per member
MIRROR = "mirror"  # attribution.py names it too, to keep it out of Grad-CAM's layers
AVERAGE = "view_average"
MEMBERS = "members"
LOGITS = "logits"  # the Dense layer every architecture ends with (architectures.py)


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


def is_averaged(model) -> bool:
    """Whether `model` was built here (views or members averaged), not by architectures.py."""
    return any(layer.name in (MIRROR, MEMBERS) for layer in model.layers)


def networks_in(model) -> int:
    """How many trained networks `model` averages (train.members)."""
    return len(member_names(model)) if is_averaged(model) else 1


def learnt_params(model) -> int:
    """The model's parameters but the mirror's constant exchange matrix."""
    constant = model.get_layer(MIRROR).count_params() if is_mirror_averaged(model) else 0
    return model.count_params() - constant


def copy_layer(layer):
    """A new layer of the same config and weights (the averaged model shares none with the
    trained one, so each of its layers belongs to one graph)."""
    fresh = layer.__class__.from_config(layer.get_config())
    fresh.build(layer.input.shape)
    fresh.set_weights(layer.get_weights())
    return fresh


def trunk_copy(model: keras.Model, name: str) -> keras.Model:
    """A copy of `model` up to its pooled features, as one nested model called `name`."""
    if POOL_LAYER not in {layer.name for layer in model.layers}:
        raise ValueError(f"model {model.name} has no {POOL_LAYER!r} layer to average at")
    trained = keras.Model(model.inputs, model.get_layer(POOL_LAYER).output)
    copy = keras.models.clone_model(trained)
    copy.set_weights(trained.get_weights())
    return keras.Model(copy.inputs, copy.outputs[0], name=name)


def stacked_classifier(members: list[keras.Model]):
    """One Dense layer over the members' pooled features side by side that returns the mean
    of their logits: their kernels stacked and their biases averaged, each divided by the
    count."""
    layer = members[0].get_layer(LOGITS)
    weights = [member.get_layer(LOGITS).get_weights() for member in members]
    fresh = layer.__class__.from_config(layer.get_config())
    fresh.build((None, sum(kernel.shape[0] for kernel, *_ in weights)))
    count = len(members)
    kernel = np.concatenate([kernel for kernel, *_ in weights]) / count
    biases = [np.mean(bias, axis=0) for bias in zip(*(rest for _, *rest in weights), strict=True)]
    fresh.set_weights([kernel, *biases])
    return fresh


def averaged_model(members: list[keras.Model], flip: bool) -> keras.Model:
    """One model that answers with the mean of the members' logits, each on the photo and
    (with `flip`) its mirror image. One member and no flip: that member, as it is."""
    if len(members) == 1 and (not flip or is_mirror_averaged(members[0])):
        return members[0]
    first = members[0]
    original = first.inputs[0]
    inputs = keras.Input(batch_shape=original.shape, dtype=original.dtype, name=original.name)
    mirrored = mirror_layer(*original.shape[1:])(inputs) if flip else None
    pooled = []
    for index, member in enumerate(members):
        suffix = f"_{index + 1}" if len(members) > 1 else ""
        features = trunk_copy(member, FEATURES + suffix)
        if flip:
            views = [features(inputs), features(mirrored)]
            pooled.append(layers.Average(name=AVERAGE + suffix)(views))
        else:
            pooled.append(features(inputs))
    x = layers.Concatenate(name=MEMBERS)(pooled) if len(members) > 1 else pooled[0]
    for layer in head_layers(first):
        x = (stacked_classifier(members) if layer.name == LOGITS else copy_layer(layer))(x)
    return keras.Model(inputs, x, name=first.name)


def with_mirror_average(model: keras.Model) -> keras.Model:
    """A new model of the same weights that runs every image twice, as it is and mirrored,
    and averages the pooled features of the two before the classifier."""
    return averaged_model([model], flip=True)


def member_names(model) -> list[str]:
    names = [layer.name for layer in model.layers]
    return [name for name in names if name == FEATURES or name.startswith(FEATURES + "_")]


def views(model) -> list[tuple[keras.Model, list[bool]]]:
    """Each member's model that makes its pooled features, and whether each view it averages
    is the mirror image: [(the whole model's trunk, [False])] for a model that answers once."""
    if not is_averaged(model):
        return [(keras.Model(model.inputs, model.get_layer(POOL_LAYER).output), [False])]
    flips = [False, True] if is_mirror_averaged(model) else [False]
    return [(model.get_layer(name), flips) for name in member_names(model)]


def head_layers(model) -> list:
    """The layers after the pooled features (dropout, the classifier), in order: a chain in
    every architecture here."""
    names = [layer.name for layer in model.layers]
    start = next(names.index(name) for name in (MEMBERS, AVERAGE, POOL_LAYER) if name in names)
    return model.layers[start + 1 :]


def head(model, pooled, training: bool = False):
    """The classifier of `model` applied to pooled features (the members' side by side)."""
    for layer in head_layers(model):
        pooled = layer(pooled, training=training)
    return pooled
