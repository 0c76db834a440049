"""The one place where params.yaml is read and checked.

Each stage asks for the sections it uses; a bad value stops it before any heavy work with
one line naming the key, the value and what is allowed.
"""

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import yaml

from stages.cli import StageError

PARAMS_FILE = Path("params.yaml")

DATA_SOURCES = ("animal-mnist", "kaggle", "folder")
RESIZE_FITS = ("squash", "crop", "pad")
# separable_cnn is ours; the others are keras.applications backbones for transfer learning.
MODELS = ("separable_cnn", "vgg16", "resnet50", "efficientnetv2b0", "mobilenetv3small")
OPTIMIZERS = ("adam", "adamw", "sgd")
LR_SCHEDULES = ("cosine", "constant")
# owner/dataset, optionally pinned to a version: owner/dataset/versions/N
KAGGLE_HANDLE = re.compile(r"^[\w.-]+/[\w.-]+(/versions/\d+)?$")


class ParamsError(StageError):
    pass


def read_params(path: Path = PARAMS_FILE) -> dict[str, Any]:
    try:
        params = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ParamsError(f"{path} not found: run the stage from the repository root") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ParamsError(f"{path} is not valid YAML{where}") from None
    if not isinstance(params, dict):
        raise ParamsError(f"{path} must be a mapping of sections (base, data, ...)")
    return params


class Section:
    """Typed, checked access to one section of params.yaml; remembers which keys were read."""

    def __init__(self, params: dict[str, Any], name: str) -> None:
        raw = params.get(name)
        if not isinstance(raw, dict):
            raise ParamsError(f"params.yaml: section '{name}' is missing or not a mapping")
        self.name = name
        self._raw = raw
        self._read: set[str] = set()

    def error(self, key: str, value: Any, allowed: str) -> ParamsError:
        return ParamsError(f"params.yaml: {self.name}.{key} = {value!r} is not allowed: {allowed}")

    def _get(self, key: str) -> Any:
        self._read.add(key)
        if key not in self._raw:
            raise ParamsError(f"params.yaml: {self.name}.{key} is missing")
        return self._raw[key]

    def integer(self, key: str, minimum: int | None = None, maximum: int | None = None) -> int:
        value = self._get(key)
        allowed = _range_text("an integer", minimum, maximum)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.error(key, value, allowed)
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise self.error(key, value, allowed)
        return value

    def number(
        self,
        key: str,
        minimum: float | None = None,
        maximum: float | None = None,
        above: float | None = None,
        below: float | None = None,
    ) -> float:
        value = self._get(key)
        return self._check_number(key, value, value, minimum, maximum, above, below)

    def numbers(self, key: str, **bounds: float) -> list[float]:
        values = self._get(key)
        if not isinstance(values, list) or not values:
            raise self.error(key, values, "must be a non-empty list of numbers")
        return [self._check_number(key, values, value, **bounds) for value in values]

    def integers(self, key: str, minimum: int) -> list[int]:
        values = self._get(key)
        allowed = f"must be a non-empty list of integers >= {minimum}"
        if not isinstance(values, list) or not values:
            raise self.error(key, values, allowed)
        for value in values:
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                raise self.error(key, values, allowed)
        return values

    def _check_number(
        self,
        key: str,
        shown: Any,
        value: Any,
        minimum: float | None = None,
        maximum: float | None = None,
        above: float | None = None,
        below: float | None = None,
    ) -> float:
        parts = []
        if minimum is not None:
            parts.append(f">= {minimum}")
        if above is not None:
            parts.append(f"> {above}")
        if maximum is not None:
            parts.append(f"<= {maximum}")
        if below is not None:
            parts.append(f"< {below}")
        allowed = "must be a number" + (" " + " and ".join(parts) if parts else "")
        if not isinstance(value, int | float) or isinstance(value, bool) or value != value:
            raise self.error(key, shown, allowed)
        if (
            (minimum is not None and value < minimum)
            or (maximum is not None and value > maximum)
            or (above is not None and value <= above)
            or (below is not None and value >= below)
        ):
            raise self.error(key, shown, allowed)
        return float(value)

    def choice(self, key: str, options: tuple[str, ...]) -> str:
        value = self._get(key)
        if value not in options:
            raise self.error(key, value, "must be one of " + ", ".join(options))
        return value

    def text(self, key: str) -> str:
        value = self._get(key)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise self.error(key, value, "must be a string")
        return value

    def flag(self, key: str) -> bool:
        value = self._get(key)
        if not isinstance(value, bool):
            raise self.error(key, value, "must be true or false")
        return value

    def check_no_unknown_keys(self) -> None:
        unknown = sorted(set(self._raw) - self._read)
        if unknown:
            known = ", ".join(sorted(self._read))
            raise ParamsError(
                f"params.yaml: {self.name}.{unknown[0]} is not a known key (known: {known})"
            )


def _range_text(kind: str, minimum: int | None, maximum: int | None) -> str:
    if minimum is not None and maximum is not None:
        return f"must be {kind} from {minimum} to {maximum}"
    if minimum is not None:
        return f"must be {kind} >= {minimum}"
    return f"must be {kind}"


@dataclass(frozen=True)
class BaseParams:
    seed: int

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Self:
        section = Section(params, "base")
        result = cls(seed=section.integer("seed", minimum=0, maximum=2**31 - 1))
        section.check_no_unknown_keys()
        return result


