"""Streaming audio-to-motion: push PCM chunks of any size, get timestamped frames.

The model runs at the mel rate (100 Hz); video frame ``i`` is at time ``i / fps`` and
takes the model output at mel position ``i * 100 / fps`` (linear interpolation between
the two neighbouring mel frames when that is not an integer, e.g. at 30 fps). A frame
is *final* once the look-ahead past its time has arrived, so chunking changes nothing:
streaming in any chunk sizes equals the offline result (up to float rounding).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np

from headcast.models.audio.features import HALF_WINDOW, HOP_LENGTH, FeatureExtractor
from headcast.models.motion.model import MotionModel
from headcast.models.motion.vad import SpeechGateStream

OFFLINE_BLOCK_S = 10.0  # seconds of audio per model call in :func:`infer` (bounded memory)


@dataclass(frozen=True)
class MotionFrames:
    """A run of consecutive frames.

    index: int64 (N,), frame ``i`` is at ``i / fps`` s from stream start;
    coeffs: float32 (N, len(names)) 0..1; speech: float32 (N,) 0..1 speech activity.
    """

    index: np.ndarray
    coeffs: np.ndarray
    speech: np.ndarray

    def __len__(self) -> int:
        return len(self.index)

    @staticmethod
    def empty(channels: int) -> MotionFrames:
        return MotionFrames(
            np.zeros(0, np.int64), np.zeros((0, channels), np.float32), np.zeros(0, np.float32)
        )

    @staticmethod
    def concat(parts: list[MotionFrames], channels: int) -> MotionFrames:
        parts = [p for p in parts if len(p)]
        if not parts:
            return MotionFrames.empty(channels)
        return MotionFrames(
            np.concatenate([p.index for p in parts]),
            np.concatenate([p.coeffs for p in parts]),
            np.concatenate([p.speech for p in parts]),
        )


class MotionStreamer:
    """One per session; plain synchronous and not thread-safe (call from one worker).

    ``push(pcm16k)`` returns the frames that became final; ``flush()`` ends the
    utterance (pads the look-ahead with silence, returns the rest) and leaves the
    streamer fresh, so the next push starts a new stream at frame 0; ``reset()`` drops
    everything (interrupt). ``samples_consumed`` counts samples since the stream start.
    """

    def __init__(self, model: MotionModel) -> None:
        self.model = model
        self._channels = len(model.names)
        self.reset()

    def reset(self) -> None:
        self._fx = FeatureExtractor()
        self._states = self.model.initial_states()
        self._mel_in = 0  # mel frames fed to the model
        # Model outputs at the mel rate for mel frames _out_start .. _out_start+len-1.
        self._out_start = 0
        self._out_coeffs = np.zeros((0, self._channels), np.float32)
        self._out_speech = np.zeros(0, np.float32)
        self._next_frame = 0
        self._held: list[np.ndarray] = []  # pushed PCM not yet fed to the front-end
        # The VAD speech gate (models/motion/vad.py) reads as far ahead as the model does.
        ahead = self.model.lookahead_frames * HOP_LENGTH + HALF_WINDOW
        self._gate = None if self.model.vad is None else SpeechGateStream(self.model.vad, ahead)
        self.samples_consumed = 0

    @property
    def frames_emitted(self) -> int:
        return self._next_frame

    def snapshot(self) -> dict[str, Any]:
        """The whole stream state (a copy; the model is shared): :meth:`restore` returns
        to it, so a stream can be rewound and fed different audio from that point."""
        return copy.deepcopy({k: v for k, v in vars(self).items() if k != "model"})

    def restore(self, state: dict[str, Any]) -> None:
        vars(self).update(state)

    def _mel_position(self, frame: int) -> tuple[int, float]:
        """Frame index -> (mel frame below, fraction towards the next), exact arithmetic."""
        num = frame * self.model.mel_rate
        return num // self.model.fps, (num % self.model.fps) / self.model.fps

    def _feed(self, pcm: np.ndarray) -> None:
        feats = self._fx.push(pcm)
        if self._gate is not None:
            self._gate.push(pcm)
        if not len(feats):
            return
        coeffs, speech, self._states = self.model.run(feats, self._states)
        # Output row r is for mel frame (_mel_in + r - lookahead); drop the ones before 0.
        first = self._mel_in - self.model.lookahead_frames
        self._mel_in += len(feats)
        skip = max(0, -first)
        if skip >= len(coeffs):
            return
        coeffs, speech = coeffs[skip:], speech[skip:]
        if self._gate is not None:
            # No speech heard: every mouth channel rests and the speech activity drops.
            g = self._gate.gate(first + skip, speech)
            coeffs, speech = coeffs * g[:, None], speech * g
        self._out_coeffs = np.concatenate([self._out_coeffs, coeffs])
        self._out_speech = np.concatenate([self._out_speech, speech])

    def _emit(self, limit: int | None = None) -> MotionFrames:
        available = self._out_start + len(self._out_coeffs)  # mel outputs 0..available-1 exist
        idx, lo_l, frac_l = [], [], []
        i = self._next_frame
        while limit is None or i < limit:
            lo, frac = self._mel_position(i)
            if lo + (1 if frac > 0 else 0) >= available:
                break
            idx.append(i)
            lo_l.append(lo - self._out_start)
            frac_l.append(frac)
            i += 1
        if not idx:
            return MotionFrames.empty(self._channels)
        lo_a = np.array(lo_l, np.int64)
        hi_a = np.minimum(lo_a + 1, len(self._out_coeffs) - 1)
        w = np.array(frac_l, np.float32)
        coeffs = self._out_coeffs[lo_a] * (1 - w[:, None]) + self._out_coeffs[hi_a] * w[:, None]
        speech = self._out_speech[lo_a] * (1 - w) + self._out_speech[hi_a] * w
        self._next_frame = i
        # Keep outputs from the next frame's lower mel frame on.
        keep_from = min(self._mel_position(i)[0] - self._out_start, len(self._out_coeffs))
        if keep_from > 0:
            self._out_coeffs = self._out_coeffs[keep_from:]
            self._out_speech = self._out_speech[keep_from:]
            self._out_start += keep_from
        # Outputs are 0..1 by construction; the clip guards the interpolation's rounding.
        return MotionFrames(
            np.array(idx, np.int64),
            np.minimum(np.maximum(coeffs, 0.0), 1.0, dtype=np.float32),
            np.minimum(np.maximum(speech, 0.0), 1.0, dtype=np.float32),
        )

    def push(self, pcm16k: np.ndarray) -> MotionFrames:
        """float32 (N,) 16 kHz mono in -1..1 (any N incl. 0; NaN/inf are cleaned) -> frames."""
        pcm = np.asarray(pcm16k, np.float32).reshape(-1)
        self.samples_consumed += len(pcm)
        if len(pcm):
            self._held.append(pcm)
        # Work only once the next frame can be finished: a frame needs whole look-ahead, so
        # running the model on every 10-20 ms push would cost more and emit nothing sooner.
        if self.samples_consumed < self._samples_for(self._next_frame):
            return MotionFrames.empty(self._channels)
        self._feed_held()
        return self._emit()

    def _samples_for(self, frame: int) -> int:
        """Stream samples that must have arrived before ``frame`` is final."""
        lo, frac = self._mel_position(frame)
        last_mel = lo + (1 if frac > 0 else 0) + self.model.lookahead_frames
        # Mel frame j is complete once samples up to j * HOP + HALF_WINDOW have arrived.
        return last_mel * HOP_LENGTH + HALF_WINDOW

    def _feed_held(self) -> None:
        if self._held:
            pcm = self._held[0] if len(self._held) == 1 else np.concatenate(self._held)
            self._held = []
            self._feed(pcm)

    def total_frames(self) -> int:
        """Frames covering the audio so far: those with time < samples_consumed / 16000."""
        sr, fps = self.model.sample_rate, self.model.fps
        return -(-self.samples_consumed * fps // sr)

    def flush(self) -> MotionFrames:
        """End of utterance: pad with silence, emit every remaining frame, start afresh."""
        n_frames = self.total_frames()
        self._feed_held()
        if n_frames > self._next_frame:
            pad = max(0, self._samples_for(n_frames - 1) - self._fx.samples_in)
            self._feed(np.zeros(pad, np.float32))
        out = self._emit(limit=n_frames)
        self.reset()
        return out


def infer(model: MotionModel, pcm16k: np.ndarray) -> MotionFrames:
    """Offline: float32 (N,) 16 kHz mono -> all ``ceil(N * fps / 16000)`` frames.

    Runs the streaming path in blocks of ``OFFLINE_BLOCK_S`` so memory stays bounded
    and the result equals any chunked streaming run.
    """
    pcm = np.asarray(pcm16k, np.float32).reshape(-1)
    streamer = MotionStreamer(model)
    block = int(OFFLINE_BLOCK_S * model.sample_rate)
    parts = [streamer.push(pcm[i : i + block]) for i in range(0, len(pcm), block)]
    parts.append(streamer.flush())
    return MotionFrames.concat(parts, len(model.names))
