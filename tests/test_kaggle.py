"""download with data.source kaggle: the real kagglehub client against a local server."""

import base64
import io
import socket
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import run_stage, stage_env, write_params
from tests.kaggle_server import FakeKaggle

HANDLE = "alessiocorrado99/animals10/versions/2"
SECRET_KEY = "k-3f9a1c77e2b54d0c8e1f"


def jpeg_bytes(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG")
    return buffer.getvalue()


def animals10_zip() -> bytes:
    """Animals-10's shape: raw-img/<Italian class>/<file>, the same file name in several
    classes, its translate.py, and two hostile members."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for index, folder in enumerate(("cane", "gatto", "ragno")):
            archive.writestr(f"raw-img/{folder}/OIP-same-name.jpeg", jpeg_bytes(index))
            archive.writestr(f"raw-img/{folder}/e83{index}.jpg", jpeg_bytes(10 + index))
        archive.writestr("translate.py", "translate = {'cane': 'dog'}\n")
        archive.writestr("../../escaped.jpeg", jpeg_bytes(99))
        link = zipfile.ZipInfo("raw-img/cane/link.jpeg")
        link.external_attr = 0o120777 << 16
        archive.writestr(link, "/etc/passwd")
    return buffer.getvalue()


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


def download(workspace: Path, server: FakeKaggle, handle=HANDLE, check=True, **env):
    write_params(workspace, data__source="kaggle", data__kaggle_dataset=handle)
    cache = workspace.parent / "kagglehub-cache"
    full_env = stage_env(KAGGLEHUB_CACHE=str(cache), **server.env(**env))
    return run_stage("download", "--out", "data/raw", cwd=workspace, check=check, env=full_env)


def test_animals10_through_kagglehub(workspace):
    with FakeKaggle() as server:
        server.archives["alessiocorrado99/animals10"] = animals10_zip()
        result = download(workspace, server)
        assert ("POST", "/api/v1/datasets.DatasetApiService/DownloadDataset") in server.requests
    raw = workspace / "data" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == [
        "cat",
        "dog",
        "manifest.csv",
        "skipped.csv",
        "spider",
    ]
    for name in ("cat", "dog", "spider"):
        assert sorted(p.name for p in (raw / name).iterdir()) == [
            "OIP-same-name.jpeg",
            f"e83{('dog', 'cat', 'spider').index(name)}.jpg",
        ]
    assert (raw / "dog" / "OIP-same-name.jpeg").read_bytes() == jpeg_bytes(0)
    assert "skipped archive member '../../escaped.jpeg'" in result.stderr
    assert "skipped archive member 'raw-img/cane/link.jpeg'" in result.stderr
    assert not list(workspace.parent.rglob("escaped.jpeg"))
    assert not any(p.is_symlink() for p in workspace.parent.rglob("*"))
    manifest = (raw / "manifest.csv").read_text().splitlines()
    assert manifest[0] == "path,class,split,source"
    assert f"dog/OIP-same-name.jpeg,dog,,kaggle:{HANDLE}" in manifest


def test_an_unpinned_handle_is_pinned_to_the_version_downloaded(workspace):
    """DVC cannot notice a new upstream version of an unpinned handle: the version that was
    downloaded is recorded, and the log says how to pin it."""
    with FakeKaggle() as server:  # its current version is 2
        server.archives["alessiocorrado99/animals10"] = animals10_zip()
        result = download(workspace, server, handle="alessiocorrado99/animals10")
        assert ("POST", "/api/v1/datasets.DatasetApiService/GetDataset") in server.requests
    manifest = (workspace / "data/raw/manifest.csv").read_text().splitlines()
    assert manifest[1].endswith(",kaggle:alessiocorrado99/animals10/versions/2")
    assert "download: kaggle:alessiocorrado99/animals10/versions/2 -> data/raw" in result.stderr
    assert (
        "pin the one downloaded: dvc exp run -S "
        "data.kaggle_dataset=alessiocorrado99/animals10/versions/2"
    ) in result.stderr


def test_pinned_version_comes_from_the_cache_offline(workspace):
    with FakeKaggle() as server:
        server.archives["alessiocorrado99/animals10"] = animals10_zip()
        download(workspace, server)
    first = (workspace / "data/raw/manifest.csv").read_text()
    with FakeKaggle() as offline:  # knows no dataset: any request would fail
        download(workspace, offline)
        assert offline.requests == []
    assert (workspace / "data/raw/manifest.csv").read_text() == first


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (404, "download: error: Kaggle has no dataset 'nobody/nothing/versions/1' (HTTP 404)"),
        (403, "download: error: Kaggle refused 'nobody/nothing/versions/1' (HTTP 403)"),
        (401, "download: error: Kaggle refused 'nobody/nothing/versions/1' (HTTP 401)"),
    ],
)
def test_http_errors_give_one_line_and_leak_no_credentials(workspace, status, expected):
    (workspace / "data/raw").mkdir(parents=True)
    (workspace / "data/raw/kept.txt").write_text("an earlier download")
    with FakeKaggle() as server:
        if status != 404:
            server.errors["nobody/nothing"] = status
        result = download(
            workspace,
            server,
            handle="nobody/nothing/versions/1",
            check=False,
            KAGGLE_USERNAME="alice",
            KAGGLE_KEY=SECRET_KEY,
        )
    # The key travels base64-encoded in the Authorization header: look for both forms.
    encoded = base64.b64encode(f"alice:{SECRET_KEY}".encode())
    assert f"Basic {encoded.decode()}" in server.authorizations
    assert result.returncode == 1
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith(expected)
    for secret in (SECRET_KEY, encoded.decode()):
        assert secret not in result.stdout + result.stderr
    for path in workspace.parent.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert SECRET_KEY.encode() not in content and encoded not in content, path
    # A failed download leaves the previous data/raw as it was.
    assert (workspace / "data/raw/kept.txt").read_text() == "an earlier download"


def test_no_network(workspace):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    server = FakeKaggle()
    server.server_close()
    server.server_address = ("127.0.0.1", closed_port)
    result = download(workspace, server, check=False)
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith(f"download: error: cannot reach localhost to download '{HANDLE}'")
    )
    assert not (workspace / "data/raw").exists()
