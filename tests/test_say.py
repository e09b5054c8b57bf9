"""Typed text in: the built-in engines, an OpenAI-compatible endpoint, ``say`` over HTTP and
the WebSocket, and the refusals (empty, too long, unknown voice, engine down)."""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import numpy as np
import pytest

from headcast.client.headcast_client import HeadcastClient, HeadcastError
from headcast.models.audio import SAMPLE_RATE
from headcast.models.tts import (
    RemoteVoice,
    TTSError,
    UnknownVoice,
    builtin_voices,
    pick_voice,
    split_text,
    synthesize,
)
from headcast.server.settings import ServerSettings
from tests.server_harness import FIXTURES, TEST_SIZE, ServerThread, require_motion_model, run

pytestmark = pytest.mark.skipif(shutil.which("flite") is None, reason="flite is not installed")


class FakeSpeech(BaseHTTPRequestHandler):
    """An OpenAI-compatible ``/v1/audio/speech``: voice "tone" streams 0.6 s of 24 kHz PCM
    in pieces, "slow" answers after 3 s, "broken" answers 500."""

    requests: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeSpeech.requests.append({"body": body, "auth": self.headers.get("Authorization")})
        if body["voice"] == "broken":
            self.send_error(500, "model not loaded")
            return
        if body["voice"] == "slow":
            time.sleep(3.0)
        t = np.arange(int(0.6 * 24_000)) / 24_000
        pcm = (0.3 * np.sin(2 * np.pi * 220 * t) * 32767).astype("<i2").tobytes()
        self.send_response(200)
        self.send_header("Content-Type", "audio/pcm")
        self.end_headers()
        for i in range(0, len(pcm), 4801):  # odd sizes: samples split across writes
            self.wfile.write(pcm[i : i + 4801])
            self.wfile.flush()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def fake_endpoint() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeSpeech)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1/audio/speech"
    server.shutdown()


def test_text_is_split_into_sentences_of_bounded_length() -> None:
    assert split_text("  Hello there.  How are you?\nFine! ") == [
        "Hello there.",
        "How are you?",
        "Fine!",
    ]
    long = "word, " * 200
    pieces = split_text(long)
    assert all(len(p) <= 240 for p in pieces) and " ".join(pieces).split() == long.split()
    assert split_text("... !!") == []  # nothing to say


def test_builtin_voices_speak_at_16k_for_about_the_texts_length() -> None:
    voices = builtin_voices()
    assert "slt" in voices
    short = synthesize("Hi.", voices["slt"])
    longer = synthesize("The quick brown fox jumps over the lazy dog, twice.", voices["slt"])
    assert short.dtype == np.float32 and 0.2 < len(short) / SAMPLE_RATE < 1.5
    assert 2.0 < len(longer) / SAMPLE_RATE < 6.0
    assert np.abs(longer).max() > 0.05
    if "espeak-en-us" in voices:
        e = synthesize("Hello world.", voices["espeak-en-us"])
        assert 0.5 < len(e) / SAMPLE_RATE < 3.0
    with pytest.raises(UnknownVoice, match="known: slt"):
        pick_voice(voices, "nobody", "slt")
    with pytest.raises(TTSError, match="nothing to say"):
        synthesize("?!", voices["slt"])


def test_remote_voice_streams_and_reports_a_dead_endpoint(fake_endpoint: str) -> None:
    voice = RemoteVoice("tone", fake_endpoint, "kokoro", api_key="k-123")
    pieces = list(voice.speak("One. Two."))
    total = np.concatenate(pieces)
    assert len(pieces) > 2  # read as it arrives, not in one piece
    assert abs(len(total) / SAMPLE_RATE - 1.2) < 0.01  # two sentences of 0.6 s, at 16 kHz
    sent = FakeSpeech.requests[-1]
    assert sent["body"] == {
        "model": "kokoro",
        "input": "Two.",
        "voice": "tone",
        "response_format": "pcm",
    }
    assert sent["auth"] == "Bearer k-123"
    with pytest.raises(TTSError, match="500"):
        list(RemoteVoice("broken", fake_endpoint, "m").speak("Hi."))
    dead = fake_endpoint.replace(fake_endpoint.split(":")[2].split("/")[0], "9")
    with pytest.raises(TTSError, match="failed"):
        list(RemoteVoice("tone", dead, "m", timeout_s=2).speak("Hi."))


