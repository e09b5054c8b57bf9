"""English speech unpacked from two freeware games' Debian packages
(models/training/drascula.py, models/training/fotaq.py), on small stand-ins built here
with the same layouts."""

from __future__ import annotations

import dataclasses
import io
import os
import shutil
import stat
import struct
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from headcast.models.training import corpora, drascula, fotaq, real
from headcast.models.training.visemes import BILABIAL

HAVE_ALIGNER = shutil.which("espeak-ng") is not None and not real.missing_packages()


def _entry(text: str) -> bytes:
    """One drascula.dat line: its size (the field, the text, NUL, padding to 4) and text."""
    size = (2 + len(text) + 1 + 3) & ~3
    return struct.pack(">H", size) + text.encode("latin-1").ljust(size - 2, b"\0")


def make_dat(tables: dict[str, list[str]], languages: int = 2) -> bytes:
    """A drascula.dat: engine tables (one zeroed element each), then the text tables,
    English first and a second language whose lines must not be read."""
    out = b"DRASCULA" + bytes([6])
    for size in drascula._TABLE_SIZES:
        out += struct.pack(">H", 1) + bytes(size)
    out += struct.pack(">H", languages)
    for t in range(drascula.N_TEXT_TABLES):
        prefix = drascula._TEXTS[t] if t < len(drascula._TEXTS) else None
        lines = tables.get(prefix, [""]) if prefix is not None else [""]
        out += struct.pack(">H", len(lines))
        for lang in range(languages):
            said = lines if lang == 0 else [f"OTRA {k}" for k in range(len(lines))]
            block = b"\0\0" + b"".join(_entry(s) for s in said)
            out += struct.pack(">H", len(block)) + block
    return out


def to_als(audio: np.ndarray) -> bytes:
    """float32 16 kHz -> unsigned 8-bit 11025 Hz, as the game's clips are stored."""
    from headcast.models.audio.resample import Resampler

    rs = Resampler(16_000, drascula.ALS_RATE)
    x = np.concatenate([rs.push(audio), rs.flush()])
    return np.clip(np.round(x * 127 + 128), 0, 255).astype(np.uint8).tobytes()


def test_drascula_lines_by_clip_prefix_and_number(tmp_path: Path) -> None:
    tables = {
        "": ["", "THAT'S THE SECOND BIGGEST DOOR I'VE SEEN", "", "NOT REALLY"],
        "D": ["", "DAMN IT! WHAT WENT WRONG?"],
        "VB": ["", "YOU IDIOT!!"],
    }
    (tmp_path / "drascula.dat").write_bytes(make_dat(tables))
    for name in ("1", "2", "3", "9", "D1", "VB1", "S1", "X"):
        (tmp_path / f"{name}.ALS").write_bytes(bytes([128]) * 100)
    texts = drascula.texts(tmp_path)
    # Empty lines (2), numbers past the table (9), prefixes with no table (S) and names
    # without a number are left out; the second language is never read.
    assert texts == {
        "1": "THAT'S THE SECOND BIGGEST DOOR I'VE SEEN",
        "3": "NOT REALLY",
        "D1": "DAMN IT! WHAT WENT WRONG?",
        "VB1": "YOU IDIOT!!",
    }
    with pytest.raises(drascula.DatError):
        drascula.read_texts(b"NOTDRASCULA")
    with pytest.raises(drascula.DatError):
        drascula.read_texts(make_dat(tables)[:200])  # cut inside the text tables


def test_drascula_clips_decode_to_16k(tmp_path: Path) -> None:
    t = np.arange(drascula.ALS_RATE) / drascula.ALS_RATE  # one second
    raw = np.round(128 + 100 * np.sin(2 * np.pi * 440 * t)).astype(np.uint8)
    (tmp_path / "1.ALS").write_bytes(raw.tobytes())
    audio = drascula.load_als(tmp_path / "1.ALS")
    assert audio.dtype == np.float32 and abs(len(audio) - 16_000) <= 2
    mid = audio[2000:14000]
    assert 0.70 < np.max(np.abs(mid)) < 0.82  # 100/128 of full scale
    spectrum = np.abs(np.fft.rfft(mid * np.hanning(len(mid))))
    assert abs(np.argmax(spectrum) * 16_000 / len(mid) - 440) < 3


