"""Phones -> visemes -> ARKit mouth-channel target curves with coarticulation.

Phone labels from flite/festival (CMU/radio phone set) and espeak-ng (its own
mnemonics) map to a shared set of visemes. Each viseme has a target pose over the 16
mouth channels and a *dominance*: how strongly and how far in time it pulls its
neighbours (Cohen & Massaro 1993, "Modeling coarticulation in synthetic visual
speech"). The curve for a channel is the dominance-weighted mean of the targets:

* bilabials dominate the lip channels strongly, so the lips are shut *before* the
  labelled /p b m/ starts and stay shut until its end (the burst);
* bilabials and alveolars are nearly transparent to rounding, so the pucker of a
  following /uw/ spreads through them (anticipatory rounding);
* silence dominates only inside the pause, so the mouth closes in pauses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from headcast.models.channels import MOUTH_CHANNELS

SILENCE = "sil"
BILABIAL = "PBM"
ROUND_CHANNELS = ("mouthFunnel", "mouthPucker")
_ROUND = np.array([n in ROUND_CHANNELS for n in MOUTH_CHANNELS])
JAW = MOUTH_CHANNELS.index("jawOpen")
SMOOTH_S = 0.012  # Gaussian smoothing of the final curves (muscle low-pass), seconds
CLOSURE_RELEASE_S = 0.010  # the burst at the end of a /p b/ label is not closed


@dataclass(frozen=True)
class Segment:
    """One phone: label (engine's own), start and end in seconds."""

    phone: str
    start: float
    end: float


def _pose(**values: float) -> np.ndarray:
    out = np.zeros(len(MOUTH_CHANNELS), np.float64)
    for short, v in values.items():
        names = [
            n for n in MOUTH_CHANNELS if n == short or n == short + "Left" or n == short + "Right"
        ]
        assert names, short
        for n in names:
            out[MOUTH_CHANNELS.index(n)] = v
    return out


# Target poses (ARKit 0..1). jawOpen is the mouth-openness ground truth.
POSES: dict[str, np.ndarray] = {
    SILENCE: _pose(),
    BILABIAL: _pose(mouthPress=0.4, mouthRollLower=0.15, mouthRollUpper=0.1),
    "FV": _pose(jawOpen=0.08, mouthRollLower=0.5, mouthUpperUp=0.25, mouthShrugUpper=0.2),
    "TH": _pose(jawOpen=0.18, mouthLowerDown=0.15, mouthStretch=0.1),
    "TD": _pose(jawOpen=0.2, mouthLowerDown=0.2, mouthStretch=0.15),
    "SZ": _pose(jawOpen=0.1, mouthStretch=0.3, mouthLowerDown=0.2, mouthUpperUp=0.2),
    "SH": _pose(
        jawOpen=0.14, mouthFunnel=0.55, mouthPucker=0.3, mouthUpperUp=0.3, mouthLowerDown=0.3
    ),
    "KG": _pose(jawOpen=0.3, mouthLowerDown=0.15, mouthStretch=0.1),
    "R": _pose(jawOpen=0.2, mouthFunnel=0.35, mouthPucker=0.35),
    "W": _pose(jawOpen=0.1, mouthPucker=0.85, mouthFunnel=0.35),
    "Y": _pose(jawOpen=0.15, mouthStretch=0.35, mouthUpperUp=0.1),
    "AA": _pose(jawOpen=0.7, mouthLowerDown=0.35, mouthUpperUp=0.1),
    "AE": _pose(jawOpen=0.5, mouthStretch=0.3, mouthLowerDown=0.35, mouthUpperUp=0.2),
    "AH": _pose(jawOpen=0.42, mouthLowerDown=0.25),
    "ER": _pose(jawOpen=0.25, mouthFunnel=0.3, mouthPucker=0.25, mouthShrugUpper=0.15),
    "IH": _pose(jawOpen=0.3, mouthStretch=0.35, mouthLowerDown=0.2, mouthUpperUp=0.15),
    "IY": _pose(jawOpen=0.18, mouthStretch=0.55, mouthUpperUp=0.2, mouthLowerDown=0.15),
    "UW": _pose(jawOpen=0.2, mouthPucker=0.75, mouthFunnel=0.5, mouthShrugLower=0.15),
    "OW": _pose(jawOpen=0.38, mouthFunnel=0.65, mouthPucker=0.45),
    "AO": _pose(jawOpen=0.55, mouthFunnel=0.5, mouthPucker=0.2, mouthLowerDown=0.2),
}

# Dominance: (strength on lip channels, time constant s, strength on rounding, time constant s)
_DOMINANCE: dict[str, tuple[float, float, float, float]] = {
    SILENCE: (3.0, 0.03, 3.0, 0.04),
    BILABIAL: (25.0, 0.015, 0.05, 0.03),
    "FV": (8.0, 0.015, 0.1, 0.03),
    "TH": (3.0, 0.03, 0.15, 0.03),
    "TD": (1.2, 0.03, 0.1, 0.03),
    "SZ": (2.0, 0.03, 0.2, 0.03),
    "SH": (3.0, 0.03, 3.0, 0.05),
    "KG": (0.8, 0.03, 0.1, 0.03),
    "R": (2.0, 0.04, 2.0, 0.06),
    "W": (4.0, 0.04, 6.0, 0.08),
    "Y": (2.0, 0.03, 0.5, 0.04),
}
_VOWEL_DOMINANCE = (2.0, 0.05, 1.0, 0.06)
_ROUNDED_VOWEL_DOMINANCE = (2.0, 0.05, 3.0, 0.12)
_ROUNDED = {"UW", "OW", "AO", "ER"}

# CMU / festival radio phone set (lower case) -> one or two visemes (diphthongs).
_CMU: dict[str, tuple[str, ...]] = {
    "aa": ("AA",), "ae": ("AE",), "ah": ("AH",), "ao": ("AO",), "aw": ("AA", "UW"),
    "ax": ("AH",), "axr": ("ER",), "ay": ("AA", "IY"), "eh": ("AE",), "er": ("ER",),
    "ey": ("AE", "IY"), "ih": ("IH",), "ix": ("IH",), "iy": ("IY",), "ow": ("OW", "UW"),
    "oy": ("AO", "IY"), "uh": ("UW",), "uw": ("UW",), "ux": ("UW",),
    "b": (BILABIAL,), "p": (BILABIAL,), "m": (BILABIAL,), "em": ("AH", BILABIAL),
    "f": ("FV",), "v": ("FV",), "th": ("TH",), "dh": ("TH",),
    "t": ("TD",), "d": ("TD",), "n": ("TD",), "l": ("TD",), "dx": ("TD",), "el": ("AH", "TD"),
    "en": ("AH", "TD"), "s": ("SZ",), "z": ("SZ",), "sh": ("SH",), "zh": ("SH",),
    "ch": ("SH",), "jh": ("SH",), "k": ("KG",), "g": ("KG",), "ng": ("KG",), "hh": ("KG",),
    "r": ("R",), "w": ("W",), "y": ("Y",),
    "pau": (SILENCE,), "sil": (SILENCE,), "h#": (SILENCE,), "#": (SILENCE,), "brth": (SILENCE,),
}  # fmt: skip

# espeak-ng English mnemonics -> visemes (prefix rules below cover the variants).
_ESPEAK: dict[str, tuple[str, ...]] = {
    "p": (BILABIAL,), "b": (BILABIAL,), "m": (BILABIAL,), "f": ("FV",), "v": ("FV",),
    "T": ("TH",), "D": ("TH",), "t": ("TD",), "d": ("TD",), "n": ("TD",), "l": ("TD",),
    "t#": ("TD",), "d#": ("TD",), "s": ("SZ",), "z": ("SZ",), "S": ("SH",), "Z": ("SH",),
    "tS": ("SH",), "dZ": ("SH",), "k": ("KG",), "g": ("KG",), "N": ("KG",), "h": ("KG",),
    "x": ("KG",), "?": ("KG",), "r": ("R",), "r-": ("R",), "w": ("W",), "j": ("Y",),
    "aI": ("AA", "IY"), "aI@": ("AA", "IY"), "aI3": ("AA", "IY"), "aU": ("AA", "UW"),
    "eI": ("AE", "IY"), "oU": ("OW", "UW"), "o@": ("OW", "ER"), "OI": ("AO", "IY"),
    "a": ("AE",), "a#": ("AH",), "aa": ("AA",), "A:": ("AA",), "A@": ("AA", "ER"),
    "A": ("AA",), "@": ("AH",), "@L": ("AH", "TD"), "@2": ("AH",), "@5": ("AH",),
    "V": ("AH",), "3": ("ER",), "3:": ("ER",), "e": ("AE",), "E": ("AE",), "e@": ("AE", "ER"),
    "i": ("IY",), "i:": ("IY",), "i@": ("IY", "ER"), "i@3": ("IY", "ER"), "I": ("IH",),
    "I#": ("IH",), "I2": ("IH",), "0": ("AO",), "O": ("AO",), "O:": ("AO",), "O@": ("AO", "ER"),
    "u": ("UW",), "u:": ("UW",), "U": ("UW",), "U@": ("UW", "ER"),
}  # fmt: skip


def cmu_visemes(phone: str) -> tuple[str, ...]:
    """A flite/festival phone -> visemes; unknown labels count as a neutral vowel."""
    p = phone.lower().rstrip("012")
    return _CMU.get(p, ("AH",))


def espeak_visemes(phone: str) -> tuple[str, ...]:
    """An espeak-ng phoneme mnemonic -> visemes (stress/length marks stripped)."""
    p = phone.strip().lstrip("',%=")
    if not p or p.startswith("_"):
        return (SILENCE,)
    for cand in (p, p.rstrip(";"), p.rstrip(":;"), p[:2], p[:1]):
        if cand in _ESPEAK:
            return _ESPEAK[cand]
    return ("AH",) if p[0] in "aeiouAEIOUV@03" else ("TD",)


def _dominance(vis: str) -> tuple[float, float, float, float]:
    if vis in _DOMINANCE:
        return _DOMINANCE[vis]
    return _ROUNDED_VOWEL_DOMINANCE if vis in _ROUNDED else _VOWEL_DOMINANCE


def viseme_segments(
    segments: list[tuple[tuple[str, ...], float, float]],
) -> list[tuple[str, float, float]]:
    """Split multi-viseme phones (diphthongs) evenly in time: -> [(viseme, start, end)]."""
    out = []
    for visemes, start, end in segments:
        n = len(visemes)
        for i, v in enumerate(visemes):
            out.append((v, start + (end - start) * i / n, start + (end - start) * (i + 1) / n))
    return out


def _gauss_smooth(y: np.ndarray, sigma_frames: float) -> np.ndarray:
    radius = max(1, int(3 * sigma_frames))
    k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma_frames) ** 2)
    k /= k.sum()
    padded = np.pad(y, ((radius, radius), (0, 0)), mode="edge")
    out = np.empty_like(y)
    for c in range(y.shape[1]):
        out[:, c] = np.convolve(padded[:, c], k, mode="valid")
    return out