@pytest.fixture(scope="module")
def srv(fake_endpoint: str) -> Iterator[ServerThread]:
    require_motion_model()
    from tests.server_harness import free_port

    settings = ServerSettings(
        host="127.0.0.1",
        port=free_port(),
        default_size=TEST_SIZE,
        allowed_sizes=(TEST_SIZE,),
        avatars_dir=FIXTURES / "no-avatars",
        admit_by_server_process=False,
        max_say_chars=300,
        tts={"url": fake_endpoint, "voices": ["tone", "slow", "broken"], "timeout_s": 1.0},
    )
    with ServerThread(settings) as server:
        yield server


def test_say_over_http_queues_speech_and_refuses_bad_input(srv: ServerThread) -> None:
    async def main() -> None:
        c = HeadcastClient(srv.url)
        voices = await c.voices()
        names = [v["name"] for v in voices["voices"]]
        assert {"slt", "tone", "slow", "broken"} <= set(names)
        assert voices["default"] == "slt" and voices["max_chars"] == 300
        s = await c.create_session()
        reply = await c.say(s["id"], "Hello there. This is the second sentence.")
        assert reply["type"] == "say" and reply["voice"] == "slt"
        assert 300 < reply["first_ms"] < 2000  # the first sentence only
        for _ in range(60):  # the session says it (about 3 s of speech)
            if (await c.session(s["id"]))["speaking"]:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the session never started speaking")

        async def status(body: Any, ctype: str = "application/json") -> tuple[int, str]:
            resp = await c.request("POST", f"/v1/sessions/{s['id']}/say", body, ctype)
            return resp.status, resp.body.decode()

        assert (await status(b'{"text": "   "}'))[0] == 400
        code, why = await status(json.dumps({"text": "a" * 301}).encode())
        assert code == 413 and "at most 300" in why
        code, why = await status(b'{"text": "hi", "voice": "nobody"}')
        assert code == 400 and "slt" in why and "tone" in why
        code, why = await status(b'{"text": "hi", "speed": 2}')
        assert code == 400 and "speed" in why
        assert (await status(b'{"text": "hi"}', "text/plain"))[0] == 415
        assert (await status(b"[1, 2]"))[0] == 400
        code, why = await status(b'{"text": "hi", "voice": "broken"}')
        assert code == 502 and "500" in why
        t0 = time.monotonic()
        code, why = await status(b'{"text": "hi", "voice": "slow"}')
        assert code == 502 and "timed out" in why and time.monotonic() - t0 < 2.5
        reply = await c.say(s["id"], "Now from the endpoint.", voice="tone")
        assert reply["voice"] == "tone"
        with pytest.raises(HeadcastError) as err:
            await c.say("nope", "hi")
        assert err.value.status == 404
        assert (await c.session(s["id"]))["id"] == s["id"]  # the session idles on
        await c.close_session(s["id"])

    run(main())


def test_say_over_the_socket_speaks_moves_the_mouth_and_reports_one_error(
    srv: ServerThread,
) -> None:
    async def main() -> None:
        c = HeadcastClient(srv.url)
        s = await c.create_session()
        sock = await c.connect(s["id"], coefficients=True)
        async with sock:
            sent = await sock.say("Papa bought a map.")
            reply = await sock.next_event("say")
            assert reply["voice"] == "slt"
            # when the event arrived, not when this loop got round to reading it
            started = sock.arrived_at(await sock.next_event("speech_started", within_s=5))
            await sock.next_event("speech_ended", within_s=10)
            assert started - sent < 1.0
            at = sock.ready["channels"].index("jawOpen")
            jaw = [e["values"][at] for _, e in sock.events if e.get("type") == "coefficients"]
            assert len(jaw) > 20 and max(jaw) > 0.15  # the mouth opens for the text
            await sock.say("hi", voice="broken")
            error = await sock.next_event("error", within_s=5)
            assert "text to speech failed" in error["message"]
            await sock.say("")
            assert "non-empty" in (await sock.next_event("error", within_s=5))["message"]
            errors = [e for _, e in sock.events if e.get("type") == "error"]
            assert len(errors) == 2
        await c.close_session(s["id"])

    run(main())
