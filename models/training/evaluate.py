"""Evaluation of audio-to-motion on held-out synthetic speech, next to an energy baseline.

Held-out means engines/voices the model never heard in training
(:data:`models.training.dataset.HELDOUT_VOICES`), augmented like real recordings. Per
file and on average:

* ``r``: Pearson correlation of predicted ``jawOpen`` with the ground-truth openness
  curve (the jawOpen target built from the phone timings), plus the best r within +-3
  frames and its lag (frames; positive = prediction late);
* ``closure``: share of /p b m/ closures >= 40 ms where the mouth actually closes (the
  lowest opening inside the closure <= 15 % of the file's 90th-percentile opening);
* ``silence``: mean opening inside pauses >= 200 ms (one frame trimmed at each edge,
  where the lips legitimately move) relative to the file's 90th-percentile opening
  (taken as at least :data:`MIN_P90`: a file where the mouth hardly opens is not judged
  against a percentile near zero).

The baseline opens the mouth with loudness: frame RMS in dB mapped linearly from 40 dB
below the file's 95th percentile (closed) to that percentile (fully open) — it even
sees the whole file, which the model does not.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from headcast.models.audio import SAMPLE_RATE
from headcast.models.motion.closures import infer_file
from headcast.models.motion.model import MotionModel

MAX_LAG = 3  # frames
MIN_CLOSURE_S = 0.040
MIN_SILENCE_S = 0.200
CLOSED_FRACTION = 0.15  # of the 90th-percentile opening
MIN_P90 = 0.05  # the 90th-percentile opening the two relative measures use, at least
BASELINE_RANGE_DB = 40.0
BASELINE_WINDOW_S = 0.040


@dataclass(frozen=True)
class FileScore:
    name: str
    r: float
    best_r: float
    lag: int
    closure: float  # fraction 0..1 (nan when the file has no closure)
    n_closures: int
    silence: float  # fraction of the 90th-percentile opening (nan without pauses)


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    den = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / den) if den > 0 else 0.0


def _merged(visemes: list[tuple[str, float, float]], label: str) -> list[tuple[float, float]]:
    """Runs of consecutive segments with this label, merged: [(start s, end s)]."""
    spans: list[tuple[float, float]] = []
    for v, s, e in sorted(visemes, key=lambda x: x[1]):
        if v != label:
            continue
        if spans and s - spans[-1][1] < 1e-3:
            spans[-1] = (spans[-1][0], e)
        else:
            spans.append((s, e))
    return spans


def score(
    name: str,
    pred: np.ndarray,
    truth: np.ndarray,
    visemes: list[tuple[str, float, float]],
    fps: int,
) -> FileScore:
    """pred, truth: float (N,) openness at ``fps``; visemes: [(viseme, start s, end s)]."""
    n = min(len(pred), len(truth))
    pred, truth = pred[:n].astype(np.float64), truth[:n].astype(np.float64)
    r = _pearson(pred, truth)
    lags = {}
    for lag in range(-MAX_LAG, MAX_LAG + 1):
        if lag >= 0:
            lags[lag] = _pearson(pred[lag:], truth[: n - lag])
        else:
            lags[lag] = _pearson(pred[:lag], truth[-lag:])
    best_lag = max(lags, key=lambda k: lags[k])
    # (a floor: in a file where the mouth hardly opens, pauses are not judged against
    # a 90th percentile near zero)
    p90 = max(float(np.percentile(pred, 90)), MIN_P90)
    t = np.arange(n) / fps
    closed = []
    for s, e in _merged(visemes, "PBM"):
        if e - s >= MIN_CLOSURE_S:
            inside = pred[(t >= s) & (t < e)]
            if len(inside):
                closed.append(bool(inside.min() <= CLOSED_FRACTION * p90))
    sil = []
    for s, e in _merged(visemes, "sil"):
        if e - s >= MIN_SILENCE_S:
            inside = pred[(t >= s + 1 / fps) & (t < e - 1 / fps)]
            if len(inside):
                sil.append(inside)
    silence = float(np.concatenate(sil).mean() / p90) if sil else float("nan")
    return FileScore(
        name, r, lags[best_lag], best_lag,
        float(np.mean(closed)) if closed else float("nan"), len(closed), silence,
    )  # fmt: skip


def energy_baseline(
    pcm16k: np.ndarray, n_frames: int, fps: int, sample_rate: int = SAMPLE_RATE
) -> np.ndarray:
    """Loudness as openness: float32 (n_frames,) 0..1 from float32 (N,) 16 kHz audio."""
    half = int(BASELINE_WINDOW_S * sample_rate / 2)
    x = np.pad(np.asarray(pcm16k, np.float64), (half, half + sample_rate))
    centres = (np.arange(n_frames) * sample_rate) // fps + half
    db = np.array([10 * np.log10(np.mean(x[c - half : c + half] ** 2) + 1e-10) for c in centres])
    top = np.percentile(db, 95) if len(db) else 0.0
    return np.clip((db - (top - BASELINE_RANGE_DB)) / BASELINE_RANGE_DB, 0.0, 1.0).astype(
        np.float32
    )


@dataclass(frozen=True)
class Report:
    model: list[FileScore]
    baseline: list[FileScore]

    @staticmethod
    def mean(scores: list[FileScore]) -> dict[str, float]:
        def m(key: str) -> float:
            vals = np.array([getattr(s, key) for s in scores], np.float64)
            return float(np.nanmean(vals)) if np.isfinite(vals).any() else float("nan")

        closures = sum(s.n_closures for s in scores)
        pooled = sum(s.closure * s.n_closures for s in scores if s.n_closures) / max(1, closures)
        return {
            "r": m("r"), "best_r": m("best_r"), "lag": m("lag"), "closure": pooled,
            "n_closures": float(closures), "silence": m("silence"),
        }  # fmt: skip

    def to_dict(self) -> dict[str, object]:
        return {
            "model": [asdict(s) for s in self.model],
            "baseline": [asdict(s) for s in self.baseline],
            "mean": {"model": self.mean(self.model), "baseline": self.mean(self.baseline)},
        }

    def markdown(self) -> str:
        lines = [
            "| file | r (model / energy) | best r, lag (model) | best r, lag (energy) "
            "| closure (model / energy) | silence (model / energy) |",
            "|---|---|---|---|---|---|",
        ]
        for a, b in zip(self.model, self.baseline, strict=True):
            lines.append(
                f"| {a.name} | {a.r:.3f} / {b.r:.3f} | {a.best_r:.3f}, {a.lag:+d} | "
                f"{b.best_r:.3f}, {b.lag:+d} | {_pct(a.closure)} / {_pct(b.closure)} "
                f"({a.n_closures}) | {_pct(a.silence)} / {_pct(b.silence)} |"
            )
        ma, mb = self.mean(self.model), self.mean(self.baseline)
        lines.append(
            f"| **mean** | **{ma['r']:.3f} / {mb['r']:.3f}** | {ma['best_r']:.3f}, {ma['lag']:+.2f} | "
            f"{mb['best_r']:.3f}, {mb['lag']:+.2f} | **{_pct(ma['closure'])} / {_pct(mb['closure'])}** "
            f"({int(ma['n_closures'])}) | **{_pct(ma['silence'])} / {_pct(mb['silence'])}** |"
        )
        return "\n".join(lines)


def _pct(x: float) -> str:
    return "–" if not np.isfinite(x) else f"{100 * x:.1f} %"


def evaluate_sessions(
    model: MotionModel,
    sessions: list[tuple[str, np.ndarray, list]],
    closures: bool | None = None,
) -> Report:
    """sessions: [(name, float32 (N,) 16 kHz audio, visemes)] -> per-file scores, both methods.

    The frames a file gets (:func:`~models.motion.closures.infer_file`): a model that
    reads ahead runs the closure pass unless ``closures=False``."""
    from headcast.models.training.visemes import make_targets  # numpy only

    jaw = model.names.index("jawOpen")
    ours, base = [], []
    for name, audio, visemes in sessions:
        frames = infer_file(model, audio, closures)
        n = len(frames)
        truth = make_targets(visemes, n, model.fps).coeffs[:, 0]
        ours.append(score(name, frames.coeffs[:, jaw], truth, visemes, model.fps))
        base.append(score(name, energy_baseline(audio, n, model.fps), truth, visemes, model.fps))
    return Report(ours, base)


def heldout_sessions(
    utts_per_voice: int = 8, seed: int = 1234, workers: int = 2, augmented: bool = True
) -> list[tuple[str, np.ndarray, list]]:
    """Held-out voices, sessions of 2-5 utterances; augmented like a recording, or clean."""
    from headcast.models.training.dataset import HELDOUT_VOICES
    from headcast.models.training.heldout import heldout_audio

    return heldout_audio(HELDOUT_VOICES, utts_per_voice, seed, workers, 1.0 if augmented else 0.0)


VALIDATION_SEED = 4242  # new text, tempo, pitch and rooms; never the held-out voices
VALIDATION_VOICES = slice(1, None, 3)  # every third training voice: 8 of 23, all engines


def validation_sessions(
    utts_per_voice: int = 6, seed: int = VALIDATION_SEED, workers: int = 2
) -> list[tuple[str, np.ndarray, list]]:
    """Training voices only, fresh sentences, augmented like a recording: for tuning."""
    from headcast.models.training.dataset import TRAIN_VOICES
    from headcast.models.training.heldout import heldout_audio

    return heldout_audio(TRAIN_VOICES[VALIDATION_VOICES], utts_per_voice, seed, workers, 1.0)


REAL_SEED = 2718  # session order and pauses of the held-out recorded prompts
REAL_CONDITIONS = ("real clean", "real augmented", "real, non-speech in pauses")
# The held-out speaker (never trained or tuned on; models/training/corpora.py), on the
# same held-out prompt families.
SPEAKER_CONDITIONS = ("other speaker clean", "other speaker augmented")
# Single words read by other English speakers (models/training/words.py).
WORDS_CONDITIONS = ("english words clean", "english words augmented")
# Running speech of other English speakers (models/training/running.py).
RUNNING_CONDITIONS = ("english speech clean", "english speech augmented")
# Each condition's augmentation strength and whether its pauses get non-speech sounds.
_REAL_AUDIO = {
    "real clean": (0.0, False),
    "real augmented": (1.0, False),
    "real, non-speech in pauses": (0.0, True),
    "other speaker clean": (0.0, False),
    "other speaker augmented": (1.0, False),
    "english words clean": (0.0, False),
    "english words augmented": (1.0, False),
    "english speech clean": (0.0, False),
    "english speech augmented": (1.0, False),
}


def real_sessions(
    condition: str,
    workers: int = 2,
    seed: int = REAL_SEED,
    cache: Path | None = None,
    limit: int | None = None,
) -> list[tuple[str, np.ndarray, list]]:
    """Held-out recorded speech (prompt families never trained or tuned on, see
    :mod:`models.training.real`) in sessions of 2-5 prompts:

    * ``real clean``: as recorded, at a random level;
    * ``real augmented``: through the augmentation chain at full strength;
    * ``real, non-speech in pauses``: clean, with a non-speech sound (held-out music
      track, clicks, tones, breaths, hum) in every pause;
    * ``other speaker clean`` / ``other speaker augmented``: the same held-out prompt
      families read by the held-out speaker (another voice and language, whose phones
      come from espeak-ng, see :mod:`models.training.ipa`);
    * ``english words clean`` / ``english words augmented``: single words read by other
      English speakers (:mod:`models.training.words`), never trained or tuned on;
    * ``english speech clean`` / ``english speech augmented``: running speech of other
      English speakers (:mod:`models.training.running`), never trained or tuned on; its
      source distribution is kept in a ``speech`` folder beside ``cache``.

    ``limit``: only the first that many held-out prompts (a quick check). Raises
    :class:`models.training.real.RealSpeechMissing` when the packages are absent.
    """
    from headcast.models.training import real
    from headcast.models.training.corpora import CORPORA, HELDOUT_SPEAKER
    from headcast.models.training.heldout import real_heldout_audio

    if condition not in _REAL_AUDIO:
        raise ValueError(condition)
    strength, events = _REAL_AUDIO[condition]
    if condition in WORDS_CONDITIONS:
        return _word_sessions(seed, strength, limit)
    if condition in RUNNING_CONDITIONS:
        return _running_sessions(seed, strength, limit, cache)
    other = condition in SPEAKER_CONDITIONS
    held = HELDOUT_SPEAKER if other else "en"
    packages = CORPORA[held].packages if other else real.PACKAGES
    if real.missing_packages(packages):
        raise real.RealSpeechMissing(
            f"recorded speech missing: install {' '.join(real.missing_packages(packages))}"
        )
    todo = [p for p in real.prompts(held) if real.split_of(p.name) == "heldout"][:limit]
    prompts = real.aligned(todo, workers, cache)
    return real_heldout_audio(prompts, seed, strength, events=events)


def _word_sessions(
    seed: int, strength: float, limit: int | None
) -> list[tuple[str, np.ndarray, list]]:
    from headcast.models.training import words
    from headcast.models.training.heldout import recorded_sessions
    from headcast.models.training.real import RealSpeechMissing

    missing = words.missing()
    if missing:
        raise RealSpeechMissing(f"recorded speech missing: install {' '.join(missing)}")
    return [
        s
        for k, (speaker, utts) in enumerate(words.speakers(limit))
        for s in recorded_sessions(utts, speaker, seed + k, strength)
    ]


def _running_sessions(
    seed: int, strength: float, limit: int | None, cache: Path | None
) -> list[tuple[str, np.ndarray, list]]:
    from headcast.models.training import running
    from headcast.models.training.heldout import recorded_sessions

    where = None if cache is None else cache.parent / "speech"
    return [
        s
        for k, (speaker, utts) in enumerate(running.speakers(where, limit))
        for s in recorded_sessions(utts, speaker, seed + k, strength)
    ]


def _alone() -> dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]]:
    """Each augmentation of the chain alone, over its full range, at a -10 dB level."""
    from headcast.models.training import augment as a

    def level(x: np.ndarray) -> np.ndarray:
        return a.gain_and_quantise(x, -10.0)

    return {
        "reverberation": lambda x, r: level(a.reverb(x, r, r.uniform(*a.RT60_S))),
        "noise": lambda x, r: level(a.add_noise(x, r, r.uniform(*a.SNR_DB))),
        "noise 10-15 dB SNR": lambda x, r: level(a.add_noise(x, r, r.uniform(10.0, 15.0))),
        "telephone band": lambda x, r: level(a.telephone(x)),
        "8 kHz round trip": lambda x, r: level(a.narrowband_round_trip(x)),
        "random EQ": lambda x, r: level(a.random_eq(x, r)),
        "Opus 12 kbit/s": lambda x, r: level(a.opus_round_trip(x, 12_000)),
        "level -55 dBFS": lambda x, r: a.gain_and_quantise(x, -35.0),
        "whole chain": lambda x, r: a.augment(x, r, 1.0),
    }


def breakdown(
    model: MotionModel, sessions: list[tuple[str, np.ndarray, list]], seed: int = 7
) -> dict[str, dict[str, float]]:
    """Mean model scores on ``sessions`` (clean) as they are and under each augmentation
    alone: where the augmented score is lost."""
    out = {"clean": Report.mean(evaluate_sessions(model, sessions).model)}
    for name, fn in _alone().items():
        rng = np.random.default_rng(seed)
        degraded = [(n, fn(audio, rng), v) for n, audio, v in sessions]
        out[name] = Report.mean(evaluate_sessions(model, degraded).model)
    return out
