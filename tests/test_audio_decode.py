"""File decoding through PyAV: formats, channels, rates, bad files, bounded chunks."""

from __future__ import annotations

import wave
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from headcast.models.audio import AudioError
from headcast.models.audio.features import SAMPLE_RATE, iter_audio, load_audio

TONE_HZ = 440.0


def write_wav(path: Path, rate: int, seconds: float, channels: int = 1) -> Path:
    t = np.arange(int(rate * seconds)) / rate
    x = (np.sin(2 * np.pi * TONE_HZ * t) * 12_000).astype(np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.repeat(x[:, None], channels, axis=1).tobytes())
    return path


def encode(path: Path, codec: str, rate: int, seconds: float, fmt: str | None = None) -> Path:
    """A 440 Hz stereo tone encoded with PyAV (what users upload)."""
    with av.open(str(path), "w", format=fmt) as out:
        stream: Any = out.add_stream(codec, rate=rate, layout="stereo")
        n = int(rate * seconds)
        t = np.arange(n) / rate
        x = (0.4 * np.sin(2 * np.pi * TONE_HZ * t)).astype(np.float32)
        block = stream.codec_context.frame_size or 1024
        fmt_name = stream.codec_context.format.name
        for i in range(0, n, block):
            chunk = np.stack([x[i : i + block]] * 2)
            if fmt_name.endswith("p"):
                frame = av.AudioFrame.from_ndarray(
                    chunk.astype(np.float32), format="fltp", layout="stereo"
                )
            else:
                frame = av.AudioFrame.from_ndarray(
                    (chunk.T.reshape(1, -1) * 32767).astype(np.int16), format="s16", layout="stereo"
                )
            frame.sample_rate = rate
            frame.pts = i
            for p in stream.encode(frame):
                out.mux(p)
        for p in stream.encode(None):
            out.mux(p)
    return path


def dominant_hz(x: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spec) * SAMPLE_RATE / len(x))


@pytest.mark.parametrize("rate,channels", [(8_000, 1), (44_100, 2), (48_000, 1)])
def test_wav_any_rate_and_channels(tmp_path: Path, rate: int, channels: int) -> None:
    pcm, sr = load_audio(write_wav(tmp_path / "a.wav", rate, 1.0, channels))
    assert sr == SAMPLE_RATE and pcm.dtype == np.float32
    assert abs(len(pcm) - SAMPLE_RATE) <= 64
    assert abs(dominant_hz(pcm) - TONE_HZ) < 3
    assert abs(np.abs(pcm).max() - 12_000 / 32768) < 0.02


@pytest.mark.parametrize(
    "name,codec,fmt", [("a.flac", "flac", None), ("a.mp3", "libmp3lame", None),
                       ("a.ogg", "libopus", "ogg"), ("a.m4a", "aac", "mp4")],
)  # fmt: skip
def test_compressed_formats(tmp_path: Path, name: str, codec: str, fmt: str | None) -> None:
    try:
        av.codec.Codec(codec, "w")
    except av.error.FFmpegError:  # pragma: no cover - depends on the FFmpeg build
        pytest.skip(f"no {codec} encoder")
    rate = 48_000 if codec == "libopus" else 44_100
    pcm, _ = load_audio(encode(tmp_path / name, codec, rate, 1.0, fmt))
    assert abs(len(pcm) - SAMPLE_RATE) < 0.1 * SAMPLE_RATE  # codec padding is allowed
    assert abs(dominant_hz(pcm) - TONE_HZ) < 3


def test_non_audio_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("this is not audio\n" * 50)
    with pytest.raises(AudioError, match="not a readable audio|contains no audio stream"):
        load_audio(bad)


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="no such file"):
        load_audio(tmp_path / "missing.wav")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(AudioError, match=r"empty \(0 bytes\)"):
        load_audio(empty)


def test_an_image_is_called_an_image(tmp_path: Path) -> None:
    from PIL import Image

    for name in ("face.jpg", "face.png"):
        Image.new("RGB", (32, 32), (200, 120, 90)).save(tmp_path / name)
        with pytest.raises(AudioError, match="an image, not audio") as err:
            load_audio(tmp_path / name)
        assert "Error" not in str(err.value)


