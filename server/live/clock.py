"""One media clock per session: every timestamp derives from the 16 kHz sample counter.

Input tick ``n`` (wall time ``start + n / fps``) consumes session samples
``[b(n), b(n + 1))`` with ``b(n) = floor(n * 16000 / fps)`` (640 samples a frame at
25 fps; 533 or 534 at 30). Output is the same timeline shifted by ``delay_s`` (the motion
look-ahead plus a render budget): video frame ``j`` and audio sample ``b(j)`` leave at the
same wall time ``start + delay_s + j / fps`` (to within one sample), so lips and sound are
aligned by construction and cannot drift apart. RTP timestamps (90 kHz video, 48 kHz
Opus audio) are computed from the same counter.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from fractions import Fraction

from headcast.models.audio import SAMPLE_RATE  # the session clock (audio in and out)

VIDEO_CLOCK_RATE = 90_000  # Hz, RTP video clock (RFC 7741 for VP8, RFC 6184 for H.264)
VIDEO_TIME_BASE = Fraction(1, VIDEO_CLOCK_RATE)
AUDIO_PTIME_S = 0.020  # 20 ms Opus packets, WebRTC's default
AUDIO_CHUNK = round(SAMPLE_RATE * AUDIO_PTIME_S)  # 320 samples per audio frame
# libopus delays its output by a 312-sample (at 48 kHz) look-ahead that aiortc's sender
# leaves out of the RTP timestamps, so decoded audio plays 6.5 ms late: send it that
# much earlier. Measured on aiortc 1.16 with libopus 1.3/1.4.
OPUS_LOOKAHEAD_S = 312 / 48_000
OPUS_LOOKAHEAD_SAMPLES = round(OPUS_LOOKAHEAD_S * SAMPLE_RATE)  # 104


_EPOCH = time.monotonic()  # the common tick grid of this process's sessions


def aligned_start(fps: int, now: float | None = None, phase: float = 0.0) -> float:
    """The next start time on a grid shared by every session at ``fps`` in this process.

    Sessions on one grid tick together, so a render process runs their ticks back to
    back while its model weights and avatar are still in cache: measured on the 2-core
    development machine, four 256x256 sessions cost 2.5 ms of CPU a frame ticked
    together and 3.6 ms ticked at scattered phases. It delays a session's start by
    less than a frame. ``phase`` (a fraction of a frame) shifts the grid: render
    processes each get their own, so their bursts do not land at the same moment.
    """
    now = time.monotonic() if now is None else now
    epoch = _EPOCH + (phase % 1.0) / fps
    return epoch + math.ceil((now - epoch) * fps - 1e-9) / fps


def samples_per_frame(fps: int) -> float:
    """Session samples per video frame (25 fps -> 640; 30 fps -> 533.3, frames of 533
    and 534 samples); ``fps`` must divide the 90 kHz RTP video clock."""
    if fps <= 0 or VIDEO_CLOCK_RATE % fps:
        raise ValueError(f"fps must divide {VIDEO_CLOCK_RATE} (e.g. 20, 25, 30), got {fps}")
    return SAMPLE_RATE / fps


def output_delay_frames(right_context_s: float, margin_s: float, fps: int) -> int:
    """Whole frames the output trails the input.

    Frame ``f`` is final once audio up to ``f / fps + right_context_s`` is in; input tick
    ``n`` brings samples up to ``(n + 1) / fps``. So frame ``f`` is made at tick
    ``f + ceil(right_context_s * fps) - 1`` and sent one tick later, which leaves that
    tick for rendering; ``margin_s`` adds whole frames on top.
    """
    lag = max(1, math.ceil(round(right_context_s * fps, 6)))
    return lag + math.ceil(round(margin_s * fps, 6))


def output_delay_s(right_context_s: float, budget_s: float, margin_s: float, fps: int) -> float:
    """Seconds the output trails the input: when frame ``f`` leaves after tick ``f``.

    Frame ``f`` is made at tick ``f + lag - 1`` (see :func:`output_delay_frames`), and
    leaves ``budget_s`` later, the time its motion and render get; ``margin_s`` on top.
    With the shipped 52.5 ms right context at 25 fps and a 25 ms budget: 65 ms.
    """
    lag = max(1, math.ceil(round(right_context_s * fps, 6)))
    return (lag - 1) / fps + budget_s + margin_s


@dataclass
class MediaClock:
    """Wall-clock schedule of one session (``time.monotonic`` seconds).

    ``delay_frames`` is how many ticks frames may wait for their motion (and sizes the
    output queues); the output trails the input by ``output_delay`` seconds, or by
    ``delay_frames`` whole frames when that is not given.
    """

    fps: int
    delay_frames: int
    start: float = field(default_factory=time.monotonic)
    output_delay: float | None = None

    def __post_init__(self) -> None:
        samples_per_frame(self.fps)  # checks fps
        self.frame_s = 1.0 / self.fps
        whole = self.delay_frames * self.frame_s
        self.delay_s = whole if self.output_delay is None else self.output_delay
        if self.delay_s > whole + 1e-9:  # keep made frames queued until they leave
            self.delay_frames = math.ceil(self.delay_s * self.fps - 1e-9)

    # input side
    def tick_time(self, n: int) -> float:
        """When input tick ``n`` runs."""
        return self.start + n * self.frame_s

    def input_tick(self, now: float | None = None) -> int:
        """The latest input tick whose time has come (-1 before the start)."""
        now = time.monotonic() if now is None else now
        return math.floor((now - self.start) * self.fps + 1e-9)

    # output side
    def video_time(self, j: int) -> float:
        """When video frame ``j`` is sent."""
        return self.start + self.delay_s + j * self.frame_s

    def audio_time(self, k: int) -> float:
        """When audio chunk ``k`` (session samples from ``k * AUDIO_CHUNK``) is sent."""
        return self.start + self.delay_s + k * AUDIO_PTIME_S

    def output_frame(self, now: float | None = None) -> int:
        """The video frame being played at ``now`` (negative before output starts)."""
        now = time.monotonic() if now is None else now
        return math.floor((now - self.start - self.delay_s) * self.fps + 1e-9)

    def output_sample(self, now: float | None = None) -> int:
        """The session sample being played at ``now``."""
        now = time.monotonic() if now is None else now
        return math.floor((now - self.start - self.delay_s) * SAMPLE_RATE)

    def first_unread_sample(self, now: float, read_ahead: int) -> int:
        """The first session sample no audio slot sent by ``now`` has read, when slot ``k``
        (sent at :meth:`audio_time`) reads up to ``read_ahead`` samples past its end."""
        k = math.floor((now - self.start - self.delay_s) / AUDIO_PTIME_S + 1e-9) + 1
        return k * AUDIO_CHUNK + read_ahead

    def frame_sample(self, j: int) -> int:
        """The first session sample of frame (and input tick) ``j``."""
        return j * SAMPLE_RATE // self.fps

    def frame_samples(self, j: int) -> int:
        """How many session samples frame ``j`` spans."""
        return self.frame_sample(j + 1) - self.frame_sample(j)

    def frame_of(self, s: int) -> int:
        """The frame whose samples hold session sample ``s``."""
        return ((s + 1) * self.fps - 1) // SAMPLE_RATE

    def first_frame_from(self, s: int) -> int:
        """The first frame that starts at or after session sample ``s``."""
        return -(-s * self.fps // SAMPLE_RATE)

    def video_pts(self, j: int) -> int:
        """RTP video timestamp of frame ``j`` (90 kHz): exact, as fps divides 90000."""
        return j * (VIDEO_CLOCK_RATE // self.fps)

    def frame_ms(self, j: int) -> float:
        """Session time of frame ``j`` in milliseconds."""
        return j * 1000.0 / self.fps
