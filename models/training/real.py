"""Recorded human speech for training and evaluation: Asterisk's prompts (and others').

Debian's ``asterisk-core-sounds-en-g722`` holds 568 prompts (25 min) read by one
professional female speaker (Allison Smith), 16 kHz G.722, CC-BY-SA-3.0; their
transcripts are in ``asterisk-core-sounds-en`` (``core-sounds-en.txt.gz``). Phone timings
come from forced alignment with pocketsphinx (its PyPI wheel ships the en-us acoustic
model and CMU dictionary): words -> phones (CMU/ARPAbet, 10 ms frames) -> visemes.

Splits are by *prompt family* (the name up to its first ``-``: ``conf-getpin`` and
``conf-full`` are family ``conf``), so held-out sentences share no prompt family with
training ones:

* held out for evaluation only: :data:`HELDOUT_FAMILIES` (conference, directory, queue,
  touch-tone and ordinal-number prompts, 5.6 min);
* validation (choosing the closure gate, never trained on): :data:`VALIDATION_FAMILIES`;
* everything else trains. Prompts with no speech (``[beep]`` tones, ``silence/N`` room
  tone) are non-speech material for training, labelled closed.

Prompts with words outside the dictionary or numbers read more than one way are left
out. Other voices (:mod:`models.training.corpora`) are aligned the same way, words of
other languages with phones from espeak-ng (:mod:`models.training.ipa`); the
prompt-family splits apply to them too, and one speaker is held out whole (``"speaker"``).
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import re
import shutil
import subprocess
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from headcast.models.audio import AudioError
from headcast.models.audio.features import SAMPLE_RATE
from headcast.models.training import drascula, ipa
from headcast.models.training.corpora import CORPORA, GAMES, Corpus
from headcast.models.training.jobs import default_signals
from headcast.models.training.visemes import SILENCE, cmu_visemes, viseme_segments

log = logging.getLogger(__name__)

MOH_DIR = Path("/usr/share/asterisk/moh")
# Debian packages the real-speech data comes from (installed by scripts/apt-deps.sh test
# and, when missing, by `headcast train motion` itself).
PACKAGES = (*CORPORA["en"].packages, "asterisk-moh-opsound-wav")
HELDOUT_FAMILIES = frozenset({"conf", "dir", "queue", "tt", "digits/h"})
VALIDATION_FAMILIES = frozenset({"agent", "spy", "priv", "privacy"})
# One music-on-hold track is kept for evaluation; the others may be used in training.
HELDOUT_MUSIC = "reno_project-system.wav"
ALIGN_FRAME_S = 0.01  # pocketsphinx frame shift, seconds
EDGE_RANGE_DB = 35.0  # an edge frame quieter than the prompt's 95th percentile by this is silence
EDGE_MARGIN_S = 0.03  # kept around the first/last frame above that level
ALIGNMENT_VERSION = 1  # bump when alignment or text normalisation changes (cache key)

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


class RealSpeechMissing(RuntimeError):
    """The recorded-speech packages (or pocketsphinx) are not installed."""


@dataclass(frozen=True)
class Prompt:
    """One recording: ``name`` (path under its corpus's sounds folder without
    extension), its normalised words (empty for non-speech; pseudo-words of
    :mod:`models.training.ipa` outside English) and, once aligned, phone segments
    [(ARPAbet phone or ``SIL``, start s, end s)]; ``corpus`` a key of :data:`CORPORA`."""

    name: str
    words: tuple[str, ...]
    phones: tuple[tuple[str, float, float], ...] = ()
    corpus: str = "en"

    @property
    def key(self) -> str:
        """Unique over all corpora (English prompts keep their bare name)."""
        return self.name if self.corpus == "en" else f"{self.corpus}:{self.name}"

    @property
    def speaker(self) -> str:
        return CORPORA[self.corpus].speaker

    @property
    def family(self) -> str:
        return family(self.name)

    @property
    def path(self) -> Path:
        cor = CORPORA[self.corpus]
        return cor.sounds_dir / f"{self.name}{cor.suffix}"


def family(name: str) -> str:
    """``conf-getpin`` -> ``conf``; ``digits/h-7`` -> ``digits/h``; ``silence/5`` -> ``silence``."""
    folder, _, base = name.rpartition("/")
    if folder == "silence":
        return "silence"
    head = base.split("-")[0]
    return f"{folder}/{head}" if folder else head


def split_of(name: str) -> str:
    """ "heldout", "validation" or "train" for a prompt name."""
    fam = family(name)
    if fam in HELDOUT_FAMILIES:
        return "heldout"
    if fam in VALIDATION_FAMILIES:
        return "validation"
    return "train"


def prompt_split(prompt: Prompt) -> str:
    """:func:`split_of` for a prompt; ``"speaker"`` for every prompt of a held-out
    speaker."""
    return "speaker" if CORPORA[prompt.corpus].heldout else split_of(prompt.name)


def number_words(n: int) -> list[str]:
    """0..999 as English words (``105`` -> one hundred five)."""
    if not 0 <= n <= 999:
        raise ValueError(n)
    if n < 20:
        return [_ONES[n]]
    if n < 100:
        tens, ones = divmod(n, 10)
        return [_TENS[tens]] + ([_ONES[ones]] if ones else [])
    hundreds, rest = divmod(n, 100)
    return [_ONES[hundreds], "hundred"] + (number_words(rest) if rest else [])


def normalise(text: str) -> list[str] | None:
    """Transcript -> lower-case words; ``[]`` for non-speech (``[beep]``); None when the
    text cannot be read one way (numbers over 999, decimals, digits inside words)."""
    if text.strip().startswith("["):
        return []
    if re.search(r"\d[.,:]\d", text):  # decimals, times, thousands
        return None
    words: list[str] = []
    for token in re.split(r"[\s\-/]+", text.lower()):
        token = re.sub(r"[^a-z0-9']", "", token).strip("'")
        if not token:
            continue
        if token.isdigit():
            if len(token) > 3:
                return None
            words += number_words(int(token))
        elif any(c.isdigit() for c in token):
            return None
        else:
            words.append(token)
    return words


def missing_packages(packages: tuple[str, ...] = PACKAGES) -> list[str]:
    """Debian packages of ``packages`` (the English prompts by default; add
    :data:`OTHER_PACKAGES` for the other speakers) that are not installed."""
    if shutil.which("dpkg-query") is None:  # not Debian: look for what they install
        installs = {MOH_DIR: PACKAGES[-1]}
        for c in (c for c in CORPORA.values() if c.packages):  # the games are unpacked
            installs.update({c.sounds_dir: c.packages[0], c.transcripts: c.packages[-1]})
        return [p for path, p in installs.items() if p in packages and not path.exists()]
    missing = []
    for pkg in packages:
        proc = subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True, text=True
        )
        if "install ok installed" not in proc.stdout:
            missing.append(pkg)
    return missing


def install_packages(packages: list[str]) -> None:
    """apt-get install as root (or through passwordless sudo); RealSpeechMissing otherwise."""
    if not packages:
        return
    import os

    prefix: list[str] = []
    if os.geteuid() != 0:
        if shutil.which("sudo") is None:
            raise RealSpeechMissing(_hint(packages))
        prefix = ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    log.info("data: installing %s with apt-get", " ".join(packages))
    for cmd in (["apt-get", "update", "-qq"],
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages]):  # fmt: skip
        proc = subprocess.run(prefix + cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise RealSpeechMissing(f"{_hint(packages)} ({proc.stderr.strip()[-200:]})")


def _hint(packages: list[str]) -> str:
    return (
        f"recorded speech missing: install the Debian packages {' '.join(packages)} "
        "(scripts/apt-deps.sh test)"
    )


def prompts(corpus: str = "en", clips: int | None = None) -> list[Prompt]:
    """Every prompt of a corpus with a transcript that normalises (English) or that
    espeak-ng can phonemise (others), the ``silence/`` recordings (``clips``: see texts)."""
    cor = CORPORA[corpus]
    texts = cor.texts(clips)
    out = []
    for path in sorted(cor.sounds_dir.rglob(f"*{cor.suffix}")):
        name = path.relative_to(cor.sounds_dir).with_suffix("").as_posix()
        if family(name) == "silence":
            out.append(Prompt(name, (), corpus=corpus))
            continue
        if name not in texts:
            continue
        words = _words(texts[name], cor)
        if words is not None:
            out.append(Prompt(name, tuple(words), corpus=corpus))
    return out


def _words(text: str, cor: Corpus) -> list[str] | tuple[str, ...] | None:
    if cor.kind in GAMES:
        words = normalise(text)
        return ipa.english_words(words) if words else None
    if cor.espeak_voice is None:
        return normalise(text)
    if text.strip().startswith("["):
        return []
    return ipa.pseudo_words(text, cor.espeak_voice)


def load_prompt_audio(prompt: Prompt) -> np.ndarray:
    """float32 (N,) 16 kHz mono of one prompt."""
    if CORPORA[prompt.corpus].kind == "drascula":
        return drascula.load_als(prompt.path)
    from headcast.models.audio.decode import load_audio

    return load_audio(prompt.path)[0]


@lru_cache(maxsize=1)
def _decoder() -> object:
    """One pocketsphinx decoder per process (0.5 s to load the en-us model)."""
    try:
        from pocketsphinx import Decoder
    except ImportError as exc:
        raise RealSpeechMissing(
            "forced alignment needs pocketsphinx (requirements/phones.txt)"
        ) from exc
    return Decoder(samprate=SAMPLE_RATE, bestpath=False, loglevel="FATAL")


def in_dictionary(word: str) -> bool:
    """Whether the aligner's dictionary (CMU, lower case) has ``word``."""
    return _decoder().lookup_word(word) is not None  # type: ignore[attr-defined]


