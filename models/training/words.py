"""Other English speakers, for evaluation only: the spoken words of KDE's ktuberling.

Debian's ``ktuberling-data`` (GPL-2+) ships one recording per sticker name in every
language it speaks; the English ones are 72 single words (body parts, clothes, pizza
toppings, Egypt, the Moon, traffic: "bacon", "umbrella", "moustache", "pyramid", …), read
by people who recorded them for KDE, none of them a voice the models train on. A word's
text is its file name after the theme prefix (``pizzeria_pepperoni`` -> pepperoni), with
the few compound or misspelt names written out in :data:`WORDS`. They are never trained
or tuned on: ``headcast eval motion`` scores them as the *English words* condition.
Isolated words start and end in silence, so their closures are easier than the ones
inside running speech. Beside them, the condition holds two more English speakers,
KLettres' American and British ones (letter names and short words, held out whole from
training: :data:`models.training.corpora.ENGLISH_KLETTRES`).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from headcast.models.training import real
from headcast.models.training.corpora import CORPORA, ENGLISH_KLETTRES, KLETTRES_PACKAGE

PACKAGE = "ktuberling-data"
SOUNDS_DIR = Path("/usr/share/ktuberling/sounds/en")
SPEAKER = "ktuberling:en"
# File names whose spoken words are not the name itself.
WORDS: dict[str, tuple[str, ...]] = {
    "broccolli": ("broccoli",),
    "sphynx": ("sphinx",),
    "palmtree": ("palm", "tree"),
    "fallingstar": ("falling", "star"),
    "moonwalker": ("moon", "walker"),
    "ufo": ("u", "f", "o"),
}


def words_of(stem: str) -> tuple[str, ...]:
    """``pizzeria_pepperoni`` -> ("pepperoni",); ``egypt_palmtree`` -> ("palm", "tree")."""
    name = stem.split("_", 1)[-1].lower()
    return WORDS.get(name, (name,))


def missing() -> list[str]:
    """The Debian packages whose English recordings are not there."""
    out = [] if SOUNDS_DIR.is_dir() and any(SOUNDS_DIR.glob("*.ogg")) else [PACKAGE]
    if not all(CORPORA[k].transcripts.is_file() for k in ENGLISH_KLETTRES):
        out.append(KLETTRES_PACKAGE)
    return out


def speakers(limit: int | None = None) -> list[tuple[str, list[tuple[np.ndarray, list, str]]]]:
    """The condition's speakers -> [(speaker, [(float32 (N,) 16 kHz, visemes, name)])]:
    ktuberling's words, then KLettres' two English speakers; ``limit``: the first that
    many recordings of each."""
    out = [(SPEAKER, word_utterances(limit))]
    for key in ENGLISH_KLETTRES:
        out.append((CORPORA[key].speaker, list(_klettres(key, limit))))
    return out


@lru_cache(maxsize=4)
def _klettres(key: str, limit: int | None) -> tuple[tuple[np.ndarray, list, str], ...]:
    from headcast.models.training.dataset import real_utterances

    return tuple(real_utterances(real.aligned(real.prompts(key)[:limit], workers=1)))


def word_utterances(limit: int | None = None) -> list[tuple[np.ndarray, list, str]]:
    """Every English word that aligns -> [(float32 (N,) 16 kHz, visemes, name)], in file
    order; ``limit``: only the first that many files. Decoded and aligned once per
    process (the clean and the augmented condition read the same words)."""
    return list(_aligned(limit))


@lru_cache(maxsize=4)
def _aligned(limit: int | None) -> tuple[tuple[np.ndarray, list, str], ...]:
    from headcast.models.audio.decode import load_audio

    out = []
    for path in sorted(SOUNDS_DIR.glob("*.ogg"))[:limit]:
        audio = load_audio(path)[0]
        prompt = real.align(real.Prompt(path.stem, words_of(path.stem)), audio)
        if prompt is not None:
            out.append((audio, real.visemes(prompt), path.stem))
    return tuple(out)
