"""Audio front-end: resampling, mono mixdown, bad samples, streaming features, levels."""

from __future__ import annotations

import numpy as np
import pytest

from headcast.models.audio import AudioError
from headcast.models.audio.features import (
    HOP_LENGTH,
    N_MELS,
    SAMPLE_RATE,
    FeatureExtractor,
    StreamingResampler,
    features,
    silence_feature,
    to_mono_16k,
)


def sine(rate: int, seconds: float = 1.0, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return np.sin(2 * np.pi * freq * t)


@pytest.mark.parametrize("rate", [8_000, 11_025, 16_000, 22_050, 32_000, 44_100, 48_000])
def test_to_mono_16k_resamples_a_sine_exactly(rate: int) -> None:
    y = to_mono_16k(sine(rate).astype(np.float32), rate)
    assert y.dtype == np.float32
    assert len(y) == SAMPLE_RATE
    ref = sine(SAMPLE_RATE)
    # Away from the edges the 440 Hz tone survives with < -60 dB error.
    assert np.abs(y[300:-300] - ref[300:-300]).max() < 1e-3


def test_int16_stereo_is_scaled_and_mixed_down() -> None:
    left = (sine(48_000) * 16384).astype(np.int16)
    stereo = np.stack([left, np.zeros_like(left)], axis=1)  # (N, 2)
    y = to_mono_16k(stereo, 48_000)
    assert len(y) == SAMPLE_RATE
    assert abs(np.abs(y[500:-500]).max() - 0.25) < 0.01  # 0.5 full scale averaged with silence


def test_channels_first_stereo_is_accepted() -> None:
    x = np.stack([sine(16_000), sine(16_000)]).astype(np.float32)  # (2, N)
    assert to_mono_16k(x, 16_000).shape == (16_000,)


def test_nan_inf_and_overs_are_cleaned() -> None:
    x = np.array([np.nan, np.inf, -np.inf, 3.0, -3.0, 0.5] * 100, np.float32)
    y = to_mono_16k(x, 16_000)
    assert np.isfinite(y).all() and np.abs(y).max() <= 1.0
    assert y[0] == y[1] == y[2] == 0.0 and y[3] == 1.0 and y[4] == -1.0  # no sample: silence


def test_empty_input_gives_empty_output() -> None:
    assert to_mono_16k(np.zeros(0, np.int16), 44_100).shape == (0,)
    assert features(np.zeros(0, np.float32)).shape == (0, N_MELS)


@pytest.mark.parametrize("rate", [0, 1_000, 1_000_000])
def test_unsupported_rate_is_a_clear_error(rate: int) -> None:
    with pytest.raises(AudioError, match="sample rate"):
        to_mono_16k(np.zeros(100, np.float32), rate)


def test_bad_shape_and_dtype_are_clear_errors() -> None:
    with pytest.raises(AudioError, match="shape"):
        to_mono_16k(np.zeros((2, 2, 2), np.float32), 16_000)
    with pytest.raises(AudioError, match="dtype"):
        to_mono_16k(np.array(["a", "b"]), 16_000)


@pytest.mark.parametrize("rate", [8_000, 44_100, 48_000])
def test_streaming_resampler_equals_whole_array(rate: int) -> None:
    rng = np.random.default_rng(rate)
    x = rng.standard_normal(rate // 2).astype(np.float32) * 0.3
    whole = to_mono_16k(x, rate)
    rs = StreamingResampler(rate)
    parts, i = [], 0
    while i < len(x):
        n = int(rng.integers(0, 700))  # includes 0-length chunks
        parts.append(rs.push(x[i : i + n]))
        i += n
    parts.append(rs.flush())
    streamed = np.concatenate(parts)
    assert streamed.shape == whole.shape
    np.testing.assert_allclose(streamed, whole, atol=1e-6)


def test_block_upsampler_equals_the_streaming_resampler_anywhere() -> None:
    """The audio track's 16 -> 48 kHz blocks, read at any offset, are what a continuous
    stream through :class:`Resampler` gives for the same span (no delay of their own)."""
    from headcast.models.audio.resample import BlockUpsampler, Resampler

    rng = np.random.default_rng(9)
    x = rng.standard_normal(4000) * 0.3
    rs = Resampler(16_000, 48_000)
    stream = np.concatenate([rs.push(x), rs.flush()])
    up = BlockUpsampler(3)
    for start, n in ((16, 320), (1000, 320), (2345, 7), (16, 3960)):
        block = up(x[start - up.pad : start + n + up.pad])
        assert block.shape == (3 * n,) and block.dtype == np.float32
        np.testing.assert_allclose(block, stream[3 * start : 3 * (start + n)], atol=1e-6)
    with pytest.raises(ValueError, match="context"):
        up(np.zeros(10))


def test_features_are_identical_for_any_chunking() -> None:
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(SAMPLE_RATE) * 0.1).astype(np.float32)
    whole = features(x)
    assert whole.shape == (FeatureExtractor().frames_ready(len(x)), N_MELS)
    fx = FeatureExtractor()
    parts, i = [], 0
    while i < len(x):
        n = int(rng.integers(0, 500))
        parts.append(fx.push(x[i : i + n]))
        i += n
    np.testing.assert_allclose(np.concatenate(parts), whole, atol=1e-6)


def test_frame_count_and_timing() -> None:
    fx = FeatureExtractor()
    # Frame j is centred at j*HOP and needs half a window (200 samples) after it.
    assert fx.frames_ready(199) == 0
    assert fx.frames_ready(200) == 1
    assert fx.frames_ready(200 + HOP_LENGTH) == 2


def test_level_normalisation_removes_gain_once_settled() -> None:
    rng = np.random.default_rng(1)
    t = np.arange(3 * SAMPLE_RATE) / SAMPLE_RATE
    speechy = rng.standard_normal(len(t)) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)) * 0.1
    loud = features(speechy.astype(np.float32))
    quiet = features((speechy * 0.05).astype(np.float32))  # -26 dB
    settled = slice(100, None)  # after 1 s the follower has caught up in both
    assert np.abs(loud[settled] - quiet[settled]).mean() < 0.02
    # ...and not a trivial invariance: the raw levels differ by 26 dB = 1.3 feature units.
    assert np.abs(loud[settled]).mean() < 3.0


def test_digital_silence_maps_to_the_silence_feature() -> None:
    feats = features(np.zeros(SAMPLE_RATE, np.float32))
    np.testing.assert_allclose(feats, np.tile(silence_feature(), (len(feats), 1)), atol=1e-6)
