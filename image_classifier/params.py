"""The one place where params.yaml is read and checked: one pydantic model per section.

params.yaml is read as YAML 1.2 (ruamel.yaml, as DVC writes it), so `2e-05` is a number.
Each stage asks for the sections it uses; a bad value stops it before any heavy work with
one line naming the key, the value and what is allowed. `params.schema.json` is generated
from these models (`python -m image_classifier.params > params.schema.json`) so editors check and
complete params.yaml as it is typed.
"""

import difflib
import json
import re
import sys
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from ruamel.yaml import YAML, YAMLError

from image_classifier.console import StageError

PARAMS_FILE = Path("params.yaml")
SCHEMA_FILE = Path("params.schema.json")

DataSource = Literal["animal-mnist", "kaggle", "folder"]
ResizeFit = Literal["squash", "crop", "pad"]
# separable_cnn is ours; the others are keras.applications backbones for transfer learning.
ModelName = Literal["separable_cnn", "vgg16", "resnet50", "efficientnetv2b0", "mobilenetv3small"]
MODELS: tuple[str, ...] = ModelName.__args__
Optimizer = Literal["adam", "adamw", "sgd"]
# What `train.monitor` can name (model/metrics.py), and whether higher is better. Plain
# val_accuracy is not offered: it rewards predicting the majority class.
MONITORS = {"val_macro_f1": "max", "val_balanced_accuracy": "max", "val_loss": "min"}
Monitor = Literal[tuple(MONITORS)]
# What train and sweep report of an epoch: every monitor, and plain accuracy for reference.
VAL_SCORES = ("val_macro_f1", "val_balanced_accuracy", "val_accuracy", "val_loss")
LearningRateSchedule = Literal["cosine", "constant"]
Interpolation = Literal["bilinear", "nearest"]
# owner/dataset, optionally pinned to a version: owner/dataset/versions/N
KAGGLE_HANDLE = re.compile(r"^[\w.-]+/[\w.-]+(/versions/\d+)?$")
# Local weights files live here: the folder is a dependency of train and sweep in dvc.yaml,
# so replacing a weights file re-runs them.
WEIGHTS_FOLDER = Path("weights")
MAX_WORKERS = 256

LearningRate = Annotated[float, Field(gt=0, le=10)]
BatchSize = Annotated[int, Field(ge=1, le=65536)]
UNIQUE = {"uniqueItems": True}


class ParamsError(StageError):
    pass


class InvalidKey(ValueError):
    """Raised by a cross-field rule: names the key at fault and what it allows."""

    def __init__(self, key: str, rule: str) -> None:
        super().__init__(rule)
        self.key = key


