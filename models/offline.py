"""Offline rendering: a speech file -> an MP4 (H.264 + AAC) of the avatar saying it.

The live pipeline run as fast as the machine allows: decode (PyAV) -> audio-to-motion ->
motion mixer (:func:`models.pipeline.speech_to_take`) -> renderer -> PyAV muxer.
Rendering is a thread pool (cv2 releases the GIL), each worker also pastes into the
portrait and converts RGB -> YUV 4:2:0, while the calling thread encodes H.264 and AAC
in frame order; at most :data:`QUEUE_PER_WORKER` frames per worker are in flight, so
memory is bounded whatever the clip length.

The audio track is the input's own audio at its own rate (resampled only when AAC
cannot carry that rate) and mono or stereo. Video pts come from the frame counter,
audio pts from the sample counter, both from zero: one media clock.

Everything is written to a hidden ``.part`` file beside the output and renamed at the
end, so a failed or interrupted render never leaves a file under the output name.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal, cast

import av
import cv2
import numpy as np

from models.audio import AudioError
from models.audio.decode import load_audio
from models.motion import MotionModel, MotionModelError, load_motion_model
from models.pipeline import EmotionCue, Pose, Take, speech_to_take
from models.render.base import MouthRenderer, Renderer

SIZES: tuple[int, ...] = (256, 512)
FULL: Literal["full"] = "full"  # output size: the whole original portrait with the head pasted in
FPS_CHOICES: tuple[int, ...] = (25, 30)
QUEUE_PER_WORKER = 3  # frames in flight per render worker
AAC_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000)
AAC_FALLBACK_RATE = 48_000  # Hz, for inputs at rates AAC does not carry
AAC_BITRATE = 128_000  # bit/s for stereo; mono gets half
AUDIO_BLOCK = 4096  # samples per audio frame handed to the encoder

Progress = Callable[[int, int], None]  # (frames done, frames total)
Size = int | Literal["full"]


class RenderError(Exception):
    """A render that cannot be done; the message is one readable line for the user."""


@dataclass(frozen=True)
class RenderOptions:
    """How to render. ``size``: head-frame side (256, 512) or ``"full"`` (the portrait).

    ``seed=None`` derives the idle-motion seed from the audio, so re-rendering a file
    reproduces it. ``workers=0``: one render thread per two cores (see ``default_workers``).
    """

    fps: int = 25
    size: Size = 512
    emotion: str = "neutral"
    cues: tuple[EmotionCue, ...] = ()
    pose: Pose = "natural"
    seed: int | None = None
    crf: int = 20
    preset: str = "veryfast"
    workers: int = 0
    backend: str = "auto"

    def __post_init__(self) -> None:
        if self.fps not in FPS_CHOICES:
            raise ValueError(f"fps must be one of {FPS_CHOICES}, got {self.fps}")
        if self.size != FULL and self.size not in SIZES:
            raise ValueError(f"size must be one of {SIZES} or {FULL!r}, got {self.size!r}")

    @property
    def head_size(self) -> int:
        """Side of the rendered head frame (full-portrait output renders at 512)."""
        return 512 if self.size == FULL else int(self.size)


@dataclass
class RenderResult:
    """What a render produced; times in seconds, ``rtf`` = wall time / audio duration."""

    output: Path
    frames: int
    fps: int
    width: int
    height: int
    audio_s: float
    wall_s: float
    seed: int
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def rtf(self) -> float:
        return self.wall_s / self.audio_s if self.audio_s > 0 else float("inf")


class RenderContext:
    """Loaded models shared by many renders in one process: the motion model per fps
    and one renderer per (avatar, size, thread). Thread-safe."""

    def __init__(
        self,
        avatar: str | Path | None = None,
        motion_model: str | Path | None = None,
        provider: Any = "auto",
        *,
        edtalk_weights: str | Path | None = None,
        edtalk_precision: Literal["fp32", "fp16"] = "fp32",
    ) -> None:
        self.avatar = avatar
        self.motion_path = motion_model
        self.provider = provider
        self.edtalk_weights = edtalk_weights
        self.edtalk_precision = edtalk_precision
        self._lock = threading.Lock()
        self._models: dict[int, MotionModel] = {}
        self._lips: Any = None
        self._local = threading.local()

    def lips(self) -> Any:
        """EDTalk's Audio2Lip runner (backend ``edtalk``), loaded once."""
        from models.edtalk import WeightsError, create_audio2lip

        with self._lock:
            if self._lips is None:
                if self.edtalk_weights is None:
                    raise RenderError("the edtalk backend needs --edtalk-weights DIR")
                try:
                    self._lips = create_audio2lip(self.edtalk_weights, provider=self.provider)
                except WeightsError as exc:
                    raise RenderError(str(exc)) from exc
            return self._lips

    def model(self, fps: int) -> MotionModel:
        with self._lock:
            if fps not in self._models:
                try:
                    self._models[fps] = load_motion_model(
                        self.motion_path, fps=fps, provider=self.provider
                    )
                except MotionModelError as exc:
                    raise RenderError(str(exc)) from exc
            return self._models[fps]

    def renderer(self, size: int, backend: str = "auto") -> Renderer:
        """This thread's renderer for ``size`` (made on first use)."""
        cache: dict[tuple[int, str], Renderer] | None = getattr(self._local, "renderers", None)
        if cache is None:
            cache = self._local.renderers = {}
        key = (size, backend)
        if key not in cache:
            from models.avatar.errors import AvatarError
            from models.edtalk import WeightsError
            from models.render import create_renderer

            try:
                cache[key] = create_renderer(
                    self.avatar,
                    backend=backend,
                    size=size,
                    provider=self.provider,
                    edtalk_weights=self.edtalk_weights,
                    precision=self.edtalk_precision,
                )
            except (AvatarError, WeightsError) as exc:
                raise RenderError(str(exc)) from exc
        return cache[key]


