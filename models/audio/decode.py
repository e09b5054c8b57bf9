"""Decode any audio or video file with PyAV (FFmpeg) to 16 kHz mono float32.

Decoding streams: :func:`iter_audio` yields bounded chunks, so hour-long files never
sit in memory whole; :func:`load_audio` concatenates them for short inputs.
"""

from __future__ import annotations

import logging
import wave
from collections.abc import Generator
from pathlib import Path
from typing import Any

import av
import numpy as np

from headcast.models.audio import SAMPLE_RATE, AudioError, AudioTooLong, finite_pcm
from headcast.models.audio.resample import MAX_INPUT_RATE, MIN_INPUT_RATE, Resampler

log = logging.getLogger(__name__)

FALLBACK_RATE = 48_000  # Hz, for files at other rates or with none declared
CHUNK_S = 10.0  # seconds per yielded chunk
DECLARED_SLACK = 1.25  # a declared length past this times the limit is refused unread
# Decoding clearly less than a WAV or FLAC header states (below CUT_SHARE of it, by
# more than CUT_SLACK_S) is warned about as a truncated file.
CUT_SHARE = 0.95
CUT_SLACK_S = 0.1
#: a whole file whose loudest sample stays below this (dB full scale) is warned about:
#: speech that quiet barely moves the mouth (a muted or badly set microphone)
QUIET_PEAK_DBFS = -45.0
STREAMED_WAV_BYTES = 0xFFFF0000  # a data size this large: written by a stream, not known
SCAN_SLACK_S = 0.25  # packet durations summed past the limit by more than this: refused (codec priming and padding are tens of ms)
#: FFmpeg demuxers that read other files or the network (playlists, concat lists, SDP,
#: image sequences): an upload must not make the server read what it names
INDIRECT_FORMATS = frozenset(
    {"concat", "hls", "dash", "webm_dash_manifest", "sdp", "rtp", "rtp_mpegts", "rtsp",
     "image2", "image2pipe", "tee", "lavfi", "ffmetadata"}
)  # fmt: skip
#: demuxers of still images (besides these, FFmpeg's ``*_pipe`` ones: png_pipe, jpeg_pipe…)
IMAGE_FORMATS = frozenset({"image2", "image2pipe", "gif", "apng"})


def iter_audio(
    path: str | Path, chunk_s: float = CHUNK_S, max_seconds: float | None = None
) -> Generator[np.ndarray, None, None]:
    """Yield float32 (N,) 16 kHz mono chunks of about ``chunk_s`` seconds (last one shorter).

    Raises :class:`AudioError` for a missing file, a file FFmpeg cannot open, one that
    names other files or the network (a playlist, a concat list), one with no audio
    stream or a sample rate below 4 kHz; a stream that breaks mid-way ends the iteration
    with an error too. :class:`AudioTooLong` once the audio passes ``max_seconds`` (a
    small file can declare hours), before decoding the rest.
    """
    p = Path(path)
    container, stream, rate = _open_checked(p, max_seconds)
    with container:
        # One converter per input format: a stream may change rate or layout midway
        # (joined MP3s), and a converter set up for one refuses, or passes through, another.
        converter: av.AudioResampler | None = None
        setup: tuple[int, str, str] | None = None
        to_16k = None if rate == SAMPLE_RATE else Resampler(rate, SAMPLE_RATE)
        target = max(1, int(chunk_s * SAMPLE_RATE))
        limit = None if max_seconds is None else int(max_seconds * SAMPLE_RATE)
        pending: list[np.ndarray] = []
        have = total = emitted = broken = 0
        peak = 0.0

        def resampled(block: np.ndarray) -> np.ndarray:
            nonlocal broken, peak
            broken += int(block.size - np.isfinite(block).sum())
            block = finite_pcm(block)
            peak = max(peak, float(np.abs(block).max(initial=0.0)))
            return block if to_16k is None else to_16k.push(block)

        try:
            for frame in container.decode(stream):
                key = (frame.sample_rate, frame.format.name, frame.layout.name)
                outs = []
                if key != setup:
                    if converter is not None:
                        outs += converter.resample(None)  # the old setup's tail
                    converter, setup = av.AudioResampler(format="fltp", rate=rate), key
                assert converter is not None
                for out in [*outs, *converter.resample(frame)]:
                    block = resampled(_mono(out))
                    pending.append(block)
                    have += len(block)
                    total += len(block)
                    if limit is not None and total > limit:
                        raise AudioTooLong(f"{p}: longer than {max_seconds:g} s")
                    if have >= target:
                        data = np.concatenate(pending)
                        yield finite_pcm(data[:target])
                        emitted += target
                        pending, have = [data[target:]], len(data) - target
            if converter is not None:
                for out in converter.resample(None):
                    pending.append(resampled(_mono(out)))
        except AudioError:
            raise
        except (av.error.FFmpegError, ValueError) as exc:
            raise AudioError(f"{p}: audio stream could not be decoded ({exc})") from exc
        if to_16k is not None:
            pending.append(to_16k.flush())
        if pending:
            data = np.concatenate(pending)
            if len(data):
                yield finite_pcm(data)
                emitted += len(data)
        _warn_if_cut(p, container, stream, emitted / SAMPLE_RATE)
        _warn_if_quiet(p, peak, emitted)
        if broken:
            log.warning(
                "%s: %d samples are not numbers (NaN or infinity); they play as silence",
                p, broken,
            )  # fmt: skip


