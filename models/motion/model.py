"""The shipped audio-to-motion ONNX model, loaded once and shared by sessions.

The graph is streaming: it takes ``mel`` float32 (1, T, 80) plus one state tensor per
convolution and returns per-frame outputs and the next states (see
``models/training/export.py``). Everything the runtime needs — channel names, rates,
look-ahead, receptive field — is read from the model's metadata.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from headcast.models.audio import SUPPORTED_FPS
from headcast.models.audio.features import (
    HOP_LENGTH,
    MEL_RATE,
    N_MELS,
    SAMPLE_RATE,
    silence_feature,
)
from headcast.models.channels import MOUTH_CHANNELS
from headcast.models.motion.vad import SpeechDetector, SpeechDetectorMissing, shared_detector
from headcast.models.onnx_session import (
    Provider,
    create_session,
    load_error_reason,
    session_metadata,
)

log = logging.getLogger(__name__)

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "assets" / "motion" / "motion.onnx"
# A second model that reads further ahead (non-causal within its window), for files:
# `load_motion_model(offline=True)` takes it when it is shipped, the live one otherwise.
OFFLINE_MODEL = DEFAULT_MODEL.with_name("motion-offline.onnx")
LIVE_MAX_LOOKAHEAD_FRAMES = 8  # 80 ms: the most a live model may read ahead
DEFAULT_FPS = 25  # frames per second unless asked otherwise
_REQUIRED_META = ("names", "sample_rate", "mel_rate", "n_mels", "lookahead_frames", "lookahead_s")
MAX_LOOKAHEAD_FRAMES = 20  # 200 ms, the most training allows
MAX_RECEPTIVE_FIELD = 10_000  # mel frames (100 s): far beyond any model here


class MotionModelError(ValueError):
    """A model file that is missing, unreadable or not a headcast motion model."""


class MotionModel:
    """An ONNX motion model plus the metadata it describes itself with.

    ``names``: the output channels, always :data:`~models.channels.MOUTH_CHANNELS` in
    that order (``run`` puts the graph's outputs there, ``graph_names`` says what the
    graph itself emits; a channel it lacks stays 0); ``fps``: frames per second the
    streamer emits; ``sample_rate``: 16000; ``lookahead_s``: audio past a frame's time
    that must arrive before the frame is final. ``run`` is thread-safe (ONNX Runtime
    sessions are), so one instance serves every session. ``vad``: the Silero speech
    gate (:mod:`models.motion.vad`) streams apply, or None for the network alone;
    ``speech_gate=True`` loads it when the silero-vad package is installed.
    """

    def __init__(
        self,
        path: str | Path | bytes,
        fps: int = DEFAULT_FPS,
        provider: Provider = "auto",
        speech_gate: bool = True,
    ) -> None:
        if int(fps) not in SUPPORTED_FPS:
            raise MotionModelError(f"fps must be one of {SUPPORTED_FPS}, got {fps}")
        if not isinstance(path, bytes) and not Path(path).is_file():
            raise MotionModelError(f"motion model not found: {path}")
        try:
            self.session = create_session(path, provider=provider, threads=1)
        except Exception as exc:  # onnxruntime raises its own untyped errors
            reason = load_error_reason(exc)
            where = "from bytes" if isinstance(path, bytes) else str(path)
            raise MotionModelError(f"cannot load motion model {where}: {reason}") from exc
        where = "the model given as bytes" if isinstance(path, bytes) else str(path)
        meta = session_metadata(self.session)
        missing = [k for k in _REQUIRED_META if k not in meta]
        if meta.get("headcast.kind") != "motion":
            raise MotionModelError(f"{where} is not a headcast motion model")
        if missing:
            raise MotionModelError(f"{where}: metadata lacks {', '.join(missing)}")
        try:
            self._read_metadata(meta)
        except (ValueError, TypeError) as exc:
            raise MotionModelError(f"{where}: unusable metadata ({exc})") from exc
        inputs = self.session.get_inputs()
        if [i.name for i in inputs if not i.name.startswith("state_")] != ["mel"]:
            raise MotionModelError(f"{where}: the graph does not take the input 'mel'")
        self._state_names = [i.name for i in inputs if i.name.startswith("state_")]
        self._state_shapes = [
            tuple(int(d) for d in i.shape) for i in inputs if i.name.startswith("state_")
        ]
        self._out_names = ["coeffs", "speech"] + [
            f"state_out_{i}" for i in range(len(self._state_names))
        ]
        self.fps = int(fps)
        self.vad: SpeechDetector | None = None
        if speech_gate:
            try:
                self.vad = shared_detector()
            except SpeechDetectorMissing as exc:
                log.warning("no speech gate: %s", exc)
        try:
            self._initial = self._wash_in()
        except Exception as exc:  # the graph's outputs do not fit its metadata
            raise MotionModelError(f"{where}: does not run as its metadata says ({exc})") from exc

    def _read_metadata(self, meta: dict[str, str]) -> None:
        if (
            int(meta["sample_rate"]) != SAMPLE_RATE
            or int(meta["mel_rate"]) != MEL_RATE
            or int(meta["n_mels"]) != N_MELS
        ):
            raise ValueError("trained for other audio features")
        self.metadata = meta
        self.graph_names: tuple[str, ...] = tuple(meta["names"].split(","))
        unknown = [n for n in self.graph_names if n not in MOUTH_CHANNELS]
        if unknown or len(set(self.graph_names)) != len(self.graph_names):
            raise ValueError(f"outputs {unknown or 'repeated'} are not mouth channels")
        self.names: tuple[str, ...] = tuple(MOUTH_CHANNELS)
        self._to_mouth = np.array([MOUTH_CHANNELS.index(n) for n in self.graph_names], np.intp)
        self.sample_rate = SAMPLE_RATE
        self.mel_rate = MEL_RATE
        self.hop_length = HOP_LENGTH
        self.lookahead_frames = int(meta["lookahead_frames"])
        self.lookahead_s = float(meta["lookahead_s"])
        # A model for files reads far ahead and says so; the live model is causal.
        self.causal = meta.get("causal", "true") != "false"
        rf = int(meta.get("receptive_field", "100"))
        if not 0 <= self.lookahead_frames <= MAX_LOOKAHEAD_FRAMES:
            raise ValueError(f"lookahead_frames {self.lookahead_frames} out of 0..20")
        if not 0.0 <= self.lookahead_s <= 1.0:
            raise ValueError(f"lookahead_s {self.lookahead_s} out of 0..1")
        if not 1 <= rf <= MAX_RECEPTIVE_FIELD:
            raise ValueError(f"receptive_field {rf} out of 1..{MAX_RECEPTIVE_FIELD}")

    def _wash_in(self) -> list[np.ndarray]:
        """States after a long stretch of digital silence: the state a stream starts in.

        Zero states are not what a conv sees after silence; running twice the receptive
        field of silence frames flushes every trace of the zeros.
        """
        states = [np.zeros(s, np.float32) for s in self._state_shapes]
        rf = int(self.metadata.get("receptive_field", "100"))
        pad = np.tile(silence_feature(), (2 * rf, 1))
        feeds = {"mel": pad[None].astype(np.float32)}
        feeds.update(zip(self._state_names, states, strict=True))
        out = self.session.run(self._out_names, feeds)
        if out[0].shape[-1] != len(self.graph_names):
            raise ValueError(
                f"{out[0].shape[-1]} outputs for {len(self.graph_names)} channel names"
            )
        return list(out[2:])

    def initial_states(self) -> list[np.ndarray]:
        return [s.copy() for s in self._initial]

    def run(
        self, feats: np.ndarray, states: list[np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        """feats float32 (T, 80), T >= 1 -> coeffs float32 (T, 16) 0..1 in
        :data:`MOUTH_CHANNELS` order, speech (T,), states.

        Output row ``t`` belongs to the mel frame ``lookahead_frames`` before input row ``t``.
        """
        feeds = {"mel": np.ascontiguousarray(feats[None], np.float32)}
        feeds.update(zip(self._state_names, states, strict=True))
        out = self.session.run(self._out_names, feeds)
        coeffs = np.zeros((out[0].shape[1], len(MOUTH_CHANNELS)), np.float32)
        coeffs[:, self._to_mouth] = out[0][0]
        return coeffs, out[1][0], list(out[2:])


def default_model_path(offline: bool = False) -> Path:
    """The shipped model: for files (``offline``) the wider-window one when it is there."""
    return OFFLINE_MODEL if offline and OFFLINE_MODEL.is_file() else DEFAULT_MODEL


def load_motion_model(
    path: str | Path | None = None,
    fps: int = 25,
    provider: Provider = "auto",
    offline: bool = False,
    speech_gate: bool = True,
) -> MotionModel:
    """Load a motion model (``None`` = the one shipped in the repository; with
    ``offline`` the one for files, see :func:`default_model_path`; ``speech_gate``
    False: without the VAD gate, the network alone)."""
    where = default_model_path(offline) if path is None else path
    return MotionModel(where, fps=fps, provider=provider, speech_gate=speech_gate)
