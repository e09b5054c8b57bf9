"""What a session's tracks, events and metrics read, whoever computes it.

:class:`PipelineOutput` holds a session's input staging, its output audio and frames and
their statistics; :class:`~server.live.pipeline.SessionPipeline` fills it by computing on a
worker thread, ``server.live.procpool.RemotePipeline`` by mirroring one in a render process.

Queues and their policies:

* input speech: at most ``max_buffered_s`` seconds; overflow drops the oldest (counted);
  underrun plays silence;
* output audio: a ring of :data:`AUDIO_RING_S` seconds indexed by session sample;
  a sample never written reads as silence;
* output frames: at most ``delay_frames + FRAME_SLACK`` frames; older are dropped; a
  frame missing at send time repeats the last one (counted by the track).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from headcast.server.live.backlog import BacklogDrain
from headcast.server.live.clock import SAMPLE_RATE, MediaClock

AUDIO_RING_S = 4.0  # seconds of output audio kept, comfortably above the output delay
FRAME_SLACK = 4  # frames kept beyond the output delay


@dataclass
class Frame:
    """A produced video frame: ``coeffs`` float32 (K,), ``image`` uint8 (S, S, 3) RGB or None;
    ``yuv`` the same picture as I420 (:func:`to_i420`), or None."""

    index: int
    coeffs: np.ndarray
    speech: bool
    image: np.ndarray | None
    yuv: np.ndarray | None = None


class AudioRing:
    """float32 samples indexed by absolute session sample; unwritten samples read as 0.

    Each slot remembers which absolute sample it holds, so a stale lap reads as silence
    and any number of readers (viewers) can read the same samples.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._buf = np.zeros(capacity, np.float32)
        self._held = np.full(capacity, -1, np.int64)
        self._ramp = np.arange(capacity, dtype=np.int64)
        self._lock = threading.Lock()
        #: when a list, every write and clear is also recorded here (for a mirror ring)
        self.journal: list[tuple[str, int, np.ndarray | None]] | None = None

    def write(self, start: int, samples: np.ndarray) -> None:
        if self.journal is not None:
            self.journal.append(("write", start, np.asarray(samples, np.float32)))
        n = len(samples)
        idx = np.arange(start, start + n, dtype=np.int64)
        with self._lock:
            self._buf[idx % self.capacity] = samples
            self._held[idx % self.capacity] = idx

    def read(self, start: int, n: int) -> np.ndarray:
        pos = start % self.capacity
        if pos + n <= self.capacity:  # one slice (every read but one per lap): no index arrays
            with self._lock:
                out = self._buf[pos : pos + n].copy()
                held = self._held[pos : pos + n] - start
            out[held != self._ramp[:n]] = 0.0
            return out
        idx = np.arange(start, start + n, dtype=np.int64)
        wrapped = idx % self.capacity
        with self._lock:
            out = self._buf[wrapped]
            kept = self._held[wrapped]
        return np.where(kept == idx, out, np.float32(0.0)).astype(np.float32)

    def count_held(self, start: int, n: int) -> int:
        """How many of the samples ``[start, start + n)`` were written (and not cleared)."""
        idx = np.arange(start, start + n, dtype=np.int64)
        with self._lock:
            return int(np.count_nonzero(self._held[idx % self.capacity] == idx))

    def clear_from(self, start: int) -> None:
        """Forget every sample at or after ``start`` (they read as silence)."""
        if self.journal is not None:
            self.journal.append(("clear", start, None))
        with self._lock:
            self._held[self._held >= start] = -1


