"""``POST /v1/livekit/workers`` on a server without a worker Python: a clear 501, and the
body is checked first (the launch itself is tested in tests/test_agents_livekit.py)."""

from __future__ import annotations

import json

from headcast.client.headcast_client import HeadcastClient
from tests.server_harness import ServerThread, require_motion_model, run


def test_workers_are_off_until_a_worker_python_is_configured() -> None:
    require_motion_model()

    async def main(url: str) -> None:
        client = HeadcastClient(url)
        body = {"url": "wss://lk.example.com", "token": "t" * 40, "room": "lobby"}
        resp = await client.request(
            "POST", "/v1/livekit/workers", json.dumps(body).encode(), "application/json"
        )
        assert resp.status == 501 and "livekit_worker_python" in resp.body.decode()
        bad = await client.request(
            "POST", "/v1/livekit/workers", b'{"url": "wss://x"}', "application/json"
        )
        assert bad.status == 422  # token and room missing
        assert (await client.request("GET", "/v1/livekit/workers")).json() == []
        assert (await client.request("DELETE", "/v1/livekit/workers/nope")).status == 404
        assert (await client.request("GET", "/v1/sessions")).json() == []  # none opened

    with ServerThread() as srv:
        run(main(srv.url))
