"""Grad-CAM: the heatmap function on both model families, and on a model whose answer is
decided by one region of the image."""

import keras
import numpy as np
import pytest

from image_classifier.model.architectures import build_model
from image_classifier.model.attribution import gradcam_heatmap, last_conv_layer
from tests.conftest import run_stage, write_params


def region_model(size=16) -> keras.Model:
    """Class 1's logit is the mean of a feature map that lights up only on bright pixels;
    class 0's is its negative. So the bright region alone decides the class."""
    inputs = keras.Input((size, size, 3))
    bright = keras.layers.Conv2D(1, 1, activation="relu", name="conv")(inputs)
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(bright)
    logits = keras.layers.Dense(2, use_bias=False, name="logits")(pooled)
    model = keras.Model(inputs, logits)
    # brightness above 200 (of 255, summed over 3 channels) -> positive activation
    model.get_layer("conv").set_weights([np.ones((1, 1, 3, 1)), np.array([-600.0])])
    model.get_layer("logits").set_weights([np.array([[-1.0, 1.0]])])
    return model


def images_with_squares(size=16):
    images = np.full((2, size, size, 3), 30.0, "float32")
    images[0, 1:5, 2:6] = 250.0  # top left
    images[1, 10:14, 11:15] = 250.0  # bottom right
    return images


def test_heatmap_peaks_where_the_deciding_region_is():
    heatmap = gradcam_heatmap(region_model(), images_with_squares(), 1, "conv")
    assert heatmap.shape == (2, 16, 16)
    assert heatmap.min() >= 0 and heatmap.max() == pytest.approx(1.0)
    assert heatmap[0, 1:5, 2:6].mean() > 0.8 and heatmap[0, 9:, 9:].max() < 0.05
    assert heatmap[1, 10:14, 11:15].mean() > 0.8 and heatmap[1, :7, :7].max() < 0.05


def test_flat_map_gives_zeros_not_nan():
    model = region_model()
    # Evidence against class 0 everywhere: ReLU leaves nothing, and 0/0 must not be NaN.
    heatmap = gradcam_heatmap(model, images_with_squares(), 0, "conv")
    assert np.isfinite(heatmap).all() and heatmap.max() == 0
    # A blank image: the feature map itself is all zeros.
    blank = gradcam_heatmap(model, np.zeros((1, 16, 16, 3), "float32"), 1, "conv")
    assert np.isfinite(blank).all() and blank.max() == 0


@pytest.mark.parametrize(
    ("architecture", "layer"), [("separable_cnn", "stage2_block2_relu"), ("vgg16", "block5_conv3")]
)
def test_both_model_families(architecture, layer):
    keras.utils.set_random_seed(0)
    model = build_model(architecture, 32, 3, filters=[8, 16], weights="none")
    assert last_conv_layer(model) == layer
    images = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype("float32")
    heatmap = gradcam_heatmap(model, images, np.array([0, 1, 2]), layer)
    assert heatmap.shape == (3, 32, 32)
    assert heatmap.dtype == np.float32
    assert np.isfinite(heatmap).all()
    assert heatmap.min() >= 0 and heatmap.max() <= 1
    # Each map is scaled to a peak of 1 before it is resized to the image (which can lower
    # the peak a little); an untrained model still has some positive evidence.
    assert heatmap.reshape(3, -1).max(axis=1).min() > 0.5


@pytest.mark.parametrize(
    ("layer", "problem"),
    [
        ("logits", "its output (None, 3) is not a feature map (batch, height, width, channels)"),
        ("pool", "its output (None, 16) is not a feature map (batch, height, width, channels)"),
        ("no_such_layer", "it is not a layer of the model"),
    ],
)
def test_a_bad_layer_stops_before_the_data_is_read(tmp_path, layer, problem):
    model = build_model("separable_cnn", 32, 3, filters=[8, 16])
    model.save(tmp_path / "model.keras")
    write_params(tmp_path, gradcam__layer=layer)
    # No data at all: the layer must be refused before the stage looks for it.
    result = run_stage(
        "gradcam",
        "--resized",
        "missing",
        "--split",
        "missing.csv",
        "--model",
        "model.keras",
        "--predictions",
        "missing.csv",
        "--out",
        "gradcam",
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"gradcam: error: params.yaml: gradcam.layer = {layer!r} is not allowed: {problem}; "
        'use "" for the last one (stage2_block2_relu)'
    )
    assert not (tmp_path / "gradcam").exists()
