"""Events for one WebSocket client of a session: a bounded queue that never blocks."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any


class EventStream:
    """Events for one WebSocket client: bounded, drop-oldest, counted."""

    def __init__(self, maxlen: int, coefficients: bool = False) -> None:
        self._q: deque[dict[str, Any]] = deque(maxlen=maxlen)
        self._ready = asyncio.Event()
        self.coefficients = coefficients
        self.dropped = 0
        self.closed = False

    def put(self, event: dict[str, Any]) -> None:
        if len(self._q) == self._q.maxlen:
            self.dropped += 1
        self._q.append(event)
        self._ready.set()

    async def get(self) -> dict[str, Any] | None:
        """Next event, or None once the stream is closed and drained."""
        while not self._q:
            if self.closed:
                return None
            self._ready.clear()
            await self._ready.wait()
        return self._q.popleft()

    def close(self) -> None:
        self.closed = True
        self._ready.set()
