"""A speech gate from a voice-activity detector: Silero VAD (MIT), run by ONNX Runtime.

The motion network's own speech head was trained on speech, pauses and a handful of
synthetic non-speech sounds (music, clicks, tones, breaths, hum); sounds outside that set
(animal calls, for one) can open the mouth. Silero VAD was trained on far more audio, so
its verdict closes the mouth where it hears no speech. Its ONNX model ships inside the
``silero-vad`` wheel (installed without its torch dependencies, see requirements/); the
package is only located, never imported, so serving imports no torch.

Silero takes 512-sample windows at 16 kHz (32 ms) plus the last 64 samples of the
window before, and carries an LSTM state. Quiet input (a distant or attenuated talker,
-40 dBFS and below) makes it miss speech, so each window is first brought to a common
level by a causal automatic gain: a peak follower on window level, like the one the
log-mel front-end uses (fast attack, slow release, with a floor that caps the gain).

The gate of an output (mel) frame is the product of two ramps over the VAD probabilities
of the windows that end by ``t + ahead`` (``t`` the frame's centre in samples, ``ahead``
the audio the frame waits for anyway: the model's look-ahead plus half the analysis
window, so there is no extra delay and causal streaming equals a whole-file run):

* the highest probability of the last ~100 ms — no speech heard just now;
* the highest probability of the last 2 s — a sound that keeps the VAD undecided for
  that long (animal calls, some music) is not speech: speech, even reverberant and
  noisy, makes it confident at least once a second or two.

The VAD needs two or three windows to become confident at an onset, so for the first
120 ms after the network's own speech head hears speech begin after a pause, the gate
stays open: the gate shuts non-speech, it does not make onsets late.
"""

from __future__ import annotations

import copy
import importlib.util
import logging
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from headcast.models.audio.features import HOP_LENGTH, SAMPLE_RATE, sanitize
from headcast.models.onnx_session import Provider, create_session

if TYPE_CHECKING:
    import onnxruntime as ort

WINDOW = 512  # samples per VAD decision at 16 kHz (32 ms)
CONTEXT = 64  # samples of the previous window Silero prepends (its streaming contract)
STATE_SHAPE = (2, 1, 128)  # Silero v5/v6 LSTM state
# Causal gain before the VAD (window RMS in dBFS): the follower rises fast, decays over
# ~3 s, never drops below the floor (at most TARGET - FLOOR of gain on near-silence).
AGC_TARGET_DB = -20.0
AGC_FLOOR_DB = -60.0
AGC_ATTACK = 0.5  # per window
AGC_RELEASE = 0.01  # per window, ~3.2 s time constant
# VAD probability mapped linearly to a gate 0..1 over the windows ending within a span
# before the frame's last-needed sample: the short span is a hold (a word's quiet tail is
# not cut off), the long one the sustained-doubt test. Chosen on the validation split
# (see docs/motion.md).
GATE = (0.05, 0.2)
SPAN_SAMPLES = 3 * WINDOW  # 96 ms
SUSTAINED_GATE = (0.4, 0.7)
SUSTAINED_SPAN_SAMPLES = 2 * SAMPLE_RATE
# The VAD needs two or three windows to become confident at a speech onset; for that
# long after the network's own speech head hears speech begin (after a pause), its
# judgement stands, so onsets are not late.
ONSET_GRACE_FRAMES = 12  # mel frames, 120 ms
ONSET_QUIET_FRAMES = 20  # mel frames, 200 ms: a pause before an onset
MODEL_FILE = "silero_vad.onnx"

log = logging.getLogger(__name__)


class SpeechDetectorMissing(RuntimeError):
    """The silero-vad package (and its ONNX model) is not installed."""


