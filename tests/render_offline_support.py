"""Helpers for the offline-render tests: a loudness-driven stand-in motion model, audio.

The stand-in has the shipped model's interface (inputs, states, metadata) but opens the
jaw by the mean log-mel feature with no look-ahead, so when the mouth must open is known
exactly and the tests check the pipeline's timing, not a trained network's quality.
"""

from __future__ import annotations

import itertools
import subprocess
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from headcast.models.channels import MOUTH_CHANNELS

SR = 16_000
#: features are (mel dB - level) / 20; digital silence sits at -2.0, speech around -1.5..0
STUB_OPEN_AT = -1.8  # mean feature where the stand-in's jaw starts to open
STUB_GAIN = 2.0  # jaw per unit of mean feature above STUB_OPEN_AT (clipped to 0..1)
STUB_WEIGHTS = {"jawOpen": 0.9, "mouthLowerDownLeft": 0.3, "mouthLowerDownRight": 0.3}


def write_foreign_onnx(path: Path) -> Path:
    """A valid ONNX model that is no headcast model (one Identity node, x -> y)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    onnx.save(helper.make_model(graph), str(path))
    return path


def write_stub_motion_model(path: Path) -> Path:
    """Write the stand-in motion model to ``path`` (ONNX, opset 17)."""
    weights = np.zeros((1, 1, len(MOUTH_CHANNELS)), np.float32)
    for name, w in STUB_WEIGHTS.items():
        weights[0, 0, MOUTH_CHANNELS.index(name)] = w
    inits = [
        numpy_helper.from_array(weights, "w"),
        numpy_helper.from_array(np.array(-STUB_OPEN_AT, np.float32), "offset"),
        numpy_helper.from_array(np.array(STUB_GAIN, np.float32), "gain"),
        numpy_helper.from_array(np.array(0.0, np.float32), "lo"),
        numpy_helper.from_array(np.array(1.0, np.float32), "hi"),
        numpy_helper.from_array(np.array([2], np.int64), "axis2"),
    ]
    nodes = [
        helper.make_node("ReduceMean", ["mel"], ["level"], axes=[2], keepdims=1),
        helper.make_node("Add", ["level", "offset"], ["shifted"]),
        helper.make_node("Mul", ["shifted", "gain"], ["scaled"]),
        helper.make_node("Clip", ["scaled", "lo", "hi"], ["jaw"]),
        helper.make_node("Mul", ["jaw", "w"], ["coeffs"]),
        helper.make_node("Squeeze", ["jaw", "axis2"], ["speech"]),
        helper.make_node("Identity", ["state_0"], ["state_out_0"]),
    ]
    graph = helper.make_graph(
        nodes,
        "stub_motion",
        [
            helper.make_tensor_value_info("mel", TensorProto.FLOAT, [1, "T", 80]),
            helper.make_tensor_value_info("state_0", TensorProto.FLOAT, [1, 4, 2]),
        ],
        [
            helper.make_tensor_value_info("coeffs", TensorProto.FLOAT, [1, "T", 16]),
            helper.make_tensor_value_info("speech", TensorProto.FLOAT, [1, "T"]),
            helper.make_tensor_value_info("state_out_0", TensorProto.FLOAT, [1, 4, 2]),
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    meta = {
        "headcast.kind": "motion",
        "names": ",".join(MOUTH_CHANNELS),
        "sample_rate": "16000",
        "mel_rate": "100",
        "n_mels": "80",
        "lookahead_frames": "0",
        "lookahead_s": "0.0",
        "receptive_field": "1",
    }
    for key, value in meta.items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, value
    onnx.save(model, str(path))
    return path


def voiced_bursts(spans: list[tuple[float, float]], total_s: float, rate: int = SR) -> np.ndarray:
    """float32 (total_s * rate,) silence with a voiced, speech-like sound in each span (s):
    a glottal-like pulse train at a gliding pitch through vowel formants (one vowel a
    syllable, four syllables a second) — speech-like enough for the motion model's
    voice-activity gate, which shuts the mouth on a plain harmonic buzz."""
    from scipy.signal import lfilter

    t = np.arange(round(total_s * rate)) / rate
    out = np.zeros_like(t)
    rng = np.random.default_rng(1)
    vowels = ((730, 1090, 2440), (270, 2290, 3010), (570, 840, 2410), (530, 1840, 2480))
    for a, b in spans:
        inside = (t >= a) & (t < b)
        tt = t[inside] - a
        f0 = 120 + 20 * np.sin(2 * np.pi * 1.5 * tt)
        source = (np.cumsum(f0) / rate) % 1.0 - 0.5  # sawtooth: every harmonic
        voiced = np.zeros(len(tt))
        edges = np.linspace(0, len(tt), max(1, round((b - a) * 4)) + 1).astype(int)
        for k, (lo, hi) in enumerate(itertools.pairwise(edges)):
            x = source[lo:hi]
            for f, bw in zip(vowels[k % len(vowels)], (80, 100, 120), strict=True):
                r = np.exp(-np.pi * bw / rate)
                x = lfilter([1 - r], [1, -2 * r * np.cos(2 * np.pi * f / rate), r * r], x)
            voiced[lo:hi] = x
        syllables = 0.6 + 0.4 * np.sin(2 * np.pi * 4.0 * tt) ** 2
        voiced /= max(float(np.abs(voiced).max()), 1e-9)
        out[inside] = 0.3 * syllables * voiced + 0.003 * rng.standard_normal(inside.sum())
    return out.astype(np.float32)


def write_wav(path: Path, pcm: np.ndarray, rate: int = SR, channels: int = 1) -> Path:
    """float32 (N,) -> 16-bit PCM WAV (the same signal on every channel)."""
    import wave

    data = (np.clip(pcm, -1, 1) * 32767).astype("<i2")
    if channels > 1:
        data = np.repeat(data[:, None], channels, axis=1).reshape(-1)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(data.tobytes())
    return path


def espeak(path: Path, text: str) -> Path:
    subprocess.run(["espeak-ng", "-w", str(path), text], check=True, capture_output=True)
    return path


def decode_video(path: Path) -> tuple[np.ndarray, float, int]:
    """-> (uint8 (N, H, W, 3) RGB frames, video duration s, fps)."""
    import av

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(s)]
        fps = int(round(float(s.average_rate)))
    return np.stack(frames), len(frames) / fps, fps


def decode_track_audio(path: Path) -> tuple[np.ndarray, int, int]:
    """-> (float32 (N,) mono of the first audio stream, its rate, its channel count)."""
    import av

    with av.open(str(path)) as c:
        s = c.streams.audio[0]
        rate, channels = s.rate, s.codec_context.channels
        parts = [f.to_ndarray().reshape(channels, -1).mean(0) for f in c.decode(s)]
    return np.concatenate(parts).astype(np.float32), int(rate), int(channels)
