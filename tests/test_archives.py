"""Archives are extracted without escaping the target, following links or filling the disk."""

import io
import tarfile
import zipfile

import pytest

from image_classifier.data.archives import ArchiveError, _copy_capped, safe_extract

CAPS = {"max_members": 100, "max_bytes": 10_000_000}


def write_zip(path, members: dict[str, bytes], symlinks: dict[str, str] | None = None):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name), data, zipfile.ZIP_DEFLATED)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o120777 << 16  # a symbolic link
            archive.writestr(info, target)
    return path


def test_zip_with_hostile_members(tmp_path):
    archive = write_zip(
        tmp_path / "data.zip",
        {
            "raw-img/gatto/1.jpeg": b"cat",
            "../escaped.txt": b"x",
            "raw-img/../../escaped2.txt": b"x",
            "/absolute.txt": b"x",
            "C:/windows.txt": b"x",
        },
        symlinks={"raw-img/gatto/link.jpeg": "/etc/passwd"},
    )
    target = tmp_path / "deep" / "out"
    written = safe_extract(archive, target, **CAPS)
    assert written == 1
    assert (target / "raw-img/gatto/1.jpeg").read_bytes() == b"cat"
    assert not (target / "raw-img/gatto/link.jpeg").exists()
    everything = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert everything == {"data.zip", "deep/out/raw-img/gatto/1.jpeg"}


def test_tar_links_and_escapes_are_skipped(tmp_path):
    path = tmp_path / "data.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for name, data in {"cane/1.jpg": b"dog", "../up.jpg": b"x"}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
            link = tarfile.TarInfo(f"cane/link{kind.decode()}.jpg")
            link.type, link.linkname = kind, "/etc/passwd"
            archive.addfile(link)
    target = tmp_path / "out"
    assert safe_extract(path, target, **CAPS) == 1
    assert sorted(p.name for p in target.rglob("*")) == ["1.jpg", "cane"]
    assert not (tmp_path / "up.jpg").exists()


def test_member_count_is_capped(tmp_path):
    archive = write_zip(tmp_path / "many.zip", {f"c/{i}.jpg": b"x" for i in range(20)})
    with pytest.raises(
        ArchiveError, match=r"many\.zip has 20 members, more than data\.max_archive_members \(10\)"
    ):
        safe_extract(archive, tmp_path / "out", max_members=10, max_bytes=10_000)
    assert not (tmp_path / "out" / "c").exists()


def test_declared_size_is_capped(tmp_path):
    archive = write_zip(tmp_path / "bomb.zip", {"c/zeros.jpg": bytes(2_000_000)})
    assert archive.stat().st_size < 10_000  # compresses ~1000:1, like a zip bomb
    with pytest.raises(ArchiveError, match=r"more than data\.max_archive_gigabytes"):
        safe_extract(archive, tmp_path / "out", max_members=10, max_bytes=1_000_000)


def test_actual_bytes_are_capped_whatever_the_archive_declares(tmp_path):
    with pytest.raises(ArchiveError, match="extracts to more than"):
        _copy_capped(io.BytesIO(bytes(5000)), tmp_path / "file", 4096, "liar.zip")


def test_not_an_archive(tmp_path):
    path = tmp_path / "data.zip"
    path.write_bytes(b"<html>rate limited</html>")
    with pytest.raises(ArchiveError, match="neither a zip nor a tar"):
        safe_extract(path, tmp_path / "out", **CAPS)
