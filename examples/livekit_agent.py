"""A LiveKit Agents agent with a headcast face (the agent side of docs/agents.md).

The agent joins the room, starts the avatar (a headcast server launches a worker that
joins as "headcast-avatar" and publishes the face and voice), and speaks a few lines.
To stay runnable with no API keys its speech is flite audio handed to ``session.say``;
a real agent gives ``AgentSession`` its STT, LLM and TTS and changes nothing else.

    pip install '.[livekit]'        # from a clone of headcast
    export LIVEKIT_URL=wss://… LIVEKIT_API_KEY=… LIVEKIT_API_SECRET=…
    export HEADCAST_URL=http://avatar-host:8080 HEADCAST_API_KEY=…   # key: if the server has one
    python examples/livekit_agent.py dev
    # then join the room from LiveKit's Agents Playground or any LiveKit client

The headcast server needs ``livekit_worker_python`` set to a Python with
``headcast[livekit]`` (docs/agents.md).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import wave
from collections.abc import AsyncIterator
from io import BytesIO

from livekit import rtc
from livekit.agents import Agent, AgentServer, AgentSession, JobContext, cli

from headcast.client.livekit_session import HeadcastAvatarSession

LINES = (
    "Hello! I am an avatar rendered by headcast, speaking in a LiveKit room.",
    "My lips follow whatever audio the agent sends me.",
)

server = AgentServer()


async def flite_audio(text: str) -> AsyncIterator[rtc.AudioFrame]:
    """``text`` as 100 ms audio frames (stands in for a TTS service)."""
    cmd = ["flite", "-voice", "slt", "-t", text, "-o", "/dev/stdout"]
    wav = await asyncio.to_thread(subprocess.run, cmd, capture_output=True, check=True)
    with wave.open(BytesIO(wav.stdout)) as w:
        rate, pcm = w.getframerate(), w.readframes(w.getnframes())
    step = rate // 10 * 2
    for i in range(0, len(pcm), step):
        chunk = pcm[i : i + step]
        yield rtc.AudioFrame(chunk, rate, 1, len(chunk) // 2)


@server.rtc_session()
async def entrypoint(ctx: JobContext) -> None:
    await ctx.connect()
    session = AgentSession()
    avatar = HeadcastAvatarSession(
        headcast_url=os.environ.get("HEADCAST_URL", "http://127.0.0.1:8080"),
        api_key=os.environ.get("HEADCAST_API_KEY"),
    )
    await avatar.start(session, room=ctx.room)  # before session.start: routes the audio
    await session.start(agent=Agent(instructions="You are a friendly avatar."), room=ctx.room)
    await avatar.wait_for_join()
    for line in LINES:
        await session.say(line, audio=flite_audio(line))


if __name__ == "__main__":
    cli.run_app(server)
