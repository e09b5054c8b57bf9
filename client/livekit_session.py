"""``HeadcastAvatarSession``: the agent side of a headcast avatar in LiveKit Agents.

::

    session = AgentSession(stt=..., llm=..., tts=...)
    avatar = HeadcastAvatarSession(headcast_url="http://avatar-host:8080", api_key=...)
    await avatar.start(session, room=ctx.room)   # before session.start(...)
    await session.start(agent=MyAgent(), room=ctx.room)

``start`` mints the avatar participant's room token (it publishes on the agent's
behalf, ``lk.publish_on_behalf``), asks the headcast server to launch a worker for the
room (``POST /v1/livekit/workers``; ``503`` when that server is full, so a deployment can
try the next one) and routes the agent's audio to it (``DataStreamAudioOutput``).
``aclose`` (run at job shutdown) stops the worker.
"""

from __future__ import annotations

import json
import os
from typing import Any

from livekit import api, rtc
from livekit.agents.types import ATTRIBUTE_PUBLISH_ON_BEHALF
from livekit.agents.voice.avatar import AvatarSession, DataStreamAudioOutput

from headcast.client.http_client import HeadcastClient, HeadcastError

AVATAR_IDENTITY = "headcast-avatar"
TOKEN_TTL_S = 6 * 3600


class HeadcastAvatarSession(AvatarSession):
    """A headcast avatar for one room. ``headcast_url``/``api_key``: the headcast server;
    ``livekit_url``/``livekit_api_key``/``livekit_api_secret``: default to the
    ``LIVEKIT_URL``, ``LIVEKIT_API_KEY``, ``LIVEKIT_API_SECRET`` environment variables
    the agent worker uses too."""

    def __init__(
        self,
        *,
        headcast_url: str,
        api_key: str | None = None,
        avatar: str = "default",
        avatar_identity: str = AVATAR_IDENTITY,
        livekit_url: str | None = None,
        livekit_api_key: str | None = None,
        livekit_api_secret: str | None = None,
    ) -> None:
        super().__init__()
        self._client = HeadcastClient(headcast_url, api_key)
        self._avatar = avatar
        self._identity = avatar_identity
        self._livekit_url = livekit_url or os.environ.get("LIVEKIT_URL", "")
        self._key = livekit_api_key or os.environ.get("LIVEKIT_API_KEY", "")
        self._secret = livekit_api_secret or os.environ.get("LIVEKIT_API_SECRET", "")
        self.worker: dict[str, Any] | None = None

    @property
    def avatar_identity(self) -> str:
        return self._identity

    @property
    def provider(self) -> str:
        return "headcast"

    def avatar_token(self, room: rtc.Room) -> str:
        """The avatar participant's token: joins ``room``, publishes for the agent."""
        if not (self._livekit_url and self._key and self._secret):
            raise ValueError(
                "LiveKit URL, API key and secret are needed (arguments or LIVEKIT_URL, "
                "LIVEKIT_API_KEY, LIVEKIT_API_SECRET)"
            )
        return (
            api.AccessToken(self._key, self._secret)
            .with_kind("agent")
            .with_identity(self._identity)
            .with_name("avatar")
            .with_grants(api.VideoGrants(room_join=True, room=room.name))
            .with_attributes({ATTRIBUTE_PUBLISH_ON_BEHALF: room.local_participant.identity})
            .with_ttl(_seconds(TOKEN_TTL_S))
            .to_jwt()
        )

    async def start(self, agent_session: Any, room: rtc.Room) -> None:
        await super().start(agent_session, room)
        body = {
            "url": self._livekit_url,
            "token": self.avatar_token(room),
            "room": room.name,
            "avatar": self._avatar,
        }
        resp = await self._client.request(
            "POST", "/v1/livekit/workers", json.dumps(body).encode(), "application/json"
        )
        if resp.status != 201:
            raise HeadcastError.from_response(resp)
        self.worker = resp.json()
        agent_session.output.audio = DataStreamAudioOutput(
            room,
            destination_identity=self._identity,
            wait_remote_track=rtc.TrackKind.KIND_VIDEO,
        )

    async def aclose(self) -> None:
        if self.worker is not None:
            await self._client.request("DELETE", f"/v1/livekit/workers/{self.worker['id']}")
            self.worker = None
        await super().aclose()


def _seconds(value: int) -> Any:
    import datetime

    return datetime.timedelta(seconds=value)
