"""16 kHz mono PCM -> level-normalised 80-bin log-mel, in numpy, for streaming and files.

Frames are centred: mel frame ``j`` describes time ``j * HOP_S`` and needs samples up to
``j * HOP_LENGTH + WIN_LENGTH // 2``. Level normalisation is causal (a peak follower over
frame loudness), so the live path and the file path see the same features and a 20 dB
gain change shifts nothing once the follower has settled.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from headcast.models.audio import SAMPLE_RATE, AudioError, finite_pcm
from headcast.models.audio.decode import iter_audio, load_audio
from headcast.models.audio.resample import MAX_INPUT_RATE, MIN_INPUT_RATE, Resampler

N_FFT = 512
WIN_LENGTH = 400  # samples, 25 ms
HOP_LENGTH = 160  # samples, 10 ms
MEL_RATE = SAMPLE_RATE // HOP_LENGTH  # 100 mel frames per second
HOP_S = HOP_LENGTH / SAMPLE_RATE  # 0.01 s
HALF_WINDOW = WIN_LENGTH // 2  # samples of right context a centred frame needs
N_MELS = 80
F_MIN = 40.0  # Hz
F_MAX = 7_600.0  # Hz, below the 8 kHz Nyquist
POWER_FLOOR = 1e-10  # -100 dB, keeps log finite on digital silence
assert SAMPLE_RATE % HOP_LENGTH == 0

# Level follower (dBFS of frame RMS): rises fast to the loudest syllables, decays slowly
# through pauses, never below the floor so long silences do not turn noise into speech.
LEVEL_FLOOR_DB = -60.0
LEVEL_INIT_DB = LEVEL_FLOOR_DB
LEVEL_ATTACK = 0.3  # per 10 ms frame, ~30 ms time constant upwards
LEVEL_RELEASE = 1.0 / 300.0  # per frame, ~3 s time constant downwards
FEATURE_RANGE_DB = (-70.0, 10.0)  # mel dB relative to the level, clipped to this
FEATURE_SCALE_DB = 20.0  # features are (mel_db - level) / 20: about -3.5..0.5

__all__ = [
    "HOP_LENGTH",
    "MEL_RATE",
    "N_MELS",
    "SAMPLE_RATE",
    "AudioError",
    "FeatureExtractor",
    "StreamingResampler",
    "iter_audio",
    "load_audio",
    "log_mel",
    "mel_centres_hz",
    "mel_filterbank",
    "to_mono_16k",
]


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + f / 700.0)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def _mel_edges_hz() -> np.ndarray:
    """float64 (N_MELS + 2,): the filters' corner frequencies, equally spaced in mel."""
    return _mel_to_hz(
        np.linspace(_hz_to_mel(np.array(F_MIN)), _hz_to_mel(np.array(F_MAX)), N_MELS + 2)
    )


def mel_centres_hz() -> np.ndarray:
    """float64 (N_MELS,): each mel bin's centre frequency."""
    return _mel_edges_hz()[1:-1]


@lru_cache(maxsize=1)
def mel_filterbank() -> np.ndarray:
    """Triangular HTK-mel filters, area-normalised: float64 (N_MELS, N_FFT // 2 + 1)."""
    freqs = np.linspace(0.0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    edges = _mel_edges_hz()
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs[None, :] - lo) / (mid - lo)
    down = (hi - freqs[None, :]) / (hi - mid)
    fb = np.maximum(0.0, np.minimum(up, down))
    fb *= 2.0 / (hi - lo)  # equal area, so white noise gives a flat mel spectrum
    fb.setflags(write=False)
    return fb


@lru_cache(maxsize=1)
def _window() -> np.ndarray:
    w = np.hanning(WIN_LENGTH + 1)[:-1]  # periodic Hann
    w.setflags(write=False)
    return w


