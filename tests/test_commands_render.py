"""``headcast render`` as a user runs it: the sizes it takes, avatars found by name, text
spoken by built-in voices, emotion timelines (a file or inline JSON) and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from headcast.models.channels import CHANNEL_INDEX, POSE_SLICE
from headcast.models.offline import RenderContext, RenderOptions, render_file
from headcast.server.cli import main
from tests.render_offline_support import (
    decode_video,
    voiced_bursts,
    write_stub_motion_model,
    write_wav,
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("render-cli")


@pytest.fixture(scope="module")
def stub(folder: Path) -> Path:
    return write_stub_motion_model(folder / "stub.onnx")


@pytest.fixture(scope="module")
def clip(folder: Path) -> Path:
    return write_wav(folder / "clip.wav", voiced_bursts([(0.5, 1.5)], 2.0))


@pytest.fixture(scope="module")
def long_clip(folder: Path) -> Path:
    """4 s, speech at 1-2 s and 2.6-3.3 s: room for an emotion cue at 2 s."""
    return write_wav(folder / "long.wav", voiced_bursts([(1.0, 2.0), (2.6, 3.3)], 4.0))


def _no_leftovers(folder: Path) -> None:
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".part")]


def test_every_live_size_renders_to_a_file(folder: Path, stub: Path, clip: Path) -> None:
    """One list of sizes: what a live session takes, `headcast render` and /v1/renders take."""
    from headcast.models.sizes import FRAME_SIZES
    from headcast.server.settings import ServerSettings

    assert ServerSettings().allowed_sizes == FRAME_SIZES and 384 in FRAME_SIZES
    out = folder / "s384.mp4"
    ctx = RenderContext(motion_model=stub, provider="cpu")
    render_file(clip, out, RenderOptions(size=384, seed=1), context=ctx)
    frames, _, _ = decode_video(out)
    assert frames.shape[1:] == (384, 384, 3)
    _no_leftovers(folder)


def test_cli_finds_an_avatar_the_server_enrolled_by_its_name(
    folder: Path, stub: Path, clip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--avatar NAME` looks in the server's avatars_dir, as the live API does."""
    import shutil

    from headcast.models.avatar.pack import DEFAULT_AVATAR_DIR

    avatars = folder / "avatars"
    shutil.copytree(DEFAULT_AVATAR_DIR, avatars / "alice")
    config = folder / "server.yaml"
    config.write_text(f"avatars_dir: {avatars}\n")
    out = folder / "alice.mp4"
    base = ["render", str(clip), "--model", str(stub), "--size", "256", "--config", str(config)]
    assert main([*base, "-o", str(out), "--avatar", "alice"]) == 0
    assert out.is_file()
    assert main([*base, "-o", str(folder / "bob.mp4"), "--avatar", "bob"]) == 2
    err = capsys.readouterr().err
    assert "bob" in err and "known: default, alice" in err and "Traceback" not in err
    assert str(avatars.absolute()) in err  # where it looked, whatever the working folder
    assert main([*base, "-o", str(out), "--out", str(folder / "batch")]) == 2
    assert "not both" in capsys.readouterr().err and not (folder / "batch").exists()
    out.unlink()
    _no_leftovers(folder)
    # a --config that is missing or broken is said, whatever --avatar names
    pack = str(avatars / "alice")
    bad = folder / "bad.yaml"
    bad.write_text("avatars_dir: [\n")
    for cfg, why in ((folder / "nosuch.yaml", "cannot read config"), (bad, "not valid YAML")):
        for avatar in ([], ["--avatar", pack], ["--avatar", "alice"]):
            args = [*base[:4], "-o", str(out), "--config", str(cfg), *avatar]
            assert main(args) == 2
            err = capsys.readouterr().err.strip()
            assert why in err and "\n" not in err, err
    assert not out.exists()