def _warn_if_quiet(path: Path, peak: float, samples: int) -> None:
    """A warning when a whole file is silent or so quiet that the mouth barely moves."""
    if not samples:
        return  # the callers refuse empty audio with an error of their own
    if peak == 0.0:
        log.warning("%s: the audio is silent (every sample is zero)", path)
    elif (db := 20.0 * np.log10(peak)) < QUIET_PEAK_DBFS:
        log.warning(
            "%s: the audio is very quiet (its loudest sample is at %.0f dB full scale); "
            "the mouth opens less than it should: raise its level",
            path, db,
        )  # fmt: skip


def _warn_if_cut(path: Path, container: Any, stream: Any, decoded_s: float) -> None:
    """A warning when a file whose header states its length exactly (a PCM WAV's data
    chunk, FLAC's sample count) decodes to clearly less: a download or copy cut short
    still plays, but the user should know."""
    formats = set(container.format.name.split(","))
    declared: float | None = None
    if "wav" in formats:
        declared = _wav_header_seconds(path)  # FFmpeg clamps it to the file's size
    elif "flac" in formats:
        declared = _declared_seconds(container, stream)
    if declared is not None and decoded_s < CUT_SHARE * declared - CUT_SLACK_S:
        log.warning(
            "%s: %.2f s of audio decoded, its header says %.2f s (a truncated file?)",
            path, decoded_s, declared,
        )  # fmt: skip


def _wav_header_seconds(path: Path) -> float | None:
    """The length a PCM WAV's header states, or None (another WAV encoding, or a WAV
    written to a pipe, whose header leaves the size at its largest value)."""
    try:
        with wave.open(str(path), "rb") as w:
            rate, frames = w.getframerate(), w.getnframes()
            size = frames * w.getsampwidth() * w.getnchannels()
    except (wave.Error, EOFError, OSError):
        return None
    if rate <= 0 or size >= STREAMED_WAV_BYTES:
        return None
    return frames / rate