def sanitize(pcm: np.ndarray) -> np.ndarray:
    """Any int/float array -> float32 in -1..1; NaN and +-inf -> 0, overs clipped."""
    x = np.asarray(pcm)
    if x.dtype.kind in "iu":
        info = np.iinfo(x.dtype)
        scale = float(info.max) + 1.0
        offset = 0.0 if info.min < 0 else scale / 2.0  # unsigned PCM is offset binary
        x = (x.astype(np.float64) - offset) / (scale - offset if offset else scale)
    elif x.dtype.kind != "f":
        raise AudioError(f"audio samples must be integers or floats, got dtype {x.dtype}")
    return finite_pcm(x)


def _mono(x: np.ndarray) -> np.ndarray:
    """(N,) or (N, channels) -> (N,) by averaging channels."""
    if x.ndim == 1:
        return x
    if x.ndim == 2:
        # Accept channels-first (ch, N) too when it is unambiguous.
        if x.shape[0] <= 8 < x.shape[1]:
            x = x.T
        return x.mean(axis=1, dtype=np.float32)
    raise AudioError(f"audio must be (samples,) or (samples, channels), got shape {x.shape}")


def _check_rate(sample_rate: int) -> int:
    rate = int(sample_rate)
    if not MIN_INPUT_RATE <= rate <= MAX_INPUT_RATE:
        raise AudioError(
            f"unsupported sample rate {sample_rate} Hz (need {MIN_INPUT_RATE}-{MAX_INPUT_RATE})"
        )
    return rate


def to_mono_16k(pcm: np.ndarray, sample_rate: int) -> np.ndarray:
    """int16/int32/uint8/float (N,) or (N, channels) at ``sample_rate`` -> float32 (M,) 16 kHz.

    ``M == ceil(N * 16000 / sample_rate)``; values in -1..1 (NaN -> 0, inf clipped).
    """
    x = _mono(sanitize(pcm))
    rate = _check_rate(sample_rate)
    if rate == SAMPLE_RATE:
        return np.ascontiguousarray(x, np.float32)
    rs = Resampler(rate, SAMPLE_RATE)
    out = np.concatenate([rs.push(x), rs.flush()])
    return np.clip(out, -1.0, 1.0).astype(np.float32)


class StreamingResampler:
    """Live input at any rate in 4-192 kHz -> 16 kHz mono float32, chunk by chunk.

    ``push(chunk)`` takes int/float (N,) or (N, channels) (N may be 0) and returns float32
    (M,) samples that became final; the concatenation of all pushes plus ``flush()``
    equals :func:`to_mono_16k` of the concatenated input.
    """

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = _check_rate(sample_rate)
        self._rs = Resampler(self.sample_rate, SAMPLE_RATE)

    def push(self, chunk: np.ndarray) -> np.ndarray:
        x = _mono(sanitize(chunk))
        return np.clip(self._rs.push(x), -1.0, 1.0).astype(np.float32)

    def flush(self) -> np.ndarray:
        return np.clip(self._rs.flush(), -1.0, 1.0).astype(np.float32)

    def reset(self) -> None:
        self._rs.reset()


@lru_cache(maxsize=1)
def _window_power() -> tuple[float, float]:
    """(sum, mean) of the squared window."""
    w2 = _window() ** 2
    return float(np.sum(w2)), float(np.mean(w2))


@lru_cache(maxsize=1)
def _scaled_filterbank() -> np.ndarray:
    """The mel filterbank transposed, with the window's power normalisation folded in:
    float64 (N_FFT // 2 + 1, N_MELS)."""
    return np.ascontiguousarray(mel_filterbank().T) / _window_power()[0]


