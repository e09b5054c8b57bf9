"""``headcast bench live``: N loopback WebRTC sessions against a real ``headcast serve``.

The server runs as a subprocess (so its CPU use is its own); this process is the
client: one aiortc viewer and one WebSocket per session, all on 127.0.0.1. Session 0
speaks short utterances (trimmed to start at the speech onset) to time
push-to-mouth — from handing the onset to the socket to the first received frame with
the mouth open — and push-to-sound (to the first loud received audio sample); its
mouth/loudness lag gives the A/V offset; the others speak
continuously. Only session 0's viewer decodes (it shares the machine's cores with the
server); the other viewers take the RTP packets and decode nothing, as viewers on other
machines would cost this one nothing.

fps is what viewers get that is new: frames sent minus frames sent as a repeat of the
last one (its render was late or missing), per session, from the server's counters
over the measured window; "drop" counts those repeats. Received fps (repeats
included) is what viewer 0's packets show. "start" counts the repeats of every session
from its creation to the measured window (opened one after another, beside the busy
ones before them).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from headcast.models.audio import SAMPLE_RATE
from headcast.models.config import REPO_ROOT
from headcast.models.sizes import FRAME_SIZES
from headcast.server.bench.loopback import cpu_seconds, get, load_speech, serve

HELP = "N live sessions on loopback: fps, render p50/p95, push-to-mouth, A/V offset, CPU"
DEFAULT_SPEECH = REPO_ROOT / "tests" / "fixtures" / "speech.wav"
UTTERANCE_S = 0.8  # session 0's utterances
UTTERANCE_EVERY_S = 1.6
# Mouth openness (client.measure.MouthMeter: 1 = jawOpen 1) that counts as open: a tenth
# of the full cavity is plainly visible. This clip's first syllable holds jawOpen ~0.3
# for 100 ms, right where the meter reads 0.2, so a 0.2 threshold timed that plateau's
# compression noise (+-40 ms) rather than the opening.
OPEN = 0.1
ONSET_LEVEL = 0.02  # |sample| that marks the speech onset
READY_TIMEOUT_S = 120.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sessions", default="1,4,8", help="comma-separated session counts")
    parser.add_argument("--size", type=int, default=256, choices=FRAME_SIZES, help="frame size")
    parser.add_argument("--fps", type=int, default=25, choices=[20, 25, 30], help="frame rate")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per N")
    parser.add_argument("--speech", type=Path, default=DEFAULT_SPEECH, help="16 kHz mono WAV")
    parser.add_argument("--provider", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--json", action="store_true", help="print one JSON line per N")


def _latency(pushes: list[float], events: np.ndarray) -> tuple[float | None, float | None]:
    """p50 and p95 (ms) of the delay from each push to the first event within 1 s of it."""
    lat = []
    for t_p in pushes:
        hit = events[(events > t_p) & (events < t_p + 1.0)]
        if len(hit):
            lat.append((hit[0] - t_p) * 1e3)
    if not lat:
        return None, None
    return round(float(np.percentile(lat, 50)), 1), round(float(np.percentile(lat, 95)), 1)


async def _stats(client: Any, sid: str) -> dict[str, Any]:
    resp = await client.request("GET", f"/v1/sessions/{sid}")
    return dict(json.loads(resp.body))


def _metric(text: str, name: str) -> dict[str, list[float]]:
    """``{quantile or "": [values per session]}`` of one family in Prometheus text."""
    out: dict[str, list[float]] = {}
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            labels, value = line.rsplit(" ", 1)
            q = labels.split('quantile="')[1].split('"')[0] if "quantile=" in labels else ""
            if value != "nan":
                out.setdefault(q, []).append(float(value))
    return out


async def _measure(url: str, n: int, seconds: float, speech: np.ndarray) -> dict[str, Any]:
    from headcast.client.headcast_client import HeadcastClient, HeadcastError, Viewer
    from headcast.client.measure import MouthMeter, audio_timeline, av_lag_ms, mouth_series
    from headcast.models.render import create_renderer

    client = HeadcastClient(url)
    sessions, viewers, sockets = [], [], []
    refused = None
    try:
        for i in range(n):
            try:
                sessions.append(await client.create_session(seed=i))
            except HeadcastError as exc:
                refused = exc.reason
                break
        size = sessions[0]["size"] if sessions else 0
        for i, s in enumerate(sessions):
            viewers.append(await Viewer(client, keep_video=i == 0, decode=i == 0).watch(s["whep"]))
            sockets.append(await client.connect(s["id"]))
        await asyncio.sleep(1.0)
        before = [await _stats(client, s["id"]) for s in sessions]
        onset = int(np.argmax(np.abs(speech) > ONSET_LEVEL))
        clip = speech[max(0, onset - 160) : onset + int(UTTERANCE_S * SAMPLE_RATE)]
        pushes: list[float] = []
        t0 = time.monotonic()
        frames0 = [len(v.received.video) for v in viewers]
        next_utt = t0
        next_long = [t0] * len(sockets)
        while (now := time.monotonic()) < t0 + seconds:
            if sockets and now >= next_utt:
                pushes.append(await sockets[0].send_pcm(clip))
                next_utt += UTTERANCE_EVERY_S
            for i in range(1, len(sockets)):
                if now >= next_long[i]:
                    await sockets[i].send_pcm(speech)
                    next_long[i] = now + len(speech) / SAMPLE_RATE
            await asyncio.sleep(0.02)
        after = [await _stats(client, s["id"]) for s in sessions]
        wall = time.monotonic() - t0
        # new frames: sent minus repeats (frames skipped were never sent, so they are
        # already missing from the sent count)
        fresh = [
            (a["frames_sent"] - b["frames_sent"] - (a["repeated_frames"] - b["repeated_frames"]))
            / wall
            for a, b in zip(after, before, strict=True)
        ]
        metrics = get(url + "/metrics")
        result: dict[str, Any] = {"sessions": len(sessions), "size": size, "refused": refused}
        result["fps_min"] = round(min(fresh), 2) if fresh else None
        result["fps_mean"] = round(float(np.mean(fresh)), 2) if fresh else None
        result["received_fps"] = (
            round((len(viewers[0].received.video) - frames0[0]) / wall, 2) if viewers else None
        )
        render = _metric(metrics, "headcast_render_ms")
        for q in ("0.5", "0.95"):
            vals = render.get(q, [])
            result[f"render_p{int(float(q) * 100)}_ms"] = (
                round(float(np.mean(vals)), 2) if vals else None
            )
        interp = _metric(metrics, "headcast_interpreter_seconds_per_frame").get("", [])
        # the server process's interpreter-bound CPU per frame, as admission measures it
        result["interpreter_ms_per_frame"] = round(interp[0] * 1e3, 2) if interp else None
        for key in ("dropped_frames", "late_renders", "motion_late_frames"):
            result[key] = sum(a[key] - b[key] for a, b in zip(after, before, strict=True))
        # each session's start: its counters from its creation to the measured window
        # (a session opened beside busy ones must not start with late frames)
        for key in ("repeated_frames", "dropped_frames", "late_renders"):
            result[f"start_{key}"] = sum(b[key] for b in before)
        if viewers:
            meter = MouthMeter(create_renderer(None, backend="warp", size=size).render)
            t_v, mouth = mouth_series(viewers[0].received.video, meter)
            t_a, pcm = audio_timeline(viewers[0].received.audio)
            t_open = t_v[mouth > OPEN]
            t_loud = t_a[np.abs(pcm) > ONSET_LEVEL]
            for name, times in (("mouth", t_open), ("sound", t_loud)):
                p50, p95 = _latency(pushes, times)
                result[f"push_to_{name}_p50_ms"], result[f"push_to_{name}_p95_ms"] = p50, p95
            sel = t_v > t0
            lag, corr = av_lag_ms(t_v[sel], mouth[sel], t_a, pcm)
            result["av_offset_ms"] = lag
            result["av_corr"] = round(corr, 2)
            result["delay_ms"] = sockets[0].ready.get("delay_ms")
        return result
    finally:
        for sock in sockets:
            with contextlib.suppress(Exception):
                await sock.close()
        for v in viewers:
            with contextlib.suppress(Exception):
                await v.close()
        for s in sessions:
            with contextlib.suppress(Exception):
                await client.close_session(s["id"])


def run(args: argparse.Namespace) -> int:
    from headcast.server.live.ice import restrict_host_addresses

    counts = [int(x) for x in str(args.sessions).split(",") if x.strip()]
    speech = load_speech(args.speech)
    restrict_host_addresses(["127.0.0.1"])
    with serve(args.size, args.fps, args.provider) as (url, pid):
        if not args.json:
            print(
                f"{'N':>3} {'fps min/mean':>13} {'recv':>6} {'render p50/p95':>15}"
                f" {'push->mouth p50/p95':>20} {'push->sound':>12} {'A/V':>7} {'drop':>5} {'server CPU':>11}"
                f" {'client CPU':>11} {'start':>6}"
            )
        for n in counts:
            cpu0, own0, t0 = cpu_seconds(pid), time.process_time(), time.monotonic()
            res = asyncio.run(_measure(url, n, args.seconds, speech))
            wall = time.monotonic() - t0
            res["server_cpu_cores"] = round((cpu_seconds(pid) - cpu0) / wall, 2)
            res["client_cpu_cores"] = round((time.process_time() - own0) / wall, 2)
            if args.json:
                print(json.dumps(res))
            else:
                print(
                    f"{res['sessions']:>3} {res['fps_min']!s:>6}/{res['fps_mean']!s:<6}"
                    f" {res.get('received_fps')!s:>6}"
                    f" {res.get('render_p50_ms')!s:>7}/{res.get('render_p95_ms')!s:<7}"
                    f" {res.get('push_to_mouth_p50_ms')!s:>10}/{res.get('push_to_mouth_p95_ms')!s:<9}"
                    f" {res.get('push_to_sound_p50_ms')!s:>6}/{res.get('push_to_sound_p95_ms')!s:<5}"
                    f" {res.get('av_offset_ms')!s:>7} {res['dropped_frames']:>5}"
                    f" {res['server_cpu_cores']:>11} {res['client_cpu_cores']:>11}"
                    f" {res['start_repeated_frames']:>6}"
                    + (f"  refused: {res['refused']}" if res["refused"] else "")
                )
            sys.stdout.flush()
    return 0