@pytest.mark.skipif(not HAVE_ALIGNER, reason="recorded-speech packages or espeak-ng missing")
def test_drascula_clip_aligns_with_out_of_dictionary_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("pocketsphinx")
    prompt = next(p for p in real.prompts("en") if p.name == "conf-getpin")
    audio = real.load_prompt_audio(prompt)
    # The prompt's words, upper case as the game writes them; the clip's words are the
    # prompt's, so alignment must find them in the 8-bit, 11 kHz copy.
    line = " ".join(prompt.words).upper() + "!!"
    (tmp_path / "drascula.dat").write_bytes(
        make_dat({"": ["", line], "D": ["", "IGOR!! DRASCULA"]})
    )
    (tmp_path / "1.ALS").write_bytes(to_als(audio))
    (tmp_path / "D1.ALS").write_bytes(to_als(audio[:8000]))
    monkeypatch.setitem(
        corpora.CORPORA,
        "drascula",
        dataclasses.replace(corpora.CORPORA["drascula"], sounds_dir=tmp_path),
    )
    found = {p.name: p for p in real.prompts("drascula")}
    assert found["1"].words == prompt.words and found["1"].speaker == "drascula:en"
    assert found["1"].path == tmp_path / "1.ALS" and real.prompt_split(found["1"]) == "train"
    # Names outside the dictionary become espeak-ng pseudo-words the aligner can read.
    from headcast.models.training import ipa

    assert found["D1"].words[0] == "igor"
    assert all(ipa.word_phones(w) for w in found["D1"].words[1:])
    aligned = real.align(found["1"])
    assert aligned is not None
    speech = [p for p, _, _ in aligned.phones if p != "SIL"]
    assert speech[0] == "P"  # "please"
    assert sum(v == BILABIAL for v, _, _ in real.visemes(aligned)) >= 2


