"""Flip averaging folded into the model: the same as averaging the logits of a photo and of its
mirror image, saved and loaded as one model (by Keras alone too), and seen whole by Grad-CAM
and the audit."""

import subprocess
import sys

import keras
import numpy as np
import pytest

from image_classifier.model.architectures import build_model, embedding_model, load_trained_model
from image_classifier.model.attribution import gradcam_heatmap, last_conv_layer
from image_classifier.model.calibration import fold_temperature
from image_classifier.model.mirror import (
    averaged_model,
    is_mirror_averaged,
    networks_in,
    with_mirror_average,
)
from tests.test_gradcam import images_with_squares, region_model


def photos(count=5, size=32, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (count, size, size, 3)).astype("float32")


def trained_a_little(architecture: str) -> keras.Model:
    """A model whose batch-norm statistics and weights moved away from their initial values,
    so that a photo and its mirror image get different answers."""
    keras.utils.set_random_seed(0)
    model = build_model(architecture, 32, 3, filters=[8, 16], weights="none")
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(photos(12, seed=1), np.arange(12) % 3, epochs=2, batch_size=6, verbose=0)
    # Logits of a few units, as a trained model's, so that tolerances mean something.
    logits = model.get_layer("logits")
    logits.set_weights([weight * 1000 for weight in logits.get_weights()])
    return model


@pytest.mark.parametrize("architecture", ["separable_cnn", "vgg16"])
def test_the_flip_averaged_model_averages_the_logits_of_a_photo_and_its_mirror_image(
    architecture, tmp_path
):
    model = trained_a_little(architecture)
    images = photos()
    plain, mirrored = model.predict(images, verbose=0), model.predict(images[:, :, ::-1], verbose=0)
    assert np.abs(plain - mirrored).max() > 0.1  # the two views really differ
    averaged = with_mirror_average(model)
    assert is_mirror_averaged(averaged) and not is_mirror_averaged(model)
    expected = (plain + mirrored) / 2
    np.testing.assert_allclose(averaged.predict(images, verbose=0), expected, atol=1e-3)
    # A photo and its mirror image now get the same answer.
    np.testing.assert_allclose(averaged.predict(images[:, :, ::-1], verbose=0), expected, atol=1e-3)
    averaged.save(tmp_path / "model.keras")
    loaded = load_trained_model(tmp_path / "model.keras")
    np.testing.assert_allclose(loaded.predict(images, verbose=0), expected, atol=1e-3)
    np.save(tmp_path / "images.npy", images)
    np.testing.assert_allclose(predict_with_keras_alone(tmp_path), expected, atol=1e-3)


# A process that imports Keras and nothing of this package: a user's notebook, or a server
# that got models/model.keras from `dvc artifacts get`.
KERAS_ALONE = """
import sys
import keras
import numpy as np
model = keras.models.load_model("model.keras")
np.save("answers.npy", model.predict(np.load("images.npy"), verbose=0))
assert not any(name.startswith("image_classifier") for name in sys.modules)
"""


def predict_with_keras_alone(folder):
    result = subprocess.run(
        [sys.executable, "-I", "-c", KERAS_ALONE], cwd=folder, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return np.load(folder / "answers.npy")


def test_the_temperature_folds_into_a_flip_averaged_model_as_into_a_plain_one():
    model = with_mirror_average(trained_a_little("separable_cnn"))
    images = photos()
    logits = model.predict(images, verbose=0)
    fold_temperature(model, 2.0)
    np.testing.assert_allclose(model.predict(images, verbose=0), logits / 2, atol=1e-3)


def test_the_embedding_of_a_flip_averaged_model_is_one_row_per_photo_averaged():
    model = trained_a_little("separable_cnn")
    images = photos()
    plain = embedding_model(model).predict(images, verbose=0)[0]
    mirrored = embedding_model(model).predict(images[:, :, ::-1], verbose=0)[0]
    embedding, _ = embedding_model(with_mirror_average(model)).predict(images, verbose=0)
    np.testing.assert_allclose(embedding, (plain + mirrored) / 2, atol=1e-3)


def test_grad_cam_of_a_flip_averaged_model_maps_both_views_back_onto_the_photo():
    model, images = region_model(), images_with_squares()
    averaged = with_mirror_average(model)
    assert last_conv_layer(averaged) == "conv"
    heatmap = gradcam_heatmap(averaged, images, 1, "conv")
    assert heatmap.shape == (2, 16, 16)
    # Its mirror view lights the mirrored square: flipped back, it falls on the same square.
    np.testing.assert_allclose(heatmap, gradcam_heatmap(model, images, 1, "conv"), atol=1e-3)
    assert heatmap[0, 1:5, 2:6].mean() > 0.8 and heatmap[0, 1:5, 10:14].max() < 0.05


@pytest.mark.parametrize("flip", [False, True])
def test_members_averaged_in_one_model_answer_with_the_mean_of_their_logits(flip, tmp_path):
    first = trained_a_little("separable_cnn")
    second = trained_a_little("separable_cnn")
    # Another network: its weights moved, so its answers differ from the first's.
    second.set_weights([w * 1.2 if w.ndim > 1 else w for w in second.get_weights()])
    images = photos()

    def answers(model):
        plain = model.predict(images, verbose=0)
        return (plain + model.predict(images[:, :, ::-1], verbose=0)) / 2 if flip else plain

    one, two = answers(first), answers(second)
    assert np.abs(one - two).max() > 0.1
    averaged = averaged_model([first, second], flip=flip)
    assert networks_in(averaged) == 2 and is_mirror_averaged(averaged) == flip
    expected = (one + two) / 2
    np.testing.assert_allclose(averaged.predict(images, verbose=0), expected, atol=1e-3)
    averaged.save(tmp_path / "model.keras")
    np.save(tmp_path / "images.npy", images)
    np.testing.assert_allclose(predict_with_keras_alone(tmp_path), expected, atol=1e-3)
    embedding, _ = embedding_model(averaged).predict(images, verbose=0)
    features = embedding_model(first).output[0].shape[-1]
    assert embedding.shape == (len(images), 2 * features)  # the members' side by side
    fold_temperature(averaged, 2.0)
    np.testing.assert_allclose(averaged.predict(images, verbose=0), expected / 2, atol=1e-3)


def test_grad_cam_of_averaged_members_adds_every_members_maps():
    model, images = region_model(), images_with_squares()
    twice = averaged_model([model, model], flip=True)
    assert networks_in(twice) == 2 and last_conv_layer(twice) == "conv"
    # Two copies of one network: each map is that network's, so their sum, scaled, is too.
    np.testing.assert_allclose(
        gradcam_heatmap(twice, images, 1, "conv"),
        gradcam_heatmap(model, images, 1, "conv"),
        atol=1e-3,
    )
