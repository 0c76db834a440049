"""params.yaml is read as YAML 1.2 and checked in one place (pydantic); each bad value gives
one line naming key, value and rule; the JSON Schema editors use is kept current."""

import json
import re
from pathlib import Path

import pytest

from image_classifier.params import (
    SCHEMA_FILE,
    SECTIONS,
    BaseParams,
    DataParams,
    ParamsError,
    ResizeParams,
    SplitParams,
    SweepParams,
    TrainParams,
    read_params,
    schema_text,
)
from tests.conftest import ROOT, set_param

BY_NAME = {model.section: model for model in SECTIONS}


def committed() -> dict:
    return read_params(ROOT / "params.yaml")


def test_committed_params_are_valid():
    params = committed()
    for model in SECTIONS:
        model.from_params(params)
    assert DataParams.from_params(params).source == "animal-mnist"
    assert ResizeParams.from_params(params).size == 120


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        (
            "base.seed",
            -1,
            "base.seed = -1 is not allowed: must be an integer >= 0 and <= 2147483647",
        ),
        (
            "base.seed",
            1.5,
            "base.seed = 1.5 is not allowed: must be an integer >= 0 and <= 2147483647",
        ),
        (
            "base.seed",
            True,
            "base.seed = True is not allowed: must be an integer >= 0 and <= 2147483647",
        ),
        (
            "data.source",
            "imagenet",
            "data.source = 'imagenet' is not allowed: must be one of animal-mnist, kaggle, folder",
        ),
        (
            "data.max_images_per_class",
            -3,
            "data.max_images_per_class = -3 is not allowed: must be an integer >= 0",
        ),
        ("resize.size", 0, "resize.size = 0 is not allowed: must be an integer >= 8 and <= 1024"),
        (
            "resize.size",
            "120",
            "resize.size = '120' is not allowed: must be an integer >= 8 and <= 1024",
        ),
        (
            "resize.fit",
            "zoom",
            "resize.fit = 'zoom' is not allowed: must be one of squash, crop, pad",
        ),
        (
            "resize.max_megapixels",
            0,
            "resize.max_megapixels = 0 is not allowed: must be a finite number > 0",
        ),
        (
            "split.val_fraction",
            1.2,
            "split.val_fraction = 1.2 is not allowed: must be a finite number > 0 and < 1",
        ),
        (
            "split.test_fraction",
            0,
            "split.test_fraction = 0 is not allowed: must be a finite number > 0 and < 1",
        ),
        (
            "split.val_fraction",
            float("nan"),
            "split.val_fraction = nan is not allowed: must be a finite number > 0 and < 1",
        ),
        (
            "split.val_fraction",
            0.9,
            "split.val_fraction = 0.9 is not allowed: split.val_fraction + split.test_fraction (0.9 + 0.15) must be below 1 to leave images for training",
        ),
        (
            "train.learning_rate",
            float("inf"),
            "train.learning_rate = inf is not allowed: must be a finite number > 0 and <= 10",
        ),
        ("train.flip", "yes", "train.flip = 'yes' is not allowed: must be true or false"),
        (
            "train.members",
            0,
            "train.members = 0 is not allowed: must be 'auto' or an integer >= 1 and <= 16",
        ),
        (
            "train.max_steps",
            1000,
            "train.max_steps = 1000 is not allowed: train.max_steps (1000) must be 0 (no cap) or at least train.min_steps (1500) and train.epochs (20)",
        ),
        (
            "train.filters",
            [32, 0],
            "train.filters = [32, 0] is not allowed: must be a non-empty list of integers >= 1",
        ),
        (
            "sweep.learning_rates",
            [0.001, 0.01, 0.001],
            "sweep.learning_rates = [0.001, 0.01, 0.001] is not allowed: must not repeat a value (0.001 twice)",
        ),
        (
            "sweep.batch_sizes",
            [32, 32],
            "sweep.batch_sizes = [32, 32] is not allowed: must not repeat a value (32 twice)",
        ),
        (
            "sweep.learning_rates",
            [],
            "sweep.learning_rates = [] is not allowed: must be a non-empty list of finite numbers > 0 and <= 10, no value twice",
        ),
        # [] is allowed here (only the card is exported), so the rule must not say non-empty.
        (
            "export.formats",
            ["tflite", "png"],
            "export.formats = ['tflite', 'png'] is not allowed: must be a list of one of saved_model, tflite, int8, onnx, no value twice",
        ),
    ],
)
def test_bad_value_names_key_value_and_rule(key, value, expected):
    params = committed()
    set_param(params, key, value)
    with pytest.raises(ParamsError) as error:
        BY_NAME[key.split(".")[0]].from_params(params)
    assert str(error.value) == f"params.yaml: {expected}"