def test_text_renders_spoken_by_a_built_in_voice(
    folder: Path, stub: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--text "..."` and a .txt input: a built-in voice says it, the video lasts as long
    as the speech, and its audio track carries it."""
    from tests.render_offline_support import decode_track_audio

    base = ["render", "--model", str(stub), "--size", "256"]
    out = folder / "said.mp4"
    assert main([*base, "--text", "Hello there. My name is Bob.", "-o", str(out)]) == 0
    _, seconds, _ = decode_video(out)
    audio, rate, _ = decode_track_audio(out)
    assert 1.0 < seconds < 6.0 and abs(len(audio) / rate - seconds) < 0.2
    assert float(np.sqrt(np.mean(audio**2))) > 0.01, "the speech is in the file"

    script = folder / "script.txt"
    script.write_text("Good morning, and welcome.\n", encoding="utf-8")
    out_txt = folder / "script.mp4"
    assert main([*base, str(script), "--voice", "espeak-en-us", "-o", str(out_txt)]) == 0
    assert 0.8 < decode_video(out_txt)[1] < 5.0
    capsys.readouterr()

    # bad input: one line each, exit 2, no traceback, nothing half-written
    sounds = folder / "sounds.wav"  # a folder with an audio file's name
    sounds.mkdir()
    bad = [
        ([*base, "--text", "Hi.", "--voice", "nobody", "-o", str(folder / "x.mp4")], "known:"),
        ([*base, "--text", "  ...  ", "-o", str(folder / "x.mp4")], "nothing to say"),
        ([*base, "--text", "Hi.", str(script), "-o", str(folder / "x.mp4")], "not both"),
        ([*base, "-o", str(folder / "x.mp4")], "nothing to say"),
        ([*base, "--text", "Hi.", "--out", str(folder / "o")], "one file"),
        (
            [*base, "--text", "Hi.", "-o", str(script / "x.mp4")],
            f"{script} is a file, not a folder",
        ),
        (
            [*base, "--text", "Hi.", "--avatar", str(script), "-o", str(folder / "x.mp4")],
            "a file, not an avatar pack",
        ),
        ([*base, str(sounds), "-o", str(folder / "x.mp4")], "is a folder: to render each"),
        (
            [*base, str(folder / "clip.wav"), "--voice", "slt", "-o", str(folder / "x.mp4")],
            "--voice",
        ),
    ]
    for argv, words in bad:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert words in err and "Traceback" not in err, err
    assert not (folder / "x.mp4").exists()
    _no_leftovers(folder)


def test_render_help_names_every_built_in_voice(capsys: pytest.CaptureFixture[str]) -> None:
    from headcast.models.tts import _BUILTIN

    with pytest.raises(SystemExit):
        main(["render", "--help"])
    flat = " ".join(capsys.readouterr().out.split())
    assert all(v.name in flat for v in _BUILTIN), flat


def test_the_progress_bar_estimates_no_time_left_from_the_first_frames(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import io

    import headcast.server.commands.render as render_cmd

    clock = [100.0]
    monkeypatch.setattr(render_cmd.time, "perf_counter", lambda: clock[0])
    out = io.StringIO()
    bar = render_cmd.ProgressBar(25, out)
    clock[0] += 0.05
    bar(1, 24_083)  # the first frame: no 4902-minute estimate
    assert "ETA -:--" in out.getvalue()
    clock[0] += 2.0
    bar(2_500, 24_083)  # 2 s, 10 %: now it estimates (not a tty: one line per tenth)
    last = out.getvalue().splitlines()[-1]
    assert "ETA 0:17" in last and "2500/24083" in last, last


def test_the_work_before_the_first_frame_is_named_on_a_terminal_only() -> None:
    import io

    import headcast.server.commands.render as render_cmd

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    for out, shown in ((Terminal(), True), (io.StringIO(), False)):
        bar = render_cmd.ProgressBar(25, out)
        bar.stage("working out the motion...")
        assert ("working out the motion" in out.getvalue()) == shown
        bar.clear()  # an error follows on a clean line
        assert out.getvalue().endswith("\r") == shown
        bar(10, 10)
        assert "100% |" in out.getvalue()


def test_emotion_timeline_and_still_pose(folder: Path, stub: Path, long_clip: Path) -> None:
    clip = long_clip
    timeline = folder / "timeline.json"
    timeline.write_text(json.dumps([{"time": 2.0, "emotion": "happy", "transition": 0.4}]))
    out, motion = folder / "happy.mp4", folder / "happy.json"
    rc = main(
        [
            "render", str(clip), "-o", str(out), "--model", str(stub), "--size", "256",
            "--emotion", str(timeline), "--pose", "still", "--motion-out", str(motion), "-q",
        ]
    )  # fmt: skip
    assert rc == 0 and out.is_file()
    data = json.loads(motion.read_text())
    c = np.array(data["frames"])
    assert data["fps"] == 25 and len(data["names"]) == c.shape[1]
    # The built-in portrait smiles: neutral relaxes its smile (-1), happy (0.75) asks
    # for a little less smile than the photo shows.
    from headcast.models.avatar.pack import load_pack
    from headcast.models.mixer import relative_smile

    own = load_pack(None).meta["smile"]["mouthSmileLeft"]
    assert own > 0.5
    smile = c[:, CHANNEL_INDEX["mouthSmileLeft"]]
    assert smile[:50].max() == pytest.approx(-1.0)
    assert smile[61:].min() == pytest.approx(relative_smile(0.75, own), abs=1e-3)
    assert np.all(c[:, POSE_SLICE] == 0.0)
    # the same timeline given inline, as `render --help` says it may be
    inline_motion = folder / "happy-inline.json"
    cue = '[{"time": 2.0, "emotion": "happy", "transition": 0.4}]'
    rc = main(
        [
            "render", str(clip), "-o", str(folder / "happy-inline.mp4"), "--model", str(stub),
            "--size", "256", "--emotion", cue, "--pose", "still", "--motion-out",
            str(inline_motion), "-q",
        ]
    )  # fmt: skip
    assert rc == 0
    assert json.loads(inline_motion.read_text())["frames"] == data["frames"]


def test_a_bad_inline_emotion_timeline_says_what_is_wrong(
    folder: Path, stub: Path, clip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["render", str(clip), "-o", str(folder / "x.mp4"), "--model", str(stub)]
    for cue, words in (
        ('[{"time": 0}]', "cue 0 has no emotion"),
        ('[{"time": 0, "emotion": "grumpy"}]', "unknown emotion 'grumpy'"),
        ('[{"time": 0, "emotion": ', "not a JSON emotion timeline"),
    ):
        assert main([*base, "--emotion", cue]) == 2
        err = capsys.readouterr().err
        assert words in err and "Traceback" not in err, err
    assert not (folder / "x.mp4").exists()