def _declared_seconds(container: Any, stream: av.audio.stream.AudioStream) -> float | None:
    """The audio's length as the file declares it (s), or None when it does not."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return float(container.duration) / av.time_base
    return None


def probe_audio(path: str | Path, max_seconds: float | None = None) -> float | None:
    """Every check :func:`iter_audio` makes before decoding (a readable file, one that
    names no other files, an audio stream, a usable rate, not longer than
    ``max_seconds`` by its header or its packets), without decoding: :class:`AudioError`
    or :class:`AudioTooLong`, else the length the header declares (seconds; None when
    it declares none)."""
    container, stream, _ = _open_checked(Path(path), max_seconds)
    try:
        return _declared_seconds(container, stream)
    finally:
        container.close()


def is_empty(path: str | Path, max_seconds: float | None = None) -> bool:
    """:func:`probe_audio`'s checks (the same errors), then whether the file holds no
    samples at all: only its first few milliseconds are decoded."""
    chunks = iter_audio(path, chunk_s=0.01, max_seconds=max_seconds)
    try:
        return next(chunks, None) is None
    finally:
        chunks.close()


def _open_checked(p: Path, max_seconds: float | None) -> tuple[Any, Any, int]:
    """(open container, its first audio stream, the rate to decode at) after the checks
    of :func:`probe_audio`; the container is closed when a check fails."""
    if p.is_dir():
        raise AudioError(f"{p}: is a folder, not an audio file")
    if not p.is_file():
        raise AudioError(f"{p}: no such file")
    if p.stat().st_size == 0:
        raise AudioError(f"{p}: the file is empty (0 bytes)")
    try:
        container = av.open(str(p), options={"protocol_whitelist": "file"})
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise AudioError(f"{p}: not a readable audio or video file") from exc
    try:
        formats = set(container.format.name.split(","))
        image = formats & IMAGE_FORMATS or any(f.endswith("_pipe") for f in formats)
        if image and not container.streams.audio:
            raise AudioError(f"{p}: an image, not audio; give the speech's audio file")
        if INDIRECT_FORMATS & formats:
            raise AudioError(
                f"{p}: a {container.format.name} file names other files; give the audio itself"
            )
        if not container.streams.audio:
            raise AudioError(f"{p}: contains no audio stream")
        stream = container.streams.audio[0]
        # FFmpeg decodes and converts to planar float at the file's own rate; channels
        # are averaged here (FFmpeg's downmix adds them at -3 dB, a stereo file would be
        # louder than mono) and the rate converted by the same resampler live audio and
        # training use, so a file gives the features its audio streamed live would.
        rate = _declared_rate(stream)
        if rate < MIN_INPUT_RATE:
            raise AudioError(
                f"{p}: a sample rate of {rate} Hz is too low for speech "
                f"(at least {MIN_INPUT_RATE} Hz)"
            )
        if rate > MAX_INPUT_RATE:
            rate = FALLBACK_RATE  # FFmpeg brings exotic rates into range first
        if max_seconds is not None:
            _refuse_long(p, stream.index, _declared_seconds(container, stream), max_seconds)
    except BaseException:
        container.close()
        raise
    return container, stream, rate


def _refuse_long(path: Path, index: int, declared: float | None, max_seconds: float) -> None:
    """:class:`AudioTooLong` before any decoding when the file is longer than the limit.

    A declared length far past it is refused from the header (a 363 KB FLAC can declare
    4 h). Declared lengths can be estimates (MP3 without a header), hence the slack; a
    file that declares none, or one inside the slack, has its packets' durations summed
    without decoding: 10x cheaper than decoding up to the limit (700 s of FLAC: 0.04 s
    against 0.45 s). Decoding still stops at the limit whatever a file declares.
    """
    if declared is not None and declared > DECLARED_SLACK * max_seconds + 1.0:
        raise AudioTooLong(
            f"{path}: declares {declared:.0f} s of audio, longer than {max_seconds:g} s"
        )
    if declared is None or declared > max_seconds:
        enough = max_seconds + SCAN_SLACK_S  # codec priming and padding
        scanned = _scanned_seconds(path, index, enough)
        if scanned is not None and scanned > enough:
            raise AudioTooLong(f"{path}: longer than {max_seconds:g} s (by its packets' durations)")


def _scanned_seconds(path: Path, index: int, enough_s: float) -> float | None:
    """The audio stream's length from its packets' durations, demuxed but not decoded,
    stopping once past ``enough_s``; None when its packets carry no durations."""
    try:
        with av.open(str(path), options={"protocol_whitelist": "file"}) as container:
            stream = container.streams[index]
            base = stream.time_base
            if base is None or base <= 0:
                return None
            enough = int(enough_s / base) + 1  # in the stream's time base: integer sums
            total = 0
            for packet in container.demux(stream):
                if not packet.duration:  # FFmpeg's 0 (or PyAV's None): not known
                    if packet.size:
                        return None
                    continue
                total += int(packet.duration)
                if total > enough:
                    break
    except (av.error.FFmpegError, ValueError):
        return None  # the decoder says what is wrong with the file
    return float(total * base)


def _declared_rate(stream: av.audio.stream.AudioStream) -> int:
    """The stream's sample rate, or the fallback when it declares none it can tell."""
    try:
        return int(stream.rate or stream.codec_context.sample_rate or FALLBACK_RATE)
    except (AttributeError, TypeError, ValueError):  # streams without a usable codec
        return FALLBACK_RATE


def _mono(frame: av.AudioFrame) -> np.ndarray:
    """Planar float frame (channels, N) -> float32 (N,) channel mean."""
    return frame.to_ndarray().mean(axis=0, dtype=np.float32)


def load_audio(path: str | Path, max_seconds: float | None = None) -> tuple[np.ndarray, int]:
    """Decode a file -> (float32 (N,) 16 kHz mono in -1..1, 16000). N may be 0.

    :class:`AudioTooLong` past ``max_seconds``."""
    chunks = list(iter_audio(path, max_seconds=max_seconds))
    pcm = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    return pcm, SAMPLE_RATE