def align(prompt: Prompt, audio: np.ndarray | None = None) -> Prompt | None:
    """Forced alignment of ``prompt.words`` -> the prompt with phone timings, or None when
    a word is not in the dictionary or the aligner finds no path.

    audio: float32 (N,) 16 kHz (loaded from the prompt's file when None). Non-speech
    prompts come back as one ``SIL`` segment.
    """
    if audio is None:
        audio = load_prompt_audio(prompt)
    dur = len(audio) / SAMPLE_RATE
    if not prompt.words:
        return replace(prompt, phones=(("SIL", 0.0, dur),))
    dec = _decoder()
    for w in prompt.words:
        pron = ipa.word_phones(w)
        if pron is not None and dec.lookup_word(w) is None:  # type: ignore[attr-defined]
            dec.add_word(w, pron, True)  # type: ignore[attr-defined]
    if any(dec.lookup_word(w) is None for w in prompt.words):  # type: ignore[attr-defined]
        return None
    pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16).tobytes()
    try:
        dec.set_align_text(" ".join(prompt.words))  # type: ignore[attr-defined]
        for second_pass in (False, True):
            if second_pass:
                dec.set_alignment()  # type: ignore[attr-defined]
            dec.start_utt()  # type: ignore[attr-defined]
            dec.process_raw(pcm, full_utt=True)  # type: ignore[attr-defined]
            dec.end_utt()  # type: ignore[attr-defined]
        alignment = dec.get_alignment()  # type: ignore[attr-defined]
    except RuntimeError:
        return None
    if alignment is None:
        return None
    phones = []
    for ph in alignment.phones():
        start = ph.start * ALIGN_FRAME_S
        end = min(dur, (ph.start + ph.duration) * ALIGN_FRAME_S)
        if end > start:
            phones.append((str(ph.name), start, end))
    if not phones:
        return None
    return replace(prompt, phones=tuple(_trim_edges(phones, audio)))


