"""Real aiortc peers on loopback against the real renderer and motion model.

Times come from the RTP arrival of each frame's first packet on the client (what the
server sent, and when); mouth openness is measured on the decoded pixels.
"""

from __future__ import annotations

import asyncio
import fractions
import time
from collections.abc import Iterator
from typing import Any

import av
import numpy as np
import pytest
from aiortc import MediaStreamTrack

from headcast.client.headcast_client import HeadcastClient, Viewer
from headcast.models.render import create_renderer
from tests.server_harness import (
    TEST_SIZE,
    MouthMeter,
    ServerThread,
    audio_timeline,
    av_lag_ms,
    envelope,
    load_speech,
    mouth_series,
    require_motion_model,
    rest_coefficients,
    run,
    wav_bytes,
)

OPEN = 0.2  # openness that counts as "mouth open" (jawOpen > ~0.4)
CLOSED = 0.05  # openness below which the mouth counts as closed (jawOpen < ~0.2)
# openness at which the mouth has clearly started to move: push-to-mouth counts from it,
# as ``headcast bench live`` does (a first syllable may peak below OPEN, depending on
# where 30 fps frame boundaries fall in it)
MOVING = 0.1


@pytest.fixture(scope="module")
def srv() -> Iterator[ServerThread]:
    require_motion_model()
    with ServerThread() as server:
        yield server


@pytest.fixture(scope="module")
def meter() -> MouthMeter:
    return MouthMeter(
        create_renderer(None, backend="warp", size=TEST_SIZE).render, rest_coefficients()
    )


