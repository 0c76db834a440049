"""Safe extraction of downloaded zip and tar archives.

No member may land outside the target folder (absolute paths, `..`, links are skipped with a
warning), and the member count and total extracted size are capped, so a hostile or
corrupt archive can neither write elsewhere nor fill the disk.
"""

import logging
import shutil
import stat
import tarfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from image_classifier.console import StageError

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20


class ArchiveError(StageError):
    pass


@dataclass(frozen=True)
class Member:
    name: str
    size: int
    is_file: bool
    is_link: bool


def unsafe_reason(member: Member) -> str | None:
    """Why a member must not be extracted, or None when it is safe."""
    if member.is_link:
        return "links are not extracted"
    name = member.name.replace("\\", "/")
    path = PurePosixPath(name)
    if path.is_absolute() or (len(name) > 1 and name[1] == ":"):
        return "absolute path"
    if ".." in path.parts:
        return "path escapes the target folder"
    return None


def _zip_members(archive: zipfile.ZipFile) -> Iterator[tuple[Member, zipfile.ZipInfo]]:
    for info in archive.infolist():
        mode = info.external_attr >> 16
        yield (
            Member(info.filename, info.file_size, not info.is_dir(), stat.S_ISLNK(mode)),
            info,
        )


def _tar_members(archive: tarfile.TarFile) -> Iterator[tuple[Member, tarfile.TarInfo]]:
    for info in archive.getmembers():
        is_link = not (info.isfile() or info.isdir())
        yield Member(info.name, info.size, info.isfile(), is_link), info


@contextmanager
def _open(path: Path) -> Iterator[tuple[list, callable]]:
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            yield list(_zip_members(archive)), archive.open
    elif tarfile.is_tarfile(path):
        with tarfile.open(path) as archive:
            yield list(_tar_members(archive)), archive.extractfile
    else:
        raise ArchiveError(f"{path.name} is neither a zip nor a tar archive")


def _copy_capped(source: IO[bytes], target: Path, budget: int, archive_name: str) -> int:
    """Copy at most `budget` bytes; the sizes an archive declares are not trusted."""
    written = 0
    with target.open("wb") as out:
        while chunk := source.read(CHUNK_BYTES):
            written += len(chunk)
            if written > budget:
                raise ArchiveError(
                    f"{archive_name} extracts to more than data.max_archive_gigabytes; "
                    "raise it in params.yaml if the dataset really is that large"
                )
            out.write(chunk)
    return written


def safe_extract(archive_path: Path, target: Path, max_members: int, max_bytes: int) -> int:
    """Extract `archive_path` into `target`; return the number of files written."""
    archive_path, target = Path(archive_path), Path(target)
    target.mkdir(parents=True, exist_ok=True)
    root = target.resolve()
    name = archive_path.name
    try:
        with _open(archive_path) as (members, open_member):
            if len(members) > max_members:
                raise ArchiveError(
                    f"{name} has {len(members)} members, more than data.max_archive_members "
                    f"({max_members})"
                )
            declared = sum(member.size for member, _ in members if member.is_file)
            if declared > max_bytes:
                raise ArchiveError(
                    f"{name} declares {declared / 1e9:.1f} GB, more than "
                    "data.max_archive_gigabytes; raise it in params.yaml if that is expected"
                )
            budget, written = max_bytes, 0
            for member, info in members:
                reason = unsafe_reason(member)
                if reason:
                    log.warning("skipped archive member %r: %s", member.name, reason)
                    continue
                destination = (root / member.name.replace("\\", "/")).resolve()
                if not destination.is_relative_to(root):
                    log.warning("skipped archive member %r: outside the target", member.name)
                    continue
                if not member.is_file:
                    destination.mkdir(parents=True, exist_ok=True)
                    continue
                destination.parent.mkdir(parents=True, exist_ok=True)
                with open_member(info) as source:
                    budget -= _copy_capped(source, destination, budget, name)
                written += 1
            return written
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as error:
        raise ArchiveError(f"{name} is corrupt: {error}") from None


def extract_archive_replacing(archive_path: Path, target: Path, **caps: int) -> None:
    """Extraction hook for kagglehub: a failed extraction leaves no partial folder behind."""
    try:
        safe_extract(archive_path, target, **caps)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
