"""The edtalk backend wired into the product: renderer factory, streaming Audio2Lip,
``headcast render`` / ``headcast serve --backend edtalk``, and one live session.

All on small random weights saved in the upstream layout (``tests/edtalk_support``),
exported once per test session; the motion model is the offline tests' stand-in.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from headcast.models.channels import NUM_CHANNELS, zeros
from headcast.models.edtalk import WeightsError, create_audio2lip
from headcast.models.edtalk.files import AUDIO2LIP_FILE, EDTALK_FILE
from headcast.models.edtalk.stream import LOOKAHEAD_SAMPLES, Audio2LipStreamer, LipFrames
from headcast.models.render import create_renderer
from headcast.server.cli import main
from tests.edtalk_support import exported_weights_dir
from tests.render_offline_support import (
    decode_video,
    voiced_bursts,
    write_stub_motion_model,
    write_wav,
)
from tests.server_harness import load_speech

SR = 16_000
SPF = 640  # samples per 25 fps frame
# Streaming vs offline Audio2Lip: the same samples reach the same ONNX graph, only in
# other batch sizes; ONNX Runtime's CPU kernels may round differently per batch size.
STREAM_TOL = 1e-5


@pytest.fixture(scope="module")
def weights() -> Path:
    return exported_weights_dir()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("edtalk-integration")


@pytest.fixture(scope="module")
def stub(folder: Path) -> Path:
    return write_stub_motion_model(folder / "stub.onnx")


def _concat(parts: list[LipFrames]) -> LipFrames:
    return LipFrames(
        np.concatenate([p.index for p in parts]), np.concatenate([p.mouth for p in parts])
    )


# ---- streaming Audio2Lip --------------------------------------------------------------


def test_streaming_audio2lip_equals_offline(weights: Path) -> None:
    runner = create_audio2lip(weights, provider="cpu")
    # speech with a partial last frame (dropped, as offline drops it)
    wav = np.concatenate([load_speech(3.0), np.zeros(333, np.float32)])
    ref = runner.from_wav(wav)
    rng = np.random.default_rng(0)
    for sizes in ("random", "ticks", "whole"):
        streamer = Audio2LipStreamer(runner)
        parts, i = [], 0
        while i < len(wav):
            n = {"random": int(rng.integers(1, 3000)), "ticks": SPF, "whole": len(wav)}[sizes]
            parts.append(streamer.push(wav[i : i + n]))
            i += n
        before_flush = sum(len(p) for p in parts)
        parts.append(streamer.flush())
        got = _concat(parts)
        np.testing.assert_array_equal(got.index, np.arange(len(ref)))
        np.testing.assert_allclose(got.mouth, ref, atol=STREAM_TOL, rtol=0)
        # all but the tail is final before the end of the stream
        assert before_flush >= len(ref) - LOOKAHEAD_SAMPLES // SPF
        assert streamer.frames_emitted == 0  # flush starts afresh


def test_streaming_audio2lip_delivers_each_frame_within_its_lookahead(weights: Path) -> None:
    streamer = Audio2LipStreamer(create_audio2lip(weights, provider="cpu"))
    assert streamer.lookahead_s == pytest.approx(0.2)
    wav = load_speech(2.0)
    emitted_at: dict[int, int] = {}
    for tick in range(len(wav) // SPF):
        for f in streamer.push(wav[tick * SPF : (tick + 1) * SPF]).index:
            emitted_at[int(f)] = (tick + 1) * SPF  # samples in when frame f came out
    assert len(emitted_at) >= len(wav) // SPF - LOOKAHEAD_SAMPLES // SPF
    late = {f: n - f * SPF for f, n in emitted_at.items() if n - f * SPF > LOOKAHEAD_SAMPLES}
    assert not late, late
    # and the bound is tight: some frame needs all of it
    assert max(n - f * SPF for f, n in emitted_at.items()) == LOOKAHEAD_SAMPLES
    # reset (interrupt) starts a new stream at frame 0
    streamer.reset()
    out = streamer.push(np.zeros(LOOKAHEAD_SAMPLES + SPF, np.float32))
    assert out.index[0] == 0


# ---- renderer factory -----------------------------------------------------------------


def test_create_renderer_edtalk_uses_the_avatar_head_frame(weights: Path) -> None:
    r = create_renderer(None, backend="edtalk", size=256, provider="cpu", edtalk_weights=weights)
    assert r.size == 256
    still = r.render(zeros())
    assert still.shape == (256, 256, 3) and still.dtype == np.uint8
    moved = r.render(zeros(), mouth=np.full(20, 2.0, np.float32))  # type: ignore[call-arg]
    assert np.abs(moved.astype(np.int16) - still).mean() > 0.5
    batch = r.render_batch(np.zeros((2, NUM_CHANNELS), np.float32))
    assert batch.shape == (2, 256, 256, 3)
    assert r.pack is not None  # type: ignore[attr-defined]  # full-portrait paste-back


def test_create_renderer_edtalk_without_weights_says_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="--edtalk-weights"):
        create_renderer(None, backend="edtalk", size=256, provider="cpu")
    with pytest.raises(WeightsError, match=f"{EDTALK_FILE}, {AUDIO2LIP_FILE}"):
        create_renderer(None, backend="edtalk", provider="cpu", edtalk_weights=tmp_path)


# ---- headcast render ------------------------------------------------------------------


def test_render_cli_with_edtalk_writes_a_video_of_the_right_length(
    weights: Path, folder: Path, stub: Path
) -> None:
    clip_s = 1.5
    src = write_wav(folder / "speech.wav", voiced_bursts([(0.3, 1.2)], clip_s))
    out = folder / "edtalk.mp4"
    rc = main(
        [
            "render",
            str(src),
            "-o",
            str(out),
            "--model",
            str(stub),
            "--size",
            "256",
            "--backend",
            "edtalk",
            "--edtalk-weights",
            str(weights),
            "--threads",
            "2",
            "-q",
        ]
    )
    assert rc == 0
    frames, video_s, fps = decode_video(out)
    assert fps == 25 and frames.shape[1:] == (256, 256, 3)
    assert len(frames) == int(np.ceil(clip_s * fps))
    assert abs(video_s - clip_s) <= 1 / fps
    # the mouth weights vary with the audio, so the frames do too
    assert np.abs(frames.astype(np.int16) - frames[:1]).mean(axis=(1, 2, 3)).max() > 0.5


def test_render_cli_edtalk_refusals(
    weights: Path, folder: Path, stub: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = write_wav(folder / "short.wav", voiced_bursts([(0.1, 0.3)], 0.4))
    base = ["render", str(src), "-o", str(folder / "x.mp4"), "--model", str(stub)]
    assert main([*base, "--backend", "edtalk"]) == 2
    assert "--edtalk-weights" in capsys.readouterr().err
    assert main([*base, "--backend", "edtalk", "--edtalk-weights", str(folder / "no")]) == 2
    assert "does not exist" in capsys.readouterr().err
    args = [*base, "--backend", "edtalk", "--edtalk-weights", str(weights), "--fps", "30"]
    assert main(args) == 2
    assert "25 fps" in capsys.readouterr().err
    assert not (folder / "x.mp4").exists()


# ---- headcast serve -------------------------------------------------------------------


def _serve(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        sys.executable,
        "-m",
        "headcast.server.cli",
        "serve",
        "--port",
        "0",
        "--backend",
        "edtalk",
    ]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=60)


def test_serve_edtalk_refuses_missing_files_without_a_traceback(
    weights: Path, tmp_path: Path
) -> None:
    out = _serve()
    assert out.returncode == 2 and "--edtalk-weights" in out.stderr
    assert "Traceback" not in out.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    out = _serve("--edtalk-weights", str(empty))
    assert out.returncode == 2, out.stderr
    assert EDTALK_FILE in out.stderr and AUDIO2LIP_FILE in out.stderr
    assert "Traceback" not in out.stderr
    # checkpoints there but never exported: names the ONNX files and the export command
    unexported = tmp_path / "unexported"
    unexported.mkdir()
    for name in (EDTALK_FILE, AUDIO2LIP_FILE):
        shutil.copy(weights / name, unexported / name)
    out = _serve("--edtalk-weights", str(unexported), "--edtalk-precision", "fp16")
    assert out.returncode == 2
    assert (
        "edtalk_frame_fp16.onnx" in out.stderr
        and "headcast.models.edtalk.nets.export" in out.stderr
    )
    assert "Traceback" not in out.stderr
    # exported, but one graph cut short and another in the wrong place
    damaged = tmp_path / "damaged"
    shutil.copytree(weights, damaged)
    frame = damaged / "onnx" / "edtalk_frame_fp32.onnx"
    frame.write_bytes(frame.read_bytes()[: frame.stat().st_size // 2])
    out = _serve("--edtalk-weights", str(damaged))
    assert out.returncode == 2 and "is damaged" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    shutil.copy(damaged / "onnx" / "audio2lip.onnx", frame)
    out = _serve("--edtalk-weights", str(damaged))
    assert out.returncode == 2 and "is not the frame graph" in out.stderr, out.stderr


def test_live_session_with_edtalk(weights: Path, stub: Path) -> None:
    from headcast.client.headcast_client import HeadcastClient, HeadcastError, Viewer
    from headcast.models.motion import load_motion_model
    from headcast.server.settings import ServerSettings
    from tests.server_harness import FIXTURES, ServerThread, free_port, run

    settings = ServerSettings(
        host="127.0.0.1",
        port=free_port(),
        default_size=256,
        allowed_sizes=(256,),
        avatars_dir=FIXTURES / "no-avatars",
        renderer_backend="edtalk",
        edtalk_weights=weights,
        provider="cpu",
        render_workers=1,  # leaves a core to the event loop and the video encoder
    )

    def motion(fps: int) -> object:
        return load_motion_model(stub, fps=fps, provider="cpu")

    speech = load_speech(2.0)
    # The random test generator takes ~0.2 s a frame on 2 CPU cores, so admission
    # control (calibrated at warm-up) would rightly refuse the session: skip warm-up.
    # Frames whose send time passes before they are made are skipped and the track
    # repeats the last one; what is tested is the plumbing, not the frame rate.
    with ServerThread(settings, motion_loader=motion, warm_up=False) as srv:

        async def session() -> tuple[Viewer, int, int]:
            client = HeadcastClient(srv.url)
            info = await client.create_session(seed=1)
            live = srv.state.sessions[info["id"]]
            viewer = await Viewer(client).watch(info["whep"])
            sock = await client.connect(info["id"])
            await asyncio.sleep(0.3)
            await sock.send_pcm(speech)
            await sock.send_control({"type": "end_of_utterance"})
            await sock.next_event("speech_ended", within_s=8)
            await asyncio.sleep(0.3)
            delay, late = live.clock.delay_frames, live.pipeline.lips_late
            await sock.close()
            await viewer.close()
            await client.close_session(info["id"])
            with pytest.raises(HeadcastError) as refused:  # Audio2Lip is 25 fps only
                await client.create_session(fps=20)
            assert refused.value.status == 400 and "25 fps" in str(refused.value)
            return viewer, delay, late

        viewer, delay, late = run(session(), timeout=60)
    # the delay is EDTalk's 200 ms look-ahead (5 frames), not the stand-in's 0 ms
    assert delay == LOOKAHEAD_SAMPLES * 25 // SR == 5
    assert late == 0, "Audio2Lip frames came after their frame was made"
    images = np.stack([img for _, img in viewer.received.video]).astype(np.int16)
    assert len(images) >= 10 and images.shape[1:] == (256, 256, 3), images.shape
    # rendered frames, not only the idle picture: the mouth weights move the image
    assert np.abs(images - images[:1]).mean(axis=(1, 2, 3)).max() > 0.5


def test_gpu_batcher_passes_mouth_weights_through() -> None:
    from headcast.models.render.pool import RendererPool
    from headcast.server.live.scheduler import BatchRenderer

    class Recorder:
        size = 8

        def __init__(self) -> None:
            self.mouths: list[np.ndarray | None] = []

        def render(self, coeffs: np.ndarray, mouth: np.ndarray | None = None) -> np.ndarray:
            return self.render_batch(coeffs[None], None if mouth is None else mouth[None])[0]

        def render_batch(self, coeffs: np.ndarray, mouth: np.ndarray | None = None) -> np.ndarray:
            self.mouths.append(mouth)
            level = 0 if mouth is None else mouth[:, :1, None, None]
            return np.broadcast_to(level, (len(coeffs), 8, 8, 3)).astype(np.uint8)

    rec = Recorder()
    pool = RendererPool(lambda: rec, 1)
    batcher = BatchRenderer()
    try:
        img = batcher.render(pool, zeros(), np.full(20, 7.0, np.float32))
        plain = batcher.render(pool, zeros())
    finally:
        batcher.close()
    assert img[0, 0, 0] == 7 and plain[0, 0, 0] == 0
    assert rec.mouths[0] is not None and rec.mouths[0].shape == (1, 20)
    assert rec.mouths[1] is None


def test_bench_render_backend_edtalk_prints_frames_per_second(
    weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`headcast bench render --backend edtalk` runs EDTalk's benchmark (small test
    graphs here), and its arguments are checked."""
    args = ["bench", "render", "--backend", "edtalk", "--edtalk-weights", str(weights)]
    assert main([*args, "--seconds", "0.2"]) == 0
    out = capsys.readouterr().out
    assert "fp32" in out and "frames/s" in out, out
    with pytest.raises(SystemExit):
        main(["bench", "edtalk", "--batches", "0"])
    # flags of the other backend are refused, not ignored
    assert main([*args, "--sizes", "512"]) == 2
    assert "--sizes: not with --backend edtalk" in capsys.readouterr().err
    assert main(["bench", "render", "--random"]) == 2
    assert "--random: only with --backend edtalk" in capsys.readouterr().err
