"""The recorded speakers: Asterisk's prompt set read by professional voices.

English (Allison, the speaker of :mod:`models.training.real`'s held-out prompt
families) and the same prompts in other languages, whose words are phonemised by
espeak-ng (:mod:`models.training.ipa`). Debian ships each voice as
``asterisk-core-sounds-<lang>-g722`` (16 kHz G.722) with its transcripts in
``asterisk-core-sounds-<lang>`` (``core-sounds-<lang>.txt.gz``), CC-BY-SA-3.0.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SOUNDS_ROOT = Path("/usr/share/asterisk/sounds")
DOCS_ROOT = Path("/usr/share/doc")
SPEAKER = "asterisk:allison"


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

    @property
    def transcripts(self) -> Path:
        return DOCS_ROOT / f"asterisk-core-sounds-{self.key}/core-sounds-{self.key}.txt.gz"

    @property
    def packages(self) -> tuple[str, ...]:
        return (f"asterisk-core-sounds-{self.key}-g722", f"asterisk-core-sounds-{self.key}")


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
TRANSCRIPTS = CORPORA["en"].transcripts
OTHER_PACKAGES = tuple(p for c in CORPORA.values() if c.key != "en" for p in c.packages)


def is_recorded(voice: str) -> bool:
    """Whether a training example's voice is one of the recorded speakers."""
    return voice in {c.speaker for c in CORPORA.values()}