# ---- audio ----------------------------------------------------------------------------


def _source_audio_format(path: Path) -> tuple[int, str]:
    """(output rate Hz, "mono" | "stereo") that carries the input's first audio stream."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        rate = int(stream.rate or stream.codec_context.sample_rate or AAC_FALLBACK_RATE)
        channels = int(stream.codec_context.channels or 1)
    return (rate if rate in AAC_RATES else AAC_FALLBACK_RATE), (
        "mono" if channels == 1 else "stereo"
    )


def _audio_blocks(path: Path, rate: int, layout: str) -> Iterator[np.ndarray]:
    """The input's audio as float32 (C, n) planar blocks at ``rate``, in order."""
    resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                yield out.to_ndarray().astype(np.float32, copy=False)
        for out in resampler.resample(None):
            yield out.to_ndarray().astype(np.float32, copy=False)


class _AudioTrack:
    """Feeds the input's audio to an AAC stream up to a given media time."""

    def __init__(self, out: Any, path: Path) -> None:
        self.rate, self.layout = _source_audio_format(path)
        self.stream = out.add_stream("aac", rate=self.rate, layout=self.layout)
        self.stream.bit_rate = AAC_BITRATE // (2 if self.layout == "mono" else 1)
        self._out = out
        self._blocks = _audio_blocks(path, self.rate, self.layout)
        self._pending = np.zeros((1 if self.layout == "mono" else 2, 0), np.float32)
        self._done = False
        self.samples = 0  # samples handed to the encoder so far

    def _encode(self, block: np.ndarray) -> None:
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(block), format="fltp", layout=self.layout
        )
        frame.sample_rate = self.rate
        frame.pts = self.samples
        frame.time_base = Fraction(1, self.rate)
        self.samples += block.shape[1]
        for packet in self.stream.encode(frame):
            self._out.mux(packet)

    def feed_until(self, seconds: float | None) -> None:
        """Encode audio up to ``seconds`` of media time (None = to the end, and flush)."""
        target = None if seconds is None else round(seconds * self.rate)
        while target is None or self.samples + self._pending.shape[1] < target:
            if self._done:
                break
            block = next(self._blocks, None)
            if block is None:
                self._done = True
                break
            self._pending = np.concatenate([self._pending, block], axis=1)
            while self._pending.shape[1] >= AUDIO_BLOCK:
                self._encode(self._pending[:, :AUDIO_BLOCK])
                self._pending = self._pending[:, AUDIO_BLOCK:]
        if target is None:
            if self._pending.shape[1]:
                self._encode(self._pending)
                self._pending = self._pending[:, :0]
            for packet in self.stream.encode(None):
                self._out.mux(packet)


