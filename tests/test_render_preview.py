"""Preview contact sheet and sweep video; the render benchmark runs and prints its ratios."""

from __future__ import annotations

import re

import cv2

from server.cli import main


def test_preview_writes_sheet_and_sweep(tmp_path, capsys):
    assert main(["preview", "-o", str(tmp_path), "--size", "256"]) == 0
    sheet = cv2.imread(str(tmp_path / "contact_sheet.png"))
    assert sheet is not None and sheet.shape[0] > 38 * 100  # one row per channel
    import av

    with av.open(str(tmp_path / "sweep.mp4")) as video:
        stream = video.streams.video[0]
        assert (stream.width, stream.height) == (256, 256)
        frames = sum(1 for _ in video.decode(stream))
    assert frames > 300
    assert not list(tmp_path.glob("*.part*"))


def test_preview_bad_avatar_is_a_clean_error(tmp_path, capsys):
    assert main(["preview", "--avatar", str(tmp_path / "nope"), "-o", str(tmp_path / "o")]) == 2
    assert "not an avatar pack" in capsys.readouterr().err
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
