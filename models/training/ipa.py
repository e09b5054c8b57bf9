"""Pronunciations for recorded speech in languages the aligner has no dictionary for.

pocketsphinx's wheel ships an English acoustic model and the CMU dictionary only. For
the French, Italian, Spanish and Russian Asterisk prompts, espeak-ng writes each word's
phonemes in IPA (``espeak-ng -v fr --ipa --sep=_``), and every IPA phoneme is mapped to
the nearest English (ARPAbet) phone: ``ʁ`` -> R, ``y`` -> UW (rounded, as the lips are),
nasal vowels -> their oral vowel, ``ts`` -> T S. Each word becomes a pseudo-word
(:data:`PREFIX` plus its phones) that the aligner adds to its dictionary on the fly.

What matters downstream is where the lips close and how far the mouth opens, so the
mapping keeps place of articulation and rounding (every bilabial stays P, B or M;
rounded vowels stay rounded) and lets the rest be approximate.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import unicodedata
from functools import cache

PREFIX = "zz_"  # pseudo-words: PREFIX + phones joined by "_" (never a dictionary word)

# IPA phoneme (stress, length and secondary marks removed) -> ARPAbet phones.
_IPA: dict[str, str] = {
    # vowels and diphthongs
    "a": "AA", "ɑ": "AA", "ɒ": "AA", "ɐ": "AH", "ə": "AH", "ʌ": "AH", "ɘ": "AH", "ɤ": "AH",
    "æ": "AE", "ɛ": "EH", "e": "EY", "i": "IY", "ɪ": "IH", "ɨ": "IH", "ᵻ": "IH",
    "y": "UW", "ʉ": "UW", "ɯ": "UW", "u": "UW", "ʏ": "UH", "ø": "UH", "œ": "UH", "ɵ": "UH",
    "ʊ": "UH", "o": "OW", "ɔ": "AO", "ɜ": "ER", "ɚ": "ER", "ɞ": "ER",
    "eɪ": "EY", "oʊ": "OW", "əʊ": "OW", "aɪ": "AY", "ɑɪ": "AY", "aʊ": "AW", "ɔɪ": "OY",
    # consonants
    "p": "P", "b": "B", "m": "M", "β": "B", "ɱ": "M",
    "f": "F", "v": "V", "ʋ": "V", "θ": "TH", "ð": "DH",
    "t": "T", "d": "D", "ʈ": "T", "ɖ": "D", "n": "N", "ɳ": "N", "ɲ": "N Y", "ŋ": "NG",
    "s": "S", "z": "Z", "ʃ": "SH", "ʒ": "ZH", "ɕ": "SH", "ʂ": "SH", "ʐ": "ZH", "ʑ": "ZH",
    "tʃ": "CH", "dʒ": "JH", "tɕ": "CH", "ts": "T S", "dz": "D Z",
    "k": "K", "c": "K", "ɡ": "G", "g": "G", "ɟ": "JH", "ɣ": "G", "x": "HH", "h": "HH",
    "ç": "HH", "l": "L", "ɫ": "L", "ɭ": "L", "ɬ": "L", "ʎ": "L Y",
    "r": "R", "ɾ": "R", "ɽ": "R", "ʁ": "R", "ʀ": "R", "ɹ": "R",
    "j": "Y", "ʝ": "Y", "w": "W", "ɥ": "W", "ʔ": "",
}  # fmt: skip
# Marks dropped before the lookup: stress, length, palatalisation, velarisation,
# nasalisation, syllabicity, dental, tie bars, aspiration, linking, and espeak-ng's own
# variant marks.
_MARKS = set('ˈˌːˑʲˠʰ.‿-"^\u0303\u0329\u032a\u032f\u0361')
# espeak-ng's language switches around a foreign word: "(en)wˈɜːld(fr)".
_SWITCH = re.compile(r"\([a-z-]+\)")


def phones_of(token: str) -> list[str] | None:
    """One espeak-ng IPA word (phonemes separated by ``_``) -> ARPAbet phones (repeats
    merged: geminates are one long phone), or None when a symbol has no mapping."""
    out: list[str] = []
    for ph in _SWITCH.sub("", token).split("_"):
        ph = "".join(c for c in unicodedata.normalize("NFD", ph) if c not in _MARKS)
        if not ph:
            continue
        if ph in _IPA:
            mapped = _IPA[ph].split()
        elif all(c in _IPA for c in ph):  # a cluster espeak-ng wrote as one phoneme
            mapped = [q for c in ph for q in _IPA[c].split()]
        else:
            return None
        out += [q for q in mapped if not out or q != out[-1]]
    return out


def espeak_ipa(text: str, voice: str) -> list[str]:
    """Text -> espeak-ng's IPA words (phonemes joined by ``_``); numbers and
    abbreviations are read the way the language reads them. One espeak-ng run per text
    and voice in a process (training and evaluation list the same prompts again)."""
    return list(_espeak_ipa(text, voice))


@cache
def _espeak_ipa(text: str, voice: str) -> tuple[str, ...]:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise FileNotFoundError("espeak-ng is not installed (scripts/apt-deps.sh)")
    proc = subprocess.run(
        [exe, "-v", voice, "-q", "--ipa", "--sep=_"],
        input=text, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return tuple(proc.stdout.split())


def pseudo_words(text: str, voice: str) -> list[str] | None:
    """Text -> aligner pseudo-words (:func:`word_phones` reads them back), or None when
    a phoneme has no mapping or nothing is left to say."""
    words = []
    for token in espeak_ipa(text, voice):
        phones = phones_of(token)
        if phones is None:
            return None
        if phones:
            words.append(PREFIX + "_".join(p.lower() for p in phones))
    return words or None


def word_phones(word: str) -> str | None:
    """A pseudo-word -> its space-separated ARPAbet phones (None for a dictionary word)."""
    if not word.startswith(PREFIX):
        return None
    return " ".join(word[len(PREFIX) :].upper().split("_"))


def english_words(words: list[str]) -> tuple[str, ...] | None:
    """Normalised English words -> the words to align: the aligner's dictionary words as
    they are, the others as espeak-ng ``en-us`` pseudo-words; None when one has no
    phones."""
    from headcast.models.training import real

    out: list[str] = []
    for word in words:
        if real.in_dictionary(word):
            out.append(word)
            continue
        pseudo = pseudo_words(word, "en-us")
        if pseudo is None:
            return None
        out += pseudo
    return tuple(out)
