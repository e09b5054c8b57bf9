"""The adapters' no-URL mode: ``LocalServer`` runs ``headcast serve`` inside the caller."""

from __future__ import annotations

import json
import urllib.request

from headcast.client.local_server import LocalServer
from tests.server_harness import require_motion_model


def test_local_server_serves_on_loopback_and_stops() -> None:
    require_motion_model()
    server = LocalServer(default_size=256, allowed_sizes=[256])
    with server as url:
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url + "/readyz", timeout=10) as r:
            assert json.loads(r.read())["status"] == "ready"
        with urllib.request.urlopen(url + "/v1/voices", timeout=10) as r:
            assert json.loads(r.read())["voices"]
    assert not server._thread.is_alive()
