"""One session's compute, as a plain synchronous object driven by the media clock.

Per input tick the pipeline takes one frame of speech (or silence on underrun) from the
bounded input buffer, feeds the streaming audio-to-motion model, mixes the mouth it gets
back with expression and idle motion, renders the frame and stores it, with the audio,
for the output tracks. Everything here runs on worker threads, never the event loop;
the event loop only pushes audio and reads finished frames, under short locks.

The queues it fills and their policies are in :mod:`server.live.output`.

Early onsets: the output trails the input by the look-ahead plus a render budget, which
a stream arriving in real time needs. Speech that arrives after silence with more of it
already buffered (a voice agent's synthesised reply) need not wait that long: the
silence already consumed but not yet sent is taken back, and the speech starts at the
first sample the audio track has not read yet. The motion streamers are rewound to a
snapshot kept from before the silent ticks, so the result is exactly what it would have
been had the speech arrived then; the lips and the sound stay on one timeline.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from headcast.models.frames import to_i420
from headcast.models.mixer import MotionMixer
from headcast.server.live.backlog import BacklogDrain
from headcast.server.live.clock import SAMPLE_RATE, MediaClock
from headcast.server.live.output import Frame, PipelineOutput

SPEECH_EPSILON = 1e-4  # a pushed chunk quieter than this everywhere still counts as speech
SPLICE_MARGIN_S = 0.010  # early onsets start this far past the last sample the tracks read
SPLICE_CUSHION_S = 0.08  # speech left buffered after an early onset's catch-up, at least
SPLICE_HISTORY = 8  # silent ticks an early onset can reach back over
EARLY_ONSET_MIN_SAMPLES = round(SPLICE_CUSHION_S * SAMPLE_RATE)  # a push that may start one
MIXER_CONTROLS = ("set_emotion", "set_pose")


class MotionStreamerLike(Protocol):
    @property
    def frames_emitted(self) -> int: ...
    def push(self, pcm: np.ndarray) -> Any: ...
    def flush(self) -> Any: ...
    def reset(self) -> None: ...
    def snapshot(self) -> Any: ...
    def restore(self, state: Any) -> None: ...


class LipStreamerLike(Protocol):
    """A second mouth source for renderers with their own audio model (edtalk's Audio2Lip).

    ``push`` returns frames with ``index`` int64 (N,) and ``mouth`` float32 (N, D);
    ``silence`` float32 (D,) is the mouth of a silent window.
    """

    silence: np.ndarray

    @property
    def frames_emitted(self) -> int: ...
    def push(self, pcm: np.ndarray) -> Any: ...
    def reset(self) -> None: ...
    def snapshot(self) -> Any: ...
    def restore(self, state: Any) -> None: ...


class SessionPipeline(PipelineOutput):
    """Audio in -> motion -> mixer -> renderer -> frames + delayed audio, one session.

    ``render``: float32 (K,) -> uint8 (S, S, 3) RGB, called on the tick's worker thread;
    with ``lips`` it is called as ``render(coeffs, mouth)``, ``mouth`` float32 (D,) from
    ``lips`` (the renderer's own mouth model). A frame then waits for both sources.
    The streamer emits mouth vectors in :data:`MOUTH_CHANNELS` order. ``read_ahead``:
    session samples past its slot's end that the audio track reads (as it sends the slot);
    with ``early_onsets`` speech after silence starts just past them (see the module).
    ``drain_above_s``: a live input's standing backlog above this drains in its pauses
    (:mod:`server.live.backlog`); 0 = never.
    """

    def __init__(
        self,
        *,
        clock: MediaClock,
        streamer: MotionStreamerLike,
        mixer: MotionMixer,
        render: Callable[..., np.ndarray],
        max_buffered_s: float,
        echo_audio: bool = True,
        lips: LipStreamerLike | None = None,
        early_onsets: bool = False,
        read_ahead: int = 0,
        drain_above_s: float = 0.0,
    ) -> None:
        super().__init__(clock, max_buffered_s, echo_audio)
        if drain_above_s > 0:
            self.drain = BacklogDrain(drain_above_s)
        self.streamer = streamer
        self.mixer = mixer
        self.render = render
        self.lips = lips
        self._lip: dict[int, np.ndarray] = {}
        self._last_lip = None if lips is None else np.asarray(lips.silence, np.float32)
        self._lock = threading.Lock()  # tick / interrupt; never taken on the event loop
        self._frame_speech: dict[int, bool] = {}
        self._mouth: dict[int, tuple[np.ndarray, float]] = {}
        self._streamer_origin = 0  # session frame of the streamer's frame 0
        # early onsets rewind the streamers: only for those that can snapshot themselves
        rewindable = all(hasattr(x, "snapshot") for x in (streamer, lips) if x is not None)
        self.early_onsets = early_onsets and rewindable
        self.read_ahead = read_ahead
        # (tick, streamer state, lips state) before each tick of the current silent run
        self._silent: deque[tuple[int, Any, Any]] = deque(maxlen=SPLICE_HISTORY)
        self._splice_target: int | None = None  # set by try_splice for the next tick_until
        #: when a list, frames made are also recorded here, and ``dropped_from`` the first
        #: frame an early onset took back (for a mirror of the frames in another process)
        self.frames_journal: list[Frame] | None = None
        self.dropped_from: int | None = None
        #: called as soon as an early onset has put its audio in the ring (render
        #: processes pass the audio on to the server process before the ticks run)
        self.on_early_audio: Callable[[], None] | None = None

    # ---- worker side ----------------------------------------------------------------

    def tick_until(self, n_last: int) -> list[Frame]:
        """Run every input tick up to ``n_last`` (catching up if late); new frames.

        With early onsets, buffered speech after silence may rewind to an earlier tick
        first; the ticks then run on until its first frame is made, so its render does
        not wait for the next tick.
        """
        made: list[Frame] = []
        cpu0 = time.thread_time()
        ticks = 0
        with self._lock:
            target = self._splice(n_last) if self.early_onsets else None
            if target is None:
                target, self._splice_target = self._splice_target, None
            last = n_last
            while self.next_tick <= last:
                made += self._tick(self.next_tick)
                self.next_tick += 1
                ticks += 1
                if (
                    target is not None
                    and self.next_tick > last
                    and self.next_frame <= target
                    and len(self.input) >= self.clock.frame_samples(self.next_tick)
                    and last < n_last + self.clock.delay_frames
                ):
                    last += 1
        if ticks:
            self.tick_cpu_s = (time.thread_time() - cpu0) / ticks
        return made

    def try_splice(self, n_last: int) -> bool:
        """From the event loop, as speech arrives: start it early now if no tick is running.

        Only the cheap part runs here: the rewind and the audio, written into the output
        ring at once so the tracks play it whatever the workers' queue; the motion and
        renders follow in the next :meth:`tick_until`. False if nothing moved.
        """
        if not self.early_onsets or not self._lock.acquire(blocking=False):
            return False
        try:
            target = self._splice(n_last)
            if target is None:
                return False
            self._splice_target = target
            return True
        finally:
            self._lock.release()

    def _splice(self, n_last: int) -> int | None:
        """Start buffered speech on silence already consumed but not yet sent.

        Returns the first frame that changes, or None when nothing moved: no silent run
        to take back, nothing buffered, or too little buffered to run without a gap.
        """
        if not self._silent or not len(self.input):
            return None
        first = self._silent[0][0]
        now = time.monotonic()
        s0 = max(
            self.clock.first_unread_sample(now + SPLICE_MARGIN_S, self.read_ahead),
            self.clock.frame_sample(first),
        )
        if s0 >= self.clock.frame_sample(self.next_tick):
            return None  # the speech lands there anyway
        need = self.clock.frame_sample(n_last + 1) - s0 + round(SPLICE_CUSHION_S * SAMPLE_RATE)
        if len(self.input) < need:
            return None  # arriving in real time: keep the cushion the delay gives
        f0 = self.clock.frame_of(s0)
        _, motion_state, lips_state = self._silent[f0 - first]
        self._silent.clear()
        self.streamer.restore(motion_state)
        if self.lips is not None:
            self.lips.restore(lips_state)
        self.input.pad_front(s0 - self.clock.frame_sample(f0))
        # The audio of the ticks about to run again, into the output ring now: the audio
        # track may read it before those ticks finish their motion and renders.
        start = self.clock.frame_sample(f0)
        self.audio.write(start, self.input.peek(self.clock.frame_sample(n_last + 1) - start))
        if self.on_early_audio is not None:
            self.on_early_audio()
        j1 = self.clock.first_frame_from(s0)  # frames before this show a time before the speech
        self.drop_frames(j1)
        if self.frames_journal is not None:
            self.dropped_from = j1 if self.dropped_from is None else min(self.dropped_from, j1)
        self.next_frame = min(self.next_frame, j1)
        # the rewound streamers emit their frames again from where they were
        redo = self._streamer_origin + int(self.streamer.frames_emitted)
        self._mouth = {k: v for k, v in self._mouth.items() if k < redo}
        if self.lips is not None:
            redo_lips = self._streamer_origin + int(self.lips.frames_emitted)
            self._lip = {k: v for k, v in self._lip.items() if k < redo_lips}
        self.next_tick = f0
        self.early_onsets_taken += 1
        return j1

    def _tick(self, n: int) -> list[Frame]:
        t0 = time.perf_counter()
        state = None
        if self.early_onsets and not len(self.input):
            lips = None if self.lips is None else self.lips.snapshot()
            state = (n, self.streamer.snapshot(), lips)
        if self.drain is not None:
            skipped = self.drain.skip(self.input, self.clock.frame_samples(n), time.monotonic())
            self.drained_samples += skipped
        chunk, real = self.input.pop(self.clock.frame_samples(n))
        if state is not None and real == 0:
            self._silent.append(state)
        else:
            self._silent.clear()
        # only the speech itself: the padding of an underrun reads as silence anyway,
        # and what is held counts as speech when an interrupt drops it
        self.audio.write(self.clock.frame_sample(n), chunk[:real])
        self._frame_speech[n] = real > 0
        motion = self.streamer.push(chunk)
        self._take_motion(motion)
        if self.lips is not None:
            self._take_lips(self.lips.push(chunk))
        made = []
        lag = self.clock.delay_frames - 1  # ticks a frame may wait for its motion
        while self.next_frame <= n:
            f = self.next_frame
            if not self._ready(f) and f > n - lag:
                break
            made.append(self._produce(f))
            self.next_frame += 1
        self.tick_s.append(time.perf_counter() - t0)
        return made

    def _take_motion(self, motion: Any) -> None:
        if motion is None or not len(motion.index):
            return
        for idx, coeffs, speech in zip(motion.index, motion.coeffs, motion.speech, strict=True):
            f = self._streamer_origin + int(idx)
            if f >= self.next_frame:
                self._mouth[f] = (np.asarray(coeffs, np.float32), float(speech))

    def _ready(self, f: int) -> bool:
        return f in self._mouth and (self.lips is None or f in self._lip)

    def _take_lips(self, lips: Any) -> None:
        for idx, mouth in zip(lips.index, lips.mouth, strict=True):
            f = self._streamer_origin + int(idx)
            if f >= self.next_frame:
                self._lip[f] = mouth

    def _lip_for(self, f: int) -> np.ndarray | None:
        """The renderer's own mouth for frame ``f``: late -> the last one held; never
        produced (after an interrupt) -> the silent mouth."""
        if self.lips is None:
            return None
        lip = self._lip.pop(f, None)
        if lip is None:
            self.lips_late += f >= self._streamer_origin  # before it: cut by an interrupt
            return self._last_lip
        self._last_lip = lip
        return lip

    def _produce(self, f: int) -> Frame:
        lip = self._lip_for(f)
        got = self._mouth.pop(f, None)
        if got is None:
            # frames before the streamer's origin were cut by an interrupt: none will come
            self.motion_late += f >= self._streamer_origin
            mouth, p_speech = None, 0.0
        else:
            mouth, p_speech = got
        speech = self._frame_speech.pop(f, False)
        if not speech:
            mouth = None  # silence is a first-class state: the mouth closes
        coeffs = self.mixer.step(mouth, p_speech if speech else 0.0)
        image = yuv = None
        if self.render_video:
            if self.clock.video_time(f) < time.monotonic():
                self.skipped_renders += 1
            else:
                t0 = time.perf_counter()
                image = self.render(coeffs) if self.lips is None else self.render(coeffs, lip)
                self.render_s.append(time.perf_counter() - t0)
                yuv = to_i420(image)
        frame = Frame(f, coeffs, speech, image, yuv)
        if self.frames_journal is not None:
            self.frames_journal.append(frame)
        self.store_frame(frame)
        return frame

    def control(self, method: str, *args: Any) -> None:
        """Call ``mixer.<method>(*args)`` between ticks (``set_emotion``, ``set_pose``)."""
        if method not in MIXER_CONTROLS:
            raise ValueError(f"not a mixer control: {method!r}")
        with self._lock:
            getattr(self.mixer, method)(*args)

    def close(self) -> None:
        """Release what the pipeline holds outside this object (nothing, in process)."""

    def interrupt(self, now: float | None = None) -> dict[str, int]:
        """Stop speech at once: flush input, motion and not-yet-played output; ease to idle.

        Returns ``{"frame": first replaced frame, "sample": cut sample, "dropped_samples"}``.
        """
        now = time.monotonic() if now is None else now
        with self._lock:
            j_out = self.clock.output_frame(now)
            s_cut = max(0, self.clock.output_sample(now))
            dropped = self.input.clear()
            self.streamer.reset()
            self._silent.clear()
            self._streamer_origin = self.next_tick
            self._mouth.clear()
            if self.lips is not None:
                self.lips.reset()
                self._lip.clear()
                self._last_lip = np.asarray(self.lips.silence, np.float32)
            self._frame_speech = {k: False for k in self._frame_speech}
            # silence everything not yet sent; speech among it was dropped too
            end = self.clock.frame_sample(self.next_tick)
            if end > s_cut:
                dropped += self.audio.count_held(s_cut, end - s_cut)
            self.audio.clear_from(s_cut)
            self.mixer.interrupt()
            redo = range(max(j_out + 1, 0), self.next_frame)
            with self._frames_lock:
                for k in redo:
                    self._frames.pop(k, None)
            saved_next = self.next_frame
            for k in redo:
                self.next_frame = k
                self._produce(k)  # no motion for these by design: they ease to idle
            self.next_frame = saved_next
        return {"frame": j_out + 1, "sample": s_cut, "dropped_samples": dropped}
