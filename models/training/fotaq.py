"""Flight of the Amazon Queen's spoken dialogue: English running speech of many voices.

Debian's ``flight-of-the-amazon-queen`` package (the freeware adventure game of 1995 by
Interactive Binary Illusions, freely redistributable; ScummVM runs it) ships the CD
version's speech inside one archive, ``queen.1c``: about 6700 MP3 clips (``*.SB``,
11025 Hz) beside the game's text, by a cast of dozens of voice actors. A clip's name
says which line it speaks:

* ``JOE<nnnn><k>``: the hero's object descriptions and stock replies, line ``nnnn`` of
  ``QUEEN2.JAS`` (descriptions first, then after the names, rooms and 12 verbs, the 40
  replies numbered from 1; descriptions from 41);
* ``<key><id><J|P><k>``: a conversation (``*.DOG``): ``key`` the file's talk key as two
  characters, ``id`` the line's id as four hex digits (spaces become ``0``), ``J`` the
  hero's line, ``P`` the other person's;
* ``k``: which segment of the line, counted from 1 in hex. A line is cut into segments
  at ``*`` followed by a two-character stage command that applies to the text before
  it (text before ``*GD`` or ``*GM`` is not spoken but uses up a number; ``*XY``
  carries 11 more characters).

Cut-scene lines (``*.CUT``) are left out: which of them are spoken whole depends on the
scene's object records. The package is not installed (it would pull in ScummVM):
``apt-get download`` fetches the ``.deb``, and the clips are written out of the archive
into the download cache (:func:`models.training.corpora.download_cache`).
"""

from __future__ import annotations

import re
import shutil
import struct
from pathlib import Path

PACKAGE = "flight-of-the-amazon-queen"
ARCHIVE = "usr/share/scummvm/flight-of-the-amazon-queen/queen.1c"
CLIPS = "clips"  # the folder the clips are written to, beside the unpacked package
REPLIES = 40  # the hero's stock replies after the descriptions, names, rooms and verbs
VERBS = 12
MAX_CLIPS = 1500  # clips kept, spread evenly over the sorted names (~65 of ~190 min)
CLASH = "\0"  # a clip name two lines claim
_COMMAND = re.compile(r"\*(XY.{11}|..)", re.S)


def index(data: bytes) -> dict[str, tuple[int, int]]:
    """``queen.1c`` -> {entry name: (offset, size)}: a big-endian uint16 entry count at
    0x0d, then 21-byte entries (12-byte name, a byte, offset and size as uint32)."""
    if len(data) < 15:
        raise ValueError("not a queen.1c archive")
    (count,) = struct.unpack_from(">H", data, 0x0D)
    out = {}
    for i in range(count):
        entry = data[0x0F + 21 * i : 0x0F + 21 * (i + 1)]
        if len(entry) < 21:
            raise ValueError("queen.1c's index ends early")
        name = entry[:12].rstrip(b"\0").decode("latin-1")
        offset, size = struct.unpack_from(">II", entry, 13)
        out[name] = (offset, size)
    return out


def segments(line: str) -> list[tuple[int, str]]:
    """A line -> [(segment number from 1, its words)] for the segments that speak."""
    out = []
    pieces = _COMMAND.split(line)  # text, command, text, command, ...
    for number, k in enumerate(range(0, len(pieces), 2), 1):
        text = " ".join(pieces[k].split())
        # A stage command applies to the text before it; *GD and *GM play nothing.
        silent = k + 1 < len(pieces) and pieces[k + 1][:2] in ("GD", "GM")
        if text and not silent:
            out.append((number, text))
    return out


def _emit(out: dict[str, str], prefix: str, line: str) -> None:
    prefix = prefix.replace(" ", "0").upper()
    for number, text in segments(line):
        name = f"{prefix}{number:X}"
        # Two conversations can share a talk key: a name said two ways is left out.
        out[name] = text if out.get(name, text) == text else CLASH


