"""A voice agent and a web page sharing one avatar (docs/client.md, "A voice agent and a
page share one avatar"), with nothing but the standard library and the light client.

The back end (this script) opens the session with the API key and mints the page a
token bound to it; the page only watches; the "agent" (a loop here) speaks into the
session. Run a server with an API key, then this:

    HEADCAST_SERVE__API_KEY=change-me-0123456789 \\
        HEADCAST_SERVE__CORS_ORIGINS='["http://127.0.0.1:8000"]' headcast serve &
    HEADCAST_API_KEY=change-me-0123456789 python examples/shared_session.py \\
        --headcast http://127.0.0.1:8080 --port 8000
    # open http://127.0.0.1:8000 (this page's origin must be in the server's
    # cors_origins, as set above; see docs/client.md)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from headcast.client import HeadcastClient

LINES = (
    "Hello! This avatar's session was opened by the back end.",
    "The page only watches; the agent does the talking.",
    "Reload the page: it joins the same session again.",
)
PAGE = """<!doctype html><meta charset="utf-8"><title>shared avatar</title>
<script type="module" src="{server}/headcast.js"></script>
<headcast-avatar id="agent" server="{server}" style="width:384px"></headcast-avatar>
<script type="module">
  const call = await (await fetch('/start-call', {{method: 'POST'}})).json();
  const agent = document.getElementById('agent');
  agent.setAttribute('token', call.token);
  await agent.connect({{session: call.session}});
</script>"""


class Call:
    """The one call this demo runs: a session, a page token for it, an agent speaking."""

    def __init__(self, headcast: str, api_key: str, origin: str) -> None:
        self.client = HeadcastClient(headcast, token=api_key)
        self.origin = origin
        self.session: dict[str, Any] | None = None
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()

    def start(self) -> dict[str, str]:
        return asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(30)

    async def _start(self) -> dict[str, str]:
        if self.session is None:
            self.session = await self.client.create_session()
            self.loop.create_task(self._agent(self.session["id"]))
        body = {"session": self.session["id"], "origin": self.origin, "ttl_s": 600}
        minted = await self.client.request(
            "POST", "/v1/tokens", json.dumps(body).encode(), "application/json"
        )
        return {"session": self.session["id"], "token": minted.json()["token"]}

    async def _agent(self, sid: str) -> None:
        sock = await self.client.connect(sid)  # held open: the session lives while it does
        await asyncio.sleep(3.0)  # time for the page to start watching
        while True:
            for line in LINES:
                await sock.say(line)
                await sock.next_event("say", within_s=30)
                await asyncio.sleep(6.0)


def main() -> None:
    parser = argparse.ArgumentParser(description="a back end and a page sharing one avatar")
    parser.add_argument("--headcast", default="http://127.0.0.1:8080")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    api_key = os.environ.get("HEADCAST_API_KEY", "")
    origin = f"http://127.0.0.1:{args.port}"
    call = Call(args.headcast, api_key, origin)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._send(200, "text/html", PAGE.format(server=args.headcast).encode())

        def do_POST(self) -> None:
            if self.path != "/start-call":
                self._send(404, "text/plain", b"not found")
                return
            self._send(200, "application/json", json.dumps(call.start()).encode())

        def _send(self, status: int, kind: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    print(f"open {origin}")
    ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
