"""Using the trained model outside the pipeline: predict on raw photos (with Grad-CAM), the
exported SavedModel and LiteRT files in their own runtimes, and the model as a DVC artifact."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from image_classifier.model.card import ModelCard, write_card
from image_classifier.predict import find_photos
from tests.conftest import (
    TINY_PIPELINE,
    copy_repo,
    dvc,
    png_size,
    run,
    run_predict,
    run_stage,
    save_detailed_image,
    save_image,
    stage_env,
    write_params,
)


@pytest.fixture(scope="module")
def trained(tiny_pipeline, tmp_path_factory) -> Path:
    """The tiny pipeline reproduced and committed (a copy of its own)."""
    return copy_repo(tiny_pipeline[0], tmp_path_factory.mktemp("predict"))


def test_the_model_card_travels_with_the_model(trained):
    card = json.loads((trained / "models/model.json").read_text())
    classes = sorted(path.name for path in (trained / "data/raw").iterdir() if path.is_dir())
    assert card["class_names"] == classes
    assert (card["image_size"], card["fit"], card["model"]) == (32, "squash", "separable_cnn")
    assert json.loads((trained / "models/export/model.json").read_text()) == card


def test_predict_on_raw_test_photos_equals_evaluate(trained, tmp_path):
    evaluated = pd.read_csv(trained / "plots/evaluate/predictions.csv")
    photos = [str(Path("data/raw") / path) for path in evaluated["path"]]
    broken = trained / "broken.jpg"
    broken.write_text("not a photo")
    out = tmp_path / "predictions.csv"
    result = run_predict(
        *photos,
        str(broken),
        "--out",
        str(out),
        "--gradcam",
        str(tmp_path / "cam"),
        cwd=trained,
    )
    table = pd.read_csv(out, keep_default_na=False)
    assert table["path"].tolist() == [*photos, str(broken)]
    used = table.iloc[:-1].astype({"probability_1": float, "probability_2": float})
    assert used["class_1"].tolist() == evaluated["predicted"].tolist()
    np.testing.assert_allclose(used["probability_1"], evaluated["confidence"], atol=2e-4)
    assert (used["probability_1"] >= used["probability_2"]).all()
    assert table.iloc[-1]["reason"] == "not_an_image" and table.iloc[-1]["class_1"] == ""
    assert "not used: not_an_image" in result.stdout
    heatmaps = sorted((tmp_path / "cam").glob("*.png"))
    assert len(heatmaps) == len(photos)  # one per photo, none for the broken file
    width, height = png_size(heatmaps[0])
    assert width > height > 100


def test_predict_without_a_model_says_what_to_run(tmp_path):
    save_image(tmp_path / "photo.png")
    result = run_predict("photo.png", cwd=tmp_path, check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "predict: error: models/model.keras not found: run `dvc repro train` (or `dvc pull`) first"
    ]
    assert not (tmp_path / "predictions.csv").exists()


def test_find_photos_expands_folders_and_globs_and_keeps_missing_paths(tmp_path):
    for name in ("a/1.png", "a/b/2.jpg", "a/.hidden/3.png", "a/notes.txt", "c/4.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    found = find_photos([str(tmp_path / "a"), str(tmp_path / "c/*.png"), "nowhere/*.jpg"])
    assert found.paths == [
        tmp_path / "a/1.png",
        tmp_path / "a/b/2.jpg",
        tmp_path / "c/4.png",
        Path("nowhere/*.jpg"),
    ]
    assert found.not_photos == {".txt": 1}


def test_predict_with_a_transfer_model(tmp_path):
    """The other model family: a backbone with its own preprocessing layer, untrained."""
    from image_classifier.model.architectures import build_model

    model = build_model("mobilenetv3small", 32, 3, filters=[8], dropout=0.0, l2=0.0, weights="none")
    model.save(tmp_path / "model.keras")
    card = ModelCard(
        model="mobilenetv3small",
        class_names=["a", "b", "c"],
        image_size=32,
        fit="crop",
        max_megapixels=1,
    )
    write_card(tmp_path / "model.keras", card)
    save_image(tmp_path / "photos/wide.png", size=(64, 20))
    save_image(tmp_path / "photos/huge.png", size=(1200, 1000))
    run_predict("photos", "--model", "model.keras", "--top-k", "5", cwd=tmp_path)
    table = pd.read_csv(tmp_path / "predictions.csv", keep_default_na=False)
    assert table["path"].tolist() == ["photos/huge.png", "photos/wide.png"]
    assert table.iloc[0]["reason"] == "too_large"  # the card's max_megapixels, as resize
    assert [column for column in table if column.startswith("class_")] == [
        "class_1",
        "class_2",
        "class_3",
    ]
    probabilities = table.iloc[1][["probability_1", "probability_2", "probability_3"]]
    assert probabilities.astype(float).sum() == pytest.approx(1, abs=1e-3)


def test_exports_match_the_keras_model_in_their_own_runtimes(trained):
    import keras
    import tensorflow as tf

    from image_classifier.data.dataset import load_subset
    from image_classifier.model.serving import RUNNERS

    test = load_subset(trained / "data/resized", trained / "data/split.csv", "test")
    model = keras.models.load_model(trained / "models/model.keras", compile=False)
    expected = tf.nn.softmax(model.predict(test.images, verbose=0)).numpy()

    saved = tf.saved_model.load(str(trained / "models/export/saved_model"))
    outputs = {
        "serve": saved.serve(tf.constant(test.images, tf.float32)).numpy(),
        "serve_uint8": saved.serve_uint8(tf.constant(test.images)).numpy(),
    }
    from ai_edge_litert.interpreter import Interpreter  # LiteRT's, as a phone app runs it

    interpreter = Interpreter(model_path=str(trained / "models/export/model.tflite"))
    source = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(source, test.images.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(source, test.images.astype(np.float32))
    interpreter.invoke()
    outputs["tflite"] = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    import onnxruntime

    session = onnxruntime.InferenceSession(str(trained / "models/export/model.onnx"))
    feed = {session.get_inputs()[0].name: test.images.astype(np.float32)}
    outputs["onnx"] = session.run(None, feed)[0]

    for name, probabilities in outputs.items():
        assert probabilities.shape == expected.shape, name
        np.testing.assert_array_equal(probabilities.argmax(1), expected.argmax(1), err_msg=name)
        np.testing.assert_allclose(probabilities, expected, atol=1e-4, err_msg=name)

    metrics = json.loads((trained / "metrics/export.json").read_text())
    for name in ("keras", "saved_model", "tflite", "onnx"):
        assert metrics[name]["bytes"] > 10_000 and 0 < metrics[name]["latency_ms"] < 10_000
    assert metrics["tflite"]["top1_agreement"] == 1.0
    assert metrics["saved_model"]["max_probability_difference"] < 1e-4
    # The int8 file: smaller, uint8 in and out, judged on every test image against Keras.
    int8 = Interpreter(model_path=str(trained / "models/export/model_int8.tflite"))
    assert int8.get_input_details()[0]["dtype"] == int8.get_output_details()[0]["dtype"] == np.uint8
    assert metrics["int8"]["bytes"] < metrics["tflite"]["bytes"]
    assert metrics["int8"]["images"] == len(test.labels)
    agreement = (
        RUNNERS["int8"](trained / "models/export/model_int8.tflite")(test.images).argmax(1)
        == expected.argmax(1)
    ).mean()
    assert metrics["int8"]["top1_agreement"] == pytest.approx(agreement, abs=1e-4)


def test_only_the_formats_asked_for_are_exported(trained, tmp_path):
    write_params(trained, **(TINY_PIPELINE | {"export__formats": ["tflite"]}))
    try:
        run_stage(
            "export",
            "--model",
            "models/model.keras",
            "--resized",
            "data/resized",
            "--split",
            "data/split.csv",
            "--out",
            str(tmp_path / "export"),
            "--metrics",
            str(tmp_path / "export.json"),
            cwd=trained,
        )
    finally:
        run(["git", "checkout", "params.yaml"], trained)
    assert sorted(path.name for path in (tmp_path / "export").iterdir()) == [
        "model.json",
        "model.tflite",
    ]
    assert set(json.loads((tmp_path / "export.json").read_text())) == {
        "check_images",
        "keras",
        "tflite",
    }


def test_the_model_registry_artifact_fetched_from_another_folder_predicts(trained, tmp_path):
    # A registered version is a git tag <artifact>@v<semver> (what `gto register` makes).
    run(["git", "tag", "-a", "image-classifier@v0.1.0", "-m", "first model"], trained)
    dvc(
        "artifacts",
        "get",
        str(trained),
        "image-classifier",
        "--rev",
        "v0.1.0",
        "-o",
        "fetched",
        cwd=tmp_path,
    )
    fetched = tmp_path / "fetched"
    assert {"model.keras", "model.json", "export"} <= {path.name for path in fetched.iterdir()}
    photo = next((trained / "data/raw").glob("*/*.png"))
    shutil.copy(photo, tmp_path / photo.name)
    # As a user outside this repository runs it: the installed package, no source tree on
    # the path (the console script `image-classifier-predict` is the same command).
    env = {key: value for key, value in stage_env().items() if key != "PYTHONPATH"}
    result = run(
        ["image-classifier-predict", photo.name, "--model", "fetched/model.keras"],
        tmp_path,
        env=env,
    )
    assert photo.name in result.stdout
    table = pd.read_csv(tmp_path / "predictions.csv")
    assert (
        table["class_1"].iloc[0] in json.loads((fetched / "model.json").read_text())["class_names"]
    )


@pytest.fixture(scope="module")
def untrained(tmp_path_factory) -> Path:
    """An untrained 3-class model and its card: enough to check what predict refuses."""
    from image_classifier.model.architectures import build_model

    folder = tmp_path_factory.mktemp("untrained")
    build_model("separable_cnn", 32, 3, filters=[4]).save(folder / "model.keras")
    card = ModelCard(
        model="separable_cnn",
        class_names=["a", "b", "c"],
        image_size=32,
        fit="squash",
        max_megapixels=1,
    )
    write_card(folder / "model.keras", card)
    save_image(folder / "photos" / "one.png")
    return folder


def last_line(result) -> str:
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    return result.stderr.strip().splitlines()[-1]


def test_a_model_that_does_not_match_its_card_is_refused(untrained, tmp_path):
    from image_classifier.model.architectures import build_model

    build_model("separable_cnn", 32, 5, filters=[4]).save(tmp_path / "model.keras")
    shutil.copy(untrained / "model.json", tmp_path / "model.json")  # a 3-class card
    result = run_predict(
        str(untrained / "photos"), "--model", "model.keras", cwd=tmp_path, check=False
    )
    assert last_line(result) == (
        "predict: error: model.keras has 5 outputs but its card names 3 classes (model.json): "
        "they are from different runs; fetch both again (`dvc repro train`, `dvc pull` or "
        "`dvc artifacts get`)"
    )
    assert not (tmp_path / "predictions.csv").exists()


def test_a_failed_run_keeps_the_previous_csv_and_says_what_it_skipped(untrained, tmp_path):
    model = str(untrained / "model.keras")
    run_predict(str(untrained / "photos"), "--model", model, "--out", "p.csv", cwd=tmp_path)
    before = (tmp_path / "p.csv").read_text()
    assert "one.png" in before
    (tmp_path / "phone").mkdir()
    (tmp_path / "phone" / "IMG_1.HEIC").write_bytes(b"ftypheic")
    (tmp_path / "phone" / "notes.txt").write_text("x")
    result = run_predict("phone", "--model", model, "--out", "p.csv", cwd=tmp_path, check=False)
    assert last_line(result) == (
        "predict: error: the paths named hold no photos; skipped 2 files that are not photos: "
        "1 .heic, 1 .txt (convert HEIC photos to JPEG first)"
    )
    result = run_predict("typo.jpg", "--model", model, "--out", "p.csv", cwd=tmp_path, check=False)
    assert last_line(result) == (
        "predict: error: none of the 1 files named is a usable photo (1 not_found); "
        "p.csv is left as it was"
    )
    assert (tmp_path / "p.csv").read_text() == before


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (
            ["--model", "notes.keras"],
            "predict: error: notes.keras is not a Keras model file (a .keras file is a zip archive)",
        ),
        (
            ["--out", "results"],
            "predict: error: --out results is a folder: give the CSV's file name, e.g. results/predictions.csv",
        ),
    ],
)
def test_bad_model_and_out_paths_are_one_line(untrained, tmp_path, arguments, expected):
    (tmp_path / "notes.keras").write_text("not a model")
    shutil.copy(untrained / "model.json", tmp_path / "notes.json")
    (tmp_path / "results").mkdir()
    defaults = ["--model", str(untrained / "model.keras")]
    result = run_predict(
        str(untrained / "photos"), *defaults, *arguments, cwd=tmp_path, check=False
    )
    assert last_line(result) == expected


@pytest.mark.parametrize("fit", ["crop", "pad"])
def test_predict_fits_photos_as_the_card_says(untrained, tmp_path, fit):
    """The card's fit, not squash: on a non-square photo the three give other pixels, so
    other probabilities."""
    import keras
    from scipy.special import softmax

    from image_classifier.data.decode import load_image

    model = keras.models.load_model(untrained / "model.keras", compile=False)
    kernel, bias = model.get_layer("logits").get_weights()
    model.get_layer("logits").set_weights([kernel * 30, bias])  # so that pixels matter
    model.save(tmp_path / "model.keras")
    card = json.loads((untrained / "model.json").read_text()) | {"fit": fit}
    (tmp_path / "model.json").write_text(json.dumps(card))
    # Its left third white, the rest black: squash keeps the white third, crop cuts it off,
    # pad shrinks it to a ninth. (Random pixels look alike to a pooled network in any fit.)
    pixels = np.zeros((30, 90, 3), np.uint8)
    pixels[:, :30] = 255
    photo = tmp_path / "wide.png"
    Image.fromarray(pixels).save(photo)
    run_predict(str(photo), "--model", "model.keras", cwd=tmp_path)
    row = pd.read_csv(tmp_path / "predictions.csv").iloc[0]

    def probabilities(way):
        return softmax(model.predict(load_image(photo, 32, way, 10**8)[None], verbose=0), axis=1)[0]

    expected, squashed = probabilities(fit), probabilities("squash")
    assert row["probability_1"] == pytest.approx(expected.max(), abs=1e-4)
    # The fit shows in the answer: squashing would have printed other probabilities.
    assert np.abs(expected - squashed).max() > 1e-3


def test_predict_marks_answers_below_the_cards_threshold_unsure(untrained, tmp_path):
    """The card's unsure_below (chosen on val by train), or --min-confidence, decides which
    answers are printed and written as unsure."""
    import keras
    from scipy.special import softmax

    from image_classifier.data.decode import load_image

    model = keras.models.load_model(untrained / "model.keras", compile=False)
    photos = [
        save_detailed_image(tmp_path / "photos" / f"{index}.png", seed=index) for index in range(8)
    ]
    images = np.stack([load_image(photo, 32, "squash", 10**8) for photo in photos])
    # Scale the untrained logits so the top two differ by about 2 in the median: confidences
    # that differ photo to photo, far from both 1/3 and a saturated 1.0 (a fixed scale saturated
    # every photo for some initial weights).
    kernel, bias = model.get_layer("logits").get_weights()
    model.get_layer("logits").set_weights([kernel, np.zeros_like(bias)])
    top_two = np.sort(model.predict(images, verbose=0), axis=1)[:, -2:]
    model.get_layer("logits").set_weights([kernel * 2 / np.median(np.diff(top_two)), bias * 0])
    model.save(tmp_path / "model.keras")
    confidence = softmax(model.predict(images, verbose=0), axis=1).max(axis=1)
    # Cut at the widest gap between the 2nd and 7th lowest, so float differences between
    # machines cannot move a photo across the threshold.
    ranked = np.sort(confidence)
    cut = 1 + int(np.argmax(np.diff(ranked)[1:6]))
    assert ranked[cut + 1] - ranked[cut] > 1e-3, confidence
    threshold = float(ranked[cut : cut + 2].mean())
    unsure = cut + 1
    card = json.loads((untrained / "model.json").read_text()) | {"unsure_below": threshold}
    (tmp_path / "model.json").write_text(json.dumps(card))

    result = run_predict("photos", "--model", "model.keras", cwd=tmp_path)
    table = pd.read_csv(tmp_path / "predictions.csv").set_index("path")
    expected = dict(zip([str(Path("photos") / p.name) for p in photos], confidence < threshold))
    assert table["unsure"].to_dict() == expected and sum(expected.values()) == unsure
    assert sum("  unsure: " in line for line in result.stdout.splitlines()) == unsure
    assert f"8 photos classified ({unsure} unsure: below" in result.stderr
    run_predict("photos", "--model", "model.keras", "--min-confidence", "0", cwd=tmp_path)
    assert not pd.read_csv(tmp_path / "predictions.csv")["unsure"].any()
    result = run_predict(
        "photos", "--model", "model.keras", "--min-confidence", "1.5", cwd=tmp_path, check=False
    )
    assert result.returncode == 2  # argparse's usage error, as for every bad option
    assert result.stderr.strip().splitlines()[-1] == (
        "predict.py: error: --min-confidence must be between 0 and 1, not 1.5"
    )
