"""Shared fixtures: the built-in avatar pack and renderers at test sizes."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope="session")
def pack512():
    from headcast.models.avatar.pack import load_pack

    return load_pack(None)


@pytest.fixture(scope="session")
def portrait_packs():
    """The portrait set of tests/portrait_set.py, each face enrolled at 512 (once)."""
    pytest.importorskip("mediapipe")
    from tests.portrait_set import build_packs

    return build_packs()


@pytest.fixture(scope="session")
def pack256(pack512):
    from headcast.models.avatar.resize import resize_pack

    return resize_pack(pack512, 256)


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    from skimage import data

    return np.asarray(data.astronaut())


def png_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


# ---- browser tests (tests/browser_support.py) -----------------------------------------


@pytest.fixture(scope="module")
def mic_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fake microphone's speech; skips the module when chromium is not installed."""
    from tests.browser_support import make_speech_wav, require_browser

    require_browser()
    return make_speech_wav(tmp_path_factory.mktemp("mic") / "speech.wav")


@pytest.fixture(scope="module")
def browser(mic_wav: Path) -> Iterator[Any]:
    from tests.browser_support import chromium

    with chromium(mic_wav) as b:
        yield b
