"""What a session's pipeline is made from, the one function that makes it, and what a
render process answers about it.

The live server builds a session's :class:`~server.live.pipeline.SessionPipeline` in its
own process or asks a render process to (:mod:`server.live.procpool`); both go through
:func:`build_pipeline` from the same :class:`PipelineSpec`, so the two cannot drift.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from headcast.models.mixer import MotionMixer
from headcast.server.live.clock import MediaClock
from headcast.server.live.output import Frame
from headcast.server.live.pipeline import LipStreamerLike, MotionStreamerLike, SessionPipeline

#: one output-audio operation: ("write", start sample, float32 (N,)) or ("clear", start, None)
AudioOp = tuple[str, int, np.ndarray | None]


@dataclass(frozen=True)
class PipelineSpec:
    """Everything about a session's pipeline that is not a model or a renderer
    (picklable: it is sent to render processes)."""

    avatar: str | None  # what create_renderer takes: None = the built-in default
    size: int
    fps: int
    seed: int | None
    emotion: str
    clock: MediaClock
    max_buffered_s: float
    echo_audio: bool
    early_onsets: bool
    read_ahead: int
    drain_above_s: float = 0.0


def build_pipeline(
    spec: PipelineSpec,
    *,
    streamer: MotionStreamerLike,
    render: Callable[..., np.ndarray],
    lips: LipStreamerLike | None = None,
) -> SessionPipeline:
    """The session pipeline ``spec`` describes, computing with these models. On the
    warp renderers the mixer knows the portrait's own smile, so ``neutral`` relaxes it,
    and whether its lips are apart at rest, so they meet in pauses (EDTalk draws its own
    mouth: neither there)."""
    smile = None if lips is not None else portrait_smile(spec.avatar)
    mixer = MotionMixer(
        spec.fps,
        seed=spec.seed,
        emotion=spec.emotion,
        portrait_smile=smile,
        lips_apart=lips is None and portrait_lips_apart(spec.avatar),
    )
    return SessionPipeline(
        clock=spec.clock,
        streamer=streamer,
        mixer=mixer,
        render=render,
        max_buffered_s=spec.max_buffered_s,
        echo_audio=spec.echo_audio,
        lips=lips,
        early_onsets=spec.early_onsets,
        read_ahead=spec.read_ahead,
        drain_above_s=spec.drain_above_s,
    )


def portrait_lips_apart(avatar: str | None) -> bool:
    """Whether the pack at ``avatar`` (None: the built-in one) has its lips apart at rest."""
    from headcast.models.avatar.relax import folder_lips_apart

    return folder_lips_apart(avatar)


def portrait_smile(avatar: str | None) -> dict[str, float] | None:
    """The smile of the pack at ``avatar`` (None: the built-in one); None if unknown."""
    from headcast.models.avatar.errors import AvatarError
    from headcast.models.avatar.relax import folder_smile

    try:
        return folder_smile(avatar)
    except AvatarError:  # not a pack folder (a test's own renderer): no smile to undo
        return None


@dataclass
class TickReply:
    """What a render process sends back after each call on a pipeline: the output made
    since the last reply and the pipeline's counters, which its mirror copies."""

    audio: list[AudioOp]
    frames: list[Frame]
    dropped_from: int | None  # first frame an early onset took back, if any
    next_tick: int
    next_frame: int
    motion_late: int
    lips_late: int
    skipped_renders: int
    early_onsets_taken: int
    drained_samples: int
    tick_cpu_s: float
    buffered: int  # input samples waiting in the worker
    dropped_samples: int  # input samples dropped there, cumulative
    render_s: list[float] = field(default_factory=list)
    tick_s: list[float] = field(default_factory=list)

    @classmethod
    def take(cls, p: SessionPipeline) -> TickReply:
        """The reply for ``p``, emptying its journals (what was sent is not sent again)."""
        frames = [
            Frame(f.index, f.coeffs, f.speech, None if f.yuv is not None else f.image, f.yuv)
            for f in p.frames_journal or []
        ]
        reply = cls(
            audio=list(p.audio.journal or []),
            frames=frames,
            dropped_from=p.dropped_from,
            next_tick=p.next_tick,
            next_frame=p.next_frame,
            motion_late=p.motion_late,
            lips_late=p.lips_late,
            skipped_renders=p.skipped_renders,
            early_onsets_taken=p.early_onsets_taken,
            drained_samples=p.drained_samples,
            tick_cpu_s=p.tick_cpu_s,
            buffered=len(p.input),
            dropped_samples=p.input.dropped_samples,
            render_s=list(p.render_s),
            tick_s=list(p.tick_s),
        )
        p.audio.journal = []
        p.frames_journal = []
        p.dropped_from = None
        p.render_s.clear()  # sent: the server process keeps the statistics
        p.tick_s.clear()
        return reply
