"""resize of every kind of file real datasets hold, and rejection with a reason of the rest."""

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, JpegImagePlugin

from image_classifier.data.decode import RejectedImage, load_image, resize_image

SIZE = 16
MAX_PIXELS = 50_000_000


def two_halves(width=60, height=30, left=(255, 0, 0), right=(0, 0, 255)) -> Image.Image:
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[:, : width // 2] = left
    pixels[:, width // 2 :] = right
    return Image.fromarray(pixels)


def load(path: Path, fit="squash", max_pixels=MAX_PIXELS) -> np.ndarray:
    result = load_image(path, SIZE, fit, max_pixels)
    assert result.shape == (SIZE, SIZE, 3)
    assert result.dtype == np.uint8
    return result


def close(pixel, expected, tolerance=12) -> bool:
    return bool(np.all(np.abs(np.asarray(pixel, int) - np.asarray(expected, int)) <= tolerance))


def test_exif_orientation_is_applied(tmp_path):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: display after a 90 degree clockwise turn
    two_halves().save(path, exif=exif, quality=95)
    result = load(path)
    assert close(result[2, SIZE // 2], (255, 0, 0), 40)  # the left half is now on top
    assert close(result[-3, SIZE // 2], (0, 0, 255), 40)


def test_fit_modes(tmp_path):
    image = two_halves(left=(255, 0, 0), right=(0, 0, 255))
    squash = resize_image(image, SIZE, "squash")
    crop = resize_image(image, SIZE, "crop")
    pad = resize_image(image, SIZE, "pad")
    assert close(squash[SIZE // 2, 1], (255, 0, 0)) and close(squash[SIZE // 2, -2], (0, 0, 255))
    assert close(crop[0, 1], (255, 0, 0)) and close(crop[0, -2], (0, 0, 255))
    assert close(pad[0, SIZE // 2], (255, 255, 255))  # white bars above and below
    assert close(pad[SIZE // 2, 1], (255, 0, 0))


@pytest.mark.parametrize(
    ("name", "mode", "save_args"),
    [
        ("cmyk.jpg", "CMYK", {"quality": 95}),
        ("gray.png", "L", {}),
        ("bilevel.png", "1", {}),
        ("palette.gif", "P", {}),
        ("photo.webp", "RGB", {"quality": 95}),
        ("photo.bmp", "RGB", {}),
        ("photo.tiff", "RGB", {}),
    ],
)
def test_every_mode_becomes_rgb(tmp_path, name, mode, save_args):
    color = (0, 0, 0) if mode == "1" else (120, 120, 120) if mode == "L" else (200, 120, 40)
    source = Image.new("RGB", (30, 20), color)
    path = tmp_path / name
    source.convert(mode).save(path, **save_args)
    result = load(path)
    assert close(result[SIZE // 2, SIZE // 2], color, 8)
    if mode in ("L", "1"):
        assert np.all(result[..., 0] == result[..., 1])


def test_cmyk_colours_survive(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.new("RGB", (32, 32), (200, 30, 30)).convert("CMYK").save(path, quality=95)
    assert close(load(path)[8, 8], (200, 30, 30), 10)


def test_sixteen_bit_grayscale_is_scaled_not_clipped(tmp_path):
    path = tmp_path / "sixteen.png"
    Image.fromarray(np.full((20, 20), 128 * 257, np.uint16)).save(path)
    assert Image.open(path).mode.startswith("I")
    assert close(load(path)[5, 5], (128, 128, 128), 1)


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_transparency_is_laid_on_white(tmp_path, mode):
    rgba = np.zeros((20, 20, 4), np.uint8)  # fully transparent black ...
    rgba[:, 10:] = (0, 0, 0, 255)  # ... beside opaque black
    image = Image.fromarray(rgba, "RGBA")
    if mode == "P":
        image = image.convert("P")
        image.info["transparency"] = image.getpixel((0, 0))
        path = tmp_path / "transparent.gif"
    else:
        image = image.convert(mode)
        path = tmp_path / "transparent.png"
    image.save(path, **({"transparency": image.info["transparency"]} if mode == "P" else {}))
    result = load(path)
    assert close(result[8, 1], (255, 255, 255), 2)  # transparent -> white
    assert close(result[8, -2], (0, 0, 0), 2)


def test_half_transparent_is_blended_with_white():
    image = Image.new("RGBA", (8, 8), (255, 0, 0, 128))
    assert close(resize_image(image, 4)[1, 1], (255, 127, 127), 2)


def test_big_jpeg_uses_draft_and_matches_full_decode(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    smooth = np.kron(rng.integers(0, 256, (15, 20, 3)), np.ones((100, 100, 1))).astype(np.uint8)
    path = tmp_path / "big.jpg"
    Image.fromarray(smooth).save(path, quality=90)
    decoded_sizes = []
    real_load = JpegImagePlugin.JpegImageFile.load

    def recording_load(image):
        decoded_sizes.append(image.size)  # after draft(): the reduced size that is decoded
        return real_load(image)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "load", recording_load)
    drafted = load_image(path, 120, "squash", MAX_PIXELS)
    monkeypatch.undo()
    # 2000x1500 decoded at 1/8 scale: 250x188 still covers 120x120.
    assert decoded_sizes and decoded_sizes[0] == (250, 188)
    with Image.open(path) as image:
        full = resize_image(image, 120, "squash")
    assert np.abs(drafted.astype(int) - full.astype(int)).mean() < 4


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims to be width x height: enough to open, never decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def truncated_jpeg() -> bytes:
    buffer = io.BytesIO()
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()[:1500]


@pytest.mark.parametrize(
    ("name", "content", "max_pixels", "reason"),
    [
        ("empty.jpg", b"", MAX_PIXELS, "empty"),
        ("notes.jpg", b"these are not the pixels you are looking for", MAX_PIXELS, "not_an_image"),
        ("cut.jpg", truncated_jpeg(), MAX_PIXELS, "truncated"),
        ("bomb.png", png_header_only(100_000, 100_000), MAX_PIXELS, "too_large"),
        ("big.png", png_header_only(5000, 5000), 1_000_000, "too_large"),
    ],
)
def test_bad_files_are_rejected_with_a_reason(tmp_path, name, content, max_pixels, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(RejectedImage) as rejected:
        load_image(path, SIZE, "squash", max_pixels)
    assert rejected.value.reason == reason
    assert rejected.value.detail
    assert path.read_bytes() == content  # the raw file is left as it was


def test_resize_max_megapixels_decides_above_pillows_own_limit(tmp_path):
    """Pillow refuses about 179 megapixels by itself, in words that do not name the param:
    225 megapixels under a 300-megapixel limit must get past the size check (and then fail
    to decode, this file having no pixel data); under 100 it is too large, by the param."""
    path = tmp_path / "huge.png"
    path.write_bytes(png_header_only(15_000, 15_000))
    with pytest.raises(RejectedImage) as allowed:
        load_image(path, SIZE, "squash", 300_000_000)
    assert allowed.value.reason != "too_large"
    with pytest.raises(RejectedImage) as refused:
        load_image(path, SIZE, "squash", 100_000_000)
    assert refused.value.reason == "too_large"
    assert refused.value.detail == "15000x15000 pixels is over resize.max_megapixels (100)"
