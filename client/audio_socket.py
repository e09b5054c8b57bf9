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

from client.pcm import encode_pcm, pcm_seconds


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
        """Send one chunk; returns the wall time (monotonic) it was handed to the socket."""
        data = self.encode(pcm)
        await self.ws.send(data)
        return time.monotonic()

    async def stream(
        self,
        chunks: AsyncIterable[np.ndarray | bytes] | Iterable[np.ndarray | bytes],
        *,
        realtime: bool = False,
        end_of_utterance: bool = True,
    ) -> None:
        """Send every chunk (paced at real time if asked), then ``end_of_utterance``."""
        t0 = time.monotonic()
        sent_s = 0.0
        if isinstance(chunks, AsyncIterable):
            async for chunk in chunks:
                sent_s += await self._paced(chunk, realtime, t0, sent_s)
        else:
            for chunk in chunks:
                sent_s += await self._paced(chunk, realtime, t0, sent_s)
        if end_of_utterance:
            await self.send_control({"type": "end_of_utterance"})

    async def _paced(
        self, chunk: np.ndarray | bytes, realtime: bool, t0: float, sent: float
    ) -> float:
        data = self.encode(chunk)
        await self.ws.send(data)
        seconds = pcm_seconds(len(data), self.fmt, self.channels, self.sample_rate)
        if realtime:
            await asyncio.sleep(max(0.0, t0 + sent + seconds - time.monotonic()))
        return seconds

    async def send_control(self, message: dict[str, Any]) -> float:
        await self.ws.send(json.dumps(message))
        return time.monotonic()

    async def interrupt(self) -> float:
        return await self.send_control({"type": "interrupt"})

    async def emotion(self, name: str, transition_s: float = 0.4) -> float:
        return await self.send_control(
            {"type": "emotion", "name": name, "transition_s": transition_s}
        )

    async def pose(self, **values: float) -> float:
        return await self.send_control({"type": "pose", "values": values})

    async def next_event(
        self, kind: str | None = None, within_s: float = 10.0, after: int = 0
    ) -> dict[str, Any]:
        """The first event (of ``kind``) at index >= ``after``; TimeoutError otherwise."""
        deadline = time.monotonic() + within_s
        seen = after
        while True:
            for _, event in self.events[seen:]:
                if kind is None or event.get("type") == kind:
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

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [e for _, e in self.events if e.get("type") == kind]

    async def close(self) -> None:
        await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