def silero_model_path() -> Path | None:
    """The ONNX model inside the installed silero-vad package, or None (not imported:
    the package's own ``__init__`` would import torch)."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        path = Path(root) / "data" / MODEL_FILE
        if path.is_file():
            return path
    return None


class SpeechDetector:
    """The shared Silero VAD session (thread-safe, like every ONNX Runtime session)."""

    def __init__(self, path: str | Path | None = None, provider: Provider = "cpu") -> None:
        where = silero_model_path() if path is None else Path(path)
        if where is None or not where.is_file():
            raise SpeechDetectorMissing(
                "silero-vad is not installed (pip install --no-deps -r requirements/vad.txt)"
            )
        self.path = where
        # One intra-op thread: a 512-sample window is far too small to split.
        self.session = create_session(where, provider=provider, threads=1)
        self._extra_feeds: dict[str, np.ndarray] = {"sr": np.array(SAMPLE_RATE, np.int64)}
        try:
            fixed = _fixed_rate_graph(where)
            fast = None if fixed is None else create_session(fixed, provider=provider, threads=1)
            if fast is not None and _same_verdicts(self.session, fast):
                self.session, self._extra_feeds = fast, {}
        except Exception as exc:  # the model as shipped still works
            log.debug("silero-vad kept as shipped: %s", exc)

    def window(self, x: np.ndarray, state: np.ndarray) -> tuple[float, np.ndarray]:
        """x float32 (CONTEXT + WINDOW,), state float32 STATE_SHAPE -> (p 0..1, state)."""
        p, state = self.session.run(None, {"input": x[None], "state": state, **self._extra_feeds})
        return float(p.reshape(-1)[0]), state


@lru_cache(maxsize=1)
def shared_detector() -> SpeechDetector:
    """The process's one detector of the installed model (a session holds no stream
    state, so every motion model and session shares it). SpeechDetectorMissing when
    silero-vad is not installed."""
    return SpeechDetector()


def _fixed_rate_graph(path: Path) -> bytes | None:
    """Silero's graph for 16 kHz input of one fixed-size window, or None when the model
    is not laid out as expected.

    The shipped graph picks its 8 or 16 kHz half with an ``If`` on the ``sr`` input and
    tests input shapes with nested ones. With the 16 kHz half taken and the input shapes
    fixed, ONNX Runtime folds every test away when it loads the session (about 140 nodes
    to 31), and a window runs in about three quarters of the time.
    """
    import onnx
    from onnx import helper

    model = onnx.load(str(path))
    graph = model.graph
    ifs = [n for n in graph.node if n.op_type == "If"]
    producers = {o: n for n in graph.node for o in n.output}
    if len(ifs) != 1 or [i.name for i in graph.input] != ["input", "state", "sr"]:
        return None
    cond = producers.get(ifs[0].input[0])
    if cond is None or cond.op_type != "Equal" or "sr" not in cond.input:
        return None
    other = producers.get(next((i for i in cond.input if i != "sr"), ""))
    if other is None or other.op_type != "Constant" or not other.attribute[0].HasField("t"):
        return None
    rate = int(onnx.numpy_helper.to_array(other.attribute[0].t))
    if rate not in (SAMPLE_RATE, 8000):
        return None
    branches = {a.name: a.g for a in ifs[0].attribute}
    branch = branches["then_branch" if rate == SAMPLE_RATE else "else_branch"]
    nodes = []
    for node in graph.node:
        if node is ifs[0]:
            nodes.extend(branch.node)
            nodes.extend(
                helper.make_node("Identity", [b.name], [o])
                for b, o in zip(branch.output, node.output, strict=True)
            )
        elif node is not cond:
            nodes.append(node)
    inputs = [
        helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, [1, CONTEXT + WINDOW]),
        helper.make_tensor_value_info("state", onnx.TensorProto.FLOAT, list(STATE_SHAPE)),
    ]
    fixed = helper.make_graph(
        nodes,
        "silero_vad_16k",
        inputs,
        list(graph.output),
        initializer=list(graph.initializer) + list(branch.initializer),
    )
    out = helper.make_model(fixed, opset_imports=model.opset_import, functions=model.functions)
    out.ir_version = model.ir_version
    return bytes(out.SerializeToString())


def _same_verdicts(shipped: ort.InferenceSession, fixed: ort.InferenceSession) -> bool:
    """Both sessions give the same probabilities and states over a few windows of noise."""
    rng = np.random.default_rng(0)
    states = [np.zeros(STATE_SHAPE, np.float32)] * 2
    for _ in range(8):
        x = (0.1 * rng.standard_normal((1, CONTEXT + WINDOW))).astype(np.float32)
        sr = np.array(SAMPLE_RATE, np.int64)
        p0, states[0] = shipped.run(None, {"input": x, "state": states[0], "sr": sr})
        p1, states[1] = fixed.run(None, {"input": x, "state": states[1]})
        if not np.allclose(p0, p1, atol=1e-5) or not np.allclose(states[0], states[1], atol=1e-4):
            return False
    return True


class SpeechGateStream:
    """Per-stream VAD state: push 16 kHz PCM, ask for the gate of mel frames.

    Windows are counted from the stream's first sample; ``push`` runs every window
    completed so far. Not thread-safe (one per session, like the motion streamer).
    """

    def __init__(self, detector: SpeechDetector, ahead_samples: int) -> None:
        self.detector = detector
        self.ahead = int(ahead_samples)
        self._state = np.zeros(STATE_SHAPE, np.float32)
        self._context = np.zeros(CONTEXT, np.float32)
        self._level = AGC_FLOOR_DB
        self._pending = np.zeros(0, np.float32)
        self._probs = np.zeros(0, np.float32)
        self._first = 0  # window index of _probs[0]
        self._below = ONSET_QUIET_FRAMES  # mel frames the network's speech was below 0.5
        self._since_onset = ONSET_GRACE_FRAMES  # mel frames since it heard speech begin

    def __deepcopy__(self, memo: dict[int, object]) -> SpeechGateStream:
        """A copy of the stream state sharing the (stateless, thread-safe) detector."""
        twin = copy.copy(self)
        for k, v in vars(self).items():
            if isinstance(v, np.ndarray):
                setattr(twin, k, v.copy())
        return twin

    @property
    def windows_done(self) -> int:
        return self._first + len(self._probs)

    def push(self, pcm: np.ndarray) -> None:
        """float32 (N,) 16 kHz, any N (NaN/inf cleaned as the front-end cleans them)."""
        x = np.concatenate([self._pending, sanitize(np.asarray(pcm).reshape(-1))])
        n = len(x) // WINDOW
        probs = np.empty(n, np.float32)
        if n:
            # Window levels at once; the follower itself is a scalar recursion, then every
            # window is scaled by its gain at once: only the detector runs per window.
            frames = x[: n * WINDOW].reshape(n, WINDOW).astype(np.float64)
            level_db = 10.0 * np.log10(np.mean(frames**2, axis=1) + 1e-10)
            levels = np.empty(n, np.float64)
            level = self._level
            for i, e in enumerate(level_db.tolist()):
                rate = AGC_ATTACK if e > level else AGC_RELEASE
                level = max(AGC_FLOOR_DB, level + rate * (e - level))
                levels[i] = level
            self._level = level
            gains = 10.0 ** ((AGC_TARGET_DB - levels) / 20.0)
            # Each window with the previous one's tail, scaled straight into float32 (a
            # 10 s block's windows in float64 would be a few MB more at the peak).
            inputs = np.empty((n, CONTEXT + WINDOW), np.float32)
            context = np.concatenate([self._context[None], frames[:-1, -CONTEXT:]])
            np.multiply(context, gains[:, None], out=inputs[:, :CONTEXT], casting="same_kind")
            np.multiply(frames, gains[:, None], out=inputs[:, CONTEXT:], casting="same_kind")
            np.clip(inputs, -1.0, 1.0, out=inputs)
            state = self._state
            for i in range(n):
                probs[i], state = self.detector.window(inputs[i], state)
            self._state = state
            self._context = x[n * WINDOW - CONTEXT : n * WINDOW].copy()
        self._pending = x[n * WINDOW :]
        self._probs = np.concatenate([self._probs, probs])

    def gate(self, first_mel: int, speech: np.ndarray) -> np.ndarray:
        """Gate 0..1 for mel frames first_mel .. first_mel + len(speech) - 1, given the
        network's own speech probability for them (float32 (n,)): float32 (n,).

        Every window it reads must be done (the motion streamer asks only for frames it
        has the look-ahead of); windows before the stream's start count as silence.
        """
        count = len(speech)
        if count == 0:
            return np.zeros(0, np.float32)
        # The last window each frame reads; neighbouring mel frames mostly share it (3.2
        # frames a window), so the gate is worked out once per window, in plain floats
        # (a live call asks for four frames: numpy's per-call cost would dominate).
        lasts = [((first_mel + i) * HOP_LENGTH + self.ahead) // WINDOW - 1 for i in range(count)]
        if lasts[-1] >= self.windows_done:
            raise ValueError("a speech gate was asked for audio not yet pushed")
        short_span, long_span = SPAN_SAMPLES // WINDOW, SUSTAINED_SPAN_SAMPLES // WINDOW
        grace = self._onset_grace(speech.tolist())
        out = np.empty(count, np.float32)
        prev, value = -1, 0.0
        for i, b in enumerate(lasts):
            if b != prev:
                value = _ramp(self._span_max(b, short_span), GATE) * _ramp(
                    self._span_max(b, long_span), SUSTAINED_GATE
                )
                prev = b
            out[i] = 1.0 if grace[i] else value
        # Windows no later frame can read are dropped (frames are asked for in order).
        drop = lasts[-1] - long_span + 1 - self._first
        if drop > 0:
            self._probs = self._probs[drop:]
            self._first += drop
        return out

    def _onset_grace(self, speech: list[float]) -> list[bool]:
        """True for the first ONSET_GRACE_FRAMES after the network hears speech begin (its
        speech probability reaching 0.5 after ONSET_QUIET_FRAMES below)."""
        out = []
        for p in speech:
            if p >= 0.5:
                if self._below >= ONSET_QUIET_FRAMES:
                    self._since_onset = 0
                self._below = 0
            else:
                self._below += 1
            out.append(self._since_onset < ONSET_GRACE_FRAMES)
            self._since_onset += 1
        return out

    def _span_max(self, last: int, span: int) -> float:
        """Highest probability of windows last-span+1 .. last (none before the stream:
        silence, 0). Dropped windows are never read."""
        if last < 0:
            return 0.0
        a = max(last - span + 1, 0)
        return float(self._probs[a - self._first : last - self._first + 1].max())


def _ramp(p: float, lo_hi: tuple[float, float]) -> float:
    lo, hi = lo_hi
    return min(max((p - lo) / (hi - lo), 0.0), 1.0)
