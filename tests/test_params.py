"""params.yaml is checked in one place; each bad value gives one line naming key, value, rule."""

from pathlib import Path

import pytest
import yaml

from stages.params import (
    BaseParams,
    DataParams,
    ParamsError,
    ResizeParams,
    SplitParams,
    read_params,
)
from tests.conftest import ROOT, set_param

SECTIONS = {"base": BaseParams, "data": DataParams, "resize": ResizeParams, "split": SplitParams}


def committed() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_committed_params_are_valid():
    params = committed()
    for parse in SECTIONS.values():
        parse.from_params(params)
    assert DataParams.from_params(params).source == "animal-mnist"
    assert ResizeParams.from_params(params).size == 120


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("base.seed", -1, "base.seed = -1 is not allowed: must be an integer from 0"),
        ("base.seed", 1.5, "base.seed = 1.5 is not allowed"),
        ("base.seed", True, "base.seed = True is not allowed"),
        ("data.source", "imagenet", "must be one of animal-mnist, kaggle, folder"),
        ("data.max_images_per_class", -3, "data.max_images_per_class = -3"),
        ("resize.size", 0, "resize.size = 0 is not allowed: must be an integer from 8 to 1024"),
        ("resize.size", "120", "resize.size = '120' is not allowed"),
        ("resize.fit", "zoom", "resize.fit = 'zoom' is not allowed: must be one of squash, crop"),
        ("resize.max_megapixels", 0, "must be a number > 0"),
        ("split.val_fraction", 1.2, "split.val_fraction = 1.2 is not allowed"),
        ("split.test_fraction", 0, "split.test_fraction = 0 is not allowed: must be a number > 0"),
        ("split.val_fraction", float("nan"), "split.val_fraction = nan"),
        ("split.val_fraction", 0.9, "(0.9 + 0.15) must be below 1"),
    ],
)
def test_bad_value_names_key_value_and_rule(key, value, expected):
    params = committed()
    set_param(params, key, value)
    section = key.split(".")[0]
    with pytest.raises(ParamsError) as error:
        SECTIONS[section].from_params(params)
    message = str(error.value)
    assert expected in message
    assert "\n" not in message


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
    assert DataParams.from_params(params).folder == tmp_path


def test_missing_and_unknown_keys():
    params = committed()
    del params["resize"]["size"]
    with pytest.raises(ParamsError, match=r"resize\.size is missing"):
        ResizeParams.from_params(params)
    params = committed()
    params["split"]["val_fracton"] = 0.1
    with pytest.raises(ParamsError, match=r"split\.val_fracton is not a known key"):
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
