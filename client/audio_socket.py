"""One session's WebSocket: PCM and control messages out, events in."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterable, Iterable
from typing import Any

import numpy as np
import websockets

from headcast.client.pcm import bytes_per_sample, encode_pcm, pcm_seconds

# Largest piece of PCM sent in one message: well under the server's 1 MiB default
# message limit, and small enough that a fast push never holds the event loop long.
MAX_PIECE_BYTES = 64 * 1024


class AudioSocket:
    """One WebSocket: PCM and control out, events in (kept with their arrival time)."""

    def __init__(self, ws: Any, sample_rate: int, fmt: str, channels: int) -> None:
        self.ws = ws
        self.sample_rate = sample_rate
        self.fmt = fmt
        self.channels = channels
        self.events: list[tuple[float, dict[str, Any]]] = []
        self._new = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self.ready: dict[str, Any] = {}
        self.closed_reason: str | None = None
        self._cursor = 0  # events before this index were returned by next_event already
        self._interrupts = 0  # interrupt() calls: a running stream() stops at the next one

    def start(self) -> None:
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        try:
            async for msg in self.ws:
                if isinstance(msg, str):
                    self.events.append((time.monotonic(), json.loads(msg)))
                    self._new.set()
        except websockets.ConnectionClosed as exc:
            self.closed_reason = str(exc)
        finally:
            self.closed_reason = self.closed_reason or "closed"
            self._new.set()

    async def __aenter__(self) -> AudioSocket:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def encode(self, pcm: np.ndarray | bytes) -> bytes:
        """float (-1..1) or int16 samples -> bytes in the declared format."""
        return encode_pcm(pcm, self.fmt)

    async def send_pcm(self, pcm: np.ndarray | bytes) -> float:
        """Send one chunk; returns the wall time (monotonic) it was handed to the socket.
        :class:`HeadcastError` once the socket is closed (the session closed, say)."""
        await self._send(self.encode(pcm))
        return time.monotonic()

    async def _send(self, data: bytes | str) -> None:
        try:
            await self.ws.send(data)
        except websockets.ConnectionClosed as exc:
            from headcast.client.http_client import HeadcastError

            reason = exc.rcvd.reason if exc.rcvd is not None and exc.rcvd.reason else str(exc)
            raise HeadcastError(0, f"the session's socket is closed: {reason}") from exc

    async def stream(
        self,
        chunks: AsyncIterable[np.ndarray | bytes] | Iterable[np.ndarray | bytes],
        *,
        realtime: bool = False,
        end_of_utterance: bool = True,
    ) -> bool:
        """Send every chunk (paced at real time if asked), then ``end_of_utterance``.

        Chunks may be any size: bytes cut mid-sample are carried to the next chunk, and
        large chunks go out in pieces the server accepts. Returns False, having sent
        nothing more, when :meth:`interrupt` is called meanwhile (a barge-in); True
        once everything was sent.
        """
        t0 = time.monotonic()
        sent_s = 0.0
        generation = self._interrupts
        frame = bytes_per_sample(self.fmt) * self.channels
        rest = b""

        async def send(chunk: np.ndarray | bytes) -> bool:
            nonlocal sent_s, rest
            data = rest + self.encode(chunk)
            whole = len(data) - len(data) % frame
            rest = data[whole:]
            for i in range(0, whole, MAX_PIECE_BYTES):
                if self._interrupts != generation:
                    return False
                piece = data[i : min(i + MAX_PIECE_BYTES, whole)]
                await self._send(piece)
                sent_s += pcm_seconds(len(piece), self.fmt, self.channels, self.sample_rate)
                wait = t0 + sent_s - time.monotonic() if realtime else 0.0
                await asyncio.sleep(max(0.0, wait))  # also lets the event loop breathe
            return self._interrupts == generation

        if isinstance(chunks, AsyncIterable):
            async for chunk in chunks:
                if not await send(chunk):
                    return False
        else:
            for chunk in chunks:
                if not await send(chunk):
                    return False
        if end_of_utterance:
            await self.send_control({"type": "end_of_utterance"})
        return True

    async def send_control(self, message: dict[str, Any]) -> float:
        await self._send(json.dumps(message))
        return time.monotonic()

    async def interrupt(self) -> float:
        """Stop the speech now; a :meth:`stream` in progress sends nothing more."""
        self._interrupts += 1
        return await self.send_control({"type": "interrupt"})

    async def say(self, text: str, voice: str | None = None) -> float:
        """Typed text, spoken; the server answers with a ``say`` event (or an ``error``)."""
        message: dict[str, Any] = {"type": "say", "text": text}
        if voice is not None:
            message["voice"] = voice
        return await self.send_control(message)

    async def emotion(self, name: str, transition_s: float = 0.4) -> float:
        return await self.send_control(
            {"type": "emotion", "name": name, "transition_s": transition_s}
        )

    async def pose(self, **values: float) -> float:
        return await self.send_control({"type": "pose", "values": values})

    async def next_event(
        self, kind: str | None = None, within_s: float = 10.0, after: int | None = None
    ) -> dict[str, Any]:
        """The next event (of ``kind``): the first at index >= ``after``, by default after
        the last one this method returned, so each turn's events are its own;
        TimeoutError when none comes within ``within_s``."""
        deadline = time.monotonic() + within_s
        seen = self._cursor if after is None else after
        while True:
            for i in range(seen, len(self.events)):
                event = self.events[i][1]
                if kind is None or event.get("type") == kind:
                    self._cursor = max(self._cursor, i + 1)
                    return event
            seen = max(seen, len(self.events))
            if self.closed_reason is not None:
                raise ConnectionError(f"socket closed ({self.closed_reason}) before {kind!r}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {kind!r} event within {within_s} s")
            self._new.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new.wait(), left)

    def arrived_at(self, event: dict[str, Any]) -> float:
        """When ``event`` (one :meth:`next_event` returned) arrived (time.monotonic())."""
        for at, seen in reversed(self.events):
            if seen is event:
                return at
        raise KeyError("not an event of this socket")

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [e for _, e in self.events if e.get("type") == kind]

    async def close(self) -> None:
        await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
