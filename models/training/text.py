"""Varied English text for synthesis: templated sentences and random word strings.

Words come from a built-in list of common words plus, when festival is installed, its
CMU pronouncing dictionary (a wide spread of spellings the engines must pronounce).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

CMUDICT = Path("/usr/share/festival/dicts/cmu/cmudict-0.4.out")

_SUBJECTS = (
    "the man", "my mother", "a big bird", "the people", "our team", "his brother", "the old map",
    "she", "he", "we", "they", "you", "bob", "the bus driver", "maybe someone", "the small boy",
    "every member", "a woman", "the pilot", "my friend", "the baby", "paul", "emma", "the police",
)  # fmt: skip
_VERBS = (
    "bought", "moved", "wanted", "found", "remembered", "brought", "painted", "pushed", "made",
    "opened", "broke", "liked", "played", "kept", "will buy", "should move", "might see",
    "has been watching", "picked up", "dropped", "wrote about", "ran past", "is building", "told",
)  # fmt: skip
_OBJECTS = (
    "a pumpkin pie", "the blue boat", "some bread and butter", "the map of the moon", "a warm room",
    "two apples", "the mobile phone", "a bottle of milk", "the window", "our old piano",
    "a poem", "the music box", "five boxes", "the ocean view", "a few pebbles", "his umbrella",
    "the football", "a bamboo pole", "that puppy", "the problem", "my wallet", "the room upstairs",
)  # fmt: skip
_TAILS = (
    "", "", "yesterday", "before lunch", "in the morning", "by the harbour", "at home", "quickly",
    "for a moment", "with both hands", "on monday", "because it was cheap", "and then slept",
    "although nobody asked", "after the storm", "in november", "to be honest",
)  # fmt: skip
_OPENERS = ("", "", "", "well,", "oh,", "so", "but", "honestly,", "you know,", "by the way,")
_QUESTIONS = ("why", "how", "when", "where", "who", "what")


@lru_cache(maxsize=1)
def dictionary_words() -> tuple[str, ...]:
    """Plain alphabetic words 2-11 letters from the CMU dictionary (empty if absent)."""
    if not CMUDICT.is_file():
        return ()
    words = []
    for line in CMUDICT.read_text(encoding="latin-1").splitlines():
        if line.startswith('("'):
            w = line[2 : line.index('"', 2)]
            if w.isalpha() and 2 <= len(w) <= 11:
                words.append(w)
    return tuple(words)


def _pick(rng: np.random.Generator, items: tuple[str, ...]) -> str:
    return items[int(rng.integers(len(items)))]


def sentence(rng: np.random.Generator) -> str:
    """One templated sentence, statement or question."""
    if rng.random() < 0.2:
        return (
            f"{_pick(rng, _QUESTIONS)} {_pick(rng, _VERBS)} {_pick(rng, _OBJECTS)} "
            f"{_pick(rng, _TAILS)}".strip()
            + "?"
        )
    parts = [_pick(rng, _OPENERS), _pick(rng, _SUBJECTS), _pick(rng, _VERBS), _pick(rng, _OBJECTS)]
    parts.append(_pick(rng, _TAILS))
    return " ".join(p for p in parts if p) + "."


def word_string(rng: np.random.Generator, n_min: int = 3, n_max: int = 12) -> str:
    """Random dictionary words, sometimes with commas (pauses) between them."""
    words = dictionary_words() or tuple(w for p in (_OBJECTS + _VERBS) for w in p.split())
    n = int(rng.integers(n_min, n_max + 1))
    out = []
    for _ in range(n):
        out.append(_pick(rng, words))
        if rng.random() < 0.12:
            out[-1] += ","
    return " ".join(out).rstrip(",") + "."


def random_text(rng: np.random.Generator) -> str:
    """Half sentences (one or two), half random word strings."""
    if rng.random() < 0.5:
        return " ".join(sentence(rng) for _ in range(int(rng.integers(1, 3))))
    return word_string(rng)
