"""``headcast motion``: JSON and CSV output, frame timing, readable errors."""

from __future__ import annotations

import csv
import json
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from headcast.models.channels import MOUTH_CHANNELS
from headcast.server.cli import main


def write_wav(path: Path, seconds: float, rate: int = 22_050) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    x = 0.3 * np.sin(2 * np.pi * 150 * t) * (np.sin(2 * np.pi * 3 * t) > 0)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((x * 32767).astype(np.int16).tobytes())
    return path


def test_json_output(tmp_path: Path) -> None:
    out = tmp_path / "motion.json"
    assert main(["motion", str(write_wav(tmp_path / "s.wav", 2.0)), "-o", str(out)]) == 0
    data = json.loads(out.read_text())
    assert set(data) == {"fps", "names", "frames"}
    assert data["fps"] == 25
    assert data["names"] == list(MOUTH_CHANNELS) and "jawOpen" in data["names"]
    frames = np.array(data["frames"])
    assert frames.shape == (50, len(MOUTH_CHANNELS))  # frame i is i/25 s: 2 s -> 50 frames
    assert frames.min() >= 0.0 and frames.max() <= 1.0


def test_csv_output_at_30_fps(tmp_path: Path) -> None:
    out = tmp_path / "motion.csv"
    wav = write_wav(tmp_path / "s.wav", 1.0)
    assert main(["motion", str(wav), "-o", str(out), "--fps", "30"]) == 0
    rows = list(csv.reader(out.open()))
    assert rows[0] == ["time", *MOUTH_CHANNELS]
    assert len(rows) == 1 + 30
    assert float(rows[2][0]) == pytest.approx(1 / 30, abs=1e-4)