@dataclass(frozen=True)
class DataParams:
    source: str
    kaggle_dataset: str
    folder: Path | None
    max_images_per_class: int
    max_archive_members: int
    max_archive_gigabytes: float

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Self:
        section = Section(params, "data")
        source = section.choice("source", DATA_SOURCES)
        kaggle_dataset = section.text("kaggle_dataset")
        if source == "kaggle" and not KAGGLE_HANDLE.match(kaggle_dataset):
            raise section.error(
                "kaggle_dataset",
                kaggle_dataset,
                "must be a Kaggle handle owner/dataset or owner/dataset/versions/N",
            )
        folder_text = section.text("folder")
        folder = Path(folder_text).expanduser() if folder_text else None
        if source == "folder" and (folder is None or not folder.is_dir()):
            raise section.error(
                "folder", folder_text, "must name an existing folder when data.source is folder"
            )
        result = cls(
            source=source,
            kaggle_dataset=kaggle_dataset,
            folder=folder,
            max_images_per_class=section.integer("max_images_per_class", minimum=0),
            max_archive_members=section.integer("max_archive_members", minimum=1),
            max_archive_gigabytes=section.number("max_archive_gigabytes", above=0),
        )
        section.check_no_unknown_keys()
        return result


@dataclass(frozen=True)
class ResizeParams:
    size: int
    fit: str
    max_megapixels: float
    workers: int

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Self:
        section = Section(params, "resize")
        result = cls(
            size=section.integer("size", minimum=8, maximum=1024),
            fit=section.choice("fit", RESIZE_FITS),
            max_megapixels=section.number("max_megapixels", above=0),
            workers=section.integer("workers", minimum=0),
        )
        section.check_no_unknown_keys()
        return result


@dataclass(frozen=True)
class SplitParams:
    val_fraction: float
    test_fraction: float

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Self:
        section = Section(params, "split")
        val_fraction = section.number("val_fraction", above=0, below=1)
        test_fraction = section.number("test_fraction", above=0, below=1)
        if val_fraction + test_fraction >= 1:
            raise section.error(
                "val_fraction",
                val_fraction,
                f"split.val_fraction + split.test_fraction ({val_fraction} + {test_fraction}) "
                "must be below 1 to leave images for training",
            )
        result = cls(val_fraction=val_fraction, test_fraction=test_fraction)
        section.check_no_unknown_keys()
        return result


@dataclass(frozen=True)
class TrainParams:
    model: str
    weights: str  # "imagenet", "none" or a path to a weights file, for transfer models
    epochs: int
    batch_size: int
    learning_rate: float
    optimizer: str
    lr_schedule: str
    l2: float
    dropout: float
    filters: list[int]
    flip: bool
    rotation: float
    zoom: float
    early_stopping_patience: int
    class_weights: bool
    fine_tune_epochs: int
    fine_tune_learning_rate: float
    fine_tune_layers: int

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Self:
        section = Section(params, "train")
        model = section.choice("model", MODELS)
        weights = section.text("weights")
        if weights not in ("imagenet", "none") and not Path(weights).expanduser().is_file():
            raise section.error(
                "weights", weights, "must be imagenet, none or the path of an existing weights file"
            )
        result = cls(
            model=model,
            weights=weights,
            epochs=section.integer("epochs", minimum=1),
            batch_size=section.integer("batch_size", minimum=1, maximum=65536),
            learning_rate=section.number("learning_rate", above=0, maximum=10),
            optimizer=section.choice("optimizer", OPTIMIZERS),
            lr_schedule=section.choice("lr_schedule", LR_SCHEDULES),
            l2=section.number("l2", minimum=0, below=1),
            dropout=section.number("dropout", minimum=0, below=1),
            filters=section.integers("filters", minimum=1),
            flip=section.flag("flip"),
            rotation=section.number("rotation", minimum=0, maximum=0.5),
            zoom=section.number("zoom", minimum=0, below=1),
            early_stopping_patience=section.integer("early_stopping_patience", minimum=0),
            class_weights=section.flag("class_weights"),
            fine_tune_epochs=section.integer("fine_tune_epochs", minimum=0),
            fine_tune_learning_rate=section.number("fine_tune_learning_rate", above=0, maximum=10),
            fine_tune_layers=section.integer("fine_tune_layers", minimum=1),
        )
        section.check_no_unknown_keys()
        return result


@dataclass(frozen=True)
class SweepParams:
    learning_rates: list[float]
    batch_sizes: list[int]
    epochs: int
    train_fraction: float

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Self:
        section = Section(params, "sweep")
        result = cls(
            learning_rates=section.numbers("learning_rates", above=0, maximum=10),
            batch_sizes=section.integers("batch_sizes", minimum=1),
            epochs=section.integer("epochs", minimum=1),
            train_fraction=section.number("train_fraction", above=0, maximum=1),
        )
        section.check_no_unknown_keys()
        return result


@dataclass(frozen=True)
class EvaluateParams:
    batch_size: int
    mistakes_shown: int

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Self:
        section = Section(params, "evaluate")
        result = cls(
            batch_size=section.integer("batch_size", minimum=1),
            mistakes_shown=section.integer("mistakes_shown", minimum=0, maximum=100),
        )
        section.check_no_unknown_keys()
        return result


@dataclass(frozen=True)
class GradcamParams:
    layer: str  # "" = the last convolutional feature map, found automatically
    correct_per_class: int
    wrong_per_class: int

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Self:
        section = Section(params, "gradcam")
        result = cls(
            layer=section.text("layer"),
            correct_per_class=section.integer("correct_per_class", minimum=0, maximum=20),
            wrong_per_class=section.integer("wrong_per_class", minimum=0, maximum=20),
        )
        section.check_no_unknown_keys()
        return result