class InputBuffer:
    """Speech waiting to be played: float32 16 kHz, bounded, drop-oldest on overflow."""

    def __init__(self, max_samples: int) -> None:
        self.max_samples = max_samples
        self._chunks: deque[np.ndarray] = deque()
        self._size = 0
        self._lock = threading.Lock()
        self.dropped_samples = 0

    def __len__(self) -> int:
        return self._size

    def push(self, pcm: np.ndarray) -> None:
        if not len(pcm):
            return
        with self._lock:
            self._chunks.append(pcm)
            self._size += len(pcm)
            while self._size > self.max_samples:
                excess = self._size - self.max_samples
                head = self._chunks[0]
                if len(head) <= excess:
                    self._chunks.popleft()
                    self._size -= len(head)
                    self.dropped_samples += len(head)
                else:
                    self._chunks[0] = head[excess:]
                    self._size -= excess
                    self.dropped_samples += excess

    def count_dropped(self, n: int) -> None:
        """Count ``n`` samples dropped elsewhere (a render process's own buffer)."""
        with self._lock:
            self.dropped_samples += n

    def pop(self, n: int) -> tuple[np.ndarray, int]:
        """Up to ``n`` samples, zero-padded to ``n``; returns (float32 (n,), real count)."""
        out = np.zeros(n, np.float32)
        got = 0
        with self._lock:
            while got < n and self._chunks:
                head = self._chunks[0]
                take = min(n - got, len(head))
                out[got : got + take] = head[:take]
                got += take
                if take == len(head):
                    self._chunks.popleft()
                else:
                    self._chunks[0] = head[take:]
            self._size -= got
        return out, got

    def clear(self) -> int:
        with self._lock:
            n, self._size = self._size, 0
            self._chunks.clear()
        return n

    def peek(self, n: int) -> np.ndarray:
        """The first ``n`` buffered samples (fewer if fewer are there), left in place."""
        with self._lock:
            parts, got = [], 0
            for chunk in self._chunks:
                if got >= n:
                    break
                parts.append(chunk[: n - got])
                got += len(parts[-1])
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)

    def pad_front(self, n: int) -> None:
        """Put ``n`` samples of silence before what is buffered."""
        if n > 0:
            with self._lock:
                self._chunks.appendleft(np.zeros(n, np.float32))
                self._size += n


class PipelineOutput:
    """What a session's tracks, events and metrics read: input, output audio, frames, stats.

    :class:`SessionPipeline` fills it by computing; ``server.live.procpool.RemotePipeline``
    mirrors one that computes in a worker process.
    """

    def __init__(self, clock: MediaClock, max_buffered_s: float, echo_audio: bool) -> None:
        self.clock = clock
        self.echo_audio = echo_audio
        self.render_video = True
        self.early_onsets = False
        self.input = InputBuffer(round(max_buffered_s * SAMPLE_RATE))
        #: drains a standing backlog of live input in its pauses (where the input is
        #: consumed: SessionPipeline); None = never
        self.drain: BacklogDrain | None = None
        self.drained_samples = 0  # pause samples skipped to drain a backlog
        self.audio = AudioRing(round(AUDIO_RING_S * SAMPLE_RATE))
        self._frames_lock = threading.Lock()
        self._frames: dict[int, Frame] = {}
        self.next_tick = 0
        self.next_frame = 0
        # statistics, read by metrics
        self.motion_late = 0  # frames produced before the motion model delivered them
        self.lips_late = 0  # the same for the renderer's own mouth model (edtalk)
        self.skipped_renders = 0  # frames whose send time passed before they were made
        self.early_onsets_taken = 0  # speech onsets moved earlier onto unsent silence
        self.render_s: deque[float] = deque(maxlen=256)
        self.tick_s: deque[float] = deque(maxlen=256)
        self.tick_cpu_s = 0.0  # worker CPU seconds per tick (motion + mix + render), last run

    def push(self, pcm16k: np.ndarray) -> None:
        """Queue speech for playback: float32 (N,) 16 kHz mono in -1..1 (cheap)."""
        if self.drain is not None and len(pcm16k):
            self.drain.arrived(len(pcm16k), time.monotonic())
        self.input.push(np.ascontiguousarray(pcm16k, np.float32))

    def buffered(self) -> int:
        """Speech samples waiting to be played."""
        return len(self.input)

    def frame(self, j: int) -> Frame | None:
        with self._frames_lock:
            return self._frames.get(j)

    # the compute side, on a worker thread (SessionPipeline here, or a remote one)
    def tick_until(self, n_last: int) -> list[Frame]:
        raise NotImplementedError

    def try_splice(self, n_last: int) -> bool:
        raise NotImplementedError

    def interrupt(self, now: float | None = None) -> dict[str, int]:
        raise NotImplementedError

    def control(self, method: str, *args: Any) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def read_audio(self, start: int, n: int) -> np.ndarray:
        """float32 (n,) of session samples ``[start, start + n)`` for the output track."""
        out = self.audio.read(start, n)
        return out if self.echo_audio else np.zeros(n, np.float32)

    def store_frame(self, frame: Frame) -> None:
        """Keep ``frame`` for its send time; forget frames too old to be sent."""
        with self._frames_lock:
            self._frames[frame.index] = frame
            keep_from = frame.index - self.clock.delay_frames - FRAME_SLACK
            for old in [k for k in self._frames if k < keep_from]:
                del self._frames[old]

    def drop_frames(self, first: int) -> None:
        """Forget the frames from ``first`` on (they are made again)."""
        with self._frames_lock:
            for k in [k for k in self._frames if k >= first]:
                del self._frames[k]
