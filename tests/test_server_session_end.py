"""How sessions end and how the Python client behaves: a deleted session's socket is
told, a viewer that never connects is dropped (with the session made for it), speech dropped on overflow is reported,
and the voice-agent client streams any chunking and stops on interrupt."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import numpy as np
import pytest

from headcast.client.headcast_client import HeadcastClient, HeadcastError
from headcast.client.pcm import encode_pcm
from tests.server_harness import ServerThread, load_speech, require_motion_model, run, wav_bytes


@pytest.fixture(scope="module")
def srv() -> Iterator[ServerThread]:
    require_motion_model()
    with ServerThread() as server:
        yield server


def test_deleted_session_closes_its_socket_and_a_viewer_that_never_connects_is_dropped(
    srv: ServerThread,
) -> None:
    async def main() -> None:
        from aiortc import RTCPeerConnection

        c = HeadcastClient(srv.url)
        s = await c.create_session()
        sock = await c.connect(s["id"])
        await c.close_session(s["id"])
        closed = await sock.next_event("closed", within_s=3)
        assert "session closed" in closed["message"] and closed["deleted"] is True
        assert await _close_code(sock) == 1001
        # sending on it is a HeadcastError that says why, not a websockets exception
        with pytest.raises(HeadcastError, match="socket is closed: session closed"):
            await sock.send_pcm(np.zeros(320, np.float32))
        # a 422's list of problems reads as one line
        with pytest.raises(HeadcastError, match=r"^HTTP 422: sizee: Extra inputs"):
            await c.create_session(sizee=256)

        # the same while the client is sending: it still learns why (no plain 1000)
        for _ in range(5):
            s = await c.create_session()
            sock = await c.connect(s["id"])

            async def chatter(sock: Any = sock) -> None:
                with contextlib.suppress(Exception):
                    while True:
                        await sock.send_control({"type": "ping"})
                        await asyncio.sleep(0.003)

            talker = asyncio.create_task(chatter())
            await asyncio.sleep(0.1)
            await c.close_session(s["id"])
            await sock.next_event("closed", within_s=3)
            assert await _close_code(sock) == 1001
            talker.cancel()

        # an offer whose client never applies the answer: the viewer never connects
        # (its timeout well above an answer's round trip on a loaded machine, ~0.3 s)
        s = await c.create_session()
        srv.state.sessions[s["id"]].connect_timeout_s = 1.5
        pc = RTCPeerConnection()
        pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        resp = await c.request(
            "POST", s["whep"], pc.localDescription.sdp.encode(), "application/sdp"
        )
        assert resp.status == 201
        assert (await c.session(s["id"]))["viewers"] == 1
        sid = s["id"]
        assert await _eventually(lambda: _viewers(c, sid, 0)), "the stuck viewer was dropped"
        stats = await c.session(sid)
        assert stats["viewers_timed_out"] == 1
        await pc.close()
        await c.close_session(s["id"])

        # a session made for its viewer (POST /v1/whep) closes with that stuck viewer
        saved = srv.state.settings
        srv.state.settings = saved.model_copy(update={"viewer_connect_timeout_s": 1.5})
        try:
            before = set(srv.state.sessions)
            pc = RTCPeerConnection()
            pc.addTransceiver("video", direction="recvonly")
            await pc.setLocalDescription(await pc.createOffer())
            resp = await c.request(
                "POST", "/v1/whep", pc.localDescription.sdp.encode(), "application/sdp"
            )
            assert resp.status == 201
            made = set(srv.state.sessions) - before
            assert len(made) == 1

            async def gone() -> bool:
                return not made & set(srv.state.sessions)

            assert await _eventually(gone), "its session closed with it"
            await pc.close()
        finally:
            srv.state.settings = saved

    run(main(), timeout=30)


def test_speech_dropped_on_overflow_is_counted_and_reported(srv: ServerThread) -> None:
    """One upload longer than the session buffers: the oldest speech is dropped, counted
    in the session's stats and reported to its socket."""
    import numpy as np

    limit_s = srv.settings.max_buffered_audio_s
    speech = load_speech()
    pcm = np.tile(speech, int((limit_s + 10) / (len(speech) / 16_000)) + 1)
    wav = wav_bytes(pcm)

    async def main() -> None:
        c = HeadcastClient(srv.url)
        s = await c.create_session()
        sock = await c.connect(s["id"])
        resp = await c.request("POST", s["audio"], wav, "audio/wav")
        assert resp.status == 202
        event = await sock.next_event("dropped", within_s=5)
        expected_ms = (len(pcm) / 16_000 - limit_s) * 1000
        assert event["audio_ms"] >= 0.9 * expected_ms, (event, expected_ms)
        stats = await c.session(s["id"])
        assert stats["dropped_audio_ms"] >= 0.9 * expected_ms
        await sock.close()
        await c.close_session(s["id"])

    run(main(), timeout=40)