@dataclass(frozen=True)
class Targets:
    """Per-frame training targets at ``rate`` Hz, frame j at time j / rate.

    coeffs: float32 (T, 16) 0..1; speech: float32 (T,) 0/1; closure: float32 (T,) 0/1
    (inside a bilabial closure).
    """

    coeffs: np.ndarray
    speech: np.ndarray
    closure: np.ndarray


def make_targets(segs: list[tuple[str, float, float]], n_frames: int, rate: float) -> Targets:
    """Visemes [(viseme, start s, end s)] -> :class:`Targets` over ``n_frames`` frames."""
    t = np.arange(n_frames) / rate
    if not segs:
        z = np.zeros(n_frames, np.float32)
        return Targets(np.zeros((n_frames, len(MOUTH_CHANNELS)), np.float32), z, z.copy())
    poses = np.stack([POSES[v] for v, _, _ in segs])  # (P, 16)
    dom = np.array([_dominance(v) for v, _, _ in segs])  # (P, 4)
    start = np.array([s for _, s, _ in segs])[:, None]
    end = np.array([e for _, _, e in segs])[:, None]
    # Distance to the segment (0 inside it): every phone holds its target over its span.
    dist = np.maximum(0.0, np.maximum(start - t[None, :], t[None, :] - end))
    d_lip = dom[:, :1] * np.exp(-dist / dom[:, 1:2]) + 1e-12
    d_rnd = dom[:, 2:3] * np.exp(-dist / dom[:, 3:4]) + 1e-12
    lip = (d_lip.T @ poses) / d_lip.sum(0)[:, None]
    rnd = (d_rnd.T @ poses) / d_rnd.sum(0)[:, None]
    coeffs = np.where(_ROUND[None, :], rnd, lip)
    coeffs = np.clip(_gauss_smooth(coeffs, SMOOTH_S * rate), 0.0, 1.0)
    speech = np.zeros(n_frames, np.float32)
    closure = np.zeros(n_frames, np.float32)
    for v, s, e in segs:
        inside = (t >= s) & (t < e)
        if v != SILENCE:
            speech[inside] = 1.0
        if v == BILABIAL:
            closure[(t >= s) & (t < max(s + 0.5 / rate, e - CLOSURE_RELEASE_S))] = 1.0
    return Targets(coeffs.astype(np.float32), speech, closure)
