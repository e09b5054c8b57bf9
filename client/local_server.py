"""A headcast server inside the calling process, on 127.0.0.1: the adapters' no-URL mode.

``LocalServer()`` starts ``headcast serve`` (the same app, settings from
``configs/server.yaml`` and ``HEADCAST_SERVE__*``) on a thread with its own event loop and
a free loopback port, so an agent can use the avatar with no server to run. It needs the
server installed beside the client (``pip install 'headcast[server]'``).
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

START_TIMEOUT_S = 120.0


class LocalServerUnavailable(RuntimeError):
    """The server's packages are not installed here; the message says what to do."""


class LocalServer:
    """``with LocalServer() as url:`` (or :meth:`start` / :meth:`stop`)."""

    def __init__(
        self, settings: Any = None, factories: dict[str, Any] | None = None, **overrides: Any
    ) -> None:
        """``settings``: a ``ServerSettings`` (default: loaded as ``headcast serve`` does,
        with ``overrides``); ``factories``: ``create_app``'s model factories (tests)."""
        try:
            import uvicorn

            from headcast.server.app import create_app
            from headcast.server.settings import load_settings
        except ImportError as exc:
            raise LocalServerUnavailable(
                f"no server URL was given and the renderer is not installed here ({exc}); "
                "give the URL of a headcast server, or pip install 'headcast[server]'"
            ) from exc
        if settings is None:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = int(s.getsockname()[1])
            settings = load_settings(None, **{**overrides, "host": "127.0.0.1", "port": port})
        self.settings = settings
        self.app = create_app(settings, **(factories or {}))
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=settings.port,
            log_level="warning",
            ws="websockets-sansio",
            ws_max_size=self.settings.max_message_bytes,
            proxy_headers=False,
            lifespan="on",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="headcast", daemon=True)
        self.url = f"http://127.0.0.1:{settings.port}"

    def start(self) -> str:
        """Start and wait until the models are loaded; returns the base URL."""
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the in-process headcast server did not start")
            time.sleep(0.05)
        return self.url

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=20)

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
