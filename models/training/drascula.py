"""Drascula's spoken dialogue: English running speech of other voices, for training.

Debian's ``drascula`` package (the freeware adventure game "Drascula: The Vampire
Strikes Back" by Alcachofa Soft, freely redistributable; ScummVM runs it) ships the
game's English speech as raw clips, ``usr/share/scummvm/drascula/en/<prefix><n>.ALS``
(unsigned 8-bit mono, 11025 Hz), and every line of its text, in six languages, in
ScummVM's ``drascula.dat`` beside them. A clip's prefix names the character and with it
the text table (none: the hero, John Hacker; ``D`` Drascula, ``VB`` von Braun, ``I``
Igor, ``B`` the drunk, ``BJ`` Billie Jean, ``P`` the pianist, ``T`` the bartender, ``E``
and ``L`` two more), its number the line. About 740 acted sentences, 46 min, by the
game's voice actors — other voices, microphones and a narrower band (5.5 kHz) than any
Asterisk prompt. The few clips whose prefix has no table (``S``, ``F``) are left out.

The package is not installed (it would pull in ScummVM): ``apt-get download`` fetches the
``.deb`` and ``dpkg-deb -x`` unpacks it into the download cache
(:func:`models.training.corpora.download_cache`). Words outside the aligner's dictionary
(names, drawn-out "thiiiisss") take their phones from espeak-ng's ``en-us``.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

PACKAGE = "drascula"
EN_DIR = "usr/share/scummvm/drascula/en"
ALS_RATE = 11025
# Element sizes (bytes) of the engine tables that precede the text in drascula.dat, in
# file order; each table is a big-endian uint16 count followed by its elements.
_TABLE_SIZES = (4, 4, 4, 2, 4, 2, 4, 2, 2, 20, 20, 10, 8)
# The text tables, in file order; the speech clips' prefixes name the first ten.
_TEXTS = ("", "D", "B", "BJ", "E", "I", "L", "P", "T", "VB")
N_TEXT_TABLES = 15
ENGLISH = 0  # the first language of each table


class DatError(ValueError):
    """drascula.dat is not laid out as expected."""


def read_texts(dat: bytes) -> dict[str, list[str]]:
    """drascula.dat -> {clip prefix: the English lines of its table, by line number}.

    Layout: ``DRASCULA``, a version byte, the engine tables of :data:`_TABLE_SIZES`, the
    number of languages (uint16), then :data:`N_TEXT_TABLES` text tables, each a line
    count and per language a block length and block. In a block, after two bytes, each
    line is a uint16 entry size (counting itself and the padded, NUL-ended text) and its
    text.
    """
    if not dat.startswith(b"DRASCULA"):
        raise DatError("not a drascula.dat file")
    pos = 9

    def u16() -> int:
        nonlocal pos
        if pos + 2 > len(dat):
            raise DatError("drascula.dat ends early")
        (value,) = struct.unpack_from(">H", dat, pos)
        pos += 2
        return value

    for size in _TABLE_SIZES:
        count = u16()
        pos += count * size
    languages = u16()
    out: dict[str, list[str]] = {}
    for table in range(N_TEXT_TABLES):
        count = u16()
        blocks = []
        for _ in range(languages):
            length = u16()
            blocks.append(dat[pos : pos + length])
            pos += length
        if table < len(_TEXTS):
            out[_TEXTS[table]] = _lines(blocks[ENGLISH], count)
    return out


def _lines(block: bytes, count: int) -> list[str]:
    lines = []
    at = 2
    for _ in range(count):
        if at + 2 > len(block):
            raise DatError("a text block ends early")
        (size,) = struct.unpack_from(">H", block, at)
        end = block.find(b"\0", at + 2)
        lines.append(block[at + 2 : end if end >= 0 else len(block)].decode("latin-1"))
        if size < 4:
            raise DatError("a text entry is shorter than its size field")
        at += size
    return lines


def texts(en_dir: Path) -> dict[str, str]:
    """{clip name (``D11``): its English line} for the clips in ``en_dir`` whose line
    exists and is not empty."""
    tables = read_texts((en_dir / "drascula.dat").read_bytes())
    out = {}
    for clip in sorted(en_dir.glob("*.ALS")):
        prefix = clip.stem.rstrip("0123456789")
        number = clip.stem[len(prefix) :]
        lines = tables.get(prefix)
        if lines is None or not number.isdigit() or int(number) >= len(lines):
            continue
        line = lines[int(number)].strip()
        if line:
            out[clip.stem] = line
    return out


def load_als(path: Path) -> np.ndarray:
    """A raw clip (unsigned 8-bit mono, 11025 Hz) -> float32 (N,) 16 kHz mono."""
    from headcast.models.audio.features import SAMPLE_RATE
    from headcast.models.audio.resample import Resampler

    raw = np.frombuffer(path.read_bytes(), np.uint8).astype(np.float32)
    rs = Resampler(ALS_RATE, SAMPLE_RATE)
    return np.clip(np.concatenate([rs.push((raw - 128.0) / 128.0), rs.flush()]), -1, 1)


def fetch(en: Path) -> Path:
    """``en``, the English clips' folder (``<root>/`` :data:`EN_DIR`), unpacked from the
    Debian package into ``<root>`` the first time. Raises
    :class:`models.training.real.RealSpeechMissing` when apt cannot fetch the package."""
    from headcast.models.training.corpora import unpack_deb

    if not (en / "drascula.dat").is_file():
        unpack_deb(PACKAGE, en.parents[len(Path(EN_DIR).parts) - 1], f"{EN_DIR}/drascula.dat")
    return en
