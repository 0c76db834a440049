"""Every architecture builds, trains a step, saves and loads back in safe mode."""

import keras
import numpy as np
import pytest

from image_classifier.console import StageError
from image_classifier.model.architectures import (
    build_model,
    check_input_size,
    count_flops,
    unfreeze_top,
)
from image_classifier.params import MODELS

SIZE, CLASSES = 32, 3


def batch(count=4, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 255, (count, SIZE, SIZE, 3)).astype("float32")
    return images, np.arange(count) % CLASSES


def compiled(architecture: str) -> keras.Model:
    keras.utils.set_random_seed(0)
    model = build_model(architecture, SIZE, CLASSES, filters=[8, 16], weights="none")
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


@pytest.mark.parametrize("architecture", MODELS)
def test_builds_and_takes_a_training_step(architecture):
    model = compiled(architecture)
    images, labels = batch()
    trainable_before = [w.numpy().copy() for w in model.trainable_weights]
    frozen_before = [w.numpy().copy() for w in model.non_trainable_weights]
    model.fit(images, labels, epochs=1, batch_size=4, verbose=0)
    logits = model.predict(images, verbose=0)
    assert logits.shape == (4, CLASSES)
    assert np.isfinite(logits).all()
    changed = [
        not np.array_equal(a, b.numpy()) for a, b in zip(trainable_before, model.trainable_weights)
    ]
    assert any(changed)
    if architecture == "vgg16":  # a frozen base: its convolutions must not move
        assert len(model.trainable_weights) == 2  # only the new head's Dense
        for before, after in zip(frozen_before, model.non_trainable_weights):
            assert np.array_equal(before, after.numpy())


@pytest.mark.parametrize("architecture", ["separable_cnn", "vgg16"])
def test_saved_model_loads_in_safe_mode_and_predicts_the_same(tmp_path, architecture):
    model = compiled(architecture)
    images, _ = batch()
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True, compile=False)
    np.testing.assert_allclose(
        loaded.predict(images, verbose=0), model.predict(images, verbose=0), rtol=1e-5, atol=1e-5
    )


def test_logits_stay_float32_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build_model("separable_cnn", SIZE, CLASSES, filters=[8])
        assert model.get_layer("stem").compute_dtype == "float16"
        assert model.output.dtype == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_separable_cnn_is_separable_regularised_and_strided():
    model = build_model("separable_cnn", 120, 10, filters=[32, 64, 128], l2=1e-4, dropout=0.2)
    separable = [layer for layer in model.layers if isinstance(layer, keras.layers.SeparableConv2D)]
    assert len(separable) == 6
    assert all(layer.depthwise_regularizer and layer.pointwise_regularizer for layer in separable)
    assert model.get_layer("stem").strides == (4, 4)
    assert separable[0].output.shape[1:3] == (30, 30)  # nothing runs at 120x120
    assert any(isinstance(layer, keras.layers.Dropout) for layer in model.layers)


def test_count_flops_by_hand():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)  # 8*8 * 3*3*3 * 4 = 6912 MACs
    x = keras.layers.SeparableConv2D(6, 3, padding="same")(x)  # 8*8*9*4 + 8*8*4*6 = 3840
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(5)(x)  # 6*5 = 30
    assert count_flops(keras.Model(inputs, outputs)) == 2 * (6912 + 3840 + 30)


def test_unfreeze_top_opens_vgg16_block5_only(tmp_path):
    model = build_model("vgg16", SIZE, CLASSES, weights="none")
    model.save(tmp_path / "vgg16.keras")  # what a saved model holds is enough to find its base
    loaded = keras.models.load_model(tmp_path / "vgg16.keras", compile=False)
    for built in (model, loaded):
        names = unfreeze_top(built, 3)
        assert names == ["block5_conv1", "block5_conv2", "block5_conv3"]
        assert not built.get_layer("block4_conv3").trainable
    assert len(unfreeze_top(loaded, 100)) == 13  # every convolution, never the preprocessing


def test_too_small_for_vgg16():
    with pytest.raises(StageError, match=r"train\.model = vgg16 needs at least 32x32"):
        check_input_size("vgg16", 24)
    check_input_size("separable_cnn", 24)
