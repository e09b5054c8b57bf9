"""Hesitant and whispered synthetic speech: what running speech has and read prompts lack.

People speaking freely fill their pauses ("uh", "um", "er" held for half a second, the
mouth open on the vowel, shut on the /m/), and some whisper. The read prompts and the
templated sentences of the other synthetic voices have neither, and on other people's
running speech the network kept its mouth shut through filled pauses and opened it to a
fraction on whispers (docs/motion.md). This set adds both, from the same synthesisers
with the same phone timings:

* every training voice of flite and espeak-ng says a few utterances with filled pauses
  between them, each filler spoken slowly (stretched 1.4-2x) at the voice's pitch;
* espeak-ng's two whisper variants (a male and a female one, noise-excited formants)
  say as many utterances as a training voice does, with fillers too.

Built and cached apart from the other voices (``--hesitations``), so the synthetic
voices need not be made again; the augmentation, non-speech events and music beds are
those of every other training copy.
"""

from __future__ import annotations

import logging

import numpy as np

from headcast.models.training.dataset import (
    PITCH_CENTS,
    TRAIN_VOICES,
    Example,
    SynthJob,
    run_synth_jobs,
    session_examples,
    synthesise,
    to_16k,
)
from headcast.models.training.synth import Voice, synth_espeak, synth_flite

log = logging.getLogger(__name__)

FILLERS = ("uh", "um", "er", "ah", "uhm", "hmm")
FILLER_STRETCH = (1.4, 2.0)  # fillers are held: slower than the engine's own reading
FILLER_PROB = 0.5  # per utterance: a filled pause before it
WHISPER_VOICES = (Voice("espeak", "en+whisper"), Voice("espeak", "en-us+whisperf"))
SPEAKING_VOICES = tuple(v for v in TRAIN_VOICES if v.engine in ("flite", "espeak"))
Utt = tuple[np.ndarray, list, str]


def filler(voice: Voice, rng: np.random.Generator) -> Utt:
    """One filled pause in ``voice``: (float32 16 kHz audio, visemes, text)."""
    text = FILLERS[int(rng.integers(len(FILLERS)))]
    pitch = 2 ** (rng.uniform(*PITCH_CENTS) / 1200)
    stretch = float(np.clip(pitch * rng.uniform(*FILLER_STRETCH), 0.5, 2.0))
    if voice.engine == "flite":
        utt = synth_flite(text, voice.name, stretch)
    else:
        utt = synth_espeak(text, voice.name, stretch, int(rng.integers(25, 76)))
    audio, segs = to_16k(utt, pitch)
    return audio, segs, text


def with_fillers(voice: Voice, utts: list[Utt], rng: np.random.Generator) -> list[Utt]:
    """``utts`` with a filled pause before each one at :data:`FILLER_PROB` (the session
    assembly then puts a pause of its own between them)."""
    out: list[Utt] = []
    for utt in utts:
        if rng.random() < FILLER_PROB:
            f = filler(voice, rng)
            if len(f[0]) and f[1]:
                out.append(f)
        out.append(utt)
    return out


def _job(args: SynthJob) -> list[Example]:
    voice, n_utts, copies, seed, clean_prob = args
    rng = np.random.default_rng(seed)
    utts = with_fillers(voice, synthesise(voice, n_utts, rng), rng)
    return session_examples(utts, str(voice), copies, rng, clean_prob)


def build_hesitant(
    utts_per_voice: int,
    copies: int,
    seed: int,
    workers: int,
    speaking_share: float = 0.2,
    clean_prob: float = 0.1,
    chunk: int = 24,
    speaking: tuple[Voice, ...] = SPEAKING_VOICES,
) -> list[Example]:
    """The whisper voices with ``utts_per_voice`` utterances each, the ``speaking``
    voices (every flite and espeak-ng training voice) with ``speaking_share`` of that;
    fillers throughout."""
    plan = [(v, utts_per_voice) for v in WHISPER_VOICES]
    plan += [(v, max(1, round(utts_per_voice * speaking_share))) for v in speaking]
    return run_synth_jobs(
        _job, plan, copies, lambda vi, ci: seed * 100_019 + vi * 1013 + ci + 7,
        workers, clean_prob, chunk, "data: hesitant and whispered speech",
    )  # fmt: skip