def test_small_floats_as_dvc_writes_them_are_numbers(tmp_path: Path):
    """`dvc exp run -S train.learning_rate=0.00002` writes `2e-05`, a string in YAML 1.1."""
    text = (ROOT / "params.yaml").read_text()
    text = text.replace("  learning_rate: 0.003", "  learning_rate: 2e-05")
    text = text.replace("fine_tune_learning_rate: 0.00001", "fine_tune_learning_rate: 1e-5")
    path = tmp_path / "params.yaml"
    path.write_text(text)
    train = TrainParams.from_params(read_params(path))
    assert train.learning_rate == 2e-05
    assert train.fine_tune_learning_rate == 1e-05


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "  learning_rate: .inf",
            "train.learning_rate = inf is not allowed: must be a finite number",
        ),
        (
            "  learning_rate: .nan",
            "train.learning_rate = nan is not allowed: must be a finite number",
        ),
        (
            "  learning_rate: '0.01'",
            "train.learning_rate = '0.01' is not allowed: must be a finite number",
        ),
    ],
)
def test_yaml_special_values_are_refused(tmp_path: Path, line, expected):
    text = (ROOT / "params.yaml").read_text().replace("  learning_rate: 0.003", line)
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ParamsError, match=expected.replace(".", r"\.")):
        TrainParams.from_params(read_params(path))


def test_sweep_lists_are_checked_before_training():
    params = committed()
    set_param(params, "sweep.learning_rates", [0.001, 0.001])
    with pytest.raises(ParamsError, match="must not repeat a value"):
        SweepParams.from_params(params)


def test_kaggle_handle_is_checked_only_for_kaggle():
    params = committed()
    set_param(params, "data.kaggle_dataset", "not a handle")
    DataParams.from_params(params)  # animal-mnist does not use it
    set_param(params, "data.source", "kaggle")
    with pytest.raises(ParamsError, match="owner/dataset or owner/dataset/versions/N"):
        DataParams.from_params(params)


def test_folder_must_exist_for_folder_source(tmp_path: Path):
    params = committed()
    set_param(params, "data.source", "folder")
    set_param(params, "data.folder", str(tmp_path / "nowhere"))
    with pytest.raises(ParamsError, match=r"data\.folder = '.*nowhere' is not allowed: must name"):
        DataParams.from_params(params)
    set_param(params, "data.folder", str(tmp_path))
    assert DataParams.from_params(params).folder_path == tmp_path
    set_param(params, "data.folder", "~/photos")
    with pytest.raises(ParamsError, match="DVC does not expand ~"):
        DataParams.from_params(params)


def test_missing_and_unknown_keys():
    params = committed()
    del params["resize"]["size"]
    with pytest.raises(ParamsError, match=r"^params\.yaml: resize\.size is missing$"):
        ResizeParams.from_params(params)
    params = committed()
    params["split"]["val_fracton"] = 0.1
    with pytest.raises(
        ParamsError,
        match=r"^params\.yaml: split\.val_fracton is not a known key \(known: val_fraction, test_fraction\)$",
    ):
        SplitParams.from_params(params)
    with pytest.raises(ParamsError, match="section 'base' is missing"):
        BaseParams.from_params({})


def test_unreadable_params_file(tmp_path: Path):
    with pytest.raises(ParamsError, match="not found"):
        read_params(tmp_path / "params.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("base:\n  seed: [1,\n")
    with pytest.raises(ParamsError, match="not valid YAML at line"):
        read_params(bad)
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ParamsError, match="must be a mapping"):
        read_params(bad)


def test_json_schema_is_current_and_params_yaml_points_to_it():
    assert (ROOT / SCHEMA_FILE).read_text() == schema_text(), (
        "params.schema.json is stale: python -m image_classifier.params > params.schema.json"
    )
    schema = json.loads(schema_text())
    assert set(schema["properties"]) == set(committed())
    assert schema["properties"]["train"]["additionalProperties"] is False
    first_line = (ROOT / "params.yaml").read_text().splitlines()[0]
    assert first_line == f"# yaml-language-server: $schema={SCHEMA_FILE}"


def test_a_params_file_that_is_not_utf8_is_one_line(tmp_path: Path):
    text = (ROOT / "params.yaml").read_text().replace("base:", "# caf\u00e9\nbase:", 1)
    (tmp_path / "params.yaml").write_bytes(text.encode("latin-1"))
    with pytest.raises(
        ParamsError,
        match=r"params.yaml is not UTF-8 text \(byte 0xe9 at "
        r"position \d+\): save it as UTF-8",
    ):
        read_params(tmp_path / "params.yaml")


def test_an_unknown_section_is_refused_with_a_suggestion(tmp_path: Path):
    text = (ROOT / "params.yaml").read_text() + "\ntrian:\n  epochs: 3\n"
    (tmp_path / "params.yaml").write_text(text)
    with pytest.raises(ParamsError) as error:
        read_params(tmp_path / "params.yaml")
    assert str(error.value).startswith(
        f"{tmp_path / 'params.yaml'}: section 'trian' is not a known section: did you mean "
        "'train'? (known: base, data, resize"
    )


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("data.kaggle_dataset", "owner/..", "must be a Kaggle handle owner/dataset"),
        ("data.kaggle_dataset", "../etc/versions/1", "must be a Kaggle handle owner/dataset"),
        ("data.folder", "", "data.folder = '' is not allowed: must be a non-empty string"),
        ("train.weights", "/tmp/vgg16.h5", "must be imagenet, none or a file in weights/"),
        ("train.weights", "weights/missing.h5", "must name an existing file in weights/"),
        ("resize.workers", 1000, "must be an integer >= 0 and <= 256"),
    ],
)
def test_values_that_passed_and_then_misbehaved(key, value, expected):
    params = committed()
    set_param(params, key, value)
    if key == "data.kaggle_dataset":
        set_param(params, "data.source", "kaggle")
    with pytest.raises(ParamsError, match=re.escape(expected)):
        BY_NAME[key.split(".")[0]].from_params(params)
