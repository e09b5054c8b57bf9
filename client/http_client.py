"""The HTTP side of the headcast API: sessions, control messages, audio uploads.

Blocking ``urllib`` calls run on a thread; :meth:`HeadcastClient.connect` opens a
session's WebSocket as an :class:`~client.audio_socket.AudioSocket`.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

import websockets

from headcast.client.audio_socket import AudioSocket

HTTP_TIMEOUT_S = 30.0


class HeadcastError(RuntimeError):
    """An error from the server, with its reason: ``status`` is the HTTP status, or 0 when
    no HTTP answer came (server unreachable, a WebSocket closed before it was ready);
    ``retry_after`` the seconds a 503 asks to wait, if it says."""

    def __init__(self, status: int, reason: str, retry_after: float | None = None) -> None:
        super().__init__(f"HTTP {status}: {reason}" if status else reason)
        self.status = status
        self.reason = reason
        self.retry_after = retry_after

    @classmethod
    def from_response(cls, resp: Response) -> HeadcastError:
        """The error a >= 400 response stands for: FastAPI's ``detail``, else its body."""
        try:
            detail = resp.json().get("detail", resp.body.decode())
        except (ValueError, AttributeError):  # not JSON, or JSON that is not an object
            detail = resp.body.decode(errors="replace")
        reason = _validation_errors(detail) if isinstance(detail, list) else str(detail)
        wait = {k.lower(): v for k, v in resp.headers.items()}.get("retry-after", "")
        return cls(resp.status, reason, float(wait) if wait.isdigit() else None)


def _validation_errors(errors: list[Any]) -> str:
    """A 422's list of ``{"loc": [...], "msg": ...}`` as one line: "sizee: Extra inputs
    are not permitted; fps: ..." (the ``body`` / ``query`` part of each place left out)."""
    parts = []
    for e in errors:
        if not isinstance(e, dict):
            parts.append(str(e))
            continue
        loc = [str(x) for x in e.get("loc", []) if x not in ("body", "query")]
        parts.append(f"{'.'.join(loc) or 'body'}: {e.get('msg', e)}")
    return "; ".join(parts)


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class HeadcastClient:
    """HTTP side of the API (blocking ``urllib`` calls run on a thread)."""

    def __init__(self, base_url: str, token: str | None = None) -> None:
        scheme = urllib.parse.urlsplit(base_url).scheme
        if scheme not in ("http", "https"):
            raise ValueError(
                f"{base_url!r} is not a server URL: give it with its scheme, "
                "e.g. http://127.0.0.1:8080"
            )
        self.base_url = base_url.rstrip("/")
        self.token = token

    def _request_sync(
        self, method: str, path: str, body: bytes | None, content_type: str | None
    ) -> Response:
        req = urllib.request.Request(self.base_url + path, data=body, method=method)
        if content_type:
            req.add_header("Content-Type", content_type)
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT_S) as resp:
                return Response(resp.status, dict(resp.headers.items()), resp.read())
        except urllib.error.HTTPError as exc:
            return Response(exc.code, dict(exc.headers.items()), exc.read())
        except (urllib.error.URLError, OSError) as exc:  # refused, unresolvable, timed out
            why = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            raise HeadcastError(0, f"cannot reach {self.base_url}: {why}") from exc

    async def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        content_type: str | None = None,
    ) -> Response:
        """Any request; returns the response whatever its status."""
        return await asyncio.to_thread(self._request_sync, method, path, body, content_type)

    async def _json(self, method: str, path: str, payload: Any = None) -> Any:
        body = None if payload is None else json.dumps(payload).encode()
        resp = await self.request(method, path, body, "application/json" if body else None)
        if resp.status >= 400:
            raise HeadcastError.from_response(resp)
        return resp.json() if resp.body else None

    async def create_session(self, **params: Any) -> dict[str, Any]:
        """``POST /v1/sessions``: avatar, emotion, fps, size, input, seed."""
        result: dict[str, Any] = await self._json("POST", "/v1/sessions", params)
        return result

    async def session(self, sid: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._json("GET", f"/v1/sessions/{sid}")
        return result

    async def close_session(self, sid: str) -> None:
        await self._json("DELETE", f"/v1/sessions/{sid}")

    async def control(self, sid: str, message: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self._json("POST", f"/v1/sessions/{sid}/control", message)
        return result

    async def say(self, sid: str, text: str, voice: str | None = None) -> dict[str, Any]:
        """``POST /v1/sessions/{id}/say``: the avatar speaks ``text`` (answers once the
        first sentence is queued); ``voice`` from :meth:`voices`, None = the default."""
        body: dict[str, Any] = {"text": text} if voice is None else {"text": text, "voice": voice}
        result: dict[str, Any] = await self._json("POST", f"/v1/sessions/{sid}/say", body)
        return result

    async def voices(self) -> dict[str, Any]:
        """``GET /v1/voices``: ``{"voices": [{"name", "description", "default"}], ...}``."""
        result: dict[str, Any] = await self._json("GET", "/v1/voices")
        return result

    async def upload_audio(self, sid: str, data: bytes, content_type: str = "audio/wav") -> Any:
        resp = await self.request("POST", f"/v1/sessions/{sid}/audio", data, content_type)
        if resp.status >= 400:
            raise HeadcastError.from_response(resp)
        return resp.json()

    async def connect(
        self,
        sid: str,
        *,
        sample_rate: int = 16_000,
        fmt: str = "s16le",
        channels: int = 1,
        coefficients: bool = False,
    ) -> AudioSocket:
        """Open the session's WebSocket and send the start message; waits for ``ready``.

        :class:`HeadcastError` when the server refuses (unknown session, bad token, bad
        start message: the reason it gave) or cannot be reached.
        """
        url = "ws" + self.base_url[4:] + f"/v1/sessions/{sid}/ws"
        # a header, not ?token= (which browsers need): query strings end up in logs
        auth = {"Authorization": f"Bearer {self.token}"} if self.token else None
        try:
            ws = await websockets.connect(url, max_size=None, additional_headers=auth)
        except websockets.InvalidStatus as exc:  # refused before the upgrade
            body = exc.response.body or b""
            resp = Response(exc.response.status_code, dict(exc.response.headers.raw_items()), body)
            raise HeadcastError.from_response(resp) from exc
        except (websockets.InvalidHandshake, OSError) as exc:
            raise HeadcastError(0, f"cannot reach {self.base_url}: {exc}") from exc
        sock = AudioSocket(ws, sample_rate, fmt, channels)
        start = {
            "type": "start",
            "format": fmt,
            "sample_rate": sample_rate,
            "channels": channels,
            "coefficients": coefficients,
        }
        try:
            await ws.send(json.dumps(start))
            sock.start()
            sock.ready = await sock.next_event("ready")
        except (ConnectionError, websockets.ConnectionClosed, TimeoutError) as exc:
            await sock.close()  # refused or timed out: leave nothing open, say why
            errors = sock.of_type("error")
            why = errors[0]["message"] if errors else str(exc)
            raise HeadcastError(0, f"session {sid}: {why}") from exc
        except BaseException:  # cancelled
            await sock.close()
            raise
        return sock
