"""Offline rendering: a speech file -> an MP4 (H.264 + AAC) of the avatar saying it.

The live pipeline run as fast as the machine allows: decode (PyAV) -> audio-to-motion ->
motion mixer (:func:`models.take.speech_to_take`) -> renderer -> PyAV muxer.
Rendering is a thread pool (cv2 releases the GIL), each worker also pastes into the
portrait and converts RGB -> YUV 4:2:0, while the calling thread encodes H.264 and AAC
in frame order; at most :data:`QUEUE_PER_WORKER` frames per worker are in flight, so
memory is bounded whatever the clip length.

The audio track (:mod:`models.offline.audio`) is the input's own audio. Video pts come
from the frame counter, audio pts from the sample counter, both from zero: one media
clock. Everything is written to a hidden ``.part`` file beside the output and renamed
at the end (:mod:`models.offline.output`).
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path
from typing import Any, cast

import av
import numpy as np

from headcast.models.audio import SAMPLE_RATE
from headcast.models.avatar.relax import pack_lips_apart, pack_smile
from headcast.models.frames import to_i420
from headcast.models.offline.audio import AudioTrack
from headcast.models.offline.context import RenderContext
from headcast.models.offline.options import (
    FULL,
    Progress,
    RenderError,
    RenderOptions,
    RenderResult,
)
from headcast.models.offline.output import (
    check_motion_out,
    check_output,
    open_output,
    write_motion_json,
)
from headcast.models.offline.speech import decode_speech, edtalk_mouth
from headcast.models.render.base import MouthRenderer
from headcast.models.take import speech_to_take

QUEUE_PER_WORKER = 3  # frames in flight per render worker


def default_workers() -> int:
    """Render threads when not told: one per two cores.

    ``cv2.remap`` already spreads each frame over the cores and the encoder holds
    one, so more render threads only contend (measured on 2 cores: real-time factor
    0.090-0.106 with one thread, 0.104-0.112 with two, at 512).
    """
    return max(1, (os.cpu_count() or 2) // 2)


def _encode(
    container: Any,
    speech: Path,
    frames: int,
    make_frame: Callable[[int], np.ndarray],
    size: tuple[int, int],
    opts: RenderOptions,
    workers: int,
    progress: Progress | None,
) -> float:
    """Render ``frames`` frames on ``workers`` threads and mux them with the audio, in order.

    Returns the seconds spent rendering and encoding (after the streams are set up).
    """
    vstream = container.add_stream("libx264", rate=opts.fps)
    vstream.width, vstream.height = size
    vstream.pix_fmt = "yuv420p"
    vstream.options = {"crf": str(opts.crf), "preset": opts.preset}
    vstream.codec_context.thread_count = 1
    vstream.codec_context.time_base = Fraction(1, opts.fps)
    audio = AudioTrack(container, speech)
    n = frames
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
    return time.perf_counter() - t0


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

    check_output(output, speech)  # before the work, not after it
    if motion_out is not None:
        check_motion_out(Path(motion_out))
    pcm = decode_speech(speech, opts.max_audio_s)
    timings["decode_s"] = time.perf_counter() - t_start
    model = ctx.model(opts.fps)
    first = ctx.renderer(opts.head_size, opts.backend)
    t0 = time.perf_counter()
    try:
        take = speech_to_take(
            model,
            pcm,
            seed=opts.seed,
            emotion=opts.emotion,
            cues=opts.cues,
            pose=opts.pose,
            # EDTalk draws its own mouth; the warp packs relax the portrait's smile and
            # bring lips apart at rest together in pauses.
            portrait_smile=None if opts.backend == "edtalk" else pack_smile(first.pack),
            lips_apart=opts.backend != "edtalk" and pack_lips_apart(first.pack),
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
    paster = None
    if opts.size == FULL:
        from headcast.models.channels import zeros
        from headcast.models.offline.paste import PortraitPaster

        pack = first.pack
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
        yuv = to_i420(image)
        if yuv is None:  # sizes are made even before rendering starts
            raise RenderError(f"a {image.shape[1]}x{image.shape[0]} frame cannot be 4:2:0")
        return yuv

    tmp, container = open_output(output, speech)
    try:
        with container:
            timings["render_encode_s"] = _encode(
                container, speech, len(take), make_frame, (width, height), opts, workers, progress
            )
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
        audio_s=len(pcm) / SAMPLE_RATE,
        wall_s=time.perf_counter() - t_start,
        seed=take.seed,
        timings=timings,
    )
