"""Evaluation sessions: held-out synthetic voices and recorded speech, assembled and
augmented the way :mod:`models.training.dataset` builds training sessions."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from headcast.models.training import nonspeech, real
from headcast.models.training.augment import augment
from headcast.models.training.dataset import (
    assemble,
    real_utterances,
    synthesise,
)
from headcast.models.training.jobs import in_fresh_processes
from headcast.models.training.synth import Voice


def _heldout_job(args: tuple[Voice, int, int, float]) -> list[tuple[str, np.ndarray, list]]:
    voice, n_utts, seed, strength = args
    rng = np.random.default_rng(seed)
    out = []
    # Sessions are built before any augmentation draws, so every strength hears the same speech.
    for k, sess in enumerate(assemble(synthesise(voice, n_utts, rng), str(voice), rng)):
        out.append((f"{voice}#{k}", augment(sess.audio, rng, strength), sess.visemes))
    return out


def heldout_audio(
    voices: Iterable[Voice], utts_per_voice: int, seed: int, workers: int, strength: float = 1.0
) -> list[tuple[str, np.ndarray, list]]:
    """[(name, float32 (N,) 16 kHz audio, visemes)] for evaluation.

    ``strength`` 1 augments like a real recording or call (see :func:`augment`); 0 keeps
    the synthetic speech clean apart from a random level and 16-bit quantisation.
    """
    jobs = [(v, utts_per_voice, seed * 7919 + i, strength) for i, v in enumerate(voices)]
    # one process per voice: the same audio with one worker as with two
    return [s for part in in_fresh_processes(_heldout_job, jobs, workers) for s in part]


def real_heldout_audio(
    prompts: list[real.Prompt], seed: int, strength: float, events: bool = False
) -> list[tuple[str, np.ndarray, list]]:
    """Held-out recorded prompts in sessions of 2-5 -> [(name, float32 (N,) 16 kHz, visemes)].

    The sessions (order, pauses) depend only on ``seed``; ``strength`` as in
    :func:`heldout_audio`; ``events`` puts a non-speech sound in every pause (the
    held-out music track, clicks, tones, breaths, hum) before the augmentation.
    """
    speaker = prompts[0].speaker if prompts else ""
    return recorded_sessions(real_utterances(prompts), speaker, seed, strength, events)


def recorded_sessions(
    utts: list[tuple[np.ndarray, list, str]],
    speaker: str,
    seed: int,
    strength: float,
    events: bool = False,
) -> list[tuple[str, np.ndarray, list]]:
    """Recorded utterances [(audio, visemes, name)] of one speaker in evaluation sessions:
    :func:`real_heldout_audio` for any recordings."""
    rng = np.random.default_rng(seed)
    sessions = assemble(utts, speaker, rng)
    music = [nonspeech.load_music(t) for t in real.music_tracks(heldout=True)]
    out = []
    for k, sess in enumerate(sessions):
        r = np.random.default_rng([seed, k])
        audio = sess.audio
        if events:
            audio = nonspeech.fill_pauses(audio, sess.visemes, r, 1.0, music)
        name = f"{sess.texts[0]}+{len(sess.texts) - 1}"
        out.append((name, augment(audio, r, strength), sess.visemes))
    return out