# ---- video ----------------------------------------------------------------------------


def _to_i420(rgb: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) RGB -> uint8 (H * 3 // 2, W) planar YUV 4:2:0 (BT.601, limited)."""
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)


def _temp_path(output: Path) -> Path:
    return output.with_name(f".{output.name}.{os.getpid()}.part")


def _open_output(output: Path) -> tuple[Path, Any]:
    """Create the hidden temporary file for ``output``; RenderError if it cannot be written."""
    if output.is_dir():
        raise RenderError(f"{output}: is a directory; give a file name such as out.mp4")
    if not output.parent.is_dir():
        raise RenderError(f"{output}: the folder {output.parent} does not exist")
    tmp = _temp_path(output)
    try:
        container = av.open(str(tmp), "w", format="mp4")
    except (OSError, av.error.FFmpegError) as exc:
        tmp.unlink(missing_ok=True)
        raise RenderError(f"{output}: cannot write here ({exc})") from exc
    return tmp, container


def write_motion_json(take: Take, path: Path) -> None:
    """The take's coefficients as JSON (see :meth:`Take.to_json`), written atomically."""
    tmp = _temp_path(path)
    try:
        tmp.write_text(json.dumps(take.to_json()), encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        raise RenderError(f"{path}: cannot write motion ({exc.strerror})") from exc
    finally:
        tmp.unlink(missing_ok=True)


def decode_speech(speech: Path) -> np.ndarray:
    """float32 (N,) 16 kHz mono of ``speech``; RenderError if unusable or empty."""
    try:
        pcm, _ = load_audio(speech)
    except AudioError as exc:
        raise RenderError(str(exc)) from exc
    if len(pcm) == 0:
        raise RenderError(f"{speech}: the audio is empty (zero samples)")
    return pcm


def edtalk_mouth(runner: Any, pcm16k: np.ndarray, frames: int, fps: int) -> np.ndarray:
    """EDTalk's mouth weights float32 (frames, 20) for speech float32 (N,) 16 kHz.

    The audio is padded with silence to whole frames, as a live session plays an
    underrun, so the last partial frame gets a mouth too.
    """
    if fps != runner.fps:
        raise RenderError(f"the edtalk backend renders at {runner.fps} fps, got --fps {fps}")
    spf = 16_000 // fps
    pcm = np.asarray(pcm16k, np.float32).reshape(-1)[: frames * spf]
    padded = np.pad(pcm, (0, frames * spf - len(pcm)))
    mouth = np.asarray(runner.from_wav(padded), np.float32)
    assert mouth.shape[0] == frames, (mouth.shape, frames)
    return mouth


def default_workers() -> int:
    """Render threads when not told: one per two cores.

    ``cv2.remap`` already spreads each frame over the cores and the encoder holds
    one, so more render threads only contend (measured on 2 cores: real-time factor
    0.090-0.106 with one thread, 0.104-0.112 with two, at 512).
    """
    return max(1, (os.cpu_count() or 2) // 2)


def render_file(
    speech: str | Path,
    output: str | Path,
    options: RenderOptions | None = None,
    *,
    context: RenderContext | None = None,
    motion_out: str | Path | None = None,
    progress: Progress | None = None,
) -> RenderResult:
    """Render ``speech`` (any audio or video file FFmpeg reads) to the MP4 ``output``.

    Raises :class:`RenderError` for bad input, an unusable avatar or model, or an output
    that cannot be written; nothing is left under ``output`` then.
    """
    opts = options or RenderOptions()
    ctx = context or RenderContext()
    speech, output = Path(speech), Path(output)
    t_start = time.perf_counter()
    timings: dict[str, float] = {}

    pcm = decode_speech(speech)
    timings["decode_s"] = time.perf_counter() - t_start
    model = ctx.model(opts.fps)
    t0 = time.perf_counter()
    try:
        take = speech_to_take(
            model, pcm, seed=opts.seed, emotion=opts.emotion, cues=opts.cues, pose=opts.pose
        )
    except KeyError as exc:
        raise RenderError(str(exc.args[0])) from exc
    timings["motion_s"] = time.perf_counter() - t0
    mouth = None
    if opts.backend == "edtalk":
        t0 = time.perf_counter()
        mouth = edtalk_mouth(ctx.lips(), pcm, len(take), opts.fps)
        timings["lips_s"] = time.perf_counter() - t0

    workers = opts.workers or default_workers()
    first = ctx.renderer(opts.head_size, opts.backend)
    paster = None
    if opts.size == FULL:
        from models.channels import zeros
        from models.portrait_paste import PortraitPaster

        pack = getattr(first, "pack", None)
        if pack is None or pack.portrait is None:
            raise RenderError("full-portrait output needs an avatar pack that keeps its portrait")
        paster = PortraitPaster(pack, first.render(zeros()))
    height, width = paster.shape[:2] if paster else (opts.head_size, opts.head_size)

    def make_frame(i: int) -> np.ndarray:
        renderer = ctx.renderer(opts.head_size, opts.backend)
        if mouth is None:
            image = renderer.render(take.coeffs[i])
        else:
            image = cast(MouthRenderer, renderer).render(take.coeffs[i], mouth[i])
        if paster is not None:
            image = paster.paste(image)
        return _to_i420(image)

    tmp, container = _open_output(output)
    try:
        with container:
            vstream = container.add_stream("libx264", rate=opts.fps)
            vstream.width, vstream.height = width, height
            vstream.pix_fmt = "yuv420p"
            vstream.options = {"crf": str(opts.crf), "preset": opts.preset}
            vstream.codec_context.thread_count = 1
            vstream.codec_context.time_base = Fraction(1, opts.fps)
            audio = _AudioTrack(container, speech)
            n = len(take)
            t0 = time.perf_counter()
            with ThreadPoolExecutor(workers, thread_name_prefix="render") as pool:
                inflight: deque[Future[np.ndarray]] = deque()
                submitted = 0
                for i in range(n):
                    while submitted < n and len(inflight) < workers * QUEUE_PER_WORKER:
                        inflight.append(pool.submit(make_frame, submitted))
                        submitted += 1
                    yuv = inflight.popleft().result()
                    frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
                    frame.pts = i
                    frame.time_base = Fraction(1, opts.fps)
                    for packet in vstream.encode(frame):
                        container.mux(packet)
                    audio.feed_until((i + 1) / opts.fps)
                    if progress is not None:
                        progress(i + 1, n)
            for packet in vstream.encode(None):
                container.mux(packet)
            audio.feed_until(None)
            timings["render_encode_s"] = time.perf_counter() - t0
        if motion_out is not None:
            write_motion_json(take, Path(motion_out))
        tmp.replace(output)
    except (OSError, av.error.FFmpegError) as exc:
        raise RenderError(f"{output}: writing the video failed ({exc})") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return RenderResult(
        output=output,
        frames=len(take),
        fps=opts.fps,
        width=width,
        height=height,
        audio_s=len(pcm) / 16_000,
        wall_s=time.perf_counter() - t_start,
        seed=take.seed,
        timings=timings,
    )
