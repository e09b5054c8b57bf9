"""Augmentation of 16 kHz speech so synthetic voices sound like real recordings and calls.

Noise at 10-30 dB SNR, reverberation with RT60 0.1-0.7 s, band-limiting (telephone
300-3400 Hz, an 8 kHz round trip, random EQ), gain over a wide range with 16-bit
quantisation, and an Opus encode/decode round trip at 48 kHz through PyAV (what WebRTC
does to a voice). All functions take and return float32 (N,) 16 kHz mono in -1..1.
"""

from __future__ import annotations

import io

import av
import numpy as np
from scipy.fft import irfft, next_fast_len, rfft, rfftfreq
from scipy.signal import butter, fftconvolve, resample_poly, sosfilt

from headcast.models.audio import SAMPLE_RATE

SR = SAMPLE_RATE  # Hz
OPUS_RATE = 48_000  # Hz, the only rate WebRTC's Opus runs at here
OPUS_FRAME = 960  # samples, 20 ms at 48 kHz
OPUS_BITRATES = (12_000, 16_000, 24_000, 32_000, 48_000)  # bit/s
SNR_DB = (10.0, 30.0)
RT60_S = (0.1, 0.7)
GAIN_DB = (-35.0, 6.0)  # relative to a -20 dBFS speech level; the top end clips


def _power(x: np.ndarray) -> float:
    return float(np.mean(x.astype(np.float64) ** 2)) + 1e-12