def _trim_edges(
    phones: list[tuple[str, float, float]], audio: np.ndarray
) -> list[tuple[str, float, float]]:
    """The aligner often stretches the first and last phone over the room tone before and
    after the prompt; cut them to the audible part (frames within EDGE_RANGE_DB of the
    prompt's 95th-percentile level, plus EDGE_MARGIN_S) and call the rest silence."""
    hop = int(ALIGN_FRAME_S * SAMPLE_RATE)
    n = len(audio) // hop
    if n < 3:
        return phones
    db = 10 * np.log10(np.mean(audio[: n * hop].reshape(n, hop).astype(np.float64) ** 2, 1) + 1e-12)
    loud = np.flatnonzero(db > np.percentile(db, 95) - EDGE_RANGE_DB)
    if not len(loud):
        return phones
    first = max(0.0, loud[0] * ALIGN_FRAME_S - EDGE_MARGIN_S)
    last = min(len(audio) / SAMPLE_RATE, (loud[-1] + 1) * ALIGN_FRAME_S + EDGE_MARGIN_S)
    out: list[tuple[str, float, float]] = []
    for p, s, e in phones:
        if _is_silence(p):
            out.append(("SIL", s, e))
            continue
        s2, e2 = max(s, first), min(e, last)
        if e2 - s2 < ALIGN_FRAME_S:  # a phone wholly outside the audible part stays as it is
            s2, e2 = s, e
        if s2 > s:
            out.append(("SIL", s, s2))
        out.append((p, s2, e2))
        if e2 < e:
            out.append(("SIL", e2, e))
    return out