async def _eventually(check: Callable[[], Awaitable[bool]], within_s: float = 15.0) -> bool:
    """Whether ``check()`` comes true within ``within_s``: polled, as a loaded machine
    runs the server's timers late (a fixed sleep past them is a guess)."""
    deadline = time.monotonic() + within_s
    while not await check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def _viewers(c: HeadcastClient, sid: str, count: int) -> bool:
    return bool((await c.session(sid))["viewers"] == count)


async def _close_code(sock: Any) -> int | None:
    """The close code the server sent, once the client's reader has seen the close."""
    for _ in range(100):
        if sock.closed_reason is not None:
            break
        await asyncio.sleep(0.03)
    return sock.ws.close_code  # type: ignore[no-any-return]


def test_python_client_streams_any_chunking_and_stops_on_interrupt(srv: ServerThread) -> None:
    """The voice-agent client: bytes cut mid-sample and chunks over the server's message
    limit still play; interrupt() ends a stream() in progress; next_event() returns each
    turn's own events; a refused connect leaves nothing open."""
    import numpy as np

    speech = load_speech(2.0)
    pcm16 = encode_pcm(speech, "s16le")

    async def main() -> None:
        c = HeadcastClient(srv.url)
        s = await c.create_session()
        sock = await c.connect(s["id"])
        # 1001-byte pieces: every other one ends mid-sample
        assert await sock.stream([pcm16[i : i + 1001] for i in range(0, len(pcm16), 1001)])
        first = await sock.next_event("speech_ended", within_s=10)
        assert not sock.of_type("error")
        # one chunk of 3 s of 48 kHz float32 (1.15 MB): sent in pieces, no 1009 close
        big = np.tile(speech, 2)[: 3 * 16_000].repeat(3).astype(np.float32)
        wide = await c.connect(s["id"], sample_rate=48_000, fmt="f32le")
        assert await wide.stream([big])
        await wide.next_event("speech_started", within_s=5)
        assert wide.closed_reason is None
        second = await sock.next_event("speech_ended", within_s=12)
        assert second is not first and second["t_ms"] > first["t_ms"]  # this turn's own
        await wide.close()

        # interrupt() mid-stream: the rest of a paced stream is not sent
        async def tts() -> Any:
            for i in range(0, len(pcm16), 640):
                yield pcm16[i : i + 640]

        talking = asyncio.create_task(sock.stream(tts(), realtime=True))
        await sock.next_event("speech_started", within_s=5)
        await sock.interrupt()
        assert await asyncio.wait_for(talking, 2) is False
        await sock.next_event("interrupted", within_s=3)
        cut = len(sock.events)
        await asyncio.sleep(0.6)  # no rest of the utterance arrives to be said
        assert not [e for _, e in sock.events[cut:] if e.get("type") == "speech_started"]
        await sock.close()
        await c.close_session(s["id"])
        # a connect the server refuses (unknown session) leaves no task behind
        before = len(asyncio.all_tasks())
        with pytest.raises(HeadcastError, match="unknown session 'nope'"):
            await c.connect("nope")
        await asyncio.sleep(0.1)
        assert len(asyncio.all_tasks()) == before
        # a server that is not there: the same error type, with the reason
        import socket

        with socket.socket() as probe:  # a loopback port nobody listens on
            probe.bind(("127.0.0.1", 0))
            gone = HeadcastClient(f"http://127.0.0.1:{probe.getsockname()[1]}")
            with pytest.raises(HeadcastError, match="cannot reach") as unreachable:
                await gone.create_session()
            assert unreachable.value.status == 0
            with pytest.raises(HeadcastError, match="cannot reach"):
                await gone.connect("any")

    run(main(), timeout=60)


