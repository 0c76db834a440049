"""Decoding real-world image files into size x size RGB uint8 arrays, or a reason to reject them."""

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# resize.max_megapixels (and a model card's) decides what is too large, checked from the
# header before anything is decoded; Pillow's own limit (about 179 megapixels) would
# otherwise refuse what the param allows, with a message that does not name it.
Image.MAX_IMAGE_PIXELS = None

SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I"})
TRANSPARENT_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
WHITE = (255, 255, 255)


class RejectedImage(Exception):
    """A file that cannot become a training image; `reason` is a short code for reports."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB; transparency is laid on white, 16-bit is rescaled."""
    if image.mode in SIXTEEN_BIT_MODES:
        # Pillow's own conversion clips 16-bit values at 255 instead of scaling them.
        pixels = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode != "I" or pixels.max() > 255 else 255.0
        gray = np.clip(np.rint(pixels * (255.0 / top)), 0, 255).astype(np.uint8)
        return Image.fromarray(gray).convert("RGB")
    if image.mode in TRANSPARENT_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*WHITE, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def fit_image(image: Image.Image, size: int, fit: str) -> np.ndarray:
    """RGB image -> size x size: stretched (squash), centre-cropped (crop) or padded white (pad)."""
    target = (size, size)
    method = Image.Resampling.BILINEAR
    if fit == "crop":
        image = ImageOps.fit(image, target, method)
    elif fit == "pad":
        image = ImageOps.pad(image, target, method, color=WHITE)
    else:
        image = image.resize(target, method)
    return np.asarray(image, dtype=np.uint8)


def resize_image(image: Image.Image, size: int, fit: str = "squash") -> np.ndarray:
    """Any decoded image -> (size, size, 3) uint8, upright by its EXIF orientation."""
    return fit_image(to_rgb(ImageOps.exif_transpose(image)), size, fit)


def load_image(path: Path, size: int, fit: str, max_pixels: int) -> np.ndarray:
    """Decode one file and resize it; raise RejectedImage with the reason when it cannot be.

    Never anything else for a bad file: one corrupt photo must not stop the other 26,000."""
    if not path.is_file():
        raise RejectedImage("not_found", "no such file")
    if path.stat().st_size == 0:
        raise RejectedImage("empty", "the file has 0 bytes")
    try:
        with Image.open(path) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise RejectedImage(
                    "too_large",
                    f"{width}x{height} pixels is over resize.max_megapixels ({max_pixels / 1e6:g})",
                )
            # JPEG draft: decode at 1/2, 1/4 or 1/8 scale when that still covers `size`.
            image.draft("RGB", (size, size))
            image.load()
            return resize_image(image, size, fit)
    except RejectedImage:
        raise
    except UnidentifiedImageError:
        raise RejectedImage("not_an_image", "not a format Pillow can read") from None
    except OSError as error:
        if "truncated" in str(error) or "broken data stream" in str(error):
            raise RejectedImage("truncated", str(error)) from None
        raise RejectedImage("unreadable", str(error)) from None
    except (SyntaxError, ValueError, EOFError) as error:
        raise RejectedImage("unreadable", str(error) or type(error).__name__) from None
    except Exception as error:  # a plugin's own bug on a corrupt file (struct.error, ...)
        detail = f"{type(error).__name__}: {error}".splitlines()[0]
        raise RejectedImage("unreadable", detail) from None