def colored_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """White, pink, brown, hum or babble-like noise: float32 (n,), unit power."""
    kind = rng.choice(["white", "pink", "brown", "hum", "babble"])
    if kind == "hum":
        t = np.arange(n) / SR
        f0 = rng.choice([50.0, 60.0])
        x = sum(np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6.28)) / h for h in range(1, 8))
        x = np.asarray(x) + 0.3 * rng.standard_normal(n)
    else:
        m = next_fast_len(n, real=True)
        spec = rfft(rng.standard_normal(m))
        f = rfftfreq(m, 1 / SR)
        f[0] = f[1] if n > 1 else 1.0
        if kind == "pink":
            spec /= np.sqrt(f)
        elif kind == "brown":
            spec /= f
        elif kind == "babble":
            # Speech-shaped: a band around 300-3000 Hz, slowly amplitude-modulated.
            spec *= np.exp(-0.5 * (np.log(f / 900.0) / 0.8) ** 2)
        x = irfft(spec, m)[:n]
        if kind == "babble":
            env = np.abs(resample_poly(rng.standard_normal(n // 800 + 2), 800, 1))[:n]
            x = x * (0.3 + env)
    x = np.asarray(x, np.float64)
    return (x / np.sqrt(_power(x))).astype(np.float32)


def add_noise(x: np.ndarray, rng: np.random.Generator, snr_db: float) -> np.ndarray:
    """Noise at ``snr_db`` relative to the power of the louder half of the frames."""
    frames = x[: len(x) // 160 * 160].reshape(-1, 160) if len(x) >= 160 else x.reshape(1, -1)
    p = np.mean(frames.astype(np.float64) ** 2, axis=1)
    speech_power = float(np.mean(np.sort(p)[len(p) // 2 :])) + 1e-12
    noise = colored_noise(rng, len(x)) * np.sqrt(speech_power / 10 ** (snr_db / 10))
    return (x + noise).astype(np.float32)


def reverb(x: np.ndarray, rng: np.random.Generator, rt60: float) -> np.ndarray:
    """Convolve with a synthetic room: direct path plus exponentially decaying noise."""
    n = int(rt60 * SR)
    t = np.arange(n) / SR
    tail = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)  # -60 dB at rt60
    predelay = int(rng.uniform(0.002, 0.02) * SR)
    h = np.concatenate([[1.0], np.zeros(predelay), tail * rng.uniform(0.1, 0.4)])
    y = fftconvolve(x, h)[: len(x)]
    return (y * np.sqrt(_power(x) / _power(y))).astype(np.float32)


def telephone(x: np.ndarray) -> np.ndarray:
    sos = butter(4, [300, 3400], btype="band", fs=SR, output="sos")
    return sosfilt(sos, x).astype(np.float32)


def narrowband_round_trip(x: np.ndarray) -> np.ndarray:
    """16 kHz -> 8 kHz -> 16 kHz (everything above 4 kHz gone)."""
    return resample_poly(resample_poly(x, 1, 2), 2, 1)[: len(x)].astype(np.float32)


def random_eq(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random spectral tilt plus two bumps/notches up to +-10 dB, applied by FFT."""
    n = len(x)
    m = next_fast_len(n, real=True)
    spec = rfft(x, m)
    f = rfftfreq(m, 1 / SR)
    logf = np.log2(np.maximum(f, 50.0) / 1000.0)
    gain_db = rng.uniform(-3, 3) * logf
    for _ in range(2):
        centre, width, g = rng.uniform(-2.5, 2.5), rng.uniform(0.3, 1.5), rng.uniform(-10, 10)
        gain_db += g * np.exp(-0.5 * ((logf - centre) / width) ** 2)
    y = irfft(spec * 10 ** (gain_db / 20), m)[:n]
    return (y * np.sqrt(_power(x) / _power(y))).astype(np.float32)


def gain_and_quantise(x: np.ndarray, gain_db: float) -> np.ndarray:
    """Scale so the speech level is -20 dBFS + ``gain_db``, clip, round to 16-bit."""
    level = np.sqrt(_power(x))
    y = x * (10 ** ((-20.0 + gain_db) / 20) / level)
    return (np.round(np.clip(y, -1.0, 1.0) * 32767.0) / 32767.0).astype(np.float32)


def opus_round_trip(x: np.ndarray, bitrate: int) -> np.ndarray:
    """Encode to Opus at 48 kHz in an Ogg container and decode back to 16 kHz."""
    pcm48 = np.clip(resample_poly(x, 3, 1), -1.0, 1.0)
    pcm16 = (pcm48 * 32767).astype(np.int16)
    buf = io.BytesIO()
    with av.open(buf, "w", format="ogg") as out:
        stream = out.add_stream("libopus", rate=OPUS_RATE, layout="mono")
        stream.bit_rate = bitrate
        for i in range(0, len(pcm16), OPUS_FRAME):
            block = pcm16[i : i + OPUS_FRAME]
            if len(block) < OPUS_FRAME:
                block = np.pad(block, (0, OPUS_FRAME - len(block)))
            frame = av.AudioFrame.from_ndarray(block[None, :], format="s16", layout="mono")
            frame.sample_rate = OPUS_RATE
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    buf.seek(0)
    decoded = []
    with av.open(buf, "r") as inp:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SR)
        for frame in inp.decode(audio=0):
            for o in resampler.resample(frame):
                decoded.append(o.to_ndarray().reshape(-1))
        for o in resampler.resample(None):
            decoded.append(o.to_ndarray().reshape(-1))
    y = np.concatenate(decoded) if decoded else np.zeros(0, np.float32)
    y = np.pad(y, (0, max(0, len(x) - len(y))))[: len(x)]
    return y.astype(np.float32)


def augment(x: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """A random chain; ``strength`` 0 gives gain/quantisation only."""
    y = np.asarray(x, np.float32)
    if rng.random() < 0.5 * strength:
        y = reverb(y, rng, rng.uniform(*RT60_S))
    band = rng.random()
    if band < 0.15 * strength:
        y = telephone(y)
    elif band < 0.3 * strength:
        y = narrowband_round_trip(y)
    elif band < 0.6 * strength:
        y = random_eq(y, rng)
    if rng.random() < 0.75 * strength:
        y = add_noise(y, rng, rng.uniform(*SNR_DB))
    if rng.random() < 0.5 * strength:
        y = opus_round_trip(y, int(rng.choice(OPUS_BITRATES)))
    return gain_and_quantise(y, rng.uniform(*GAIN_DB))