def test_zero_length_wav_gives_empty_audio(tmp_path: Path) -> None:
    pcm, _ = load_audio(write_wav(tmp_path / "z.wav", 16_000, 0.0))
    assert pcm.shape == (0,)


def test_a_cut_wav_decodes_what_is_there_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    whole = write_wav(tmp_path / "whole.wav", 16_000, 4.0)
    cut = tmp_path / "cut.wav"
    cut.write_bytes(whole.read_bytes()[:16_044])  # header + 0.5 s of the 4 s it states
    with caplog.at_level("WARNING", logger="headcast.models.audio.decode"):
        pcm, _ = load_audio(cut)
        assert len(pcm) == pytest.approx(8_000, abs=200)
        assert "its header says 4.00 s (a truncated file?)" in caplog.text
        caplog.clear()
        load_audio(whole)  # whole files, and WAVs streamed with an open-ended size: silent
        streamed = bytearray(whole.read_bytes())
        streamed[40:44] = (0xFFFFFFFF).to_bytes(4, "little")  # the data chunk's size
        (tmp_path / "piped.wav").write_bytes(bytes(streamed))
        load_audio(tmp_path / "piped.wav")
    assert "truncated" not in caplog.text


def test_silent_and_very_quiet_files_are_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def wav(name: str, peak_db: float | None) -> Path:
        t = np.arange(16_000) / 16_000
        gain = 0.0 if peak_db is None else 32767 * 10 ** (peak_db / 20)
        with wave.open(str(tmp_path / name), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(16_000)
            w.writeframes((np.sin(2 * np.pi * TONE_HZ * t) * gain).astype("<i2").tobytes())
        return tmp_path / name

    with caplog.at_level("WARNING", logger="headcast.models.audio.decode"):
        load_audio(wav("zeros.wav", None))
        assert "the audio is silent (every sample is zero)" in caplog.text
        caplog.clear()
        load_audio(wav("quiet.wav", -58.0))
        assert "very quiet (its loudest sample is at -58 dB full scale)" in caplog.text
        assert "raise its level" in caplog.text
        caplog.clear()
        load_audio(wav("soft.wav", -30.0))  # soft but usable: nothing to say
        load_audio(write_wav(tmp_path / "z.wav", 16_000, 0.0))  # empty: its own error later
    assert not caplog.text


def test_video_without_audio_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "v.mp4"
    with av.open(str(path), "w") as out:
        s: Any = out.add_stream("mpeg4", rate=25)
        s.width, s.height, s.pix_fmt = 32, 32, "yuv420p"
        for i in range(3):
            f = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
            f.pts = i
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode(None):
            out.mux(p)
    with pytest.raises(AudioError, match="no audio stream"):
        load_audio(path)


def test_iter_audio_yields_bounded_chunks(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "long.wav", 22_050, 5.0)
    chunks = list(iter_audio(path, chunk_s=1.0))
    assert all(len(c) == SAMPLE_RATE for c in chunks[:-1])
    assert len(chunks) >= 5
    whole, _ = load_audio(path)
    np.testing.assert_array_equal(np.concatenate(chunks), whole)


@pytest.mark.parametrize("rate", [8_000, 22_050, 44_100, 48_000])
def test_a_file_decodes_to_what_its_audio_gives_streamed_live(tmp_path, rate) -> None:
    """Files and live chunks share one resampler: a WAV file's 16 kHz samples equal its
    samples pushed through the live StreamingResampler (stereo averaged the same way)."""
    import wave

    from headcast.models.audio.features import StreamingResampler, iter_audio

    rng = np.random.default_rng(rate)
    n = int(2.5 * rate)
    stereo = (rng.standard_normal((n, 2)) * 3000).clip(-32768, 32767).astype("<i2")
    path = tmp_path / "x.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(stereo.tobytes())
    from_file = np.concatenate(list(iter_audio(path, chunk_s=0.7)))
    live = StreamingResampler(rate)
    pushed = [live.push(stereo[i : i + 441]) for i in range(0, n, 441)]
    streamed = np.concatenate([*pushed, live.flush()])
    assert len(from_file) == len(streamed)
    np.testing.assert_allclose(from_file, streamed, atol=2e-6)


def _mp3(path: Path, rate: int, seconds: float) -> bytes:
    """A tone as MP3 at ``rate`` Hz (bytes, no container headers beyond the frames)."""
    plain = {"id3v2_version": "0", "write_xing": "0", "write_id3v1": "0"}  # frames only
    with av.open(str(path), "w", format="mp3", options=plain) as out:
        stream = out.add_stream("libmp3lame", rate=rate, layout="mono")
        t = np.arange(int(rate * seconds)) / rate
        pcm = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
        for i in range(0, pcm.shape[1], 1152):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(pcm[:, i : i + 1152]), format="fltp", layout="mono"
            )
            frame.sample_rate = rate
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path.read_bytes()


