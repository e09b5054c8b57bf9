"""Non-speech sounds in the pauses of a session: the mouth must stay closed through them.

A live line or a recording is rarely silent between sentences: music beds, clicks,
beeps, breaths. The augmentation chain already lays continuous noise (hiss, hum, babble)
over whole sessions; this module adds *events* inside pauses — which keep their
silence label — and, sometimes, a music bed under the whole session. All functions take
and return float32 (N,) 16 kHz mono; segments are [(viseme, start s, end s)].
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from headcast.models.audio import SAMPLE_RATE
from headcast.models.training.visemes import SILENCE

SR = SAMPLE_RATE  # Hz
MIN_GAP_S = 0.25  # pauses shorter than this get no event
EDGE_S = 0.04  # an event starts and ends this far inside its pause
EVENT_KINDS = ("music", "click", "tone", "breath", "hum")
MUSIC_DB = (-25.0, 0.0)  # event level relative to the speech level
CLICK_DB = (-10.0, 6.0)  # peak of a click relative to the speech RMS level
TONE_DB = (-20.0, -3.0)
BREATH_DB = (-35.0, -18.0)
HUM_DB = (-30.0, -10.0)
TONE_HZ = (350.0, 1600.0)
MUSIC_BED_SNR_DB = (5.0, 25.0)  # speech level over a music bed under the whole session
MUSIC_MAX_S = 120.0  # seconds read from each music track (a 3-5 minute track decodes slowly)


def speech_level(x: np.ndarray) -> float:
    """Power of the louder half of 10 ms frames (as ``augment.add_noise`` measures it)."""
    n = len(x) // 160
    if n == 0:
        return float(np.mean(x.astype(np.float64) ** 2)) + 1e-12
    p = np.mean(x[: n * 160].reshape(n, 160).astype(np.float64) ** 2, axis=1)
    return float(np.mean(np.sort(p)[n // 2 :])) + 1e-12


@lru_cache(maxsize=8)
def load_music(path: Path) -> np.ndarray:
    """The first MUSIC_MAX_S of a music track as float32 (N,) 16 kHz mono, unit power."""
    from headcast.models.audio.decode import iter_audio

    chunks, total = [], 0
    for chunk in iter_audio(path):
        chunks.append(chunk)
        total += len(chunk)
        if total >= MUSIC_MAX_S * SR:
            break
    x = np.concatenate(chunks)[: int(MUSIC_MAX_S * SR)].astype(np.float64)
    return (x / np.sqrt(np.mean(x**2) + 1e-12)).astype(np.float32)


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.sqrt(np.mean(x.astype(np.float64) ** 2) + 1e-12)).astype(np.float32)


def event(kind: str, n: int, rng: np.random.Generator, music: Sequence[np.ndarray]) -> np.ndarray:
    """One non-speech sound, float32 (n,), scaled to unit power except clicks (unit peak
    over the RMS of a unit-power signal, i.e. raw amplitude 1)."""
    t = np.arange(n) / SR
    if kind == "music" and music:
        track = music[int(rng.integers(len(music)))]
        start = int(rng.integers(0, max(1, len(track) - n)))
        x = track[start : start + n]
        return _unit(np.pad(x, (0, n - len(x))))
    if kind == "click":
        x = np.zeros(n, np.float32)
        for _ in range(int(rng.integers(1, 6))):
            at = int(rng.integers(0, n))
            length = int(rng.uniform(0.001, 0.008) * SR)
            burst = rng.standard_normal(length) * np.exp(-np.arange(length) / (0.2 * length + 1))
            x[at : at + length] += burst[: n - at].astype(np.float32)
        return x / max(1e-6, float(np.abs(x).max()))
    if kind == "tone":
        f = rng.uniform(*TONE_HZ, size=int(rng.integers(1, 3)))
        x = sum(np.sin(2 * np.pi * fi * t) for fi in f)
        on = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.005)
        return _unit(np.asarray(x) * on)
    if kind == "breath":
        from scipy.signal import butter, sosfilt

        lo = rng.uniform(300, 900)
        sos = butter(
            2, [lo, min(7000.0, lo * rng.uniform(3, 8))], btype="band", fs=SR, output="sos"
        )
        env = np.sin(np.pi * np.linspace(0, 1, n)) ** 2
        return _unit(sosfilt(sos, rng.standard_normal(n)) * env)
    # hum (also the fallback when no music is at hand)
    f0 = rng.choice([50.0, 60.0])
    x = sum(np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6.28)) / h for h in range(1, 6))
    return _unit(np.asarray(x))


def _level_db(kind: str, rng: np.random.Generator) -> float:
    ranges = {"music": MUSIC_DB, "click": CLICK_DB, "tone": TONE_DB, "breath": BREATH_DB}
    return float(rng.uniform(*ranges.get(kind, HUM_DB)))


def fill_pauses(
    audio: np.ndarray,
    segs: list[tuple[str, float, float]],
    rng: np.random.Generator,
    prob: float,
    music: Sequence[np.ndarray] = (),
    kinds: Sequence[str] = EVENT_KINDS,
) -> np.ndarray:
    """Add a non-speech event to each pause >= MIN_GAP_S with probability ``prob``.

    audio: float32 (N,) 16 kHz; segs: the session's visemes (pauses are SILENCE runs,
    their labels are kept). Levels are relative to the session's speech level.
    """
    out = audio.astype(np.float32).copy()
    rms = np.sqrt(speech_level(audio))
    for v, s, e in segs:
        if v != SILENCE or e - s < MIN_GAP_S or rng.random() >= prob:
            continue
        a, b = int((s + EDGE_S) * SR), min(len(out), int((e - EDGE_S) * SR))
        span = b - a
        if span < int(0.05 * SR):
            continue
        length = int(rng.uniform(0.3, 1.0) * span)
        start = a + int(rng.integers(0, span - length + 1))
        kind = str(rng.choice(list(kinds)))
        x = event(kind, length, rng, music) * rms * 10 ** (_level_db(kind, rng) / 20)
        out[start : start + length] += x.astype(np.float32)
    return out


def music_bed(
    audio: np.ndarray, rng: np.random.Generator, music: Sequence[np.ndarray]
) -> np.ndarray:
    """Music under the whole session at MUSIC_BED_SNR_DB below the speech level."""
    if not music:
        return audio
    bed = event("music", len(audio), rng, music)
    snr = rng.uniform(*MUSIC_BED_SNR_DB)
    return (audio + bed * np.sqrt(speech_level(audio) / 10 ** (snr / 10))).astype(np.float32)
