"""Offline rendering of one file: duration, audio track, lip timing, silence, determinism,
input formats, full-portrait output, emotion timelines and bad input.

The motion model is a loudness-driven stand-in (``render_offline_support``) with no
look-ahead, so when the mouth must open is known exactly; one test runs the shipped model.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from headcast.models.channels import CHANNEL_INDEX
from headcast.models.motion.model import DEFAULT_MODEL
from headcast.models.offline import FULL, RenderContext, RenderError, RenderOptions, render_file
from headcast.server.cli import main
from tests.render_offline_support import (
    SR,
    decode_track_audio,
    decode_video,
    voiced_bursts,
    write_stub_motion_model,
    write_wav,
)

SPANS = [(1.0, 2.0), (2.6, 3.3)]  # speech bursts in the 4 s test clip (seconds)
CLIP_S = 4.0
# Mean |pixel change| in the mouth box against the rest frame (0..255): an open mouth is
# ~35 here; 4:2:0 chroma and H.264 (crf 20) alone leave ~3.5 on a closed one.
MOUTH_OPEN_DIFF = 8.0
MOUTH_CLOSED_DIFF = 5.0


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("render")


@pytest.fixture(scope="module")
def stub(folder: Path) -> Path:
    return write_stub_motion_model(folder / "stub.onnx")


@pytest.fixture(scope="module")
def ctx(stub: Path) -> RenderContext:
    return RenderContext(motion_model=stub, provider="cpu")


@pytest.fixture(scope="module")
def clip(folder: Path) -> Path:
    return write_wav(folder / "clip.wav", voiced_bursts(SPANS, CLIP_S))


def _no_leftovers(folder: Path) -> None:
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".part")]


def _mouth_box(ctx: RenderContext, size: int) -> tuple[slice, slice]:
    lips = ctx.renderer(size).pack.arrays["lip_points"]  # type: ignore[attr-defined]
    (x0, y0), (x1, y1) = lips.min(0), lips.max(0)
    pad = 0.25 * (x1 - x0)
    return slice(int(y0 - pad), int(y1 + pad)), slice(int(x0 - pad), int(x1 + pad))


def test_duration_and_audio_track_match_the_input(
    folder: Path, ctx: RenderContext, clip: Path
) -> None:
    for fps in (25, 30):
        out = folder / f"dur{fps}.mp4"
        result = render_file(clip, out, RenderOptions(fps=fps, size=256, seed=3), context=ctx)
        frames, video_s, got_fps = decode_video(out)
        assert got_fps == fps and frames.shape[1:] == (256, 256, 3)
        assert result.frames == len(frames) == int(np.ceil(CLIP_S * fps))
        assert abs(video_s - CLIP_S) <= 1.0 / fps
        audio, rate, channels = decode_track_audio(out)
        assert (rate, channels) == (SR, 1)  # the input's own rate and layout
        assert abs(len(audio) / rate - CLIP_S) <= 1.0 / fps
    _no_leftovers(folder)


def test_audio_track_is_the_input_signal_at_its_own_rate(folder: Path, ctx: RenderContext) -> None:
    rate = 44_100
    pcm = voiced_bursts([(0.2, 1.6)], 2.0, rate=rate)
    src = write_wav(folder / "stereo44k.wav", pcm, rate=rate, channels=2)
    out = folder / "stereo44k.mp4"
    render_file(src, out, RenderOptions(size=256, seed=0), context=ctx)
    audio, got_rate, channels = decode_track_audio(out)
    assert (got_rate, channels) == (rate, 2)
    # The decoded AAC track is the input: aligned at lag 0 (the priming delay is
    # trimmed by the container) and close in waveform.
    n = min(len(audio), len(pcm))
    lags = range(-64, 65)
    scores = [float(np.dot(pcm[64 : n - 64], audio[64 + k : n - 64 + k])) for k in lags]
    assert abs(list(lags)[int(np.argmax(scores))]) <= 2
    a, b = pcm[:n], audio[:n]
    assert np.corrcoef(a, b)[0, 1] > 0.98
    assert abs(np.sqrt(np.mean(b**2)) / np.sqrt(np.mean(a**2)) - 1.0) < 0.1


def test_mouth_opens_at_speech_onsets_and_rests_in_silence(
    folder: Path, ctx: RenderContext, clip: Path
) -> None:
    fps = 25
    out, motion = folder / "lips.mp4", folder / "lips.json"
    opts = RenderOptions(fps=fps, size=256, pose="still", seed=1)
    render_file(clip, out, opts, context=ctx, motion_out=motion)
    frames, _, _ = decode_video(out)
    rows, cols = _mouth_box(ctx, 256)
    coeffs = np.array(json.loads(motion.read_text())["frames"], np.float32)
    # At rest in silence: the first frame's coefficients (the neutral emotion relaxes the
    # built-in portrait's smile, so rest is not the photo itself).
    rest = ctx.renderer(256).render(coeffs[0])[rows, cols].astype(np.float32)
    change = np.array([np.abs(f[rows, cols].astype(np.float32) - rest).mean() for f in frames])
    jaw = coeffs[:, CHANNEL_INDEX["jawOpen"]]
    for start, end in SPANS:
        onset = round(start * fps)
        opened = int(np.argmax(change[onset - 5 :] > MOUTH_OPEN_DIFF)) + onset - 5
        assert abs(opened - onset) <= 1, (opened, onset)
        first_jaw = int(np.argmax(jaw[onset - 5 :] > 0.1)) + onset - 5
        assert abs(first_jaw - onset) <= 1, (first_jaw, onset)
        assert change[onset + 3 : round(end * fps) - 1].mean() > MOUTH_OPEN_DIFF
    # Silence at the start and the end: the mouth is closed (at rest). The built-in
    # portrait's lips are apart at rest, so they meet once the mouth has rested a while
    # (models/mixer.py): the last frames are sealed again like the first.
    assert change[: round(SPANS[0][0] * fps) - 1].max() < MOUTH_CLOSED_DIFF
    assert change[-2:].max() < MOUTH_CLOSED_DIFF
    assert jaw[: round(SPANS[0][0] * fps) - 1].max() == 0.0
    assert jaw[round(SPANS[-1][1] * fps) + 6 :].max() < 0.02


def test_same_input_and_seed_give_identical_frames(
    folder: Path, ctx: RenderContext, clip: Path
) -> None:
    def frames(name: str, seed: int | None) -> np.ndarray:
        render_file(clip, folder / name, RenderOptions(size=256, seed=seed), context=ctx)
        return decode_video(folder / name)[0]

    a, b = frames("seed7a.mp4", 7), frames("seed7b.mp4", 7)
    np.testing.assert_array_equal(a, b)
    assert np.abs(frames("seed8.mp4", 8).astype(int) - a).max() > 10  # idle motion differs
    # Without a seed, the seed comes from the audio: still reproducible.
    np.testing.assert_array_equal(frames("auto1.mp4", None), frames("auto2.mp4", None))


def _encode_audio(path: Path, pcm: np.ndarray, codec: str, rate: int, video: bool = False) -> Path:
    with av.open(str(path), "w") as c:
        vs = None
        if video:
            vs = c.add_stream("libx264", rate=25)
            vs.width = vs.height = 64
            vs.pix_fmt = "yuv420p"
        s = c.add_stream(codec, rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(
            pcm[None].astype(np.float32), format="flt", layout="mono"
        )
        frame.sample_rate, frame.pts, frame.time_base = rate, 0, Fraction(1, rate)
        if vs is not None:
            for i in range(round(len(pcm) / rate * 25)):
                img = av.VideoFrame.from_ndarray(np.full((64, 64, 3), i, np.uint8), format="rgb24")
                img.pts = i
                for p in vs.encode(img):
                    c.mux(p)
            for p in vs.encode(None):
                c.mux(p)
        for p in s.encode(frame):
            c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return path


@pytest.mark.parametrize(
    ("name", "codec", "rate", "video"),
    [
        ("in.flac", "flac", 16_000, False),
        ("in.mp3", "libmp3lame", 44_100, False),
        ("in.ogg", "libopus", 48_000, False),
        ("in.m4a", "aac", 22_050, False),
        ("in.mp4", "aac", 48_000, True),
    ],
)
def test_accepts_common_formats_and_video_audio_tracks(
    folder: Path, ctx: RenderContext, name: str, codec: str, rate: int, video: bool
) -> None:
    pcm = voiced_bursts([(0.3, 1.0)], 1.2, rate=rate)
    src = _encode_audio(folder / name, pcm, codec, rate, video)
    out = folder / f"{name}.out.mp4"
    result = render_file(src, out, RenderOptions(size=256, seed=0), context=ctx)
    frames, video_s, _ = decode_video(out)
    assert frames.shape[1:] == (256, 256, 3)
    assert abs(video_s - 1.2) <= 0.1  # codec padding may add up to a couple of frames
    _, out_rate, _ = decode_track_audio(out)
    assert out_rate == rate
    assert result.frames == len(frames)


def test_full_portrait_output_pastes_the_head_back(folder: Path, ctx: RenderContext) -> None:
    src = write_wav(folder / "short.wav", voiced_bursts([(0.2, 0.9)], 1.0))
    out = folder / "full.mp4"
    render_file(src, out, RenderOptions(size=FULL, seed=2, pose="still"), context=ctx)
    frames, _, _ = decode_video(out)
    pack = ctx.renderer(512).pack  # type: ignore[attr-defined]
    portrait = pack.portrait
    h, w = (portrait.shape[0] // 2) * 2, (portrait.shape[1] // 2) * 2
    assert frames.shape[1:] == (h, w, 3)
    # Rows well above the head and the image corners stay the portrait (up to H.264 loss).
    corner = np.s_[: h // 10, : w // 10]
    assert np.abs(frames[10][corner].astype(int) - portrait[corner].astype(int)).mean() < 3.0
    # The mouth, mapped back into the portrait, moves while speaking.
    lips = pack.arrays["lip_points"]
    m = np.asarray(pack.arrays["portrait_matrix"], np.float64)
    inv = np.linalg.inv(np.vstack([m, [0, 0, 1]]))[:2]
    pts = lips @ inv[:, :2].T + inv[:, 2]
    (x0, y0), (x1, y1) = pts.min(0).astype(int), pts.max(0).astype(int)
    box = np.s_[y0:y1, x0:x1]
    moved = np.abs(frames[15][box].astype(int) - frames[1][box].astype(int)).mean()
    assert moved > MOUTH_OPEN_DIFF


def _bad_inputs(folder: Path) -> dict[str, Path]:
    text = folder / "notes.wav"
    text.write_text("this is not audio\n" * 20)
    empty = folder / "empty.wav"
    empty.write_bytes(b"")
    zero = write_wav(folder / "zero.wav", np.zeros(0, np.float32))
    # A WAV whose format tag (0x7777) no decoder knows.
    weird = bytearray(write_wav(folder / "codec.wav", np.zeros(1600, np.float32)).read_bytes())
    weird[20:22] = (0x7777).to_bytes(2, "little")
    codec = folder / "codec.wav"
    codec.write_bytes(bytes(weird))
    return {"not audio": text, "empty file": empty, "zero-length": zero, "codec": codec}


def test_bad_input_is_a_clear_error_and_leaves_no_file(
    folder: Path, stub: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = folder / "bad"
    bad.mkdir()
    for why, src in _bad_inputs(bad).items():
        out = bad / f"out-{src.stem}.mp4"
        rc = main(["render", str(src), "-o", str(out), "--model", str(stub), "--size", "256"])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2, why
        assert err[-1].startswith("headcast render: error:") and str(src) in err[-1], err
        assert "Traceback" not in "\n".join(err)
        assert not out.exists(), why
    _no_leftovers(bad)


def test_unwritable_output_is_a_clear_error(
    folder: Path, stub: Path, ctx: RenderContext, clip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = folder / "a-file"
    blocker.write_text("x")
    for out in (folder / "missing" / "out.mp4", blocker / "out.mp4", folder):
        rc = main(["render", str(clip), "-o", str(out), "--model", str(stub), "--size", "256"])
        err = capsys.readouterr().err
        assert rc == 2 and "headcast render: error:" in err and "Traceback" not in err
        assert out == folder or not out.exists()
    # a folder that takes no files (as a read-only one, for root too): said before any
    # frame is rendered, not after the whole render
    frames: list[int] = []
    with pytest.raises(RenderError, match=r"/proc/out\.mp4: cannot write here"):
        render_file(
            clip, Path("/proc/out.mp4"), RenderOptions(size=256),
            context=ctx, progress=lambda done, total: frames.append(done),
        )  # fmt: skip
    assert not frames


def test_failed_render_midway_leaves_no_partial_file(
    folder: Path, ctx: RenderContext, clip: Path
) -> None:
    out = folder / "interrupted.mp4"

    def stop(done: int, total: int) -> None:
        if done == 20:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        render_file(clip, out, RenderOptions(size=256), context=ctx, progress=stop)
    assert not out.exists()
    _no_leftovers(folder)
    with pytest.raises(RenderError, match="unknown emotion"):
        render_file(clip, out, RenderOptions(size=256, emotion="smug"), context=ctx)


@pytest.mark.skipif(not DEFAULT_MODEL.is_file(), reason="the shipped motion model is not built yet")
def test_shipped_model_opens_the_mouth_for_speech_only(folder: Path, clip: Path) -> None:
    out, motion = folder / "shipped.mp4", folder / "shipped.json"
    render_file(
        clip,
        out,
        RenderOptions(size=256, pose="still", seed=0),
        context=RenderContext(provider="cpu"),
        motion_out=motion,
    )
    jaw = np.array(json.loads(motion.read_text())["frames"])[:, CHANNEL_INDEX["jawOpen"]]
    assert jaw[:20].max() < 0.05 and jaw[-15:].max() < 0.05
    assert jaw[27:50].mean() > jaw[:20].mean() + 0.05


def test_output_must_be_a_new_or_regular_video_file(
    folder: Path, stub: Path, clip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A device or pipe is never replaced by the finished file, the input is never
    overwritten, and a name without a video extension is refused, all before any work."""
    import os

    fifo = folder / "pipe.mp4"
    os.mkfifo(fifo)
    own = folder / "own.mp4"
    assert main(["render", str(clip), "-o", str(own), "--model", str(stub), "--size", "256"]) == 0
    before = own.read_bytes()
    cases = {
        fifo: (clip, "not a regular file"),
        own: (own, "is the input file"),
        folder / "clip.avi": (clip, "name it with one of .mp4"),
        folder / "noext": (clip, "name it with one of .mp4"),
    }
    for out, (src, why) in cases.items():
        rc = main(["render", str(src), "-o", str(out), "--model", str(stub), "--size", "256"])
        err = capsys.readouterr().err
        assert rc == 2 and why in err and "Traceback" not in err, (out, err)
    assert fifo.is_fifo() and own.read_bytes() == before
    assert not (folder / "clip.avi").exists() and not (folder / "noext").exists()
    for flag in ("--seed", "--threads", "--jobs", "--crf"):
        with pytest.raises(SystemExit) as stop:  # argparse's own usage error
            main(["render", str(clip), "-o", str(folder / "x.mp4"), flag, "-1"])
        assert stop.value.code == 2 and f"{flag}: must be between" in capsys.readouterr().err
    _no_leftovers(folder)