def descriptions(jas: bytes, jas2: bytes) -> dict[str, str]:
    """``QUEEN.JAS`` (its counts) and ``QUEEN2.JAS`` (the lines) -> the hero's clips."""
    rooms, names, _, count = struct.unpack_from(">4H", jas, 20)
    lines = jas2.decode("latin-1").split("\r\n")
    replies = count + names + rooms + VERBS
    out: dict[str, str] = {}
    for i in range(1, REPLIES + 1):
        if replies + i - 1 < len(lines):
            _emit(out, f"JOE{i:04d}", lines[replies + i - 1])
    for d in range(1, min(count, len(lines)) + 1):
        _emit(out, f"JOE{d + REPLIES:04d}", lines[d - 1])
    return out


def _string(b: bytes, at: int, align: int = 4) -> tuple[str, int]:
    """A length byte and its text, the next offset aligned to ``align`` (when not empty)."""
    n = b[at]
    if not n:
        return "", at + 1
    return b[at + 1 : at + 1 + n].decode("latin-1"), (at + n + align) & ~(align - 1)


def dialogue(dog: bytes) -> dict[str, str]:
    """One ``*.DOG`` file -> {clip stem: words} of its spoken lines."""
    b = dog[20:]
    level_max, _, key, joe_max, person_max = struct.unpack_from(">5h", b, 0)
    person, _, again = struct.unpack_from(">3H", b, 22)
    out: dict[str, str] = {}
    for start, count, who in ((32 + abs(level_max) * 96, joe_max, "J"), (person, person_max, "P")):
        at = start
        for _ in range(count):
            (line_id,) = struct.unpack_from(">h", b, at + 2)
            text, at = _string(b, at + 4)
            if line_id == 0 and who == "J":  # the hero's opening line, unless marked unused
                if text and text[0] != "0":
                    _emit(out, f"{key:2d}SSSSJ", text)
            else:
                _emit(out, f"{key:2d}{line_id:4x}{who}", text)
    first, at = _string(b, again, 2)
    second, _ = _string(b, at, 2)
    _emit(out, f"{key:2d}XXXXP", first)
    if second and second[0] != "0":
        _emit(out, f"{key:2d}XXXXJ", second)
    return out


def texts(clips: Path, limit: int | None = None) -> dict[str, str]:
    """{clip stem: its words} for the clips written to ``clips`` (with the archive's text
    entries, ``QUEEN.JAS``, ``QUEEN2.JAS`` and ``*.DOG``, written beside them); at most
    ``limit`` (None: :data:`MAX_CLIPS`), spread evenly over the sorted names."""
    found = descriptions((clips / "QUEEN.JAS").read_bytes(), (clips / "QUEEN2.JAS").read_bytes())
    for dog in sorted(clips.glob("*.DOG")):
        for name, text in dialogue(dog.read_bytes()).items():
            found[name] = text if found.get(name, text) == text else CLASH
    names = [n for n, t in sorted(found.items()) if t != CLASH and (clips / f"{n}.SB").is_file()]
    limit = MAX_CLIPS if limit is None else limit
    step = max(1.0, len(names) / limit)
    keep = [names[int(i * step)] for i in range(min(len(names), limit))]
    return {n: found[n] for n in keep}


def unpack(archive: Path, clips: Path) -> None:
    """Write the archive's ``*.SB`` clips and text entries to ``clips``."""
    data = archive.read_bytes()
    clips.mkdir(parents=True, exist_ok=True)
    for name, (offset, size) in index(data).items():
        if name.endswith((".SB", ".DOG")) or name in ("QUEEN.JAS", "QUEEN2.JAS"):
            (clips / name).write_bytes(data[offset : offset + size])


def fetch(clips: Path) -> Path:
    """``clips`` (``<root>/`` :data:`CLIPS`), written out of the Debian package's archive
    the first time. Raises :class:`models.training.real.RealSpeechMissing` when apt
    cannot fetch the package."""
    from headcast.models.training.corpora import unpack_deb

    if (clips / "QUEEN2.JAS").is_file():
        return clips
    root = clips.parent
    unpack_deb(PACKAGE, root / "deb", ARCHIVE)
    part = root / f"{CLIPS}.part"
    unpack(root / "deb" / ARCHIVE, part)
    part.replace(clips)
    shutil.rmtree(root / "deb")  # the clips are all that is read
    return clips
