"""Server building blocks without the network: clock, queues, pipeline, settings, metrics."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from models.channels import CHANNEL_INDEX, MOUTH_CHANNELS
from models.config import ConfigError
from models.mixer import MotionMixer
from server.live.clock import (
    AUDIO_CHUNK,
    OPUS_LOOKAHEAD_SAMPLES,
    MediaClock,
    output_delay_frames,
    output_delay_s,
    samples_per_frame,
)
from server.live.output import AudioRing, InputBuffer
from server.live.pipeline import SessionPipeline
from server.metrics import Family, quantile, render
from server.settings import ServerSettings, load_settings

JAW = CHANNEL_INDEX["jawOpen"]


def test_clock_derives_every_timestamp_from_the_sample_counter() -> None:
    assert samples_per_frame(25) == 640 and samples_per_frame(20) == 800
    with pytest.raises(ValueError, match="divide"):
        samples_per_frame(7)
    # 30 fps: frames of 533 or 534 samples that add up exactly, every second
    c30 = MediaClock(30, delay_frames=2, start=100.0)
    sizes = [c30.frame_samples(j) for j in range(90)]
    assert set(sizes) == {533, 534} and sum(sizes[:30]) == 16_000 and sum(sizes) == 48_000
    for s in (0, 532, 533, 534, 1066, 1067, 15_999, 16_000, 123_457):
        j = c30.frame_of(s)
        assert c30.frame_sample(j) <= s < c30.frame_sample(j + 1)
        k = c30.first_frame_from(s)
        assert c30.frame_sample(k) >= s and (k == 0 or c30.frame_sample(k - 1) < s)
    for j in (0, 1, 29, 30, 3001):  # frame j and its first sample leave together (< 1 sample)
        assert (
            abs(c30.video_time(j) - (100.0 + c30.delay_s + c30.frame_sample(j) / 16_000))
            < 1 / 16_000
        )
        assert c30.video_pts(j) == j * 3000
    clock = MediaClock(25, delay_frames=2, start=100.0)
    # video frame j and audio sample j * 640 leave at the same wall time
    for j in (0, 7, 1234):
        k = j * 640 // AUDIO_CHUNK
        assert clock.video_time(j) == pytest.approx(clock.audio_time(k))
        assert clock.video_pts(j) == j * 3600  # 90 kHz
    assert clock.video_time(0) - clock.tick_time(0) == pytest.approx(0.080)
    assert clock.output_frame(100.080 + 0.041) == 1
    assert clock.input_tick(99.0) < 0
    assert OPUS_LOOKAHEAD_SAMPLES == 104  # 312 samples at 48 kHz


def test_output_delay_covers_look_ahead_and_mel_window() -> None:
    # 40 ms look-ahead + 12.5 ms half window -> frame f final during tick f + 1
    assert output_delay_frames(0.0525, 0.0, 25) == 2
    assert output_delay_frames(0.0925, 0.0, 25) == 3
    assert output_delay_frames(0.0525, 0.040, 25) == 3
    assert output_delay_frames(0.0, 0.0, 25) == 1
    # sent a render budget after the tick that makes the frame, not a whole tick later
    assert output_delay_s(0.0525, 0.025, 0.0, 25) == pytest.approx(0.065)
    assert output_delay_s(0.0525, 0.025, 0.040, 25) == pytest.approx(0.105)
    assert output_delay_s(0.030, 0.010, 0.0, 25) == pytest.approx(0.010)
    clock = MediaClock(25, delay_frames=2, start=100.0, output_delay=0.065)
    assert clock.delay_s == pytest.approx(0.065) and clock.delay_frames == 2
    assert clock.video_time(3) == pytest.approx(100.0 + 0.065 + 0.120)
    assert clock.video_time(3) == pytest.approx(clock.audio_time(6))
    assert clock.output_frame(100.065 + 0.121) == 3
    long = MediaClock(25, delay_frames=2, start=0.0, output_delay=0.130)
    assert long.delay_frames == 4  # made frames stay queued until they leave


def test_input_buffer_is_bounded_and_drops_oldest() -> None:
    buf = InputBuffer(max_samples=1000)
    buf.push(np.arange(800, dtype=np.float32))
    buf.push(np.arange(800, 1500, dtype=np.float32))
    assert len(buf) == 1000 and buf.dropped_samples == 500
    out, real = buf.pop(640)
    assert real == 640 and out[0] == 500.0
    out, real = buf.pop(640)  # underrun: padded with silence
    assert real == 360 and np.all(out[360:] == 0.0)
    assert buf.clear() == 0


def test_audio_ring_reads_silence_for_unwritten_and_stale_samples() -> None:
    ring = AudioRing(1000)
    ring.write(0, np.ones(640, np.float32))
    np.testing.assert_array_equal(ring.read(600, 80), np.r_[np.ones(40), np.zeros(40)])
    ring.write(1500, np.full(100, 2.0, np.float32))  # laps the ring over sample 500
    assert ring.read(500, 10).sum() == 0.0, "a lapped slot must not replay old audio"
    assert ring.read(1500, 100).sum() == 200.0
    assert ring.read(1500, 100).sum() == 200.0, "several viewers read the same audio"
    ring.clear_from(1550)
    assert ring.read(1500, 100).sum() == 100.0
    assert ring.read(-10, 20).sum() == 10.0, "negative samples read as silence"


class LoudnessStreamer:
    """Motion stand-in for pipeline bookkeeping: jawOpen = frame RMS, 1-frame look-ahead."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.pcm = np.zeros(0, np.float32)
        self.next = 0

    def push(self, pcm: np.ndarray) -> Any:
        self.pcm = np.r_[self.pcm, pcm]
        idx, rows = [], []
        while (self.next + 2) * 640 <= len(self.pcm):
            seg = self.pcm[self.next * 640 : (self.next + 1) * 640]
            row = np.zeros(len(MOUTH_CHANNELS), np.float32)
            row[0] = min(1.0, float(np.sqrt(np.mean(seg**2))) * 5)
            idx.append(self.next)
            rows.append(row)
            self.next += 1
        return SimpleNamespace(
            index=np.array(idx, np.int64),
            coeffs=np.array(rows, np.float32).reshape(-1, len(MOUTH_CHANNELS)),
            speech=np.ones(len(idx), np.float32),
        )

    def flush(self) -> Any:
        return self.push(np.zeros(0, np.float32))


