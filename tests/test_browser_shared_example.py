"""examples/shared_session.py as a user runs it: its back end opens the session and mints
the page a bound token, the page (Chromium) watches, the agent speaks, a reload joins the
same session."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser_support import CONNECT_TIMEOUT_MS, server_settings, wait_state
from tests.server_harness import ServerThread, free_port, require_motion_model

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[1]
API_KEY = "example-key-0123456789abcdef"


@pytest.fixture(scope="module")
def example(mic_wav: Path) -> Iterator[tuple[ServerThread, str]]:
    require_motion_model()
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    settings = server_settings(api_key=API_KEY, cors_origins=(origin,))
    with ServerThread(settings) as srv:
        cmd = [sys.executable, str(ROOT / "examples" / "shared_session.py")]
        cmd += ["--headcast", srv.url, "--port", str(port)]
        env = {"HEADCAST_API_KEY": API_KEY, "PATH": "/usr/bin:/bin"}
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, cwd=ROOT)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    urllib.request.urlopen(origin + "/", timeout=2).close()
                    break
                except OSError:
                    assert proc.poll() is None and time.monotonic() < deadline
                    time.sleep(0.2)
            yield srv, origin
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def test_the_shared_session_example_runs(browser: Any, example: tuple[ServerThread, str]) -> None:
    srv, origin = example
    page = browser.new_page()
    page.goto(origin + "/", timeout=30_000)
    assert (
        wait_state(page, "#agent", ("idle", "speaking", "failed"), CONNECT_TIMEOUT_MS) != "failed"
    )
    first = page.evaluate("document.querySelector('#agent').sessionId")
    assert wait_state(page, "#agent", ("speaking",), 20_000) == "speaking"  # the agent talks
    assert list(srv.state.sessions) == [first]
    page.reload()
    assert (
        wait_state(page, "#agent", ("idle", "speaking", "failed"), CONNECT_TIMEOUT_MS) != "failed"
    )
    assert page.evaluate("document.querySelector('#agent').sessionId") == first
    assert list(srv.state.sessions) == [first]  # the same call, nothing left behind
    page.close()
