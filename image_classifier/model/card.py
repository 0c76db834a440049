"""What a trained model needs to be used outside the pipeline, in a JSON file beside it.

`train` writes models/model.json next to models/model.keras: the class names (the model
outputs only numbers) and the input contract (how a photo becomes the model's input, as
the resize stage did it). predict and export read it, so a pulled, applied or fetched
model works with nothing else from the pipeline.
"""

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from image_classifier.atomic import write_json
from image_classifier.console import StageError
from image_classifier.params import ModelName, ResizeFit


class ModelCard(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    model: ModelName
    class_names: list[str] = Field(min_length=2)
    # The input: an RGB photo decoded as the resize stage does (EXIF upright, any mode to
    # RGB), fitted to image_size x image_size by `fit`, as uint8 or float values 0-255.
    image_size: int = Field(ge=8)
    fit: ResizeFit
    max_megapixels: float = Field(gt=0)
    output: str = "logits"  # softmax gives the class probabilities
    # The model answers on each photo and its mirror image, averaged (model/mirror.py).
    flip_average: bool = False
    # Networks whose answers the model averages (train.members; model/mirror.py).
    members: int = Field(default=1, ge=1)
    # Fitted on the val split by train (model/calibration.py) and already folded into the
    # model's last layer: recorded so the calibration can be undone and reported.
    temperature: float = Field(default=1.0, gt=0)
    # predict marks an answer whose calibrated confidence is below this as unsure.
    unsure_below: float = Field(default=0.0, ge=0, le=1)

    @property
    def max_pixels(self) -> int:
        return int(self.max_megapixels * 1e6)


def make_card(**fields) -> ModelCard:
    """A card, checked: a value it cannot hold is a one-line error, not a traceback."""
    try:
        return ModelCard(**fields)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(map(str, first["loc"]))
        raise StageError(f"the model card cannot be written: {where}: {first['msg']}") from None


def card_path(model_path: Path) -> Path:
    """models/model.keras -> models/model.json."""
    return Path(model_path).with_suffix(".json")


def write_card(model_path: Path, card: ModelCard) -> None:
    write_json(card_path(model_path), card.model_dump())


def read_card(model_path: Path) -> ModelCard:
    """The card of the model at `model_path`; checked before Keras is imported, so a missing
    model is one clean line."""
    if not Path(model_path).is_file():
        raise StageError(f"{model_path} not found: run `dvc repro train` (or `dvc pull`) first")
    path = card_path(model_path)
    try:
        return ModelCard.model_validate_json(path.read_text())
    except FileNotFoundError:
        raise StageError(
            f"{path} not found: it comes with {Path(model_path).name} from `dvc repro train` "
            "(or `dvc pull`)"
        ) from None
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(map(str, first["loc"])) or "the file"
        raise StageError(f"{path}: {where}: {first['msg']}; re-run `dvc repro train`") from None
