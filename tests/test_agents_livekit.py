"""The LiveKit avatar worker's generator under livekit-agents' own ``AvatarRunner``, with the
agent side played by livekit-agents' ``QueueAudioOutput`` (the same ``AudioReceiver``
interface ``DataStreamAudioReceiver`` gives the runner in a room), against a real
``headcast serve``. No LiveKit server runs here: the room is a stand-in that accepts
the runner's track publications."""

from __future__ import annotations

import asyncio
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("livekit.agents", reason="livekit-agents is not installed (livekit extra)")

from livekit import rtc  # noqa: E402
from livekit.agents.voice.avatar import AvatarOptions, AvatarRunner, QueueAudioOutput  # noqa: E402

from headcast.client.http_client import HeadcastClient  # noqa: E402
from headcast.client.ice import restrict_host_addresses  # noqa: E402
from headcast.client.livekit_avatar import OUT_RATE, HeadcastVideoGenerator  # noqa: E402
from tests.agents_support import SIZE, headcast_server  # noqa: E402

restrict_host_addresses(["127.0.0.1"])
SPEECH_WAV = Path(__file__).resolve().parent / "fixtures" / "speech.wav"
TTS_RATE = 16_000


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    with headcast_server() as url:
        yield url


class _Publication:
    async def wait_for_subscription(self) -> None:
        return None


class _Participant:
    def __init__(self) -> None:
        self.tracks: list[Any] = []

    async def publish_track(self, track: Any, options: Any) -> _Publication:
        self.tracks.append(track)
        return _Publication()


class StandInRoom(rtc.EventEmitter[str]):
    """What AvatarRunner uses of a room: connection state and track publishing."""

    def __init__(self) -> None:
        super().__init__()
        self.local_participant = _Participant()

    def isconnected(self) -> bool:
        return True


def speech_frames(seconds: float) -> list[rtc.AudioFrame]:
    with wave.open(str(SPEECH_WAV)) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2")[: int(seconds * TTS_RATE)]
    step = TTS_RATE // 10
    return [
        rtc.AudioFrame(pcm[i : i + step].tobytes(), TTS_RATE, 1, len(pcm[i : i + step]))
        for i in range(0, len(pcm), step)
    ]


def test_one_playback_finished_per_utterance_played_or_cleared(server_url: str) -> None:
    async def main() -> None:
        client = HeadcastClient(server_url)
        session = await client.create_session(size=SIZE)
        generator = HeadcastVideoGenerator(client, session)
        await generator.start()
        agent_out = QueueAudioOutput(sample_rate=TTS_RATE)
        finished: list[Any] = []
        agent_out.on("playback_finished", finished.append)
        room = StandInRoom()
        runner = AvatarRunner(
            room,  # type: ignore[arg-type]
            audio_recv=agent_out,
            video_gen=generator,
            options=AvatarOptions(SIZE, SIZE, session["fps"], OUT_RATE, 1),
        )
        await runner.start()
        try:
            await asyncio.sleep(1.0)  # idle: video only, no playback reported
            assert finished == [] and generator.segments_ended == 0

            # 1: a whole utterance, played out
            for f in speech_frames(2.0):
                await agent_out.capture_frame(f)
            agent_out.flush()
            first = await asyncio.wait_for(agent_out.wait_for_playout(), 15)
            assert not first.interrupted
            assert 1.7 < first.playback_position < 2.8, first.playback_position
            assert len(room.local_participant.tracks) == 2  # audio and video published

            # 2: interrupted after about a second
            for f in speech_frames(3.0):
                await agent_out.capture_frame(f)
            await asyncio.sleep(1.2)
            # what livekit-agents' speech generation does on an interruption: its audio
            # forwarding ends the segment, then the buffer is cleared (twice, in fact)
            agent_out.flush()
            agent_out.clear_buffer()
            agent_out.clear_buffer()
            second = await asyncio.wait_for(agent_out.wait_for_playout(), 5)
            assert second.interrupted
            assert 0.2 < second.playback_position < 2.0, second.playback_position
            await asyncio.sleep(0.5)
            stats = await client.session(session["id"])
            assert not stats["speaking"] and stats["buffered_ms"] == 0  # the mouth stopped

            # 3: the next utterance is reported on its own, exactly once
            for f in speech_frames(1.5):
                await agent_out.capture_frame(f)
            agent_out.flush()
            third = await asyncio.wait_for(agent_out.wait_for_playout(), 15)
            assert not third.interrupted and 1.2 < third.playback_position < 2.3
            await asyncio.sleep(1.0)  # nothing late or doubled arrives
            assert len(finished) == 3
            assert [f.interrupted for f in finished] == [False, True, False]
            assert generator.segments_ended == 2  # the cleared one got none
        finally:
            await runner.aclose()
            await generator.aclose()
            await client.close_session(session["id"])

    asyncio.run(asyncio.wait_for(main(), 90))