def _fake_apt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, deb: Path | None) -> None:
    """An ``apt-get`` on PATH whose ``download`` copies ``deb`` (or fails)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "apt-get"
    body = f'cp "{deb}" .' if deb else 'echo "E: Unable to locate package" >&2; exit 100'
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="dpkg-deb missing")
def test_game_packages_unpack_without_installing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = tmp_path / "tree"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text(
        "Package: drascula\nVersion: 1.0\nArchitecture: all\nMaintainer: x <x@x>\nDescription: x\n"
    )
    en = tree / drascula.EN_DIR
    en.mkdir(parents=True)
    (en / "drascula.dat").write_bytes(make_dat({"": ["", "HELLO"]}))
    (en / "1.ALS").write_bytes(bytes([128]) * 50)
    deb = tmp_path / "drascula_1.0_all.deb"
    subprocess.run(["dpkg-deb", "--build", str(tree), str(deb)], check=True, capture_output=True)
    _fake_apt(tmp_path, monkeypatch, deb)
    target = tmp_path / "cache" / "drascula" / drascula.EN_DIR
    assert drascula.fetch(target) == target
    assert drascula.texts(target) == {"1": "HELLO"}
    (en / "1.ALS").unlink()
    assert (
        drascula.fetch(target) == target and (target / "1.ALS").is_file()
    )  # kept, not fetched again


def test_game_package_that_apt_cannot_fetch_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_apt(tmp_path, monkeypatch, None)
    with pytest.raises(real.RealSpeechMissing, match="apt-get download drascula.*Unable to locate"):
        drascula.fetch(tmp_path / "cache" / drascula.EN_DIR)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.dat"))


def _string(text: str, align: int = 4) -> bytes:
    """A length byte and text, padded so the next field starts aligned."""
    raw = bytes([len(text)]) + text.encode("latin-1")
    return raw.ljust((len(raw) + align - 1) // align * align, b"\0") if text else b"\0"


def _dog(
    key: int, joe: list[tuple[int, str]], person: list[tuple[int, str]], again: tuple[str, str]
) -> bytes:
    """A conversation file: header, the hero's lines, the other's, the two 'again' lines."""
    body = bytearray(32)
    for line_id, text in joe:
        body += b"\0\0" + struct.pack(">h", line_id) + _string(text)
    person_at = len(body)
    for line_id, text in person:
        body += b"\0\0" + struct.pack(">h", line_id) + _string(text)
    again_at = len(body)
    body += _string(again[0], 2) + _string(again[1], 2)
    struct.pack_into(">5h", body, 0, 0, 0, key, len(joe), len(person))
    struct.pack_into(">3H", body, 22, person_at, 0, again_at)
    return bytes(20) + bytes(body)


def _wav(seconds: float = 0.3) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(11025)
        w.writeframes(bytes(2 * int(seconds * 11025)))
    return buf.getvalue()


def make_archive(clips: list[str]) -> bytes:
    """A queen.1c with the text entries and the named clips (WAV in place of MP3)."""
    replies = ["I can't do that*02"] + [f"reply {i}" for i in range(2, fotaq.REPLIES + 1)]
    lines = ["It's a bag of pebbles*03", "Hmm*GDA map of the moon*02with craters", "bag", "room"]
    lines += [f"verb {i}" for i in range(fotaq.VERBS)] + replies
    entries = {
        "QUEEN.JAS": bytes(20) + struct.pack(">4H", 1, 1, 0, 2),
        "QUEEN2.JAS": "\r\n".join(lines).encode("latin-1"),
        "BOB1.DOG": _dog(
            5,
            [(0, "Hello*01"), (0xBE, "Nice boat.")],
            [(0xBE, "Thanks.*03Bye now."), (0xC0, "It rains.")],
            ("Back again?", "0unused"),
        ),  # fmt: skip
        # Another conversation with the same talk key claims one name with other words.
        "BOB2.DOG": _dog(5, [], [(0xC0, "It snows.")], ("Back again?", "")),
        **{f"{c}.SB": _wav() for c in clips},
    }
    table = b"QTBLCEM10\0\0\0\0" + struct.pack(">H", len(entries))
    data = b""
    start = len(table) + 21 * len(entries)
    for name, body in entries.items():
        table += (
            name.encode().ljust(12, b"\0")
            + b"\0"
            + struct.pack(">II", start + len(data), len(body))
        )
        data += body
    return table + data


CLIPS = ["JOE00011", "JOE00411", "JOE00422", "JOE00423", "JOE00421", "05SSSSJ1", "0500BEJ1",
         "0500BEP1", "0500BEP2", "0500C0P1", "05XXXXP1", "05XXXXJ1"]  # fmt: skip


def test_fotaq_clip_names_say_which_line_and_segment(tmp_path: Path) -> None:
    archive = make_archive(CLIPS)
    listed = fotaq.index(archive)
    assert set(listed) == {"QUEEN.JAS", "QUEEN2.JAS", "BOB1.DOG", "BOB2.DOG"} | {
        f"{c}.SB" for c in CLIPS
    }
    offset, size = listed["JOE00011.SB"]
    assert archive[offset : offset + 4] == b"RIFF" and size == len(_wav())
    assert fotaq.segments("trunk*02*10Looks nice*02And more*24") == [
        (1, "trunk"), (3, "Looks nice"), (4, "And more")]  # fmt: skip
    assert fotaq.segments("Hi*GDthere*XY(100,100),1ok") == [(2, "there"), (3, "ok")]
    (tmp_path / "queen.1c").write_bytes(archive)
    fotaq.unpack(tmp_path / "queen.1c", tmp_path / "clips")
    assert fotaq.texts(tmp_path / "clips") == {
        "JOE00011": "I can't do that",  # the first stock reply
        "JOE00411": "It's a bag of pebbles",  # the first description
        "JOE00422": "A map of the moon",  # "Hmm" is cut by *GD, segment 2 speaks
        "JOE00423": "with craters",
        "05SSSSJ1": "Hello",
        "0500BEJ1": "Nice boat.",
        "0500BEP1": "Thanks.",
        "0500BEP2": "Bye now.",
        "05XXXXP1": "Back again?",
    }  # 0500C0P1: two conversations say it differently; 05XXXXJ1: marked unused


def test_fotaq_keeps_at_most_max_clips_spread_over_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "queen.1c").write_bytes(make_archive(CLIPS))
    fotaq.unpack(tmp_path / "queen.1c", tmp_path / "clips")
    monkeypatch.setattr(fotaq, "MAX_CLIPS", 3)
    kept = fotaq.texts(tmp_path / "clips")
    assert list(kept) == ["0500BEJ1", "05SSSSJ1", "JOE00411"]  # every third of nine
    assert len(fotaq.texts(tmp_path / "clips", 100)) == 9  # asked for more: all of them
    assert list(fotaq.texts(tmp_path / "clips", 1)) == ["0500BEJ1"]


def test_fotaq_fetch_writes_clips_out_of_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def fake_unpack(package: str, root: Path, marker: str) -> None:
        calls.append(package)
        (root / marker).parent.mkdir(parents=True)
        (root / marker).write_bytes(make_archive(CLIPS[:3]))

    monkeypatch.setattr(corpora, "unpack_deb", fake_unpack)
    clips = tmp_path / "fotaq" / fotaq.CLIPS
    assert fotaq.fetch(clips) == clips and calls == [fotaq.PACKAGE]
    assert sorted(p.name for p in clips.glob("*.SB")) == sorted(f"{c}.SB" for c in CLIPS[:3])
    assert fotaq.fetch(clips) == clips and calls == [fotaq.PACKAGE]  # once
    # Both games train by default, each as one speaker, and can be left out.
    from headcast.models.training.train import TRAIN_SPEAKERS, TrainConfig

    assert TRAIN_SPEAKERS[-2:] == ("drascula", "fotaq")
    assert TrainConfig(speakers=("en", "drascula", "fotaq")).speakers == ("en", "drascula", "fotaq")
    assert corpora.is_recorded("fotaq:en") and corpora.CORPORA["fotaq"].packages == ()


@pytest.mark.skipif(not HAVE_ALIGNER, reason="recorded-speech packages or espeak-ng missing")
def test_train_stops_before_training_when_a_game_cannot_be_fetched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("pocketsphinx")
    from headcast.models.training.synth import available_engines
    from headcast.server.cli import main

    if not all(available_engines().values()):
        pytest.skip("speech engines missing (scripts/apt-deps.sh test)")
    _fake_apt(tmp_path, monkeypatch, None)
    game = dataclasses.replace(
        corpora.CORPORA["drascula"], sounds_dir=tmp_path / "c" / drascula.EN_DIR
    )
    monkeypatch.setitem(corpora.CORPORA, "drascula", game)
    out = tmp_path / "m.onnx"
    assert main(["train", "motion", "-o", str(out), "--speakers", "en,drascula"]) == 2
    err = capsys.readouterr().err
    assert "apt-get download drascula" in err and "Traceback" not in err
    assert not out.exists()
