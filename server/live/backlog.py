"""A standing backlog of live speech drains in its pauses.

Speech is played at exactly 1x, so audio buffered ahead of playback stays buffered: a
microphone-like client that stalls for 0.6 s and then sends what it held keeps 0.6 s
more delay for the rest of the session. This drains such a backlog: while the input
arrives at about real time (a live stream, not a voice agent's reply pushed faster
than real time, which is played whole) and more than ``target`` is buffered, pause
frames that follow another pause frame are skipped, so pauses get shorter and speech
is never cut. A frame is a pause when it is near the stream's own noise floor.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

import numpy as np

from headcast.server.live.clock import SAMPLE_RATE

RATE_WINDOW_S = 2.0  # arrivals over this long tell a live stream from a burst
LIVE_RATE = (0.5, 1.5)  # seconds of speech per second arriving: a live stream
FLOOR_RISE = 0.02  # per frame, how fast the noise-floor estimate follows louder frames
FLOOR_INIT = 10 ** (-50 / 20)  # -50 dBFS RMS before anything is measured
PAUSE_ABOVE_FLOOR = 2.5  # a frame this many times the floor's RMS is not a pause (+8 dB)
PAUSE_MAX = 10 ** (-35 / 20)  # and a frame louder than -35 dBFS RMS never is


class Buffer(Protocol):
    def __len__(self) -> int: ...
    def peek(self, n: int) -> np.ndarray: ...
    def pop(self, n: int) -> tuple[np.ndarray, int]: ...


class BacklogDrain:
    """Per tick: how much of the buffered input to skip as surplus pause."""

    def __init__(self, target_s: float) -> None:
        self.target = round(target_s * SAMPLE_RATE)  # samples that may stay buffered
        self._arrivals: deque[tuple[float, int]] = deque()
        self._first_arrival: float | None = None
        self._floor = FLOOR_INIT
        self._after_pause = False
        self.drained = 0  # samples skipped, cumulative

    def arrived(self, n: int, now: float) -> None:
        """``n`` samples of input pushed at monotonic time ``now``."""
        if self._first_arrival is None:
            self._first_arrival = now
        self._arrivals.append((now, n))
        while self._arrivals and self._arrivals[0][0] <= now - RATE_WINDOW_S:
            self._arrivals.popleft()

    def live(self, now: float) -> bool:
        """The input has arrived at about real time over the last window."""
        if self._first_arrival is None or now - self._first_arrival < RATE_WINDOW_S:
            return False
        recent = sum(n for t, n in self._arrivals if t > now - RATE_WINDOW_S)
        rate = recent / (RATE_WINDOW_S * SAMPLE_RATE)
        return LIVE_RATE[0] <= rate <= LIVE_RATE[1]

    def is_pause(self, frame: np.ndarray) -> bool:
        """float32 (n,) -> whether it sounds like a pause; follows the noise floor."""
        rms = float(np.sqrt(np.mean(np.square(frame, dtype=np.float64)))) if len(frame) else 0.0
        if rms < self._floor:
            self._floor = max(rms, 1e-6)
        else:
            self._floor += FLOOR_RISE * (rms - self._floor)
        return rms < min(PAUSE_ABOVE_FLOOR * self._floor, PAUSE_MAX)

    def skip(self, buffer: Buffer, n: int, now: float) -> int:
        """Before a tick takes ``n`` samples: drop the next ``n`` from ``buffer`` if they are
        surplus pause; returns how many were dropped (0 or ``n``)."""
        if len(buffer) < n:
            self._after_pause = False
            return 0
        pause = self.is_pause(buffer.peek(n))
        surplus = len(buffer) - n >= self.target + n
        if not (pause and self._after_pause and surplus and self.live(now)):
            self._after_pause = pause
            return 0
        buffer.pop(n)
        self.drained += n
        return n
