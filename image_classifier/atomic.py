"""Atomic writes: a reader (or a crash) never sees half a file or half a folder.

Every output goes to a temporary name in the same folder, then takes the place of the old
one in one step. Temporaries that a killed run left behind are removed when the same
output is written again.
"""

import contextlib
import glob
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

TEMPORARY = ".tmp"  # every temporary name holds it; see stale_temporaries


def stale_temporaries(path: Path) -> list[Path]:
    """Temporaries of `path` left by an earlier run that was killed: .<name>.<random>.tmp*."""
    return sorted(path.parent.glob(f".{glob.escape(path.name)}.*{TEMPORARY}*"))


def remove_stale_temporaries(path: Path) -> None:
    for stale in stale_temporaries(path):
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success it replaces `path`, on error it goes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    # Same suffix as the target: some writers (Keras, matplotlib) choose the format by it.
    descriptor, name = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=f"{TEMPORARY}{path.suffix}"
    )
    os.close(descriptor)
    temporary = Path(name)
    try:
        yield temporary
        # mkstemp makes the file private (0600); an output gets the mode any new file gets.
        temporary.chmod(0o666 & ~_umask())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(text)


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_csv(path: Path, table: pd.DataFrame) -> None:
    with atomic_path(path) as temporary:
        table.to_csv(temporary, index=False)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_directory(path: Path) -> Iterator[Path]:
    """Yield an empty temporary folder next to `path`; on success it takes the place of `path`.

    The old folder is moved aside, the new one takes its name, then the old one is removed.
    A failure between the two renames puts the old one back, and a kill there leaves it
    aside, where the next run finds and restores it before it starts. (DVC removes a stage's
    outputs before running it; this keeps a folder whole when a stage runs outside DVC.)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _restore_moved_aside(path)
    remove_stale_temporaries(path)
    temporary = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMPORARY))
    temporary.chmod(0o777 & ~_umask())  # mkdtemp makes it private; outputs get the usual mode
    try:
        yield temporary
        if path.exists():
            aside = _aside_name(path)
            os.replace(path, aside)
            try:
                os.replace(temporary, path)
            except BaseException:
                os.replace(aside, path)
                raise
            shutil.rmtree(aside)
        else:
            os.replace(temporary, path)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def _aside_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.old{TEMPORARY}")


def _restore_moved_aside(path: Path) -> None:
    aside = _aside_name(path)
    if aside.is_dir() and not path.exists():
        os.replace(aside, path)