def make_pipeline(start: float) -> SessionPipeline:
    clock = MediaClock(25, delay_frames=2, start=start)
    return SessionPipeline(
        clock=clock,
        streamer=LoudnessStreamer(),
        mouth_names=MOUTH_CHANNELS,
        mixer=MotionMixer(25, seed=0, idle=False),
        render=lambda c: np.full((8, 8, 3), int(c[JAW] * 255), np.uint8),
        max_buffered_s=5.0,
    )


def test_pipeline_aligns_frames_with_audio_and_closes_the_mouth_in_silence() -> None:
    p = make_pipeline(start=time.monotonic() + 100.0)  # far future: nothing is "late"
    tone = 0.5 * np.sin(np.arange(16_000) * 2 * np.pi * 220 / 16_000).astype(np.float32)
    p.tick_until(4)  # 5 frames of silence first
    p.push(tone[:3200])  # 200 ms of sound, starting at tick 5
    made = p.tick_until(20)
    assert p.motion_late == 0, "the delay must cover the motion look-ahead"
    frames = {f.index: f for f in made}
    speech = [j for j, f in frames.items() if f.speech]
    assert speech == list(range(5, 10)), "frame j carries samples [640 j, 640 (j + 1))"
    assert all(frames[j].coeffs[JAW] > 0.5 for j in speech)
    assert all(frames[j].coeffs[JAW] < 0.05 for j in range(14, 19)), "silence closes the mouth"
    # the delayed audio holds exactly the pushed samples at their session position
    np.testing.assert_allclose(p.read_audio(5 * 640, 3200), tone[:3200])
    assert np.all(p.read_audio(4 * 640, 640) == 0.0)


def test_pipeline_interrupt_flushes_and_eases_to_closed() -> None:
    start = time.monotonic()
    p = make_pipeline(start=start)
    tone = 0.5 * np.sin(np.arange(32_000) * 2 * np.pi * 220 / 16_000).astype(np.float32)
    p.push(tone)
    p.tick_until(30)
    now = p.clock.video_time(25) + 0.001  # frame 25 is on screen
    cut = p.interrupt(now)
    # dropped: the speech not yet taken (after tick 30) and the taken speech not yet played
    assert cut["frame"] == 26 and abs(cut["sample"] - (25 * 640 + 16)) <= 1
    assert cut["dropped_samples"] == len(tone) - cut["sample"]
    jaws = [p.frame(j).coeffs[JAW] for j in range(26, p.next_frame)]  # type: ignore[union-attr]
    assert jaws[0] < 0.5 * p.frame(25).coeffs[JAW]  # type: ignore[union-attr]
    assert jaws[2:] == [0.0] * (len(jaws) - 2), "closed by the third frame"
    assert len(p.input) == 0
    assert np.all(p.read_audio(cut["sample"], 640) == 0.0), "unplayed speech is silenced"
    assert p.motion_late == 0, "frames eased to idle by design are not late"
    p.tick_until(40)
    assert all(p.frame(j).coeffs[JAW] == 0.0 for j in range(34, 39))  # type: ignore[union-attr]
    assert p.motion_late == 0