def test_a_stream_that_changes_rate_midway_keeps_its_speed(tmp_path: Path) -> None:
    """Two MP3s joined byte by byte (44.1 then 22.05 kHz): both halves at their speed."""
    joined = tmp_path / "joined.mp3"
    joined.write_bytes(
        _mp3(tmp_path / "a.mp3", 44_100, 2.0) + _mp3(tmp_path / "b.mp3", 22_050, 2.0)
    )
    pcm, _ = load_audio(joined)
    assert abs(len(pcm) / SAMPLE_RATE - 4.0) < 0.15, len(pcm) / SAMPLE_RATE


def test_files_that_claim_hours_or_name_other_files_are_refused(tmp_path: Path) -> None:
    """A small file must not decode to hours of audio or read files it names: a WAV whose
    header says 1 Hz (16000 samples = 4.4 h), a concat list pointing at another file, and
    any file past the caller's length limit are errors, found before decoding the rest."""
    import struct

    from headcast.models.audio import AudioTooLong

    one_hz = tmp_path / "rate1.wav"
    data = bytearray(write_wav(tmp_path / "a.wav", 16_000, 1.0).read_bytes())
    data[24:32] = struct.pack("<II", 1, 2)  # sample rate 1 Hz, byte rate 2
    one_hz.write_bytes(bytes(data))
    with pytest.raises(AudioError, match="1 Hz is too low"):
        load_audio(one_hz)

    listing = tmp_path / "list.txt"
    listing.write_text("ffconcat version 1.0\nfile a.wav\n")
    with pytest.raises(AudioError, match="names other files"):
        load_audio(listing)

    long = write_wav(tmp_path / "long.wav", 16_000, 3.0)
    with pytest.raises(AudioTooLong, match="longer than 1 s"):
        load_audio(long, max_seconds=1.0)
    assert len(load_audio(long, max_seconds=3.5)[0]) == 48_000


def test_a_declared_length_past_the_limit_is_refused_before_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from headcast.models.audio import AudioTooLong

    flac = encode(tmp_path / "long.flac", "flac", 16_000, 60.0)
    decoded: list[int] = []
    real_decode = av.container.InputContainer.decode

    def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
        for frame in real_decode(self, *args, **kwargs):
            decoded.append(frame.samples)
            yield frame

    monkeypatch.setattr(av.container.InputContainer, "decode", counting)
    with pytest.raises(AudioTooLong, match="declares 60 s"):
        load_audio(flac, max_seconds=10.0)
    assert decoded == [], "nothing was decoded"
    # within the slack a declared length is not trusted: the packets' durations decide,
    # still without decoding
    with pytest.raises(AudioTooLong, match="longer than 50 s \\(by its packets"):
        load_audio(flac, max_seconds=50.0)
    assert decoded == [], "nothing was decoded"
    # a file that declares no length at all (a FLAC written to a pipe: STREAMINFO's
    # sample count 0) is measured the same way
    data = bytearray(flac.read_bytes())
    assert data[:4] == b"fLaC"
    data[21] &= 0xF0  # the 36-bit total sample count: its top 4 bits and 4 more bytes
    data[22:26] = bytes(4)
    unknown = tmp_path / "unknown.flac"
    unknown.write_bytes(bytes(data))
    with av.open(str(unknown)) as container:
        stream = container.streams.audio[0]
        assert stream.duration is None and container.duration is None
    with pytest.raises(AudioTooLong, match="longer than 30 s \\(by its packets"):
        load_audio(unknown, max_seconds=30.0)
    assert decoded == [], "nothing was decoded"
    # and at or under the limit everything decodes, as before
    assert len(load_audio(unknown, max_seconds=60.0)[0]) == 60 * 16_000