def log_mel(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Windowed frames float64 (F, WIN_LENGTH) -> (mel dB float64 (F, N_MELS), RMS dBFS (F,))."""
    windowed = frames * _window()
    energy = np.einsum("ij,ij->i", windowed, windowed) / (WIN_LENGTH * _window_power()[1])
    rms_db = 10.0 * np.log10(np.maximum(energy, POWER_FLOOR))
    spec = np.fft.rfft(windowed, n=N_FFT, axis=1)
    del windowed  # a 10 s block's frames are 3 MB: not kept beside the spectrum
    power = spec.real**2
    power += spec.imag**2
    del spec
    mel = power @ _scaled_filterbank()
    return 10.0 * np.log10(np.maximum(mel, POWER_FLOOR, out=mel)), rms_db


@dataclass
class _LevelState:
    level_db: float = LEVEL_INIT_DB


class FeatureExtractor:
    """Streaming 16 kHz PCM -> normalised log-mel; not thread-safe.

    ``push(pcm)`` takes float32 (N,) 16 kHz mono (N may be 0) and returns float32
    (F, N_MELS) for the mel frames that became complete; frame ``j`` (counted from the
    first push, :attr:`frames_out` so far) is centred at ``j * 10 ms``. Features are
    ``clip(mel_db - level_db, -70, 10) / 20``; ``level_db`` follows the loudness causally.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._buf = np.zeros(HALF_WINDOW, np.float64)  # centred frame 0 sees 200 zeros before t=0
        self._level = _LevelState()
        self.frames_out = 0
        self.samples_in = 0

    def frames_ready(self, samples: int) -> int:
        """How many mel frames ``samples`` input samples complete (from stream start)."""
        return max(0, (samples + HALF_WINDOW - WIN_LENGTH) // HOP_LENGTH + 1)

    def push(self, pcm: np.ndarray) -> np.ndarray:
        x = np.asarray(pcm, np.float64).reshape(-1)
        if not np.isfinite(x).all():
            x = np.nan_to_num(x, nan=0.0, posinf=1.0, neginf=-1.0)
        self.samples_in += len(x)
        self._buf = np.concatenate([self._buf, x])
        new = self._buf[len(self._buf) - len(x) :]  # clipped in place: the buffer is ours
        np.minimum(np.maximum(new, -1.0, out=new), 1.0, out=new)
        n = 0 if len(self._buf) < WIN_LENGTH else (len(self._buf) - WIN_LENGTH) // HOP_LENGTH + 1
        if n == 0:
            return np.zeros((0, N_MELS), np.float32)
        # Overlapping frames as a read-only view of the buffer (no copy).
        step = self._buf.strides[0]
        frames: np.ndarray = np.ndarray(
            (n, WIN_LENGTH), np.float64, self._buf, 0, (HOP_LENGTH * step, step)
        )
        mel_db, rms_db = log_mel(frames)
        self._buf = self._buf[n * HOP_LENGTH :]
        self.frames_out += n
        return self._normalise(mel_db, rms_db)

    def _normalise(self, mel_db: np.ndarray, rms_db: np.ndarray) -> np.ndarray:
        levels = np.empty(len(rms_db), np.float64)
        level = self._level.level_db
        for i, e in enumerate(rms_db.tolist()):
            rate = LEVEL_ATTACK if e > level else LEVEL_RELEASE
            level = max(LEVEL_FLOOR_DB, level + rate * (e - level))
            levels[i] = level
        self._level.level_db = level
        rel = mel_db - levels[:, None]
        lo, hi = FEATURE_RANGE_DB
        np.minimum(np.maximum(rel, lo, out=rel), hi, out=rel)
        return (rel / FEATURE_SCALE_DB).astype(np.float32)


def silence_feature() -> np.ndarray:
    """The feature vector of digital silence at the initial level: float32 (N_MELS,)."""
    rel = np.clip(10.0 * np.log10(POWER_FLOOR) - LEVEL_INIT_DB, *FEATURE_RANGE_DB)
    return np.full(N_MELS, rel / FEATURE_SCALE_DB, np.float32)


def features(pcm16k: np.ndarray) -> np.ndarray:
    """Whole-array convenience: float32 (N,) 16 kHz -> float32 (F, N_MELS), F = frames_ready(N)."""
    return FeatureExtractor().push(pcm16k)
