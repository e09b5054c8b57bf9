"""Portrait loading with bounded memory and readable errors."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from headcast.models.avatar.errors import EnrollError

MAX_PIXELS = 80_000_000  # refuse before decoding: ~240 MB of RGB
WORK_MAX_SIDE = 2048  # portraits are processed at most this large (px)
MIN_SIDE = 64


def load_portrait(source: str | Path | bytes, name: str = "portrait") -> np.ndarray:
    """JPEG/PNG/WebP/... file or bytes -> uint8 (H, W, 3) RGB, longest side <= WORK_MAX_SIDE.

    Grayscale is expanded, alpha is composited over white. Raises EnrollError
    for unreadable, truncated or absurdly large images.
    """
    if isinstance(source, bytes):
        if not source:
            raise EnrollError("the portrait is empty (0 bytes)")
        stream: io.BytesIO | Path = io.BytesIO(source)
    else:
        stream = Path(source)
        name = str(source)
        if not stream.is_file():
            raise EnrollError(f"{name}: no such file")
        if stream.stat().st_size == 0:
            raise EnrollError(f"{name}: the file is empty")
    Image.MAX_IMAGE_PIXELS = None  # we check the size ourselves, before decoding
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img: Image.Image = Image.open(stream)
            width, height = img.size
            if width * height > MAX_PIXELS:
                raise EnrollError(
                    f"{name}: {width}x{height} is too large ({width * height / 1e6:.0f} MP); "
                    f"the limit is {MAX_PIXELS / 1e6:.0f} MP"
                )
            if min(width, height) < MIN_SIDE:
                raise EnrollError(
                    f"{name}: {width}x{height} is too small; need at least {MIN_SIDE} px a side"
                )
            # JPEG can decode at 1/2, 1/4, 1/8 scale: bounded memory for huge photos.
            img.draft("RGB", (WORK_MAX_SIDE, WORK_MAX_SIDE))
            img.load()
    except EnrollError:
        raise
    except UnidentifiedImageError as exc:
        raise EnrollError(
            f"{name}: not a readable image (not JPEG, PNG, WebP or another known format)"
        ) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise EnrollError(f"{name}: not a readable image ({exc})") from exc
    # Phone photos store the sensor's orientation in EXIF: show the face upright.
    img = ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        img = _to_8bit_gray(img)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    img = img.convert("RGB")
    scale = WORK_MAX_SIDE / max(img.size)
    if scale < 1.0:
        img = img.resize(
            (max(1, round(img.size[0] * scale)), max(1, round(img.size[1] * scale))),
            Image.Resampling.LANCZOS,
        )
    return np.ascontiguousarray(np.asarray(img, dtype=np.uint8))


def _to_8bit_gray(img: Image.Image) -> Image.Image:
    """16-bit, 32-bit or float grayscale -> 8-bit "L", scaled to its range, not clipped."""
    a = np.nan_to_num(np.asarray(img, dtype=np.float64))
    if img.mode == "F":
        lo, hi = float(a.min()), float(a.max())
        a = (a - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(a)
    elif img.mode.startswith("I;16") or a.max() > 255:
        a = a / 257.0  # 0..65535 -> 0..255
    return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L")
