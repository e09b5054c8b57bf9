"""Batch rendering: folders and globs, bad files skipped, resumable, --force, and Ray."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest

from headcast.models.offline import collect
from headcast.server.cli import main
from tests.render_offline_support import (
    decode_video,
    voiced_bursts,
    write_stub_motion_model,
    write_wav,
)

HAVE_RAY = importlib.util.find_spec("ray") is not None


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(folder of speech with one broken file, stand-in motion model)."""
    root = tmp_path_factory.mktemp("batch")
    src = root / "talks"
    (src / "week2").mkdir(parents=True)
    write_wav(src / "a.wav", voiced_bursts([(0.2, 0.8)], 1.0))
    write_wav(src / "b.wav", voiced_bursts([(0.1, 0.5)], 0.8))
    write_wav(src / "week2" / "c.wav", voiced_bursts([(0.3, 0.9)], 1.2))
    (src / "broken.mp3").write_bytes(b"ID3 but no audio follows" * 10)
    (src / "notes.txt").write_text("not picked up: not a media extension")
    return src, write_stub_motion_model(root / "stub.onnx")


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    rc = main(["render", *args, "--size", "256", "--seed", "1"])
    return rc, capsys.readouterr().err


def test_collect_mirrors_the_folder_and_rejects_clashes(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    for name in ("x/one.wav", "x/one.mp3", "x/two.flac"):
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(ValueError, match="would both render"):
        collect(str(tmp_path / "x"), tmp_path / "out")
    items = collect(str(tmp_path / "x" / "*.flac"), tmp_path / "out")
    assert [(i.source.name, i.output) for i in items] == [("two.flac", tmp_path / "out/two.mp4")]
    with pytest.raises(ValueError, match="no audio or video files"):
        collect(str(tmp_path / "x" / "*.ogg"), tmp_path / "out")


def test_a_folder_batch_says_it_leaves_text_files_out(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for name in ("one.wav", "notes.txt", "deeper/two.txt", ".hidden.txt"):
        (tmp_path / "x" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "x" / name).write_bytes(b"")
    with caplog.at_level("WARNING", logger="headcast.models.offline.batch"):
        items = collect(str(tmp_path / "x"), tmp_path / "out")
    assert [i.source.name for i in items] == ["one.wav"]
    assert "2 .txt files left out: a batch renders audio and video files" in caplog.text


def test_folder_batch_skips_bad_files_resumes_and_forces(
    inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src, stub = inputs
    out = tmp_path / "videos"
    rc, err = _run([str(src), "--out", str(out), "--model", str(stub), "--jobs", "2"], capsys)
    assert rc == 1  # one file failed; the others are done
    assert "rendered 3, skipped 0 (already done), failed 1" in err
    assert "broken.mp3: FAILED:" in err and "not a readable audio" in err
    videos = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.mp4"))
    assert videos == ["a.mp4", "b.mp4", "week2/c.mp4"]
    assert not [p for p in out.rglob("*") if p.name.endswith(".part")]
    frames, seconds, _ = decode_video(out / "week2" / "c.mp4")
    assert abs(seconds - 1.2) <= 0.04 and frames.shape[1:] == (256, 256, 3)

    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.mp4")}
    rc, err = _run([str(src), "--out", str(out), "--model", str(stub)], capsys)
    assert "rendered 0, skipped 3 (already done), failed 1" in err
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.mp4")} == stamps

    (out / "b.mp4").unlink()  # an interrupted batch: only the missing output is redone
    rc, err = _run([str(src), "--out", str(out), "--model", str(stub)], capsys)
    assert "rendered 1, skipped 2 (already done), failed 1" in err

    rc, err = _run(
        [str(src / "*.wav"), "--out", str(out), "--model", str(stub), "--force", "--jobs", "1"],
        capsys,
    )
    assert rc == 0 and "rendered 2, skipped 0 (already done), failed 0" in err
    assert (out / "a.mp4").stat().st_mtime_ns != stamps[out / "a.mp4"]


def test_batch_needs_an_output_folder(
    inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src, stub = inputs
    rc, err = _run([str(src), "-o", str(tmp_path / "x.mp4"), "--model", str(stub)], capsys)
    assert rc == 2 and "--out DIR" in err
    blocker = tmp_path / "file"
    blocker.write_text("")
    rc, err = _run([str(src), "--out", str(blocker), "--model", str(stub)], capsys)
    assert rc == 2 and "not a folder" in err


@pytest.mark.skipif(not HAVE_RAY, reason="Ray is not installed (pip install 'headcast[ray]')")
def test_ray_batch_on_a_local_instance_matches_the_local_batch(
    inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import ray

    src, stub = inputs
    local, remote = tmp_path / "local", tmp_path / "ray"
    _run([str(src / "*.wav"), "--out", str(local), "--model", str(stub), "--jobs", "1"], capsys)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)  # the test's instance
    try:
        rc, err = _run(
            [str(src), "--out", str(remote), "--model", str(stub), "--ray", "--motion-out"], capsys
        )
        assert ray.is_initialized()  # the batch used the running instance, left it up
    finally:
        ray.shutdown()
    assert rc == 1 and "rendered 3, skipped 0 (already done), failed 1" in err
    assert "broken.mp3: FAILED:" in err
    for name in ("a", "b"):
        assert (remote / f"{name}.json").is_file()
        a, _, _ = decode_video(local / f"{name}.mp4")
        b, _, _ = decode_video(remote / f"{name}.mp4")
        np.testing.assert_array_equal(a, b)
    assert (remote / "week2" / "c.mp4").is_file()
    shutil.rmtree(remote)


def test_ray_missing_or_unreachable_is_a_clear_error(
    inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src, stub = inputs
    rc, err = _run(
        [
            str(src),
            "--out",
            str(tmp_path / "o"),
            "--model",
            str(stub),
            "--ray-address",
            "127.0.0.1:1",
        ],
        capsys,
    )
    assert rc == 2
    assert ("Ray is not installed" in err) or ("cannot reach the Ray cluster" in err)


def test_resume_with_motion_out_writes_the_missing_motion(
    inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src, stub = inputs
    out = tmp_path / "videos"
    args = [str(src / "*.wav"), "--out", str(out), "--model", str(stub), "--jobs", "1"]
    rc, err = _run(args, capsys)
    assert rc == 0 and not list(out.glob("*.json"))
    rc, err = _run([*args, "--motion-out"], capsys)  # the videos exist, their motion not
    assert rc == 0 and "rendered 2, skipped 0" in err
    assert sorted(p.name for p in out.glob("*.json")) == ["a.json", "b.json"]
    rc, err = _run([*args, "--motion-out"], capsys)
    assert "rendered 0, skipped 2" in err


def test_inputs_inside_the_output_folder_are_named_as_the_reason(tmp_path: Path) -> None:
    (tmp_path / "a.wav").write_bytes(b"")
    with pytest.raises(ValueError, match="inside the output folder"):
        collect(str(tmp_path), tmp_path)


def test_terminated_batch_stops_at_once_and_leaves_no_partial_files(
    inputs: tuple[Path, Path], tmp_path: Path
) -> None:
    """SIGTERM (as Ctrl-C, which the parent handles) stops the running files, starts no
    queued ones, removes the partial outputs and leaves no worker process behind."""
    import os
    import signal
    import subprocess
    import sys
    import time

    _, stub = inputs
    src = tmp_path / "long"
    src.mkdir()
    for i in range(4):
        write_wav(src / f"t{i}.wav", voiced_bursts([(0.5, 19.0)], 20.0))
    out = tmp_path / "videos"
    cmd = [sys.executable, "-m", "server", "render", str(src), "--out", str(out)]
    proc = subprocess.Popen(
        [*cmd, "--model", str(stub), "--size", "256", "--jobs", "2", "-q"],
        start_new_session=True,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not list(out.glob(".*.part")):  # the workers are rendering
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 143 and "terminated" in err and "Traceback" not in err
    assert "the same command resumes the batch" in err
    assert not [p.name for p in out.iterdir() if p.name.endswith(".part")]
    assert len(list(out.glob("*.mp4"))) < 4
    deadline = time.monotonic() + 10  # multiprocessing's resource tracker ends last
    while (left := _group_members(proc.pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, f"processes left behind: {left}"


def _group_members(pgid: int) -> list[int]:
    import os

    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getpgid(int(entry)) == pgid:
                    found.append(int(entry))
            except ProcessLookupError:
                pass
    return found
