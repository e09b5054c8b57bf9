"""Synthetic training/evaluation data: synthesise, assemble sessions, augment, featurise.

A *session* is 2-5 utterances of one voice separated by pauses, with silence before and
after, so the model sees speech onsets, pauses and level changes the way a live stream
does. Each session yields ``copies`` augmented versions; features come from the same
numpy front-end the server uses (:class:`models.audio.features.FeatureExtractor`), so
training and serving features are identical by construction.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from headcast.models.audio.features import MEL_RATE, SAMPLE_RATE, FeatureExtractor, to_mono_16k
from headcast.models.training import nonspeech, real
from headcast.models.training.augment import augment
from headcast.models.training.jobs import default_signals, in_fresh_processes
from headcast.models.training.synth import (
    ESPEAK_VARIANTS,
    Utterance,
    Voice,
    synth_espeak,
    synth_festival,
    synth_flite,
)
from headcast.models.training.text import random_text
from headcast.models.training.visemes import SILENCE, make_targets

log = logging.getLogger(__name__)

HELDOUT_ESPEAK = ("en-us+klatt4", "en-gb-x-rp", "en+michel", "en+linda")
TRAIN_VOICES: tuple[Voice, ...] = (
    *(Voice("flite", v) for v in ("slt", "rms", "kal16", "kal")),
    Voice("festival", "kal_diphone"),
    *(Voice("espeak", v) for v in ESPEAK_VARIANTS if v not in HELDOUT_ESPEAK),
)
# Voices and engines the model never hears in training: evaluation only.
HELDOUT_VOICES: tuple[Voice, ...] = (
    Voice("flite", "awb"),
    Voice("festival", "cmu_us_slt_arctic_hts"),
    *(Voice("espeak", v) for v in HELDOUT_ESPEAK),
)
TEMPO = (0.8, 1.3)  # speaking-rate factor, > 1 faster
PITCH_CENTS = (-300.0, 300.0)
PAUSE_S = (0.12, 1.2)
LEAD_S = (0.1, 0.8)
TRAIL_S = (0.3, 1.0)
UTTERANCES_PER_SESSION = (2, 5)
FESTIVAL_BATCH = 12
# Augmentation strength of a training copy (the rest of ``clean_prob``): the full chain,
# as :func:`models.training.heldout.heldout_audio` uses it for speech "augmented like a recording".
AUG_STRENGTH = (1.0, 1.0)
RATE_STEP = 100  # Hz
# Non-speech events in pauses (music, clicks, tones, breaths, hum; labels stay silence)
# and, less often, a music bed under a whole session: see models/training/nonspeech.py.
EVENT_PROB = 0.3  # per pause of a training session
MUSIC_BED_PROB = 0.1  # per training copy
# Recorded speech is one speaker: each training copy is played at a random rate
# (pitch, formants and tempo scale together, like another vocal tract) in this range.
REAL_PITCH_CENTS = (-400.0, 300.0)
REAL_PROMPTS_PER_JOB = 40


@dataclass
class Session:
    """audio: float32 (N,) 16 kHz; visemes [(viseme, start s, end s)] covering 0..N/16000."""

    audio: np.ndarray
    visemes: list[tuple[str, float, float]]
    voice: str
    texts: list[str] = field(default_factory=list)


@dataclass
class Example:
    """feats float16 (T, 80); coeffs float16 (T, 16); speech, closure float16 (T,)."""

    feats: np.ndarray
    coeffs: np.ndarray
    speech: np.ndarray
    closure: np.ndarray
    voice: str


def to_16k(
    utt: Utterance, pitch_factor: float
) -> tuple[np.ndarray, list[tuple[str, float, float]]]:
    """Play at ``rate * pitch_factor`` (pitch and tempo both scale) and resample to 16 kHz."""
    # Rounded to 100 Hz so the resampling ratio stays a small fraction (short filters).
    rate = int(round(utt.rate * pitch_factor / RATE_STEP)) * RATE_STEP
    audio = to_mono_16k(utt.audio, rate)
    dur = len(audio) / SAMPLE_RATE
    segs = []
    for v, s, e in utt.visemes:
        s2, e2 = s * utt.rate / rate, min(e * utt.rate / rate, dur)
        if e2 > s2:
            segs.append((v, s2, e2))
    return audio, segs


def synthesise(
    voice: Voice, n: int, rng: np.random.Generator
) -> list[tuple[np.ndarray, list, str]]:
    """``n`` utterances with random text, tempo and pitch -> [(audio 16k, visemes, text)]."""
    out = []
    todo = n
    while todo > 0:
        cents = rng.uniform(*PITCH_CENTS)
        pitch = 2 ** (cents / 1200)
        tempo = rng.uniform(*TEMPO)
        # Resampling by `pitch` speeds speech up by `pitch`; the engine makes up the rest.
        stretch = float(np.clip(pitch / tempo, 0.5, 2.0))
        if voice.engine == "festival":
            texts = [random_text(rng) for _ in range(min(todo, FESTIVAL_BATCH))]
            utts = synth_festival(texts, voice.name, stretch)
            todo -= len(texts)
        elif voice.engine == "flite":
            utts = [synth_flite(random_text(rng), voice.name, stretch)]
            todo -= 1
        else:
            utts = [synth_espeak(random_text(rng), voice.name, stretch, int(rng.integers(25, 76)))]
            todo -= 1
        for u in utts:
            audio, segs = to_16k(u, pitch)
            if len(audio) > SAMPLE_RATE // 4 and segs:
                out.append((audio, segs, u.text))
    return out


def assemble(
    utts: list[tuple[np.ndarray, list, str]], voice: str, rng: np.random.Generator
) -> list[Session]:
    """Group utterances into sessions with pauses; gaps are labelled silence."""
    sessions = []
    i = 0
    while i < len(utts):
        k = int(rng.integers(UTTERANCES_PER_SESSION[0], UTTERANCES_PER_SESSION[1] + 1))
        group = utts[i : i + k]
        i += k
        # Alternate silences and utterances: lead, utt, pause, utt, ..., trail.
        items: list[float | tuple[np.ndarray, list, str]] = [float(rng.uniform(*LEAD_S))]
        for j, utt in enumerate(group):
            if j:
                items.append(float(rng.uniform(*PAUSE_S)))
            items.append(utt)
        items.append(float(rng.uniform(*TRAIL_S)))
        parts: list[np.ndarray] = []
        segs: list[tuple[str, float, float]] = []
        t = 0.0
        for item in items:
            if isinstance(item, float):
                audio = np.zeros(int(item * SAMPLE_RATE), np.float32)
                segs.append((SILENCE, t, t + len(audio) / SAMPLE_RATE))
            else:
                audio = item[0]
                segs.extend((v, t + s, t + e) for v, s, e in item[1])
            parts.append(audio)
            t += len(audio) / SAMPLE_RATE
        sessions.append(
            Session(np.concatenate(parts), _fill_gaps(segs, t), voice, [g[2] for g in group])
        )
    return sessions


def _fill_gaps(segs: list[tuple[str, float, float]], end: float) -> list[tuple[str, float, float]]:
    segs = sorted(segs, key=lambda s: s[1])
    out = []
    t = 0.0
    for v, s, e in segs:
        if s > t + 1e-4:
            out.append((SILENCE, t, s))
        out.append((v, s, e))
        t = max(t, e)
    if end > t + 1e-4:
        out.append((SILENCE, t, end))
    return out


def featurise(audio: np.ndarray, visemes: list[tuple[str, float, float]], voice: str) -> Example:
    feats = FeatureExtractor().push(audio)
    # Pad so every frame up to the end of the audio exists (what flush() does live).
    tail = FeatureExtractor()
    tail_feats = tail.push(np.concatenate([audio, np.zeros(400, np.float32)]))[len(feats) :]
    feats = np.concatenate([feats, tail_feats])
    tg = make_targets(visemes, len(feats), MEL_RATE)
    f16 = np.float16
    return Example(
        feats.astype(f16),
        tg.coeffs.astype(f16),
        tg.speech.astype(f16),
        tg.closure.astype(f16),
        voice,
    )


def training_copy(
    audio: np.ndarray,
    segs: list[tuple[str, float, float]],
    rng: np.random.Generator,
    clean_prob: float,
) -> np.ndarray:
    """Non-speech events in pauses, sometimes a music bed, then the augmentation chain."""
    music = [nonspeech.load_music(t) for t in real.music_tracks(heldout=False)]
    audio = nonspeech.fill_pauses(audio, segs, rng, EVENT_PROB, music)
    if rng.random() < MUSIC_BED_PROB:
        audio = nonspeech.music_bed(audio, rng, music)
    strength = 0.0 if rng.random() < clean_prob else rng.uniform(*AUG_STRENGTH)
    return augment(audio, rng, strength)


def session_examples(
    utts: list[tuple[np.ndarray, list, str]],
    voice: str,
    copies: int,
    rng: np.random.Generator,
    clean_prob: float,
) -> list[Example]:
    """Utterances of one voice -> sessions -> ``copies`` training copies of each."""
    out = []
    for sess in assemble(utts, voice, rng):
        for _ in range(copies):
            audio = training_copy(sess.audio, sess.visemes, rng, clean_prob)
            out.append(featurise(audio, sess.visemes, sess.voice))
    return out


SynthJob = tuple[Voice, int, int, int, float]  # voice, utterances, copies, seed, clean share


def _job(args: SynthJob) -> list[Example]:
    voice, n_utts, copies, seed, clean_prob = args
    rng = np.random.default_rng(seed)
    return session_examples(synthesise(voice, n_utts, rng), str(voice), copies, rng, clean_prob)


def shift_rate(
    audio: np.ndarray, segs: list[tuple[str, float, float]], cents: float
) -> tuple[np.ndarray, list[tuple[str, float, float]]]:
    """Play 16 kHz audio ``cents`` higher (and faster); segment times follow."""
    return to_16k(Utterance(audio, SAMPLE_RATE, segs, "", ""), 2 ** (cents / 1200))


def real_utterances(prompts: list[real.Prompt]) -> list[tuple[np.ndarray, list, str]]:
    """Aligned prompts -> [(float32 (N,) 16 kHz audio, visemes, name)]."""
    return [(real.load_prompt_audio(p), real.visemes(p), p.name) for p in prompts]


def _real_job(args: tuple[list[real.Prompt], int, int, float]) -> list[Example]:
    prompts, copies, seed, clean_prob = args
    rng = np.random.default_rng(seed)
    utts = real_utterances(prompts)
    order = rng.permutation(len(utts))
    sessions = [
        sess
        for speaker in sorted({p.speaker for p in prompts})  # one speaker per session
        for sess in assemble(
            [utts[i] for i in order if prompts[i].speaker == speaker], speaker, rng
        )
    ]
    out = []
    for sess in sessions:
        for _ in range(copies):
            audio, segs = shift_rate(sess.audio, sess.visemes, rng.uniform(*REAL_PITCH_CENTS))
            audio = training_copy(audio, segs, rng, clean_prob)
            out.append(featurise(audio, segs, sess.voice))
    return out


def build_real(
    prompts: list[real.Prompt], copies: int, seed: int, workers: int, clean_prob: float = 0.1
) -> list[Example]:
    """Recorded prompts in sessions, ``copies`` rate-shifted augmented copies of each."""
    rng = np.random.default_rng(seed + 77)
    shuffled = sorted((prompts[i] for i in rng.permutation(len(prompts))), key=lambda p: p.corpus)
    jobs = [
        (shuffled[i : i + REAL_PROMPTS_PER_JOB], copies, seed * 100_003 + 5_000_011 + i, clean_prob)
        for i in range(0, len(shuffled), REAL_PROMPTS_PER_JOB)
    ]
    if workers <= 1:
        return [e for job in jobs for e in _real_job(job)]
    with mp.get_context("fork").Pool(workers, initializer=default_signals) as pool:
        return [e for part in pool.map(_real_job, jobs) for e in part]


def build(
    voices: Iterable[Voice],
    utts_per_voice: int,
    copies: int,
    seed: int,
    workers: int,
    clean_prob: float = 0.1,
    chunk: int = 24,
) -> list[Example]:
    """Synthesise and featurise in ``workers`` processes; the same for a seed whatever
    ``workers`` is."""
    plan = [(voice, utts_per_voice) for voice in voices]
    return run_synth_jobs(
        _job, plan, copies, lambda vi, ci: seed * 100_003 + vi * 1009 + ci,
        workers, clean_prob, chunk, "data",
    )  # fmt: skip


def run_synth_jobs(
    job: Callable[[SynthJob], list[Example]],
    plan: Sequence[tuple[Voice, int]],
    copies: int,
    seed_of: Callable[[int, int], int],
    workers: int,
    clean_prob: float,
    chunk: int,
    what: str,
) -> list[Example]:
    """``plan``'s (voice, utterances) cut into jobs of at most ``chunk`` utterances, the
    ``ci``-th of voice ``vi`` seeded ``seed_of(vi, ci)``, each run by ``job`` in a process
    of its own (the synthesisers keep state between calls); progress logged as ``what``."""
    jobs: list[SynthJob] = []
    for vi, (voice, n_total) in enumerate(plan):
        for ci, start in enumerate(range(0, n_total, chunk)):
            n = min(chunk, n_total - start)
            jobs.append((voice, n, copies, seed_of(vi, ci), clean_prob))

    def progress(done: int, total: int) -> None:
        if done % 10 == 0 or done == total:
            log.info("%s: %d/%d jobs", what, done, total)

    return [e for part in in_fresh_processes(job, jobs, workers, progress) for e in part]


def save(examples: list[Example], path: Path) -> None:
    lengths = np.array([len(e.feats) for e in examples], np.int64)
    np.savez(
        path,
        lengths=lengths,
        feats=np.concatenate([e.feats for e in examples]),
        coeffs=np.concatenate([e.coeffs for e in examples]),
        speech=np.concatenate([e.speech for e in examples]),
        closure=np.concatenate([e.closure for e in examples]),
        voices=np.array([e.voice for e in examples]),
    )


def load(path: Path) -> list[Example]:
    """Examples written by :func:`save`."""
    with np.load(path) as z:
        ends = np.cumsum(z["lengths"])
        starts = ends - z["lengths"]
        arrays = {k: z[k] for k in ("feats", "coeffs", "speech", "closure")}
        voices = [str(v) for v in z["voices"]]
    return [
        Example(
            feats=arrays["feats"][a:b],
            coeffs=arrays["coeffs"][a:b],
            speech=arrays["speech"][a:b],
            closure=arrays["closure"][a:b],
            voice=v,
        )
        for a, b, v in zip(starts, ends, voices, strict=True)
    ]


def hours(examples: list[Example]) -> float:
    return sum(len(e.feats) for e in examples) / MEL_RATE / 3600