def window(t: np.ndarray, values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return values[(t >= lo) & (t <= hi)]


def self_encoding(srv: ServerThread, sid: str) -> dict[str, bool]:
    """Which of the session's tracks encode their frames themselves."""
    session = srv.state.sessions[sid]
    return {t.kind: t.encodes_itself for ts in session.tracks.values() for t in ts}


def event_time(sock: Any, kind: str) -> float:
    return next(t for t, e in sock.events if e.get("type") == kind)


@pytest.mark.parametrize("nominal", [25, 30])
def test_speech_plays_in_sync_and_silence_closes_the_mouth(
    srv: ServerThread, meter: MouthMeter, nominal: int
) -> None:
    """At 25 fps (640 samples a frame) and 30 (533 or 534: frame boundaries between
    samples), lips, sound and frame rate hold."""
    speech = load_speech(5.5)

    async def main() -> tuple[Viewer, Any, float, dict[str, Any]]:
        client = HeadcastClient(srv.url)
        session = await client.create_session(seed=1, fps=nominal)
        viewer = await Viewer(client).watch(session["whep"])
        sock = await client.connect(session["id"])
        await asyncio.sleep(1.2)  # idle: silence first
        t_push = await sock.send_pcm(speech)  # faster than real time; played at real time
        await sock.send_control({"type": "end_of_utterance"})
        await sock.next_event("speech_ended", within_s=12)
        await asyncio.sleep(1.2)  # silence after
        stats = (await client.request("GET", f"/v1/sessions/{session['id']}")).json()
        stats["self_encoding"] = self_encoding(srv, session["id"])
        await sock.close()
        await viewer.close()
        await client.close_session(session["id"])
        return viewer, sock, t_push, stats

    viewer, sock, t_push, stats = run(main(), timeout=60)
    t_v, mouth = mouth_series(viewer.received.video, meter)
    t_a, pcm = audio_timeline(viewer.received.audio)
    start, end = event_time(sock, "speech_started"), event_time(sock, "speech_ended")
    assert 5.0 < end - start < 6.2

    # Video rate over the whole call (>= 24 at 25 fps nominal).
    steady = t_v[t_v > t_v[0] + 0.5]
    fps = (len(steady) - 1) / (steady[-1] - steady[0])
    assert fps >= 0.96 * nominal, f"video at {fps:.1f} fps, {nominal} nominal"

    # The mouth moves with speech and is closed in silence, before and after.
    during = window(t_v, mouth, start, end)
    # (mid openings are lens-shaped, narrow at the corners: they cover less of the
    # jawOpen=1 cavity the meter counts than the opening's height suggests)
    assert during.max() > 0.4 and np.mean(during > OPEN) > 0.15, "mouth follows speech"
    assert window(t_v, mouth, t_v[0] + 0.3, start - 0.15).max() < CLOSED, "idle mouth closed"
    assert window(t_v, mouth, end + 0.3, t_v[-1]).max() < CLOSED, "silence closes the mouth"

    # Sound came back: loud during speech, silent outside.
    loud = envelope(np.arange(start, end, 0.04), t_a, pcm, 0.04)
    quiet = envelope(np.arange(end + 0.3, t_a[-1] - 0.1, 0.04), t_a, pcm, 0.04)
    assert np.percentile(loud, 75) > 20 * max(quiet.max(), 1e-4)

    # A/V offset between returned audio and mouth movement.
    sel = (t_v > start - 0.3) & (t_v < end + 0.3)
    lag, corr = av_lag_ms(t_v[sel], mouth[sel], t_a, pcm)
    assert corr > 0.35, f"mouth/loudness correlation {corr:.2f}"
    assert abs(lag) <= 40.0, f"A/V offset {lag:+.0f} ms"

    # Push-to-mouth: from handing the speech to the socket to the first moving mouth.
    first_moving = t_v[(t_v > t_push) & (mouth > MOVING)][0]
    assert first_moving - t_push < 0.4
    # Pushed whole after silence, the speech started early, on the silence not yet sent.
    assert stats["early_onsets"] == 1, stats
    # VP8 and Opus: the tracks encoded every frame themselves, aiortc only packetised.
    assert stats["self_encoding"] == {"video": True, "audio": True}
    # repeats of a late frame were sent (counted in frames_sent), skipped frames were not
    assert 0 <= stats["repeated_frames"] <= stats["dropped_frames"] < stats["frames_sent"]


def test_interrupt_returns_to_idle_within_100ms(srv: ServerThread, meter: MouthMeter) -> None:
    async def main() -> tuple[Viewer, Any, float, dict[str, Any]]:
        client = HeadcastClient(srv.url)
        session = await client.create_session(seed=2)
        viewer = await Viewer(client).watch(session["whep"])
        sock = await client.connect(session["id"])
        await asyncio.sleep(0.5)
        await sock.send_pcm(load_speech(5.0))
        await sock.next_event("speech_started", within_s=5)
        await asyncio.sleep(1.5)
        t_int = await sock.interrupt()
        cut = await sock.next_event("interrupted", within_s=2)
        await asyncio.sleep(1.0)
        await sock.close()
        await viewer.close()
        await client.close_session(session["id"])
        return viewer, sock, t_int, cut

    viewer, sock, t_int, cut = run(main(), timeout=40)
    t_v, mouth = mouth_series(viewer.received.video, meter)
    assert window(t_v, mouth, t_int - 1.2, t_int).max() > 0.3, "was speaking"  # vs CLOSED 0.05
    after = window(t_v, mouth, t_int + 0.1, t_int + 1.0)
    assert len(after) >= 20 and after.max() < CLOSED, f"not idle 100 ms after: {after[:5]}"
    # The reported position is the speech that was played: what the viewer had received
    # before it asked for the cut, plus at most what was in flight (the server's clock,
    # not the wall clock, decides how much that is when the machine is loaded).
    t_a, pcm = audio_timeline(viewer.received.audio)
    onset = t_a[np.argmax(np.abs(pcm) > 1e-3)]
    rate = viewer.received.audio[0][2]
    received_ms = np.count_nonzero((t_a >= onset) & (t_a < t_int)) * 1000.0 / rate
    assert received_ms > 500, "speech was received before the cut"
    assert received_ms - 60 <= cut["position_ms"] <= received_ms + 300, (cut, received_ms)
    assert abs(cut["position_ms"] + cut["dropped_ms"] - 5000) < 300, cut
    assert envelope(np.arange(t_int + 0.1, t_int + 0.9, 0.04), t_a, pcm, 0.04).max() < 1e-3
    assert any(e.get("interrupted") for e in sock.of_type("speech_ended"))


def test_two_sessions_are_isolated(srv: ServerThread, meter: MouthMeter) -> None:
    async def main() -> tuple[Viewer, Viewer, Any, Any]:
        client = HeadcastClient(srv.url)
        a, b = await client.create_session(seed=3), await client.create_session(seed=4)
        va = await Viewer(client).watch(a["whep"])
        vb = await Viewer(client).watch(b["whep"])
        sa, sb = await client.connect(a["id"]), await client.connect(b["id"])
        await asyncio.sleep(0.5)
        await sa.send_pcm(load_speech(3.0))
        await sa.next_event("speech_ended", within_s=8)
        await asyncio.sleep(0.3)
        for x in (sa, sb, va, vb):
            await x.close()
        for sid in (a["id"], b["id"]):
            await client.close_session(sid)
        return va, vb, sa, sb

    va, vb, sa, sb = run(main(), timeout=40)
    _, mouth_a = mouth_series(va.received.video, meter)
    _, mouth_b = mouth_series(vb.received.video, meter)
    # A spoke (its mouth opened: a loaded machine skips frames, so its widest opening
    # may be missed; idle it stays under CLOSED) ...
    assert mouth_a.max() > OPEN
    # ... and that did not move B
    assert len(mouth_b) > 50 and mouth_b.max() < CLOSED, "audio for A moved B"
    assert not sb.of_type("speech_started")
    _, pcm_b = audio_timeline(vb.received.audio)
    assert np.abs(pcm_b).max() < 1e-3


class SpeechTrack(MediaStreamTrack):
    """A microphone stand-in: plays PCM at real time in 20 ms frames, then silence."""

    kind = "audio"

    def __init__(self, pcm16k: np.ndarray, delay_s: float = 0.5) -> None:
        super().__init__()
        pad = np.zeros(int(delay_s * 16_000), np.float32)
        self.pcm = (np.r_[pad, pcm16k] * 32767).astype(np.int16)
        self.k = 0
        self.t0: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self.t0 is None:
            self.t0 = time.monotonic()
        wait = self.t0 + self.k * 0.02 - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        chunk = self.pcm[self.k * 320 : (self.k + 1) * 320]
        chunk = np.r_[chunk, np.zeros(320 - len(chunk), np.int16)]
        frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = 16_000
        frame.pts = self.k * 320
        frame.time_base = fractions.Fraction(1, 16_000)
        self.k += 1
        return frame


def test_mirror_mode_h264_and_file_upload(srv: ServerThread, meter: MouthMeter) -> None:
    speech = load_speech(2.5)

    async def main() -> tuple[Viewer, Any, dict[str, Any], list[dict[str, Any]], Any]:
        client = HeadcastClient(srv.url)
        mirror = await client.create_session(input="mirror", seed=5)
        viewer = await Viewer(client).watch(
            mirror["whep"], video_codec="H264", microphone=SpeechTrack(speech)
        )
        await asyncio.sleep(3.5)
        encoding = self_encoding(srv, mirror["id"])
        await viewer.close()
        await client.close_session(mirror["id"])
        up = await client.create_session(seed=6)
        sock = await client.connect(up["id"], coefficients=True)
        reply = await client.upload_audio(up["id"], wav_bytes(speech))
        await sock.next_event("speech_ended", within_s=8)
        await sock.close()
        await client.close_session(up["id"])
        return viewer, sock, reply, sock.of_type("coefficients"), encoding

    viewer, sock, reply, coeffs, encoding = run(main(), timeout=40)
    # H.264 is aiortc's own encoder, on its executor; Opus is still the track's.
    assert encoding == {"video": False, "audio": True}
    codec = viewer.pc.getTransceivers()[0].receiver._RTCRtpReceiver__codecs  # negotiated
    assert any(c.mimeType == "video/H264" for c in codec.values())
    _, mouth = mouth_series(viewer.received.video, meter)
    assert len(mouth) > 60 and mouth.max() > 0.4, "the microphone drives the mouth"
    _, pcm = audio_timeline(viewer.received.audio)
    assert np.abs(pcm).max() < 1e-3, "mirror mode does not echo the microphone"
    assert reply["duration_ms"] == pytest.approx(2500, abs=1)
    jaw = np.array([e["values"][0] for e in coeffs])
    frames = np.array([e["frame"] for e in coeffs])
    assert np.all(np.diff(frames) == 1), "one coefficient event per frame, in order"
    assert jaw.max() > 0.4 and len(sock.of_type("speech_started")) == 1
