"""``GET /v1/voices``: the voices ``say`` can use (built-in engines, a configured endpoint)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from headcast.server.state import get_state

router = APIRouter(tags=["sessions"])


@router.get("/v1/voices")
async def list_voices(request: Request) -> dict[str, Any]:
    """Voice names for ``say`` ({"text", "voice"}), which one is the default, and the
    longest text one ``say`` takes."""
    speaker = get_state(request).speaker
    return {
        "voices": speaker.describe(),
        "default": speaker.default_voice,
        "max_chars": speaker.max_chars,
    }
