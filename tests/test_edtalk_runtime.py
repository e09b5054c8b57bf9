"""The EDTalk runtime: ONNX Runtime only, the Renderer interface, coefficient mapping, mel."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from headcast.models.channels import EXPRESSION_SLICE, NUM_CHANNELS
from headcast.models.edtalk import (
    WeightsError,
    check_weights,
    create_audio2lip,
    create_edtalk_renderer,
)
from headcast.models.edtalk.coeffs import EXPRESSION, CoeffMap, load_expression_weights
from headcast.models.edtalk.mel import (
    LOOKAHEAD_MS,
    MEL_FPS,
    mel_filters,
    mel_windows,
    melspectrogram,
    smooth,
)
from headcast.models.emotions import load_presets
from tests.edtalk_support import exported_weights_dir


@pytest.fixture(scope="module")
def root():
    return exported_weights_dir()


@pytest.fixture(scope="module")
def portrait():
    yy, xx = np.mgrid[0:80, 0:72]
    img = np.stack([xx * 3, yy * 3, (xx + yy) % 256], axis=-1)
    return img.astype(np.uint8)


def test_runtime_imports_no_torch():
    code = (
        "import sys, headcast.models.edtalk, headcast.models.edtalk.runtime, headcast.models.edtalk.coeffs, "
        "headcast.models.edtalk.mel, headcast.models.edtalk.files; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_renderer_protocol(root, portrait, precision):
    r = create_edtalk_renderer(root, portrait, size=96, provider="cpu", precision=precision)
    assert r.size == 96 and r.num_coeffs == 36
    frame = r.render(np.zeros(NUM_CHANNELS, np.float32))
    assert frame.shape == (96, 96, 3) and frame.dtype == np.uint8
    batch = r.render_batch(np.zeros((2, NUM_CHANNELS), np.float32))
    assert batch.shape == (2, 96, 96, 3) and batch.dtype == np.uint8
    np.testing.assert_array_equal(batch[0], frame)
    # native weights: the portrait's own ones reproduce the mapped neutral except expression
    own = r.render(r.source_alpha)
    assert own.shape == (96, 96, 3)


def test_mouth_from_audio2lip_moves_the_image(root, portrait):
    r = create_edtalk_renderer(root, portrait, size=64, provider="cpu")
    coeffs = np.zeros((1, NUM_CHANNELS), np.float32)
    still = r.render_batch(coeffs).astype(np.int16)
    moved = r.render_batch(coeffs, mouth=np.full((1, 20), 2.0, np.float32)).astype(np.int16)
    assert np.abs(moved - still).mean() > 0.5


def test_wrong_coefficient_count_is_refused(root, portrait):
    r = create_edtalk_renderer(root, portrait, size=64, provider="cpu")
    with pytest.raises(ValueError, match="36 EDTalk"):
        r.render(np.zeros(7, np.float32))


def test_lip_pose_variant(root, portrait):
    r = create_edtalk_renderer(root, portrait, size=64, provider="cpu", variant="edtalk_lip_pose")
    assert r.num_coeffs == 26 and r.source_alpha.shape == (26,)
    assert r.render(np.zeros(NUM_CHANNELS, np.float32)).shape == (64, 64, 3)


def test_check_weights_lists_what_is_missing(tmp_path, root):
    with pytest.raises(WeightsError, match="does not exist"):
        check_weights(tmp_path / "nope")
    with pytest.raises(WeightsError, match=r"EDTalk\.pt, Audio2Lip\.pt.*docs/edtalk\.md"):
        check_weights(tmp_path)
    (tmp_path / "EDTalk.pt").write_bytes(b"x")
    (tmp_path / "Audio2Lip.pt").write_bytes(b"x")
    with pytest.raises(
        WeightsError, match=r"edtalk_source\.onnx.*python -m headcast\.models\.edtalk\.nets\.export"
    ):
        check_weights(tmp_path)
    check_weights(tmp_path, need_onnx=False)
    check_weights(root, precision="fp16")


def test_expression_map_is_exact_on_shared_presets(root):
    presets = load_presets()
    theirs = load_expression_weights(root / "predefined_exp_weights")
    source = np.random.default_rng(0).normal(size=36).astype(np.float32)
    cmap = CoeffMap(source, theirs, presets)
    assert set(cmap.emotions) == {"happy", "sad"}  # shared names only, neutral is the origin
    rows = np.stack([presets["happy"], presets["sad"], presets["neutral"]])
    alpha = cmap(rows)
    np.testing.assert_allclose(alpha[0, EXPRESSION], theirs["happy"], atol=1e-5)
    np.testing.assert_allclose(alpha[1, EXPRESSION], theirs["sad"], atol=1e-5)
    np.testing.assert_allclose(alpha[2, EXPRESSION], theirs["neutral"], atol=1e-6)
    # a half-way cross-fade maps to the half-way point
    mid = cmap((0.5 * (presets["happy"] + presets["neutral"]))[None])[0, EXPRESSION]
    np.testing.assert_allclose(mid, 0.5 * (theirs["happy"] + theirs["neutral"]), atol=1e-5)
    # mouth and pose stay the portrait's own
    np.testing.assert_array_equal(alpha[:, :26], np.repeat(source[None, :26], 3, axis=0))


def test_expression_without_upstream_vectors_keeps_the_portrait():
    source = np.arange(36, dtype=np.float32)
    coeffs = np.zeros((1, NUM_CHANNELS), np.float32)
    coeffs[0, EXPRESSION_SLICE] = 0.5
    np.testing.assert_array_equal(CoeffMap(source, {}, load_presets())(coeffs)[0], source)


def test_mel_filters_are_slaney_normalised():
    f = mel_filters()
    assert f.shape == (80, 401) and (f >= 0).all()
    assert (f.sum(axis=1) > 0).all()  # no empty band between 55 and 7600 Hz
    peaks = f.argmax(axis=1)
    assert (np.diff(peaks) >= 0).all()


def test_melspectrogram_range_and_rate():
    t = np.arange(16_000) / 16_000
    wav = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    mel = melspectrogram(wav)
    assert mel.shape == (1 + 16_000 // 200, 80) and mel.dtype == np.float32
    assert mel.min() >= -4 and mel.max() <= 4
    # 440 Hz is ~6.6 Slaney mel; bands are ~0.54 mel apart from 55 Hz: band ~10
    assert 8 <= int(mel[40].argmax()) <= 12
    silence = melspectrogram(np.zeros(3200, np.float32))
    np.testing.assert_allclose(silence, -4.0)


def test_mel_windows_follow_upstream_indexing():
    mel = np.arange(200, dtype=np.float32)[:, None].repeat(80, axis=1)
    w = mel_windows(mel, 30)
    assert w.shape == (30, 1, 80, 16)
    # frame i starts at int(80 * (i - 2) / 25), truncated toward zero, clamped at 0
    for i in (0, 1, 2, 3, 10, 29):
        start = int(MEL_FPS * (i - 2) / 25)
        expect = np.clip(np.arange(start, start + 16), 0, 199)
        np.testing.assert_array_equal(w[i, 0, 0], expect)
    assert LOOKAHEAD_MS == 120


def test_smoothing_uses_the_upstream_taps():
    impulse = np.zeros((5, 20), np.float32)
    impulse[2] = 1.0
    np.testing.assert_allclose(
        smooth(impulse)[1:4, 0], [0.27406862, 0.45186276, 0.27406862], atol=1e-6
    )


def test_audio2lip_runner(root):
    runner = create_audio2lip(root, provider="cpu")
    wav = np.random.default_rng(1).normal(0, 0.1, 16_000 + 100).astype(np.float32)
    mouth = runner.from_wav(wav)
    assert mouth.shape == (25, 20) and mouth.dtype == np.float32 and np.isfinite(mouth).all()
    assert runner.from_wav(np.zeros(100, np.float32)).shape == (0, 20)


def test_renderer_names_damaged_or_swapped_graphs(tmp_path, root, portrait):
    """Building a renderer does not parse the graphs twice, yet still names bad ones."""
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(root, bad)
    frame = bad / "onnx" / "edtalk_frame_fp32.onnx"
    frame.write_bytes(frame.read_bytes()[:4096])
    with pytest.raises(
        WeightsError, match=r"damaged or do not match.*models\.edtalk\.nets\.export"
    ):
        create_edtalk_renderer(bad, portrait, size=64, provider="cpu")
    shutil.copy(bad / "onnx" / "audio2lip.onnx", frame)
    with pytest.raises(WeightsError, match="damaged or do not match"):
        create_edtalk_renderer(bad, portrait, size=64, provider="cpu")