def _speech_pipeline(start: float, read_ahead: int) -> SessionPipeline:
    from models.motion import MotionStreamer, load_motion_model

    model = load_motion_model()
    return SessionPipeline(
        clock=MediaClock(25, delay_frames=2, start=start, output_delay=0.08),
        streamer=MotionStreamer(model),
        mouth_names=tuple(model.names),
        mixer=MotionMixer(25, seed=0, idle=False),
        render=lambda c: np.full((8, 8, 3), int(c[JAW] * 255), np.uint8),
        max_buffered_s=5.0,
        early_onsets=True,
        read_ahead=read_ahead,
    )


def test_early_onset_starts_buffered_speech_on_unsent_silence(monkeypatch: Any) -> None:
    """Speech pushed after silence with more already buffered starts at the first unread
    sample, not a whole output delay later, and its motion is exactly what it would have
    been had it arrived then; speech trickling in in real time keeps the delay."""
    from models.motion import infer, load_motion_model
    from server.bench.live import DEFAULT_SPEECH
    from server.bench.loopback import load_speech as _load_speech

    recorded = _load_speech(DEFAULT_SPEECH)
    onset = int(np.argmax(np.abs(recorded) > 0.02))
    speech = recorded[onset : onset + 16_000]
    n = 12
    # A frozen clock: the schedule is exact however slowly the ticks below run.
    frozen = time.monotonic()
    monkeypatch.setattr(time, "monotonic", lambda: frozen)
    p = _speech_pipeline(0.0, read_ahead=120)
    p.clock.start = frozen - (n + 0.5) / 25  # now is mid-tick n
    p.tick_until(n)  # silence up to input tick n; output plays ~frame 10.5
    before = time.monotonic()
    p.push(speech)
    made = {f.index: f for f in p.tick_until(n)}  # woken by the push: no new tick is due
    after = time.monotonic()
    assert p.early_onsets_taken == 1
    heard = p.read_audio(0, 40 * 640)
    s0 = int(np.argmax(heard != 0.0))
    clock = p.clock
    assert clock.first_unread_sample(before, 120) <= s0
    assert s0 <= clock.first_unread_sample(after + 0.02, 120)
    assert s0 < (n + 1) * 640, "earlier than the next tick would have taken it"
    consumed = p.next_tick * 640 - s0
    assert consumed > 0
    np.testing.assert_array_equal(heard[s0 : s0 + consumed], speech[:consumed])
    # the first changed frame is already made, and every frame matches the offline motion
    j1 = -(-s0 // 640)
    assert j1 in made and made[j1].speech
    made.update({f.index: f for f in p.tick_until(n + 20)})
    model = load_motion_model()
    ref = infer(model, np.r_[np.zeros(s0, np.float32), speech])
    ref_jaw = ref.coeffs[:, list(model.names).index("jawOpen")]
    jaws = [made[j].coeffs[JAW] for j in range(j1, n + 18)]
    np.testing.assert_allclose(jaws, ref_jaw[j1 : n + 18], atol=1e-5)
    assert max(jaws) > 0.2, "the speech opens the mouth"

    # real time: 20 ms pushes after silence leave no cushion, so nothing moves
    q = _speech_pipeline(0.0, read_ahead=120)
    q.clock.start = frozen - (n + 0.5) / 25
    q.tick_until(n)
    q.push(speech[:320])
    q.tick_until(n)
    assert q.early_onsets_taken == 0 and len(q.input) == 320


def test_settings_reject_unknown_keys_and_read_env(tmp_path: Any, monkeypatch: Any) -> None:
    cfg = tmp_path / "server.yaml"
    cfg.write_text("port: 9000\nice_host_addresses: [10.0.0.5]\n")
    monkeypatch.setenv("HEADCAST_SERVE__MAX_SESSIONS", "3")
    s = load_settings(cfg, host="0.0.0.0")
    assert (s.port, s.host, s.max_sessions) == (9000, "0.0.0.0", 3)
    assert s.ice_host_addresses == ("10.0.0.5",)
    assert "*" not in ServerSettings().cors_origins
    cfg.write_text("prot: 9000\n")
    with pytest.raises(ConfigError, match="prot"):
        load_settings(cfg)
    cfg.write_text("allowed_sizes: [250]\n")
    with pytest.raises(ConfigError, match="multiples of 16"):
        load_settings(cfg)


def test_metrics_render_prometheus_text() -> None:
    fam = Family("headcast_x_ms", "a thing", "gauge").add(1.5, session='a"b')
    text = render([fam])
    assert '# TYPE headcast_x_ms gauge\nheadcast_x_ms{session="a\\"b"} 1.5\n' in text
    assert quantile([1.0, 2.0, 3.0], 0.5) == 2.0
    assert np.isnan(quantile([], 0.5))


def test_openapi_documents_raw_bodies_and_their_errors() -> None:
    from server.app import create_app
    from server.settings import ServerSettings

    paths = create_app(ServerSettings()).openapi()["paths"]
    offer = paths["/v1/sessions/{sid}/whep"]["post"]
    assert list(offer["requestBody"]["content"]) == ["application/sdp"]
    assert {"201", "400", "409", "413", "415"} <= set(offer["responses"])
    assert "application/sdp" in offer["responses"]["201"]["content"]
    assert set(paths["/v1/sessions/{sid}/whep/{rid}"]["patch"]["responses"]) >= {"405"}
    assert "200" not in paths["/v1/sessions/{sid}/whep/{rid}"]["patch"]["responses"]
    render = paths["/v1/renders"]["post"]
    assert "multipart/form-data" in render["requestBody"]["content"]
    assert {p["name"] for p in render["parameters"]} >= {"avatar", "size", "fps", "seed"}
    for path in ("/v1/sessions/{sid}/audio", "/v1/avatars", "/v1/sessions/{sid}/control"):
        assert paths[path]["post"]["requestBody"]["content"], path


def test_serve_on_a_taken_port_is_a_one_line_error(capsys: Any) -> None:
    import socket

    from server.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and "Traceback" not in err


def test_only_finished_avatar_packs_are_listed_or_served(tmp_path: Path) -> None:
    """A folder without its metadata (an enrollment still writing, or debris) is neither
    listed nor accepted as an avatar."""
    from server.live.avatar_dir import UnknownAvatar
    from server.state import AppState

    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "avatar.json").write_text("{}")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "arrays.npz").write_bytes(b"")
    (tmp_path / ".done.x.part").mkdir()
    state = AppState(ServerSettings(avatars_dir=tmp_path))
    assert state.avatar_names() == ["default", "done"]
    assert state.avatar_source("done") == tmp_path / "done"
    with pytest.raises(UnknownAvatar):
        state.avatar_source("half")


