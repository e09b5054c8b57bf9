"""The voice-agent WebSocket: PCM in, control in, events out.

Protocol (``/v1/sessions/{id}/ws``):

1. client -> ``{"type": "start", "format": "s16le" | "f32le", "sample_rate": 8000..48000,
   "channels": 1 | 2, "coefficients": false}`` (text, first message);
   server -> ``{"type": "ready", ...}`` with fps, delay and channel names.
2. client -> binary messages of interleaved PCM in that format; any length that is a
   whole number of sample frames, up to ``max_message_bytes``.
3. client -> JSON control (see :mod:`server.live.control`) at any time, and
   ``{"type": "say", "text": "...", "voice": "slt"}``: typed text, spoken (answered with
   a ``say`` event once its first sentence is queued, or one ``error``).
4. server -> events: ``speech_started``, ``speech_ended``, ``position``, ``interrupted``,
   ``dropped``, ``coefficients`` (if asked), ``error``.

A bad first message closes with 1003 (unsupported data) and a reason; a bad later
message gets an ``error`` event and the socket stays open. Events for a client that
does not read are dropped oldest-first; nothing it does blocks the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any, Literal

import numpy as np
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.websockets import WebSocketState

from headcast.models.audio import SAMPLE_RATE, AudioError
from headcast.models.audio.features import StreamingResampler
from headcast.server.api.sessions import owned_by, say_text
from headcast.server.live.control import ControlError, apply_control
from headcast.server.live.events import EventStream
from headcast.server.live.session import Session
from headcast.server.live.speaker import SayError
from headcast.server.state import AppState, get_state

log = logging.getLogger(__name__)
router = APIRouter(tags=["websocket"])

START_TIMEOUT_S = 10.0
CLOSE_GOING_AWAY = 1001
SENDER_GRACE_S = 1.0  # time the event sender gets to finish when its session closes
CLOSE_UNSUPPORTED = 1003
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
SAMPLE_DTYPES: dict[str, np.dtype[Any]] = {"s16le": np.dtype("<i2"), "f32le": np.dtype("<f4")}
INLINE_SAMPLES = 4096  # resample smaller messages on the event loop (tens of µs)


class StartMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # "16000" is not a number

    type: Literal["start"]
    format: Literal["s16le", "f32le"] = "s16le"
    sample_rate: int = Field(SAMPLE_RATE, ge=8_000, le=48_000)
    channels: int = Field(1, ge=1, le=2)
    coefficients: bool = False


class PcmDecoder:
    """Binary PCM messages -> float32 16 kHz mono, for one declared format."""

    def __init__(self, start: StartMessage) -> None:
        self.dtype = SAMPLE_DTYPES[start.format]
        self.channels = start.channels
        self.frame_bytes = self.dtype.itemsize * self.channels
        self.resampler = StreamingResampler(start.sample_rate)

    def decode(self, data: bytes) -> np.ndarray:
        if len(data) % self.frame_bytes:
            raise AudioError(
                f"PCM message of {len(data)} bytes is not a whole number of "
                f"{self.frame_bytes}-byte sample frames"
            )
        pcm = np.frombuffer(data, self.dtype)
        if self.channels > 1:
            pcm = pcm.reshape(-1, self.channels)
        return self.resampler.push(pcm)


async def _send_events(ws: WebSocket, stream: EventStream, session: Session) -> None:
    while (event := await stream.get()) is not None:
        await ws.send_text(json.dumps(event))
    if session.closed:  # deleted, reaped or failed: tell the client, do not wait for it
        await _session_gone(ws, session)


async def _session_gone(ws: WebSocket, session: Session) -> None:
    """The ``closed`` event (``deleted``: through the API, final for the client), then the
    close."""
    with contextlib.suppress(TimeoutError):  # a client that never reads is not waited for
        await asyncio.wait_for(
            _close(ws, CLOSE_GOING_AWAY, "session closed", "closed", {"deleted": session.deleted}),
            SENDER_GRACE_S,
        )


async def _close(
    ws: WebSocket,
    code: int,
    reason: str,
    event_type: str = "error",
    extra: dict[str, Any] | None = None,
) -> None:
    if ws.application_state != WebSocketState.DISCONNECTED:
        with contextlib.suppress(Exception):
            await ws.send_text(json.dumps({"type": event_type, "message": reason, **(extra or {})}))
            await ws.close(code, reason[:120])


async def _start(ws: WebSocket) -> StartMessage | None:
    try:
        first = await asyncio.wait_for(ws.receive(), START_TIMEOUT_S)
    except TimeoutError:
        await _close(ws, CLOSE_POLICY, "no start message")
        return None
    if first["type"] == "websocket.disconnect":
        return None
    text = first.get("text")
    if text is None:
        await _close(ws, CLOSE_UNSUPPORTED, "the first message must be the JSON start message")
        return None
    try:
        return StartMessage.model_validate_json(text)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'message'}: {e['msg']}" for e in exc.errors()
        )
        await _close(ws, CLOSE_UNSUPPORTED, f"bad start message: {problems}")
        return None


async def _serve(ws: WebSocket, state: AppState, session: Session, start: StartMessage) -> None:
    decoder = PcmDecoder(start)
    sched = state.require_scheduler()
    limit = state.settings.max_message_bytes
    stream = EventStream(state.settings.max_pending_events, coefficients=start.coefficients)
    stream.put(session.ready_event())
    session.open_stream(stream)
    sender = asyncio.get_running_loop().create_task(_send_events(ws, stream, session))
    try:
        while not session.closed:
            msg = await ws.receive()
            if msg["type"] == "websocket.disconnect":
                return
            session.touch()
            data = msg.get("bytes")
            if data is not None:
                if len(data) > limit:
                    await _close(ws, CLOSE_TOO_BIG, f"message larger than {limit} bytes")
                    return
                if not session.may_speak(stream):  # before any decoding work
                    stream.put({"type": "error", "message": ANOTHER_SPEAKER})
                    continue
                try:
                    if len(data) // decoder.frame_bytes <= INLINE_SAMPLES:
                        pcm = decoder.decode(data)
                    else:
                        pcm = await sched.run(decoder.decode, data)
                except AudioError as exc:
                    stream.put({"type": "error", "message": str(exc)})
                    continue
                session.push(pcm)
                continue
            try:
                message: Any = json.loads(msg.get("text") or "")
            except (ValueError, RecursionError):
                stream.put({"type": "error", "message": "text messages must be JSON objects"})
                continue
            if isinstance(message, dict) and message.get("type") == "say":
                if not session.may_speak(stream):
                    stream.put({"type": "error", "message": ANOTHER_SPEAKER})
                else:
                    _say_later(state, session, stream, message)
                continue
            if isinstance(message, dict) and message.get("type") == "end_of_utterance":
                session.push(decoder.resampler.flush())
                decoder.resampler.reset()
            try:
                reply = await apply_control(session, message, also=("say",))
            except ControlError as exc:
                stream.put({"type": "error", "message": str(exc)})
                continue
            if isinstance(message, dict) and message.get("type") == "interrupt":
                state.metrics.interrupts += 1
                decoder.resampler.reset()
            if reply is not None and reply.get("type") != "interrupted":
                stream.put(reply)
    except WebSocketDisconnect:
        return
    finally:
        session.close_stream(stream)
        stream.close()
        if session.closed:  # the sender may still be sending: let it say so and close
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(sender), SENDER_GRACE_S)
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await sender
        if session.closed:
            await _session_gone(ws, session)  # unless the sender already did


def _say_later(state: AppState, session: Session, stream: EventStream, message: Any) -> None:
    """Synthesise off the receive loop (an interrupt must not wait behind it); the
    speaker keeps a session's texts in order. The reply or one error goes to ``stream``."""

    async def run() -> None:
        try:
            stream.put(await say_text(state, session, message))
        except SayError as exc:
            stream.put({"type": "error", "message": exc.reason})

    state.track_task(asyncio.create_task(run()))  # the server's stop cancels it


ANOTHER_SPEAKER = (
    "another WebSocket is sending this session's speech; its speech was not queued "
    "(one speaker at a time: wait for speech_ended or for that socket to close)"
)


@router.websocket("/v1/sessions/{sid}/ws")
async def session_socket(ws: WebSocket, sid: str) -> None:
    """PCM and control in, events out (see the module docstring for the protocol)."""
    state = get_state(ws)
    session = state.sessions.get(sid)
    if session is not None and not owned_by(session, ws):
        # refused before the handshake (HTTP 403), as the auth guard refuses tokens
        await ws.close(CLOSE_POLICY, f"session {sid} was not opened with this token")
        return
    await ws.accept()
    if session is None:
        await _close(ws, CLOSE_POLICY, f"unknown session {sid!r}")
        return
    start = await _start(ws)
    if start is None:
        return
    await _serve(ws, state, session, start)
    if ws.application_state != WebSocketState.DISCONNECTED:
        with contextlib.suppress(Exception):
            await ws.close()
