"""Atomic writes: a reader (or a crash) never sees half a file or half a folder.

Every output goes to a temporary name in the same folder, then takes the place of the old
one in one step. Temporaries that a killed run left behind are removed when the same
output is written again.
"""

import contextlib
import ctypes
import ctypes.util
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

TEMPORARY = ".tmp"  # every temporary name holds it; see stale_temporaries


def stale_temporaries(path: Path) -> list[Path]:
    """Temporaries of `path` left by an earlier run that was killed: .<name>.<random>.tmp*."""
    return sorted(path.parent.glob(f".{glob_escape(path.name)}.*{TEMPORARY}*"))


def glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


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


RENAME_EXCHANGE = 2  # linux/fs.h


def _exchange_linux(first: Path, second: Path) -> bool:
    """Swap two paths in one step with renameat2(RENAME_EXCHANGE); False where unsupported."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    at_cwd = -100
    result = renameat2(at_cwd, os.fsencode(first), at_cwd, os.fsencode(second), RENAME_EXCHANGE)
    if result == 0:
        return True
    error = ctypes.get_errno()
    if error in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: this file system cannot
        return False
    raise OSError(error, os.strerror(error), str(first))


def exchange(first: Path, second: Path) -> bool:
    """Swap two existing paths atomically if the OS can (Linux); return whether it did."""
    if sys.platform.startswith("linux"):
        return _exchange_linux(first, second)
    return False


@contextlib.contextmanager
def atomic_directory(path: Path) -> Iterator[Path]:
    """Yield an empty temporary folder next to `path`; on success it takes the place of `path`.

    Where the OS swaps two folders in one step (Linux), a reader sees the old folder or the
    new one and never neither. Elsewhere the old folder is moved aside first; a failure
    between the two renames puts it back, and a kill there leaves it as a temporary that the
    next run restores before it starts.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _restore_moved_aside(path)
    remove_stale_temporaries(path)
    temporary = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMPORARY))
    temporary.chmod(0o777 & ~_umask())  # mkdtemp makes it private; outputs get the usual mode
    try:
        yield temporary
        if not path.exists():
            os.replace(temporary, path)
        elif exchange(temporary, path):
            shutil.rmtree(temporary)  # now the old folder
        else:
            aside = _aside_name(path)
            os.replace(path, aside)
            try:
                os.replace(temporary, path)
            except BaseException:
                os.replace(aside, path)
                raise
            shutil.rmtree(aside)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def _aside_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.old{TEMPORARY}")


def _restore_moved_aside(path: Path) -> None:
    aside = _aside_name(path)
    if aside.is_dir() and not path.exists():
        os.replace(aside, path)