def test_the_server_launches_a_worker_per_room_and_admits_them_like_sessions() -> None:
    """POST /v1/livekit/workers for real: the worker process starts with its session, and
    (no LiveKit server here) fails to join, which ends its session; the server's limit
    answers 503 with Retry-After; DELETE stops a worker and its session."""
    import json
    import sys
    import time

    from tests.agents_support import free_port

    dead_livekit = f"ws://127.0.0.1:{free_port()}"
    body = {"url": dead_livekit, "token": "t" * 40, "room": "lobby"}

    async def main(url: str) -> None:
        client = HeadcastClient(url)

        async def post(payload: dict[str, Any]) -> Any:
            data = json.dumps(payload).encode()
            return await client.request("POST", "/v1/livekit/workers", data, "application/json")

        resp = await post(body)
        assert resp.status == 201, resp.body
        worker = resp.json()
        assert worker["room"] == "lobby" and worker["state"] == "running"
        assert (await client.session(worker["session"]))["id"] == worker["session"]
        deadline = time.monotonic() + 60
        while (info := (await client.request("GET", f"/v1/livekit/workers/{worker['id']}")).json())[
            "state"
        ] == "running":
            assert time.monotonic() < deadline, "the worker never gave up on a dead LiveKit URL"
            await asyncio.sleep(0.5)
        assert info["state"] == "failed" and info["reason"], info
        gone = await client.request("GET", f"/v1/sessions/{worker['session']}")
        assert gone.status == 404  # its session closed with it

        live = await post({**body, "url": f"ws://127.0.0.1:{silent_port}"})
        assert live.status == 201
        full = await post(body)  # max_sessions = 1: the running worker's session is it
        assert full.status == 503 and full.headers.get("retry-after")
        listed = (await client.request("GET", "/v1/livekit/workers")).json()
        assert {w["id"] for w in listed} >= {worker["id"], live.json()["id"]}
        stop = await client.request("DELETE", f"/v1/livekit/workers/{live.json()['id']}")
        assert stop.status == 204
        gone = await client.request("GET", f"/v1/sessions/{live.json()['session']}")
        assert gone.status == 404
        assert (await post({**body, "url": "ftp://x"})).status == 422
        assert (await post({**body, "extra": 1})).status == 422

    import socket

    with socket.socket() as silent:  # accepts connections, never answers: a hung LiveKit
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        silent_port = silent.getsockname()[1]
        with headcast_server(livekit_worker_python=sys.executable, max_sessions="1") as url:
            asyncio.run(asyncio.wait_for(main(url), 120))


def test_the_example_agent_loads() -> None:
    """examples/livekit_agent.py imports and its CLI answers (it needs a LiveKit server
    to do more)."""
    import subprocess
    import sys

    from tests.agents_support import ROOT

    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "livekit_agent.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-500:]
    assert "dev" in done.stdout


def test_a_worker_notices_its_session_closed(server_url: str) -> None:
    """A worker whose headcast session is deleted (or reaped) leaves the room."""
    from headcast.client.livekit_avatar import _session_ends

    async def main() -> None:
        client = HeadcastClient(server_url)
        session = await client.create_session(size=SIZE)
        gone = asyncio.Event()
        watch = asyncio.create_task(_session_ends(client, session["id"], gone))
        await asyncio.sleep(2.5)
        assert not gone.is_set()  # the session is open: the worker stays
        await client.close_session(session["id"])
        await asyncio.wait_for(gone.wait(), 5)
        await watch

    asyncio.run(asyncio.wait_for(main(), 30))


def test_the_worker_command_fails_in_one_line(server_url: str) -> None:
    """An unreachable LiveKit server or a headcast URL without its scheme: the worker
    exits non-zero with one line saying why (the server keeps it as the failure reason),
    not a traceback."""
    import subprocess
    import sys

    from tests.agents_support import ROOT

    for headcast in (server_url, server_url.removeprefix("http://")):
        done = subprocess.run(
            [
                sys.executable, "-m", "headcast.client.livekit_avatar",
                "--livekit-url", "ws://127.0.0.1:1", "--token", "x", "--headcast", headcast,
            ],
            capture_output=True, text=True, timeout=120, cwd=ROOT,
        )  # fmt: skip
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 1, done.stderr[-800:]
        assert "Traceback" not in done.stderr, done.stderr[-800:]
        assert lines and lines[-1].startswith("avatar worker: error: "), lines
    assert "give it with its scheme" in lines[-1], lines