def test_sessions_live_on_after_their_last_participant_leaves(srv: ServerThread) -> None:
    """The idle timeout counts from when the last viewer or socket leaves, not from the
    last speech: a long-watched session survives a page reload."""

    async def main() -> None:
        c = HeadcastClient(srv.url)
        s = await c.create_session()
        sock = await c.connect(s["id"])
        session = srv.state.sessions[s["id"]]
        session.last_activity -= 10_000  # as if watched silently for hours
        await sock.close()
        for _ in range(50):  # the server sees the socket go
            if not session.streams:
                break
            await asyncio.sleep(0.02)
        assert not session.streams
        assert s["id"] not in srv.state.idle_sessions(time.monotonic())
        later = time.monotonic() + srv.state.settings.idle_session_timeout_s + 1
        assert s["id"] in srv.state.idle_sessions(later)
        await c.close_session(s["id"])

    run(main(), timeout=20)


def test_one_speaker_at_a_time_and_a_barge_in_beats_a_decoding_upload(
    srv: ServerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second socket's speech is refused (with a reason) while the first one's plays,
    and taken once it has ended; an interrupt that comes while an upload is decoded
    means that upload is not said (409); a socket joining mid-speech is told."""
    import threading

    import headcast.server.api.sessions

    speech = load_speech(1.5)
    pcm16 = encode_pcm(speech, "s16le")

    async def main() -> None:
        c = HeadcastClient(srv.url)
        s = await c.create_session()
        first = await c.connect(s["id"])
        assert first.ready["speaking"] is False
        assert await first.stream([pcm16])
        await first.next_event("speech_started", within_s=5)
        second = await c.connect(s["id"])
        assert second.ready["speaking"] is True
        await second.send_pcm(pcm16[:3200])
        refused = await second.next_event("error", within_s=3)
        assert "another WebSocket is sending" in refused["message"]
        await first.next_event("speech_ended", within_s=10)
        assert await second.stream([pcm16])  # its turn now
        await second.next_event("speech_started", within_s=5)
        await second.interrupt()
        await second.next_event("interrupted", within_s=3)
        await first.close()

        # an upload still decoding when the interrupt comes is not said
        decoding, release = threading.Event(), threading.Event()
        real = headcast.server.api.sessions._decode_upload

        def slow(*args: Any) -> Any:
            decoding.set()
            release.wait(5)
            return real(*args)

        monkeypatch.setattr(headcast.server.api.sessions, "_decode_upload", slow)
        upload = asyncio.create_task(c.upload_audio(s["id"], wav_bytes(speech)))
        await asyncio.to_thread(decoding.wait, 5)
        await second.interrupt()
        release.set()
        with pytest.raises(HeadcastError) as stale:
            await upload
        assert stale.value.status == 409 and "interrupted" in stale.value.reason
        await asyncio.sleep(0.5)
        assert len(second.of_type("speech_started")) == 1, "nothing more was said"
        await second.close()
        await c.close_session(s["id"])

    run(main(), timeout=40)


def test_an_offer_answered_while_its_session_closes_leaves_nothing(srv: ServerThread) -> None:
    """DELETE racing a viewer's offer: the offer gets 201 (answered first) or 404 (the
    session closed first), never a 400, and no session, viewer or socket is left (a peer
    connection closed in the middle of gathering would keep its UDP sockets)."""
    import gc
    import os

    def sockets() -> int:
        count = 0
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):  # closed meanwhile
                count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        return count

    async def main() -> None:
        from aiortc import RTCPeerConnection

        c = HeadcastClient(srv.url)
        gc.collect()
        base = sockets()
        for delay in (0.0, 0.002, 0.004, 0.008) * 4:
            s = await c.create_session()
            pc = RTCPeerConnection()
            pc.addTransceiver("video", direction="recvonly")
            await pc.setLocalDescription(await pc.createOffer())
            offer = asyncio.create_task(
                c.request("POST", s["whep"], pc.localDescription.sdp.encode(), "application/sdp")
            )
            await asyncio.sleep(delay)
            await c.close_session(s["id"])
            resp = await offer
            assert resp.status in (201, 404), (delay, resp.status, resp.body[:200])
            await pc.close()
        assert not srv.state.sessions

        async def released() -> bool:  # closing peers let their sockets go on the loop
            gc.collect()
            return sockets() <= base + 1

        assert await _eventually(released), (base, sockets())

    run(main(), timeout=30)