def test_non_finite_float_samples_still_render(
    folder: Path, ctx: RenderContext, caplog: pytest.LogCaptureFixture
) -> None:
    """Float WAV input with NaN, inf and absurd values: the video is made, the audio
    track stays finite and within full scale (NaN and infinity as silence, the rest
    clipped), and a warning counts them."""
    import struct

    pcm = voiced_bursts([(0.3, 0.9)], 1.2) * 0.5
    pcm[2000:2400] = np.nan
    pcm[6000:6100] = np.inf
    pcm[9000:9100] = 1e30
    data = pcm.astype("<f4").tobytes()
    fmt = struct.pack("<IHHIIHH", 16, 3, 1, SR, SR * 4, 4, 32)  # IEEE float, mono
    src = folder / "nonfinite.wav"
    src.write_bytes(
        b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt " + fmt
        + b"data" + struct.pack("<I", len(data)) + data
    )  # fmt: skip
    out = folder / "nonfinite.mp4"
    with caplog.at_level("WARNING"):
        render_file(src, out, RenderOptions(size=256), context=ctx)
    assert "500 samples are not numbers" in caplog.text
    track, rate, _ = decode_track_audio(out)
    assert np.isfinite(track).all() and np.abs(track).max() <= 1.01
    infinities = track[int(6000 / SR * rate) : int(6100 / SR * rate)]
    assert np.abs(infinities).max() < 0.5  # not full scale: silence in a 0.5 burst
    assert abs(len(track) / rate - 1.2) < 0.05