class Section(BaseModel):
    """One section of params.yaml: no unknown keys, no strings read as numbers, no inf/NaN."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)
    section: ClassVar[str]

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Self:
        raw = params.get(cls.section)
        if not isinstance(raw, dict):
            raise ParamsError(f"params.yaml: section '{cls.section}' is missing or not a mapping")
        try:
            return cls.model_validate(raw)
        except ValidationError as error:
            raise ParamsError(describe(cls, raw, error.errors()[0])) from None


def unique(values: list) -> list:
    if len(set(values)) != len(values):
        repeated = sorted({value for value in values if values.count(value) > 1})
        raise ValueError(f"must not repeat a value ({', '.join(map(str, repeated))} twice)")
    return values


class BaseParams(Section):
    section: ClassVar[str] = "base"
    seed: int = Field(
        ge=0, le=2**31 - 1, description="seeds the split, shuffling, init, augmentation"
    )


class DataParams(Section):
    section: ClassVar[str] = "data"
    source: DataSource = Field(description="animal-mnist (offline) | kaggle | folder")
    kaggle_dataset: str = Field(description="Kaggle handle owner/dataset[/versions/N]")
    folder: str = Field(
        min_length=1,
        description="for source folder: <class>/<img> or train|val|test/<class>/<img>; a "
        "dependency of download in dvc.yaml, so it must exist (the default photos/ does)",
    )
    max_images_per_class: int = Field(ge=0, description="0 = all; a small number = a quick slice")
    max_archive_members: int = Field(ge=1)
    max_archive_gigabytes: float = Field(gt=0)

    @model_validator(mode="after")
    def check_source(self) -> Self:
        segments = self.kaggle_dataset.split("/")
        if self.source == "kaggle" and (
            not KAGGLE_HANDLE.match(self.kaggle_dataset) or {".", ".."} & set(segments)
        ):
            rule = "must be a Kaggle handle owner/dataset or owner/dataset/versions/N"
            raise InvalidKey("kaggle_dataset", rule)
        if self.folder.startswith("~"):
            rule = "must be absolute or relative to the repository (DVC does not expand ~)"
            raise InvalidKey("folder", rule)
        if self.source == "folder" and not Path(self.folder).is_dir():
            raise InvalidKey("folder", "must name an existing folder when data.source is folder")
        return self

    @property
    def folder_path(self) -> Path:
        return Path(self.folder)


class ResizeParams(Section):
    section: ClassVar[str] = "resize"
    size: int = Field(ge=8, le=1024, description="side of the square images the models see")
    fit: ResizeFit = Field(description="squash (stretch) | crop (centre) | pad (white)")
    max_megapixels: float = Field(gt=0, description="larger files are rejected as bombs")
    workers: int = Field(ge=0, le=MAX_WORKERS, description="0 = every core")


class SplitParams(Section):
    section: ClassVar[str] = "split"
    val_fraction: float = Field(gt=0, lt=1)
    test_fraction: float = Field(gt=0, lt=1)

    @model_validator(mode="after")
    def check_sum(self) -> Self:
        if self.val_fraction + self.test_fraction >= 1:
            raise InvalidKey(
                "val_fraction",
                f"split.val_fraction + split.test_fraction ({self.val_fraction} + "
                f"{self.test_fraction}) must be below 1 to leave images for training",
            )
        return self


class TrainParams(Section):
    section: ClassVar[str] = "train"
    model: ModelName
    weights: str = Field(
        description="transfer models: imagenet | none | weights/<file>.h5 (a file in weights/)"
    )
    members: Literal["auto"] | Annotated[int, Field(ge=1, le=16)] = Field(
        description="networks trained from different random starts (seed, seed + 1000, ...), "
        "their answers averaged in one model; each trains the whole budget below, so "
        "training and inference take this many times one network's; auto: 2 where "
        "min_steps repeats a small train split within each epoch, else 1",
    )
    epochs: int = Field(ge=1)
    min_steps: int = Field(
        ge=0,
        description="at least this many optimiser steps in all: a small train split is "
        "repeated within each epoch",
    )
    max_steps: int = Field(
        ge=0,
        description="at most this many optimiser steps in all (0 = no cap): each epoch of a "
        "large train split then sees a part of it",
    )
    batch_size: BatchSize
    learning_rate: LearningRate
    optimizer: Optimizer
    lr_schedule: LearningRateSchedule
    l2: float = Field(ge=0, lt=1, description="weight decay of the separable_cnn's kernels")
    dropout: float = Field(ge=0, lt=1)
    filters: list[Annotated[int, Field(ge=1)]] = Field(min_length=1)
    flip: bool
    flip_average: bool = Field(
        description="answer on each photo and its mirror image, the two averaged (only with "
        "flip: true, which taught the model they are the same class); twice the inference cost"
    )
    rotation: float = Field(ge=0, le=0.5, description="fraction of a full turn")
    zoom: float = Field(ge=0, lt=1, description="fraction of the size")
    translation: float = Field(ge=0, lt=1, description="random shift, fraction of the size")
    interpolation: Interpolation = Field(
        description="augmentation's resampling: bilinear | nearest (about 40% less CPU for "
        "augmentation, but blockier: worse on small photo sets, see the README)"
    )
    monitor: Monitor = Field(
        description="picks the best epoch, stops early and ranks sweep pairs; honest under "
        "class imbalance (plain val_accuracy is not offered: it rewards the majority class)"
    )
    early_stopping_patience: int = Field(
        ge=0, description="epochs without a better train.monitor before stopping; 0 = never"
    )
    class_weights: bool
    unsure_error_ratio: float = Field(
        ge=0,
        le=1,
        description="predict marks answers below a confidence chosen on val as unsure, so "
        "that the answers above it are wrong at most this times as often as all answers (0: "
        "only answers more confident than every val mistake are sure; 1: none is unsure)",
    )
    fine_tune_epochs: int = Field(ge=0)
    fine_tune_learning_rate: LearningRate
    fine_tune_layers: int = Field(ge=1)

    @model_validator(mode="after")
    def check_weights(self) -> Self:
        if self.weights in ("imagenet", "none"):
            return self
        path = Path(self.weights)
        if not path.resolve().is_relative_to(WEIGHTS_FOLDER.resolve()):
            raise InvalidKey(
                "weights",
                f"must be imagenet, none or a file in {WEIGHTS_FOLDER}/ (a dependency of train "
                "in dvc.yaml, so that a new weights file re-runs it)",
            )
        if not path.is_file():
            raise InvalidKey("weights", f"must name an existing file in {WEIGHTS_FOLDER}/")
        return self

    @model_validator(mode="after")
    def check_steps(self) -> Self:
        if self.max_steps and self.max_steps < max(self.min_steps, self.epochs):
            raise InvalidKey(
                "max_steps",
                f"train.max_steps ({self.max_steps}) must be 0 (no cap) or at least "
                f"train.min_steps ({self.min_steps}) and train.epochs ({self.epochs})",
            )
        return self


class SweepParams(Section):
    section: ClassVar[str] = "sweep"
    learning_rates: list[LearningRate] = Field(min_length=1, json_schema_extra=UNIQUE)
    batch_sizes: list[BatchSize] = Field(min_length=1, json_schema_extra=UNIQUE)
    epochs: int = Field(ge=1, description="a short budget per pair: the sweep ranks, train trains")
    train_fraction: float = Field(gt=0, le=1, description="stratified share of train per pair")
    max_train_images: int = Field(
        ge=0, description="at most this many train images per pair (0 = no cap)"
    )

    @model_validator(mode="after")
    def check_unique(self) -> Self:
        for key in ("learning_rates", "batch_sizes"):
            try:
                unique(getattr(self, key))
            except ValueError as error:
                raise InvalidKey(key, str(error)) from None
        return self


class EvaluateParams(Section):
    section: ClassVar[str] = "evaluate"
    batch_size: BatchSize
    mistakes_shown: int = Field(ge=0, le=100)


class GradcamParams(Section):
    section: ClassVar[str] = "gradcam"
    layer: str = Field(description='"" = the last convolutional feature map, found by itself')
    correct_per_class: int = Field(ge=0, le=20)
    wrong_per_class: int = Field(ge=0, le=20)


class AuditParams(Section):
    section: ClassVar[str] = "audit"
    folds: int = Field(
        ge=2, le=20, description="cross-validation folds for the train images' probabilities"
    )
    candidates: int = Field(
        ge=1,
        le=100,
        description="near-duplicates: nearest photos by thumbnail compared with "
        "each photo; the median of their scores is the photo's ordinary likeness",
    )
    min_correlation: float = Field(
        ge=0,
        le=1,
        description="near-duplicates: the least detail correlation of a copy, at "
        "the best of small shifts and zooms",
    )
    relative_distance: float = Field(
        gt=0,
        le=1,
        description="near-duplicates: a copy's 1 - correlation is at most this "
        "share of 1 - the ordinary likeness of either photo",
    )
    shown: int = Field(ge=0, le=200, description="findings drawn in each gallery")


ExportFormat = Literal["saved_model", "tflite", "int8", "onnx"]


class ExportParams(Section):
    section: ClassVar[str] = "export"
    formats: list[ExportFormat] = Field(
        json_schema_extra=UNIQUE,
        description="saved_model (TensorFlow Serving, TF.js converters) | tflite (LiteRT: "
        "phones, edge devices) | int8 (LiteRT, full-integer: microcontrollers, NPUs) | onnx "
        "(ONNX Runtime, other frameworks); [] = only the card",
    )
    check_images: int = Field(
        ge=1, description="test images each float export is checked on against the Keras model"
    )
    int8_calibration_images: int = Field(
        ge=1, description="train images that set the int8 export's activation ranges"
    )
    int8_min_agreement: float = Field(
        ge=0,
        le=1,
        description="the int8 export must give the Keras model's top class on at "
        "least this share of the test split, or the stage stops",
    )
    int8_max_recall_drop: float = Field(
        ge=0,
        le=1,
        description="and no class's test recall may fall more than this below "
        "the Keras model's (0.02 = 2 points)",
    )

    @model_validator(mode="after")
    def check_unique(self) -> Self:
        try:
            unique(self.formats)
        except ValueError as error:
            raise InvalidKey("formats", str(error)) from None
        return self


SECTIONS: tuple[type[Section], ...] = (
    BaseParams,
    DataParams,
    ResizeParams,
    SplitParams,
    TrainParams,
    SweepParams,
    EvaluateParams,
    GradcamParams,
    ExportParams,
    AuditParams,
)


def describe(model: type[Section], raw: dict[str, Any], error: dict) -> str:
    """One pydantic error as one line naming the key, the value and what is allowed."""
    section, location = model.section, error["loc"]
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, InvalidKey):
        return (
            f"params.yaml: {section}.{cause.key} = {raw.get(cause.key)!r} is not allowed: {cause}"
        )
    key = str(location[0])
    if error["type"] == "missing":
        return f"params.yaml: {section}.{key} is missing"
    if error["type"] == "extra_forbidden":
        known = ", ".join(model.model_fields)
        return f"params.yaml: {section}.{key} is not a known key (known: {known})"
    return f"params.yaml: {section}.{key} = {raw[key]!r} is not allowed: {rule(model, key)}"


def rule(model: type[Section], key: str) -> str:
    """What a key allows, in words, from the same JSON Schema that editors use."""
    schema = model.model_json_schema()
    return "must be " + _words(schema["properties"][key], schema.get("$defs", {}))


def _words(schema: dict, definitions: dict) -> str:
    if "$ref" in schema:
        schema = definitions[schema["$ref"].split("/")[-1]]
    if "anyOf" in schema:  # e.g. train.members: "auto" or an integer
        return " or ".join(_words(option, definitions) for option in schema["anyOf"])
    if "enum" in schema:
        return "one of " + ", ".join(map(str, schema["enum"]))
    if "const" in schema:
        return repr(schema["const"])
    kind = schema.get("type")
    if kind == "boolean":
        return "true or false"
    if kind == "string":
        return "a non-empty string" if schema.get("minLength") else "a string"
    if kind == "array":
        items = _words(schema["items"], definitions).removeprefix("a ").removeprefix("an ")
        noun = items.replace("integer", "integers", 1).replace("number", "numbers", 1)
        size = "a non-empty list" if schema.get("minItems", 0) >= 1 else "a list"
        return f"{size} of {noun}" + (", no value twice" if "uniqueItems" in schema else "")
    bounds = [
        f"{symbol} {schema[name]}"
        for name, symbol in (
            ("minimum", ">="),
            ("exclusiveMinimum", ">"),
            ("maximum", "<="),
            ("exclusiveMaximum", "<"),
        )
        if name in schema
    ]
    noun = "an integer" if kind == "integer" else "a finite number"
    return " ".join([noun, " and ".join(bounds)]).strip()


def yaml_1_2() -> YAML:
    """The YAML 1.2 reader and writer of params files, as DVC reads and writes them."""
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.sort_base_mapping_type_on_output = False
    return yaml


def write_params_file(path: Path, params: dict[str, Any]) -> None:
    """params.yaml (or a copy of it elsewhere) from a mapping of sections, in section order."""
    with Path(path).open("w") as out:
        yaml_1_2().dump(params, out)


def read_params(path: Path = PARAMS_FILE) -> dict[str, Any]:
    try:
        params = yaml_1_2().load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ParamsError(f"{path} not found: run the stage from the repository root") from None
    except UnicodeDecodeError as error:
        raise ParamsError(
            f"{path} is not UTF-8 text (byte {error.object[error.start]:#04x} at position "
            f"{error.start}): save it as UTF-8"
        ) from None
    except YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ParamsError(f"{path} is not valid YAML{where}") from None
    if not isinstance(params, dict):
        raise ParamsError(f"{path} must be a mapping of sections (base, data, ...)")
    known = [model.section for model in SECTIONS]
    for section in params:
        if section not in known:
            close = difflib.get_close_matches(str(section), known, n=1)
            hint = f": did you mean {close[0]!r}?" if close else ""
            raise ParamsError(
                f"{path}: section {section!r} is not a known section{hint} (known: "
                f"{', '.join(known)})"
            )
    return params


def json_schema() -> dict:
    """The JSON Schema of the whole params.yaml, one object per section."""
    properties, definitions = {}, {}
    for model in SECTIONS:
        schema = model.model_json_schema()
        definitions.update(schema.pop("$defs", {}))
        schema["title"] = f"{model.section} params"
        properties[model.section] = schema
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "params.yaml of the Keras + DVC image-classification pipeline",
        "type": "object",
        "properties": properties,
        "required": [model.section for model in SECTIONS],
        "additionalProperties": False,
        "$defs": definitions,
    }


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2) + "\n"


if __name__ == "__main__":
    sys.stdout.write(schema_text())
