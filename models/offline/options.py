"""What an offline render is asked to do and what it produced: options, result, error."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from headcast.models.sizes import FRAME_SIZES
from headcast.models.take import EmotionCue, Pose

SIZES = FRAME_SIZES
FULL: Literal["full"] = "full"  # output size: the whole original portrait with the head pasted in
FPS_CHOICES: tuple[int, ...] = (25, 30)

Progress = Callable[[int, int], None]  # (frames done, frames total)
Size = int | Literal["full"]


class RenderError(Exception):
    """A render that cannot be done; the message is one readable line for the user."""


@dataclass(frozen=True)
class RenderOptions:
    """How to render. ``size``: head-frame side (one of ``FRAME_SIZES``) or ``"full"`` (the portrait).

    ``seed=None`` derives the idle-motion seed from the audio, so re-rendering a file
    reproduces it. ``workers=0``: one render thread per two cores (see ``default_workers``).
    """

    fps: int = 25
    size: Size = 512
    emotion: str = "neutral"
    cues: tuple[EmotionCue, ...] = ()
    pose: Pose = "natural"
    seed: int | None = None
    crf: int = 20
    preset: str = "veryfast"
    workers: int = 0
    backend: str = "auto"
    max_audio_s: float | None = None  # longest speech accepted (None: any)

    def __post_init__(self) -> None:
        if self.fps not in FPS_CHOICES:
            raise ValueError(f"fps must be one of {FPS_CHOICES}, got {self.fps}")
        if self.size != FULL and self.size not in SIZES:
            raise ValueError(f"size must be one of {SIZES} or {FULL!r}, got {self.size!r}")

    @property
    def head_size(self) -> int:
        """Side of the rendered head frame (full-portrait output renders at 512)."""
        return 512 if self.size == FULL else int(self.size)


@dataclass
class RenderResult:
    """What a render produced; times in seconds, ``rtf`` = wall time / audio duration."""

    output: Path
    frames: int
    fps: int
    width: int
    height: int
    audio_s: float
    wall_s: float
    seed: int
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def rtf(self) -> float:
        return self.wall_s / self.audio_s if self.audio_s > 0 else float("inf")
