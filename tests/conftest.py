"""Shared fixtures: the built-in avatar pack and renderers at test sizes."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope="session")
def pack512():
    from models.avatar.pack import load_pack

    return load_pack(None)


@pytest.fixture(scope="session")
def pack256(pack512):
    from models.avatar.resize import resize_pack

    return resize_pack(pack512, 256)


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    from skimage import data

    return np.asarray(data.astronaut())


def png_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()
