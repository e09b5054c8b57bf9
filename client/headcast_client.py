"""A small Python client for headcast: sessions over HTTP, speech over the WebSocket,
and (optionally) watching the avatar over WHEP with aiortc.

For voice-agent back ends::

    client = HeadcastClient("http://127.0.0.1:8080")
    session = await client.create_session(avatar="default", emotion="happy")
    async with await client.connect(session["id"], sample_rate=24_000) as audio:
        talking = asyncio.create_task(audio.stream(tts_chunks(), realtime=True))
        await audio.next_event("speech_started")  # each call: the next such event
        await audio.interrupt()                   # the user barged in: stream() stops
        assert await talking is False             # (True when everything was sent)
        event = await audio.next_event("interrupted")
    await client.close_session(session["id"])

``stream`` takes chunks of any size (int16 bytes may be cut mid-sample; large chunks
go out in pieces the server accepts).

Only the standard library, ``websockets`` and (for :class:`Viewer`) ``aiortc``/``numpy``.

This module is the public entry; the pieces live in :mod:`client.http_client` (HTTP
calls), :mod:`client.audio_socket` (the WebSocket), :mod:`client.pcm` (sample encoding)
and :mod:`client.viewer` (WHEP).
"""

from __future__ import annotations

from headcast.client.audio_socket import AudioSocket
from headcast.client.http_client import HTTP_TIMEOUT_S, HeadcastClient, HeadcastError, Response
from headcast.client.pcm import encode_pcm, pcm_seconds
from headcast.client.viewer import Received, Viewer

__all__ = [
    "HTTP_TIMEOUT_S",
    "AudioSocket",
    "HeadcastClient",
    "HeadcastError",
    "Received",
    "Response",
    "Viewer",
    "encode_pcm",
    "pcm_seconds",
]