def test_bad_input_is_one_readable_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"\x00\x01garbage" * 100)
    assert main(["motion", str(junk), "-o", str(tmp_path / "m.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("headcast motion: error:") and "\n" not in err
    assert not (tmp_path / "m.json").exists()
    assert main(["motion", str(tmp_path / "missing.wav")]) == 2
    assert "no such file" in capsys.readouterr().err
    empty = write_wav(tmp_path / "empty.wav", 0.0)  # a header and no samples
    assert main(["motion", str(empty), "-o", str(tmp_path / "e.json")]) == 2
    assert "the audio is empty (zero samples)" in capsys.readouterr().err
    assert not (tmp_path / "e.json").exists()
    # an output "folder" that is a file: the reason, not a traceback
    wav = write_wav(tmp_path / "s.wav", 0.5)
    for out in (junk / "m.json", junk / "deeper" / "m.json"):
        assert main(["motion", str(wav), "-o", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.endswith(f"{junk} is a file, not a folder") and "\n" not in err, err
    assert main(["motion", str(wav), "-o", str(tmp_path / "no" / "m.json")]) == 2
    assert f"the folder {tmp_path / 'no'} does not exist" in capsys.readouterr().err


def test_progress_bar_on_a_terminal_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    wav = write_wav(tmp_path / "s.wav", 25.0, rate=16_000)
    assert main(["motion", str(wav), "-o", str(tmp_path / "a.json")]) == 0
    assert "%" not in capsys.readouterr().err  # not a terminal: no bar
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main(["motion", str(wav), "-o", str(tmp_path / "b.json")]) == 0
    err = capsys.readouterr().err
    assert "100% |" in err and "625/625 frames" in err
    assert (tmp_path / "a.json").read_text() == (tmp_path / "b.json").read_text()


def test_long_file_runs_in_bounded_memory(tmp_path: Path) -> None:
    import tracemalloc

    minutes = 10
    wav = write_wav(tmp_path / "long.wav", 60.0 * minutes, rate=16_000)
    whole_file_bytes = minutes * 60 * 16_000 * 4  # the decoded file as float32: 38 MB
    out = tmp_path / "long.json"
    # A first short run imports the modules and loads the models, so the traced peak
    # is the file's streaming alone (run on its own, the imports alone came to ~20 MB).
    short = write_wav(tmp_path / "short.wav", 1.0, rate=16_000)
    assert main(["motion", str(short), "-o", str(tmp_path / "short.json")]) == 0
    tracemalloc.start()
    try:
        assert main(["motion", str(wav), "-o", str(out)]) == 0
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < whole_file_bytes / 2
    assert len(json.loads(out.read_text())["frames"]) == minutes * 60 * 25


def test_eval_breakdown_writes_each_condition(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from headcast.models.training.synth import available_engines

    if not all(available_engines().values()):
        pytest.skip("speech engines missing")
    out = tmp_path / "breakdown.json"
    args = ["eval", "motion", "--breakdown", "--utts-per-voice", "1", "--json", str(out)]
    assert main(args) == 0
    rows = json.loads(out.read_text())
    assert next(iter(rows)) == "clean" and "whole chain" in rows and len(rows) == 10
    assert all(0.0 < m["r"] <= 1.0 for m in rows.values())
    assert "| reverberation |" in capsys.readouterr().out


def test_eval_real_speech_conditions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("pocketsphinx")
    from headcast.models.training.corpora import OTHER_PACKAGES
    from headcast.models.training.real import missing_packages
    from headcast.models.training.words import missing

    if missing_packages(OTHER_PACKAGES) or missing_packages() or missing():
        pytest.skip("recorded-speech packages missing (scripts/apt-deps.sh test)")
    from tests.test_training_running import make_sdist

    make_sdist(tmp_path / "speech")  # a stand-in for the English running speech's sdist
    out = tmp_path / "real.json"
    args = ["eval", "motion", "--condition", "real", "--real-prompts", "6", "--json", str(out)]
    assert main([*args, "--data-cache", str(tmp_path)]) == 0
    reports = json.loads(out.read_text())
    assert list(reports) == [
        "real clean",
        "real augmented",
        "real, non-speech in pauses",
        "other speaker clean",
        "other speaker augmented",
        "english words clean",
        "english words augmented",
        "english speech clean",
        "english speech augmented",
    ]
    for condition, report in reports.items():
        names = [s["name"] for s in report["model"]]
        assert names and names == [s["name"] for s in report["baseline"]]
        if condition.startswith("english words"):  # sessions of each speaker's first six
            first = ("ball", "bow", "coat", "ear", "earring", "egypt_arch")
            letters = tuple(f"alpha/{c}" for c in "ABCDEFabcdef")  # the KLettres speakers
            heads = [n.split("+")[0] for n in names]
            assert all(h in first + letters for h in heads)
            assert any(h in first for h in heads) and any(h in letters for h in heads)
        elif condition.startswith("english speech"):
            assert {n.split("+")[0] for n in names} <= set(RUNNING_STANDINS)
        else:
            assert all(n.split("-")[0] in ("conf",) for n in names)  # held-out family only
        assert 0.0 < report["mean"]["model"]["r"] <= 1.0
    text = capsys.readouterr().out
    assert "### Held-out recorded speech, non-speech in pauses" in text
    assert "| real augmented |" in text  # the summary table
    assert "### Held-out recorded speaker, augmented" in text
    assert "### Other English speakers, single words, clean" in text
    assert "### Other English speakers, running speech, augmented" in text


RUNNING_STANDINS = ("mfa_putty", "whisper", "61-70968-0000", "common_voice_en_1")


def test_word_names_become_the_words_spoken() -> None:
    from headcast.models.training.words import words_of

    assert words_of("pizzeria_pepperoni") == ("pepperoni",)
    assert words_of("egypt_palmtree") == ("palm", "tree")
    assert words_of("moon_ufo") == ("u", "f", "o")
    assert words_of("umbrella") == ("umbrella",)


def test_folder_input_fifo_output_and_a_closed_pipe(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import os
    import subprocess
    import sys
    import threading

    assert main(["motion", str(tmp_path), "-o", str(tmp_path / "m.json")]) == 2
    assert "is a folder" in capsys.readouterr().err
    wav = write_wav(tmp_path / "s.wav", 2.0)
    fifo = tmp_path / "out.fifo"  # a pipe stays a pipe: written into, not replaced
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    assert main(["motion", str(wav), "-o", str(fifo)]) == 0
    reader.join(10)
    assert fifo.is_fifo() and len(json.loads(got[0])["frames"]) == 50
    # a reader that stops early (`| head`) on more output than a pipe holds: no traceback
    long = write_wav(tmp_path / "long.wav", 60.0)
    head = subprocess.run(
        f"{sys.executable} -m server motion {long} | head -c 20",
        shell=True, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert head.stdout == '{"fps": 25, "names":'[:20] and "Traceback" not in head.stderr


def test_bench_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    noface = tmp_path / "plain.png"
    import cv2

    cv2.imwrite(str(noface), np.full((300, 300, 3), 128, np.uint8))
    assert main(["bench", "enroll", "--portrait", str(noface)]) == 2
    err = capsys.readouterr().err
    assert "headcast bench: error:" in err and "Traceback" not in err


def test_bench_motion_on_a_recording(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--audio`` measures on a recording (its length, not --seconds); a missing file is
    a one-line error."""
    monkeypatch.setattr("os.sched_setaffinity", lambda *a: None, raising=False)
    fixture = Path(__file__).parent / "fixtures" / "speech.wav"
    assert main(["bench", "motion", "--offline", "--audio", str(fixture)]) == 0
    out = capsys.readouterr().out
    assert "audio: 11 s" in out and "x real time" in out
    if "pocketsphinx is not installed" not in out:
        assert "pauses skipped" in out
    assert main(["bench", "motion", "--audio", str(tmp_path / "none.wav")]) == 2
    err = capsys.readouterr().err
    assert "headcast bench: error:" in err and "no such file" in err and "Traceback" not in err


def test_model_with_unusable_metadata_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import onnx

    from headcast.models.motion.model import DEFAULT_MODEL

    wav = write_wav(tmp_path / "s.wav", 1.0)
    for key, value, why in (
        ("sample_rate", "abc", "unusable metadata"),
        ("names", "jawOpen,mouthClose,mouthFunnel", "16 outputs for 3 channel names"),
        ("names", "a,b,c", "are not mouth channels"),
        ("receptive_field", "100000000", "receptive_field"),
        ("lookahead_frames", "-4", "lookahead_frames"),
        ("headcast.kind", "render", "not a headcast motion model"),
    ):
        model = onnx.load(str(DEFAULT_MODEL))
        props = {p.key: p for p in model.metadata_props}
        if key in props:
            props[key].value = value
        else:
            model.metadata_props.add(key=key, value=value)
        bad = tmp_path / f"{key}.onnx"
        onnx.save(model, str(bad))
        assert main(["motion", str(wav), "--model", str(bad), "-o", str(tmp_path / "m.json")]) == 2
        err = capsys.readouterr().err
        assert why in err and "Traceback" not in err, (key, err)


def test_training_and_evaluation_check_their_arguments_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("torch")
    for args, why in (
        (["train", "motion", "--tiny", "-o", "/proc/x.onnx"], "cannot write there"),
        (["train", "motion", "--tiny", "-o", str(tmp_path)], "is a folder"),
        (["train", "motion", "--tiny", "--steps", "0", "-o", str(tmp_path / "m.onnx")], "steps"),
        (["train", "motion", "--tiny", "--lookahead-ms", "1000"], "lookahead_ms"),
        (["eval", "motion", "--json", "/proc/x.json"], "cannot write there"),
    ):
        assert main(args) == 2, args
        err = capsys.readouterr().err
        assert why in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "m.onnx").exists()


def test_files_take_the_model_for_files_and_live_sessions_do_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When a model for files (``motion-offline.onnx``) is shipped, ``headcast motion`` and
    offline renders use it; live sessions keep the causal model."""
    from headcast.models.motion import load_motion_model
    from headcast.models.motion import model as motion_model
    from headcast.models.offline import RenderContext
    from tests.render_offline_support import write_stub_motion_model

    wav = write_wav(tmp_path / "s.wav", 2.0)
    stub = write_stub_motion_model(tmp_path / "motion-offline.onnx")

    def frames(*extra: str) -> np.ndarray:
        out = tmp_path / "m.json"
        assert main(["motion", str(wav), "-o", str(out), *extra]) == 0
        return np.array(json.loads(out.read_text())["frames"])

    monkeypatch.setattr(motion_model, "OFFLINE_MODEL", tmp_path / "absent.onnx")
    live = frames()  # no model for files: the live one
    np.testing.assert_array_equal(live, frames("--model", str(motion_model.DEFAULT_MODEL)))
    given = frames("--model", str(stub))
    assert np.abs(live - given).max() > 0.05  # the stand-in moves the mouth differently
    monkeypatch.setattr(motion_model, "OFFLINE_MODEL", stub)
    np.testing.assert_array_equal(frames(), given)
    assert RenderContext().model(25).metadata["receptive_field"] == "1"  # the stand-in's
    assert load_motion_model(None).metadata["receptive_field"] != "1"  # live: the shipped one


def test_eval_of_the_model_for_files_says_whether_the_closure_pass_ran(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("pocketsphinx")
    from headcast.models.motion.model import OFFLINE_MODEL
    from headcast.models.training.words import missing

    if missing() or not OFFLINE_MODEL.is_file():
        pytest.skip("ktuberling/klettres data or the model for files missing")
    runs = {}
    for flag in ([], ["--no-closure-pass"]):
        out = tmp_path / f"words{len(flag)}.json"
        args = ["eval", "motion", "--offline", "--condition", "words", "--real-prompts", "4"]
        assert main([*args, *flag, "--json", str(out)]) == 0
        runs[bool(flag)] = json.loads(out.read_text())
    text = capsys.readouterr().out
    assert "closure pass: on (deep dips closed; phone recogniser on)" in text
    assert "closure pass: off" in text
    for condition in ("english words clean", "english words augmented"):
        on, off = (runs[k][condition]["mean"]["model"] for k in (False, True))
        assert on["closure"] >= off["closure"] - 0.05 and abs(on["r"] - off["r"]) < 0.02


def test_a_cuda_provider_that_cannot_start_is_one_line(tmp_path: Path) -> None:
    """Asking for CUDA where it cannot start: the reason alone, not ONNX Runtime's
    screenful of missing-library messages before it."""
    import subprocess

    from headcast.models.onnx_session import cuda_available

    if cuda_available():
        pytest.skip("CUDA starts on this machine")
    wav = write_wav(tmp_path / "s.wav", 0.5)
    run = subprocess.run(
        [sys.executable, "-m", "headcast.server.cli", "motion", str(wav), "--provider", "cuda",
         "-o", str(tmp_path / "m.json")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    lines = [ln for ln in (run.stdout + run.stderr).splitlines() if ln.strip()]
    assert run.returncode == 2 and len(lines) == 1, lines
    assert lines[0].startswith("headcast motion: error:") and "cpu" in lines[0], lines
