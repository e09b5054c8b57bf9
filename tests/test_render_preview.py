"""Preview contact sheet and sweep video; the render benchmark runs and prints its ratios."""

from __future__ import annotations

import re
from pathlib import Path

import av
import cv2

from headcast.server.cli import main


def test_preview_writes_sheet_and_sweep(tmp_path, capsys):
    assert main(["preview", "-o", str(tmp_path), "--size", "256"]) == 0
    sheet = cv2.imread(str(tmp_path / "contact_sheet.png"))
    assert sheet is not None and sheet.shape[0] > 38 * 100  # one row per channel

    with av.open(str(tmp_path / "sweep.mp4")) as video:
        stream = video.streams.video[0]
        assert (stream.width, stream.height) == (256, 256)
        frames = sum(1 for _ in video.decode(stream))
    assert frames > 300
    assert not list(tmp_path.glob("*.part*"))
    assert "sweep video:" not in capsys.readouterr().err  # not a terminal: no progress


def test_comparison_notes_wrap_inside_their_column():
    from headcast.models.render.preview import NOTE_SCALE, NOTE_W, _wrap

    note = (
        "refused: the head is tilted 51 degrees up (at most 35); use a photo where the face "
        "looks towards the camera; weakened: jawOpen x0.8, mouthSmileLeft x0.8"
    )
    lines = _wrap(note, NOTE_W - 12, NOTE_SCALE)
    assert " ".join(lines) == note
    for line in lines:
        (w, _), _ = cv2.getTextSize(line, cv2.FONT_HERSHEY_SIMPLEX, NOTE_SCALE, 1)
        assert w <= NOTE_W - 12, line


def test_preview_bad_avatar_is_a_clean_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "face.jpg").write_bytes(b"\xff\xd8 a photo")
    for avatar, why in (
        ("nope", "no such avatar pack folder, nor an avatar of that name"),
        ("empty", "not an avatar pack"),
        ("face.jpg", "a file, not an avatar pack; make one from a portrait with `headcast enroll"),
    ):
        assert main(["preview", "--avatar", str(tmp_path / avatar), "-o", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err.strip()
        assert why in err and "\n" not in err and "Errno" not in err, err
    taken = tmp_path / "taken"
    (taken / "contact_sheet.png").mkdir(parents=True)  # the sheet's name is a folder
    assert main(["preview", "-o", str(taken), "--size", "256", "--no-video"]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_bench_render_prints_ratios(capsys):
    assert (
        main(["bench", "render", "--sizes", "256", "--seconds", "0.05", "--onnx-batches", "1"]) == 0
    )
    out = capsys.readouterr().out
    assert "bare cv2.remap" in out and "cpu fast path" in out and "onnx cpu (batch 1)" in out
    ratios = [float(r) for r in re.findall(r"([0-9.]+)x remap", out)]
    assert len(ratios) == 3 and ratios[0] == 1.0 and all(r > 0 for r in ratios)


def test_preview_of_a_portrait_folder_writes_one_comparison_sheet(tmp_path, capsys, astronaut):
    """Every portrait enrolls into one sheet (a row per face, a column per state); a
    refused one keeps its row with the reason; --speech adds a clip per enrolled face."""
    import numpy as np
    import pytest

    from headcast.models.render.preview import COMPARE_STATES, THUMB
    from tests.conftest import png_bytes

    pytest.importorskip("mediapipe")
    faces = tmp_path / "faces"
    faces.mkdir()
    (faces / "astronaut.png").write_bytes(png_bytes(astronaut))
    (faces / "wall.png").write_bytes(png_bytes(np.full((300, 300, 3), 128, np.uint8)))
    (faces / "notes.txt").write_text("not a portrait")
    speech = Path(__file__).parent / "fixtures" / "speech.wav"
    out = tmp_path / "out"
    args = ["preview", "--portraits", str(faces), "-o", str(out), "--size", "256"]
    assert main([*args, "--speech", str(speech)]) == 0
    sheet = cv2.imread(str(out / "compare.png"))
    assert sheet is not None
    assert sheet.shape[0] == 30 + 2 * THUMB  # header + the two images, not the text file
    assert sheet.shape[1] > len(COMPARE_STATES) * THUMB
    face_row = sheet[30 : 30 + THUMB, -len(COMPARE_STATES) * THUMB :].astype(int)
    rest, jaw = face_row[:, :THUMB], face_row[:, 2 * THUMB : 3 * THUMB]
    assert np.abs(jaw - rest).mean() > 1.0  # the states differ
    refused_row = sheet[30 + THUMB :, -len(COMPARE_STATES) * THUMB :]
    assert refused_row.std() < 1.0  # blank tiles for the refused image
    err = capsys.readouterr().err
    assert "wall.png" in err and "refused: no face" in err
    with av.open(str(out / "astronaut.mp4")) as video:
        assert video.streams.video[0].width == 256
    assert not (out / "wall.mp4").exists()


def test_preview_folder_errors_are_clean(tmp_path, capsys):
    assert main(["preview", "--portraits", str(tmp_path / "nope"), "-o", str(tmp_path)]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert main(["preview", "--portraits", str(tmp_path), "-o", str(tmp_path / "o")]) == 2
    assert "no images" in capsys.readouterr().err
    assert main(["preview", "--speech", str(tmp_path / "x.wav"), "-o", str(tmp_path)]) == 2
    assert "--speech needs --portraits" in capsys.readouterr().err


def test_contact_sheet_labels_weakened_and_switched_off_channels():
    from headcast.models.render.preview import channel_label

    assert channel_label("jawOpen", {}) == ("jawOpen", "")
    assert channel_label("browInnerUp", {"browInnerUp": 0.0})[1].startswith("off")
    assert channel_label("mouthSmileLeft", {"mouthSmileLeft": 0.64})[1].startswith("x0.64")


def test_preview_of_a_portrait_folder_says_a_built_in_sentence_by_default(
    tmp_path, capsys, astronaut
):
    """Without --speech each face's clip says the built-in sentence (a built-in voice);
    --no-video writes the sheet alone."""
    import pytest

    from headcast.models.audio.features import load_audio
    from headcast.models.tts import builtin_voices
    from tests.conftest import png_bytes

    pytest.importorskip("mediapipe")
    if not builtin_voices():
        pytest.skip("no built-in voice (flite, espeak-ng) installed")
    faces = tmp_path / "faces"
    faces.mkdir()
    (faces / "astronaut.png").write_bytes(png_bytes(astronaut))
    out = tmp_path / "out"
    assert main(["preview", "--portraits", str(faces), "-o", str(out), "--size", "256"]) == 0
    said = len(load_audio(out / "sentence.wav")[0]) / 16_000
    assert 2.0 < said < 10.0
    with av.open(str(out / "astronaut.mp4")) as video:
        stream = video.streams.video[0]
        seconds = stream.frames / float(stream.average_rate)
    assert abs(seconds - said) < 0.2
    bare = tmp_path / "bare"
    args = ["preview", "--portraits", str(faces), "-o", str(bare), "--size", "256", "--no-video"]
    assert main(args) == 0
    assert (bare / "compare.png").is_file() and not list(bare.glob("*.mp4"))
    assert "Traceback" not in capsys.readouterr().err