def test_uploads_are_cut_off_at_the_limit_however_they_are_sent() -> None:
    """Chunked multipart without a length stops being read past the limit; a client that
    goes away mid-upload is a 400, not a server error; a small form parses."""
    from fastapi import HTTPException
    from starlette.requests import ClientDisconnect, Request

    from server.api.bodies import read_upload

    def request(chunks: list[bytes], kind: bytes, vanish: bool = False) -> tuple[Any, list[int]]:
        taken = [0]

        async def receive() -> dict[str, Any]:
            if taken[0] == len(chunks):
                if vanish:
                    raise ClientDisconnect()
                return {"type": "http.disconnect"}
            taken[0] += 1
            more = taken[0] < len(chunks) or vanish
            return {"type": "http.request", "body": chunks[taken[0] - 1], "more_body": more}

        scope = {"type": "http", "method": "POST", "headers": [(b"content-type", kind)]}
        return Request(scope, receive), taken

    multipart = b"multipart/form-data; boundary=xx"
    big, taken = request([b"x" * 40_000] * 100, multipart)
    with pytest.raises(HTTPException) as err:
        asyncio.run(read_upload(big, 1024))
    assert err.value.status_code == 413 and taken[0] <= 3  # stopped reading early

    gone, _ = request([b"abc"], b"audio/wav", vanish=True)
    with pytest.raises(HTTPException) as err:
        asyncio.run(read_upload(gone, 1024))
    assert err.value.status_code == 400 and "went away" in str(err.value.detail)

    form = (
        b'--xx\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
        b"Content-Type: audio/wav\r\n\r\nRIFFdata\r\n--xx--\r\n"
    )
    small, _ = request([form[:30], form[30:]], multipart)
    assert asyncio.run(read_upload(small, 1024)) == (b"RIFFdata", "a.wav")


def test_closed_peer_connects_are_not_reported_as_errors() -> None:
    """aiortc's connect task fails with 'RTCIceTransport is closed' when a viewer leaves
    mid-negotiation: that is not an error; any other unretrieved exception still is."""
    import asyncio

    from aiortc.exceptions import InvalidStateError

    from server.live.ice import quiet_closed_connects

    loop = asyncio.new_event_loop()
    try:
        seen: list[BaseException] = []
        loop.set_exception_handler(lambda _loop, ctx: seen.append(ctx["exception"]))
        quiet_closed_connects(loop)
        closed = InvalidStateError("RTCIceTransport is closed")
        other = RuntimeError("something else")
        loop.call_exception_handler({"message": "x", "exception": closed})
        loop.call_exception_handler({"message": "x", "exception": other})
        assert seen == [other]
    finally:
        loop.close()
