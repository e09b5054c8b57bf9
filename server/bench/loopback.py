"""A real ``headcast serve`` on 127.0.0.1 in a subprocess, for the live benchmarks.

The server's CPU, memory and file descriptors are its own (and its render processes'),
so what a benchmark measures of it is not mixed with the client's.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from headcast.models.audio import SAMPLE_RATE
from headcast.models.config import REPO_ROOT
from headcast.server.errors import UserError
from headcast.server.live.procpool import process_stat

READY_TIMEOUT_S = 120.0
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as r:
        return str(r.read().decode())


def load_speech(path: Path) -> np.ndarray:
    """A 16 kHz mono 16-bit WAV -> float32 (N,) in -1..1 (UserError otherwise)."""
    try:
        with wave.open(str(path)) as w:
            if w.getframerate() != SAMPLE_RATE or w.getnchannels() != 1 or w.getsampwidth() != 2:
                raise UserError(f"{path}: need 16 kHz mono 16-bit WAV")
            raw = w.readframes(w.getnframes())
    except (OSError, wave.Error) as exc:
        raise UserError(f"cannot read {path}: {exc}") from exc
    return np.frombuffer(raw, "<i2").astype(np.float32) / 32768.0


def family(pid: int) -> list[int]:
    """``pid`` and its child processes (the render processes)."""
    pids = []
    for entry in Path("/proc").glob("[0-9]*"):
        stat = process_stat(entry.name)
        if stat is not None and (entry.name == str(pid) or stat[0] == pid):
            pids.append(int(entry.name))
    return pids


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) of ``pid`` and its child processes."""
    return sum(stat[1] for p in family(pid) if (stat := process_stat(p)) is not None)


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its child processes (MB)."""
    total = 0
    for p in family(pid):
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * PAGE_KB
    return total / 1024.0


def open_fds(pid: int) -> int:
    """File descriptors ``pid`` holds (sockets included)."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


@contextlib.contextmanager
def serve(size: int, fps: int, provider: str, **env_settings: str) -> Iterator[tuple[str, int]]:
    """(base URL, pid) of a ready server at ``size``/``fps`` with ICE on 127.0.0.1."""
    port = free_port()
    env = dict(
        os.environ,
        HEADCAST_SERVE__ALLOWED_SIZES=f"[{size}]",
        HEADCAST_SERVE__MAX_SESSIONS="64",
        HEADCAST_SERVE__DEFAULT_FPS=str(fps),
        **{f"HEADCAST_SERVE__{k.upper()}": v for k, v in env_settings.items()},
    )
    cmd = [
        sys.executable, "-m", "headcast.server.cli", "serve", "--port", str(port),
        "--size", str(size), "--ice-host", "127.0.0.1", "--provider", provider,
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, cwd=REPO_ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            with contextlib.suppress(OSError):
                if json.loads(get(url + "/readyz")).get("status") == "ready":
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise UserError("the server did not become ready")
            time.sleep(0.5)
        yield url, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
