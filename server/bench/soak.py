"""``headcast bench soak``: one live session watched for a long time, window by window.

A real ``headcast serve`` runs in a subprocess; this process is its viewer (aiortc,
decoding) and its speaker (a WebSocket that says a short utterance every
``UTTERANCE_EVERY_S``). Each window reports, from what the viewer received: the A/V
offset (the lag that best lines mouth openness up with loudness; positive = video
late) and its correlation, frames received per second; and from the server: the
largest buffered delay seen, frames repeated, resident memory (server and render
processes) and open file descriptors.

Load spikes (``--spikes``, on by default) come in turns, one every ``--spike-every-s``:
both cores kept busy by a burner process for 20 s; the render processes frozen for
1.5 s twice (SIGSTOP/SIGCONT); utterances pushed while renders are frozen (early
onsets onto late renders). Windows that hold a spike say which; a viewer whose
connection failed is replaced by a new one and the window says ``viewer-lost``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from headcast.models.audio import SAMPLE_RATE
from headcast.models.sizes import FRAME_SIZES
from headcast.server.bench.live import DEFAULT_SPEECH, ONSET_LEVEL, OPEN, UTTERANCE_S
from headcast.server.bench.loopback import family, load_speech, open_fds, rss_mb, serve
from headcast.server.errors import UserError

HELP = "one live session for N minutes: A/V offset, fps, delay, memory, fds per window"
UTTERANCE_EVERY_S = 1.6
SAMPLE_EVERY_S = 1.0  # how often received frames are measured and the server polled
AV_TARGET_MS = 40.0
BURN_S = 20.0
FREEZE_S = 1.5
SPIKES = ("burn", "freeze", "freeze-while-speaking")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--minutes", type=float, default=60.0, help="how long to run")
    parser.add_argument("--window-s", type=float, default=60.0, help="seconds per report")
    parser.add_argument("--size", type=int, default=256, choices=FRAME_SIZES, help="frame size")
    parser.add_argument("--fps", type=int, default=25, choices=[20, 25, 30], help="frame rate")
    parser.add_argument("--speech", type=Path, default=DEFAULT_SPEECH, help="16 kHz mono WAV")
    parser.add_argument("--provider", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument(
        "--spikes", action=argparse.BooleanOptionalAction, default=True, help="inject load"
    )
    parser.add_argument("--spike-every-s", type=float, default=150.0, help="seconds between")
    parser.add_argument("--json", action="store_true", help="one JSON line per window")


def _burn(seconds: float) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the CLI's handler: end quietly
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    end = time.monotonic() + seconds
    x = 0
    while time.monotonic() < end:
        x += 1


class Spikes:
    """Load spikes in turns; ``due`` starts the next one when its time comes."""

    def __init__(self, server_pid: int, every_s: float, start: float) -> None:
        self.server_pid = server_pid
        self.every_s = every_s
        self.next_at = start + every_s
        self.turn = 0
        self.burners: list[multiprocessing.Process] = []

    def due(self, now: float) -> str | None:
        if now < self.next_at:
            return None
        kind = SPIKES[self.turn % len(SPIKES)]
        self.turn += 1
        self.next_at += self.every_s
        if kind == "burn":
            cores = len(os.sched_getaffinity(0))
            self.burners = [
                multiprocessing.Process(target=_burn, args=(BURN_S,)) for _ in range(cores)
            ]
            for b in self.burners:
                b.start()
        return kind

    def render_processes(self) -> list[int]:
        return [p for p in family(self.server_pid) if p != self.server_pid]

    async def freeze(self) -> None:
        for _ in range(2):
            procs = self.render_processes()
            for p in procs:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p, signal.SIGSTOP)
            await asyncio.sleep(FREEZE_S)
            for p in procs:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p, signal.SIGCONT)
            await asyncio.sleep(2.0)

    def close(self) -> None:
        for b in self.burners:
            b.terminate()
        for p in self.render_processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGCONT)


async def _soak(url: str, pid: int, args: argparse.Namespace, speech: np.ndarray) -> list[dict]:
    from headcast.client.headcast_client import HeadcastClient, Viewer
    from headcast.client.measure import MouthMeter
    from headcast.models.render import create_renderer

    client = HeadcastClient(url)
    session = await client.create_session(seed=0)
    viewer = await Viewer(client).watch(session["whep"])
    sock = await client.connect(session["id"])
    meter = MouthMeter(create_renderer(None, backend="warp", size=session["size"]).render)
    onset = int(np.argmax(np.abs(speech) > ONSET_LEVEL))
    clip = speech[max(0, onset - 160) : onset + int(UTTERANCE_S * SAMPLE_RATE)]
    t0 = time.monotonic()
    spikes = Spikes(pid, args.spike_every_s, t0) if args.spikes else None
    tasks: set[asyncio.Task[None]] = set()
    windows: list[dict[str, Any]] = []
    video: list[tuple[float, float]] = []  # (arrival, mouth openness)
    audio: list[tuple[float, np.ndarray, int]] = []
    buffered: list[float] = []
    spikes_in_window: list[str] = []
    stats0 = (await client.request("GET", f"/v1/sessions/{session['id']}")).json()
    window_start = t0
    next_utt = t0 + 1.0
    next_sample = t0 + SAMPLE_EVERY_S
    end = t0 + args.minutes * 60.0
    try:
        while (now := time.monotonic()) < end:
            if now >= next_utt:
                await sock.send_pcm(clip)
                # after a stall of this process, no burst of the utterances it missed
                next_utt = max(next_utt + UTTERANCE_EVERY_S, now + UTTERANCE_S)
            if spikes is not None and (kind := spikes.due(now)) is not None:
                spikes_in_window.append(kind)
                if kind.startswith("freeze"):
                    if kind == "freeze-while-speaking":
                        next_utt = now + 0.3  # an onset lands while renders are frozen
                    task = asyncio.create_task(spikes.freeze())
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
            if now >= next_sample:
                next_sample += SAMPLE_EVERY_S
                if viewer.pc is not None and viewer.pc.connectionState in ("failed", "closed"):
                    # e.g. ICE consent expired while the machine was overloaded: say so in
                    # the window and watch again, so the run goes on measuring
                    spikes_in_window.append("viewer-lost")
                    with contextlib.suppress(Exception):
                        await viewer.close()
                    viewer = await Viewer(client).watch(session["whep"])
                got = viewer.received.video[:]
                del viewer.received.video[: len(got)]
                video += [(t, meter.measure(frame)) for t, frame in got]
                heard = viewer.received.audio[:]
                del viewer.received.audio[: len(heard)]
                audio += heard
                stats = (await client.request("GET", f"/v1/sessions/{session['id']}")).json()
                buffered.append(float(stats["buffered_ms"]))
            if now - window_start >= args.window_s:
                stats = (await client.request("GET", f"/v1/sessions/{session['id']}")).json()
                windows.append(
                    _window(len(windows), now - window_start, video, audio, buffered, stats, stats0)
                )
                windows[-1].update(rss_mb=round(rss_mb(pid), 1), fds=open_fds(pid))
                windows[-1]["spikes"] = spikes_in_window
                _report(windows[-1], args.json)
                video, audio, buffered, spikes_in_window = [], [], [], []
                stats0, window_start = stats, now
            await asyncio.sleep(0.02)
    finally:
        for task in tasks:
            task.cancel()
        if spikes is not None:
            spikes.close()
        with contextlib.suppress(Exception):
            await sock.close()
        with contextlib.suppress(Exception):
            await viewer.close()
        with contextlib.suppress(Exception):
            await client.close_session(session["id"])
    return windows


def _window(
    index: int,
    seconds: float,
    video: list[tuple[float, float]],
    audio: list[tuple[float, np.ndarray, int]],
    buffered: list[float],
    stats: dict[str, Any],
    stats0: dict[str, Any],
) -> dict[str, Any]:
    from headcast.client.measure import audio_timeline, av_lag_ms

    out: dict[str, Any] = {"window": index, "fps": round(len(video) / seconds, 2)}
    if video and audio:
        t_v = np.array([t for t, _ in video])
        mouth = np.array([m for _, m in video])
        t_a, pcm = audio_timeline(audio)
        lag, corr = av_lag_ms(t_v, mouth, t_a, pcm)
        out["av_offset_ms"], out["av_corr"] = lag, round(corr, 2)
        out["mouth_open_share"] = round(float(np.mean(mouth > OPEN)), 2)
    out["buffered_ms_max"] = max(buffered) if buffered else None
    for key in ("repeated_frames", "dropped_frames", "late_renders", "early_onsets"):
        out[key] = stats[key] - stats0[key]
    return out


def _report(w: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(w))
    else:
        print(
            f"{w['window']:>4} {w.get('av_offset_ms')!s:>7} {w.get('av_corr')!s:>5}"
            f" {w['fps']:>6} {w['buffered_ms_max']!s:>8} {w['repeated_frames']:>5}"
            f" {w['late_renders']:>5} {w['rss_mb']:>8} {w['fds']:>5}  {','.join(w['spikes'])}"
        )
    sys.stdout.flush()


def run(args: argparse.Namespace) -> int:
    from headcast.server.live.ice import restrict_host_addresses

    if args.minutes <= 0 or args.window_s <= 0:
        raise UserError("--minutes and --window-s must be positive")
    speech = load_speech(args.speech)
    restrict_host_addresses(["127.0.0.1"])
    if not args.json:
        print(
            f"{'win':>4} {'A/V ms':>7} {'corr':>5} {'fps':>6} {'buf max':>8} {'rep':>5}"
            f" {'late':>5} {'RSS MB':>8} {'fds':>5}  spikes"
        )
    with serve(args.size, args.fps, args.provider) as (url, pid):
        windows = asyncio.run(_soak(url, pid, args, speech))
    offsets = [w["av_offset_ms"] for w in windows if "av_offset_ms" in w]
    within = sum(abs(o) <= AV_TARGET_MS for o in offsets)
    worst = max(offsets, key=abs) if offsets else None
    print(
        f"{len(windows)} windows: A/V within ±{AV_TARGET_MS:.0f} ms in {within}, worst {worst} ms;"
        f" RSS {windows[0]['rss_mb'] if windows else '-'} -> {windows[-1]['rss_mb'] if windows else '-'} MB"
    )
    return 0 if offsets and within == len(offsets) else 1