def _is_silence(phone: str) -> bool:
    """SIL and pocketsphinx's fillers (``+NSN+``, ``+SPN+``, ``+BREATH+``): no speech."""
    return phone == "SIL" or phone.startswith("+")


def visemes(prompt: Prompt) -> list[tuple[str, float, float]]:
    """Aligned phones -> [(viseme, start s, end s)]."""
    segs = [((SILENCE,) if _is_silence(p) else cmu_visemes(p), s, e) for p, s, e in prompt.phones]
    return viseme_segments(segs)


def _align_job(prompt: Prompt) -> Prompt | None:
    try:
        return align(prompt)
    except AudioError:  # a recording the decoder cannot read (a few of KLettres' files)
        return None


def aligned(todo: list[Prompt], workers: int = 2, cache: Path | None = None) -> list[Prompt]:
    """The prompts of ``todo`` that align, with phone timings, in order.

    ``cache``: a JSON file of earlier alignments (name -> words and phones, keyed by
    :data:`ALIGNMENT_VERSION`); prompts found there with the same words are not aligned
    again, new ones are added to it.
    """
    known: dict[str, dict[str, list]] = {}
    if cache is not None and cache.is_file():
        data = json.loads(cache.read_text("utf-8"))
        if data.get("version") == ALIGNMENT_VERSION:
            known = data["prompts"]
    missing = [p for p in todo if p.key not in known or tuple(known[p.key]["words"]) != p.words]
    if workers <= 1 or len(missing) < 8:
        done = [_align_job(p) for p in missing]
    else:
        # Workers with the default signal handlers, closed and joined (not terminated).
        with mp.get_context("fork").Pool(workers, initializer=default_signals) as pool:
            done = pool.map(_align_job, missing, chunksize=8)
            pool.close()
            pool.join()
    for p, d in zip(missing, done, strict=True):
        known[p.key] = {"words": list(p.words), "phones": [] if d is None else list(d.phones)}
    if missing:
        ok = sum(d is not None for d in done)
        log.info("data: %d of %d recorded prompts aligned", ok, len(missing))
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            cache.write_text(json.dumps({"version": ALIGNMENT_VERSION, "prompts": known}), "utf-8")
    out = []
    for p in todo:
        phones = known[p.key]["phones"]
        if phones:
            out.append(replace(p, phones=tuple((str(a), float(b), float(c)) for a, b, c in phones)))
    return out


def music_tracks(heldout: bool) -> list[Path]:
    """Music-on-hold tracks (non-speech beds): the evaluation's one, or the others."""
    tracks = sorted(MOH_DIR.glob("*.wav"))
    return [t for t in tracks if (t.name == HELDOUT_MUSIC) == heldout]
