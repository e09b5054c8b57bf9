"""Shared pieces of the voice-agent adapter tests, which run in the light client's venv
(no server dependencies): a real ``headcast serve`` started with the server's Python."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SIZE = 256


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes], what: str, path: str) -> None:
    deadline = time.monotonic() + 120
    while True:
        with (
            contextlib.suppress(OSError, ValueError),
            urllib.request.urlopen(url + path, timeout=5) as r,
        ):
            if path != "/readyz" or json.loads(r.read()).get("status") == "ready":
                return
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"{what} did not become ready")
        time.sleep(0.3)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=15)
    if proc.poll() is None:
        proc.kill()


@contextlib.contextmanager
def headcast_server(**settings: str) -> Iterator[str]:
    """A ``headcast serve`` at SIZE on loopback, run by HEADCAST_SERVER_PYTHON (.venv);
    ``settings``: more HEADCAST_SERVE__* values (lower-case names)."""
    python = os.environ.get("HEADCAST_SERVER_PYTHON", str(ROOT / ".venv" / "bin" / "python"))
    if not Path(python).exists():
        pytest.skip(f"no server Python at {python} (set HEADCAST_SERVER_PYTHON)")
    port = free_port()
    env = dict(os.environ, HEADCAST_SERVE__ALLOWED_SIZES=f"[{SIZE}, 384]")
    env.update({f"HEADCAST_SERVE__{k.upper()}": v for k, v in settings.items()})
    cmd = [python, "-m", "headcast.server.cli", "serve", "--port", str(port)]
    cmd += ["--size", str(SIZE), "--ice-host", "127.0.0.1"]
    with running(cmd, port, "headcast serve", "/readyz", env) as url:
        yield url


@contextlib.contextmanager
def running(
    cmd: list[str], port: int, what: str, path: str, env: dict[str, str] | None = None
) -> Iterator[str]:
    """``cmd`` (a server on ``port``) started, ready at ``path``, stopped afterwards."""
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.DEVNULL, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc, what, path)
        yield url
    finally:
        stop(proc)
