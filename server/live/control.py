"""Session control messages, shared by the WebSocket and ``POST .../control``.

``{"type": "interrupt"}``, ``{"type": "emotion", "name": "happy", "transition_s": 0.4}``,
``{"type": "pose", "values": {"headYaw": 5.0}}``, ``{"type": "end_of_utterance"}``,
``{"type": "ping"}``. Bad messages raise :class:`ControlError` with a readable reason.
"""

from __future__ import annotations

import math
from typing import Any

from headcast.models.channels import check_pose
from headcast.models.emotions import load_presets
from headcast.models.mixer import EMOTION_TRANSITION_S
from headcast.server.live.session import Session

MAX_TRANSITION_S = 10.0


class ControlError(ValueError):
    """A control message that cannot be applied."""


KNOWN = ("interrupt", "emotion", "pose", "end_of_utterance", "ping")


async def apply_control(
    session: Session, message: Any, also: tuple[str, ...] = ()
) -> dict[str, Any] | None:
    """Apply one control message; returns the reply event, if any. ``also``: the types
    the caller handles itself, named in the error for an unknown type."""
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise ControlError('a control message is a JSON object with a "type"')
    kind = message["type"]
    if kind == "interrupt":
        return await session.interrupt()
    if kind == "emotion":
        name = message.get("name")
        if not isinstance(name, str) or name not in load_presets():
            raise ControlError(f"unknown emotion {name!r}; known: {', '.join(load_presets())}")
        transition = message.get("transition_s", EMOTION_TRANSITION_S)
        if not _finite(transition) or not 0 <= transition <= MAX_TRANSITION_S:
            raise ControlError(f"transition_s must be a number of seconds, 0..{MAX_TRANSITION_S}")
        await session.control("set_emotion", str(name), float(transition))
        return {"type": "emotion", "name": name}
    if kind == "pose":
        values = message.get("values")
        if not isinstance(values, dict) or not all(_finite(v) for v in values.values()):
            raise ControlError('pose needs "values": {channel: finite number}')
        try:
            check_pose(values)
        except KeyError as exc:
            raise ControlError(str(exc.args[0])) from exc
        except ValueError as exc:
            raise ControlError(str(exc)) from exc
        await session.control("set_pose", {str(k): float(v) for k, v in values.items()})
        return {"type": "pose", "values": values}
    if kind == "end_of_utterance":
        return None
    if kind == "ping":
        return {"type": "pong"}
    raise ControlError(f"unknown control type {kind!r}; known: {', '.join(KNOWN + also)}")


def _finite(value: Any) -> bool:
    """A JSON number that is a finite float (JSON allows integers too large for one)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False
