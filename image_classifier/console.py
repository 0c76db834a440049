"""How a stage starts and fails: one line on stderr, a non-zero exit, nothing half-written."""

import argparse
import logging
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

from tqdm import tqdm

from image_classifier.quiet import quiet_tensorflow

T = TypeVar("T")
# Libraries that log every step at INFO: the stages' own INFO lines are what a user reads.
QUIET_LOGGERS = ("tensorflow", "tf2onnx", "absl")


class StageError(Exception):
    """A problem the user can fix (bad param, missing file, refused download).

    Its message is one line that names the file, key or value at fault and what to do.
    """


def run_stage(
    main: Callable[[list[str] | None], None], argv: list[str] | None = None, name: str = ""
) -> None:
    """Run a stage's (or command's) `main`, turning a StageError into a one-line message
    `<name>: error: ...` and exit status 1; the name is the module's by default. Where the
    process starts, so this is where TensorFlow is quieted (quiet.py)."""
    quiet_tensorflow()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for chatty in QUIET_LOGGERS:  # their INFO lines ("Assets written to", tf2onnx's steps)
        logging.getLogger(chatty).setLevel(logging.WARNING)
    try:
        main(argv)
    except StageError as error:
        sys.exit(f"{name or Path(sys.argv[0]).stem}: error: {error}")


def progress(items: Iterable[T], description: str, total: int | None = None, unit: str = "it"):
    """A tqdm bar in a terminal; in a log (not a TTY), one refresh every 30 s instead of many."""
    interactive = sys.stderr.isatty()
    return tqdm(
        items,
        desc=description,
        total=total,
        unit=unit,
        mininterval=0.1 if interactive else 30,
        dynamic_ncols=True,
    )


# Inputs several stages read, described once.
SHARED_PATHS = {
    "resized": "the data/resized folder",
    "split": "the split CSV",
    "model": "the trained .keras model (its card beside it)",
}


def parse_paths(argv: list[str] | None, doc: str, *shared: str, **paths: str) -> argparse.Namespace:
    """The stage's paths as required `--name` options, from argv: `shared` names of
    SHARED_PATHS, then the stage's own (help text as the values).

    The paths are named once, in the stage's `cmd` in dvc.yaml.
    """
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    for name, help_text in ({name: SHARED_PATHS[name] for name in shared} | paths).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=Path, required=True, help=help_text)
    return parser.parse_args(argv)
