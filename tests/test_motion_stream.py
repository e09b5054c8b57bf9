"""Streaming audio-to-motion: exact equality with offline, timing, bad input, loader."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from headcast.models.channels import MOUTH_CHANNELS
from headcast.models.motion import (
    MotionFrames,
    MotionModel,
    MotionModelError,
    MotionStreamer,
    infer,
    load_motion_model,
)
from headcast.models.motion.model import DEFAULT_MODEL
from tests.render_offline_support import write_foreign_onnx

STREAM_TOLERANCE = 1e-5  # streamed vs offline, absolute, on 0..1 coefficients
SR = 16_000


@pytest.fixture(scope="module", params=[25, 30])
def model(request: pytest.FixtureRequest) -> MotionModel:
    return load_motion_model(fps=request.param, provider="cpu")


def speechy(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    env = np.clip(np.sin(2 * np.pi * 3.3 * t), 0, None) * (t > 0.3)
    tone = np.sin(2 * np.pi * 140 * t) + 0.3 * rng.standard_normal(len(t))
    return (0.2 * env * tone).astype(np.float32)


def stream(
    model: MotionModel, pcm: np.ndarray, rng: np.random.Generator, max_chunk: int
) -> MotionFrames:
    s = MotionStreamer(model)
    parts, i = [], 0
    while i < len(pcm):
        n = int(rng.integers(0, max_chunk))  # 0-length chunks included
        parts.append(s.push(pcm[i : i + n]))
        i += n
    parts.append(s.flush())
    return MotionFrames.concat(parts, len(model.names))


def test_shipped_model_describes_itself() -> None:
    assert DEFAULT_MODEL.is_file()
    assert DEFAULT_MODEL.stat().st_size <= 5 * 1024 * 1024
    m = load_motion_model(provider="cpu")
    assert m.names == MOUTH_CHANNELS
    assert m.sample_rate == SR and m.fps == 25
    assert 0.04 <= m.lookahead_s <= 0.06
    assert 500_000 <= int(m.metadata["parameters"]) <= 1_500_000
    assert m.metadata["train_command"].startswith("headcast train motion")
    assert m.metadata["causal"] == "true"  # the live model
    recorded = m.metadata["train_recorded"]
    assert recorded.startswith("asterisk:allison, asterisk:allison-es, asterisk:carlo")
    assert "the speaker asterisk:ru" in recorded  # held out whole


def test_files_take_the_offline_model_when_it_is_shipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from headcast.models.motion import model as motion_model

    monkeypatch.setattr(motion_model, "OFFLINE_MODEL", tmp_path / "absent.onnx")
    assert motion_model.default_model_path(offline=True) == DEFAULT_MODEL
    present = tmp_path / "motion-offline.onnx"
    present.write_bytes(DEFAULT_MODEL.read_bytes())
    monkeypatch.setattr(motion_model, "OFFLINE_MODEL", present)
    assert motion_model.default_model_path(offline=True) == present
    assert motion_model.default_model_path(offline=False) == DEFAULT_MODEL


@pytest.mark.parametrize("max_chunk", [50, 700, 5000])
def test_streamed_equals_offline(model: MotionModel, max_chunk: int) -> None:
    pcm = speechy(3.1)
    offline = infer(model, pcm)
    streamed = stream(model, pcm, np.random.default_rng(max_chunk), max_chunk)
    np.testing.assert_array_equal(streamed.index, offline.index)
    np.testing.assert_allclose(streamed.coeffs, offline.coeffs, atol=STREAM_TOLERANCE, rtol=0)
    np.testing.assert_allclose(streamed.speech, offline.speech, atol=STREAM_TOLERANCE, rtol=0)


def test_frames_cover_the_audio_with_exact_indices(model: MotionModel) -> None:
    for n in (1, 639, 640, 641, SR + 17):
        frames = infer(model, speechy(n / SR))
        assert len(frames) == -(-n * model.fps // SR)
        np.testing.assert_array_equal(frames.index, np.arange(len(frames)))
        assert frames.coeffs.shape == (len(frames), len(MOUTH_CHANNELS))
        assert frames.coeffs.dtype == np.float32 and frames.speech.dtype == np.float32
        assert frames.coeffs.min() >= 0.0 and frames.coeffs.max() <= 1.0


def test_frames_are_final_after_the_lookahead(model: MotionModel) -> None:
    s = MotionStreamer(model)
    pcm = speechy(2.0)
    hop = 80  # 5 ms
    for i in range(0, len(pcm), hop):
        frames = s.push(pcm[i : i + hop])
        for f in frames.index:
            # Frame f (at f/fps s) appears as soon as its look-ahead has arrived, not later.
            needed = f / model.fps + model.lookahead_s
            assert s.samples_consumed / SR >= needed - 1e-9
            assert s.samples_consumed / SR < needed + 1 / model.mel_rate + hop / SR


def test_empty_and_zero_length_input(model: MotionModel) -> None:
    assert len(infer(model, np.zeros(0, np.float32))) == 0
    s = MotionStreamer(model)
    assert len(s.push(np.zeros(0, np.float32))) == 0
    assert len(s.flush()) == 0


def test_bad_samples_give_finite_frames(model: MotionModel) -> None:
    pcm = speechy(1.0)
    pcm[100:5000] = np.nan
    pcm[6000:7000] = np.inf
    pcm[8000:9000] = 50.0  # way past full scale
    frames = infer(model, pcm)
    assert np.isfinite(frames.coeffs).all() and np.isfinite(frames.speech).all()


def test_reset_and_flush_start_a_fresh_stream(model: MotionModel) -> None:
    pcm = speechy(1.5)
    ref = infer(model, pcm)
    s = MotionStreamer(model)
    s.push(speechy(0.7, seed=5))
    s.reset()
    assert s.samples_consumed == 0
    got = MotionFrames.concat([s.push(pcm), s.flush()], len(model.names))
    np.testing.assert_allclose(got.coeffs, ref.coeffs, atol=STREAM_TOLERANCE)
    again = MotionFrames.concat([s.push(pcm), s.flush()], len(model.names))  # after flush
    np.testing.assert_allclose(again.coeffs, ref.coeffs, atol=STREAM_TOLERANCE)
    np.testing.assert_array_equal(again.index, ref.index)


def test_one_model_serves_threads() -> None:
    m = load_motion_model(provider="cpu")
    pcm = speechy(2.0)
    ref = infer(m, pcm)
    results: list[MotionFrames] = []

    def work() -> None:
        results.append(infer(m, pcm))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4
    for r in results:
        np.testing.assert_allclose(r.coeffs, ref.coeffs, atol=STREAM_TOLERANCE)


def test_loader_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(MotionModelError, match="not found"):
        load_motion_model(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(MotionModelError, match="cannot load"):
        load_motion_model(junk)
    other = write_foreign_onnx(tmp_path / "other.onnx")
    with pytest.raises(MotionModelError, match="not a headcast motion model"):
        load_motion_model(other)
    with pytest.raises(MotionModelError, match="fps"):
        load_motion_model(fps=24)


def test_serving_path_imports_no_torch() -> None:
    code = (
        "import sys, numpy as np\n"
        "import models.audio.features, models.motion, server.commands.motion\n"
        "from models.motion import infer, load_motion_model\n"
        "infer(load_motion_model(provider='cpu'), np.zeros(16000, np.float32))\n"
        "assert 'torch' not in sys.modules, 'torch imported at serve time'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
