"""HTTP render jobs: upload -> job id, progress, download, client disconnect, retention."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from headcast.server.api.renders import RenderJobs
from headcast.server.settings import ServerSettings
from tests.render_offline_support import (
    decode_track_audio,
    decode_video,
    voiced_bursts,
    write_stub_motion_model,
    write_wav,
)
from tests.server_harness import ServerThread, free_port

WAIT_S = 60.0  # generous: the machine running the tests may be heavily loaded


class Client:
    """A minimal HTTP client (stdlib) for one server."""

    def __init__(self, url: str) -> None:
        self.url = url

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        req = urllib.request.Request(
            self.url + path, data=body, method=method, headers=headers or {}
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    def json(self, method: str, path: str, body: bytes | None = None) -> tuple[int, Any]:
        status, _, data = self.request(method, path, body)
        return status, json.loads(data) if data else None

    def wait(self, path: str) -> dict[str, Any]:
        deadline = time.monotonic() + WAIT_S
        seen: list[float] = []
        while time.monotonic() < deadline:
            _, job = self.json("GET", path)
            seen.append(job["progress"])
            if job["status"] in ("done", "failed", "cancelled"):
                job["_seen"] = seen
                return dict(job)
            time.sleep(0.05)
        raise AssertionError(f"render did not finish in {WAIT_S} s")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("api")
    speech = write_wav(root / "speech.wav", voiced_bursts([(0.2, 0.9)], 1.0))
    return speech, write_stub_motion_model(root / "stub.onnx")


def _server(stub: Path, tmp_path: Path, retention_s: float) -> ServerThread:
    settings = ServerSettings(
        port=free_port(), motion_model=stub, provider="cpu", avatars_dir=tmp_path / "avatars"
    )
    server = ServerThread(settings, warm_up=False)
    server.app.state.render_jobs = RenderJobs(
        tmp_path / "jobs", retention_s=retention_s, sweep_every_s=0.2, motion_model=stub,
        provider="cpu",
    )  # fmt: skip
    return server


def test_upload_poll_download(files: tuple[Path, Path], tmp_path: Path) -> None:
    speech, stub = files
    with _server(stub, tmp_path, 60.0) as server:
        c = Client(server.url)
        status, headers, body = c.request(
            "POST", "/v1/renders?size=256&fps=30&seed=4&pose=still", speech.read_bytes()
        )
        assert status == 202, body
        job = json.loads(body)
        assert job["status"] in ("queued", "running") and headers["location"] == job["url"]
        done = c.wait(job["url"])
        assert done["status"] == "done", done
        assert done["progress"] == 1.0 and done["frames"] == 30 and done["expires"]
        assert all(b >= a for a, b in zip(done["_seen"], done["_seen"][1:], strict=False))
        status, headers, video = c.request("GET", done["video_url"])
        assert status == 200 and headers["content-type"] == "video/mp4"
        out = tmp_path / "dl.mp4"
        out.write_bytes(video)
        frames, seconds, fps = decode_video(out)
        assert fps == 30 and frames.shape == (30, 256, 256, 3) and abs(seconds - 1.0) <= 1 / 30
        assert decode_track_audio(out)[1] == 16_000
        _, listed = c.json("GET", "/v1/renders")
        assert [j["id"] for j in listed] == [job["id"]]
        assert c.request("DELETE", job["url"])[0] == 204
        assert c.request("GET", job["url"])[0] == 404


def test_multipart_upload_and_bad_requests(
    files: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    speech, stub = files
    boundary = "headcastboundary"
    form = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="talk.wav"\r\n'
            f"Content-Type: audio/wav\r\n\r\n"
        ).encode()
        + speech.read_bytes()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    with _server(stub, tmp_path, 60.0) as server:
        c = Client(server.url)
        status, _, body = c.request(
            "POST", "/v1/renders?size=256", form,
            {"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )  # fmt: skip
        assert status == 202, body
        assert c.wait(json.loads(body)["url"])["status"] == "done"
        assert c.request("POST", "/v1/renders", b"")[0] == 400
        assert c.request("POST", "/v1/renders?size=300", b"x")[0] == 400
        assert c.request("POST", "/v1/renders?emotion=smug", b"x")[0] == 400
        assert c.request("POST", "/v1/renders?colour=red", b"x")[0] == 400
        # a token given as a query parameter is a credential, not an unknown option
        status, _, body = c.request("POST", "/v1/renders?size=300&token=abc", b"x")
        assert status == 400 and b"unknown" not in body and b"size" in body, body
        assert c.request("POST", "/v1/renders?avatar=nobody", b"x")[0] == 404
        # an emotion timeline, as the CLI takes it: a bad one is refused with its reason,
        # a good one renders
        quote = urllib.parse.quote
        smug = quote(json.dumps([{"time": 0.2, "emotion": "smug"}]))
        status, _, body = c.request("POST", f"/v1/renders?emotion={smug}", b"x")
        assert status == 400 and b"smug" in body, body
        status, _, body = c.request("POST", f"/v1/renders?emotion={quote('[{')}", b"x")
        assert status == 400 and b"not a JSON emotion timeline" in body, body
        happy = quote(json.dumps([{"time": 0.2, "emotion": "happy", "transition": 0.3}]))
        status, _, body = c.request(
            "POST", f"/v1/renders?size=256&emotion={happy}", speech.read_bytes()
        )
        assert status == 202, body
        assert c.wait(json.loads(body)["url"])["status"] == "done"
        # Not audio (text, JSON, an image): refused at once with the reason, no job queued
        # (it used to be accepted as a job that failed later)
        before = len(c.json("GET", "/v1/renders")[1])
        png = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes()
        for body, kind in (
            (b"plain text, not audio" * 10, "text/plain"),
            (b"{}", "application/json"),
            (png, "image/png"),
        ):
            status, _, reply = c.request(
                "POST", "/v1/renders?size=256", body, {"Content-Type": kind}
            )
            assert status == 415, (kind, status, reply)
            detail = json.loads(reply)["detail"]
            assert detail.startswith("cannot decode audio: the upload") and "/tmp" not in detail
        assert len(c.json("GET", "/v1/renders")[1]) == before
        # Audio with a stream but no samples: refused at once too (it was a job that
        # failed later), as the live audio endpoint refuses it
        empty = write_wav(tmp_path / "empty.wav", np.zeros(0, np.float32)).read_bytes()
        status, _, reply = c.request("POST", "/v1/renders?size=256", empty)
        assert status == 400 and "zero samples" in json.loads(reply)["detail"], reply
        assert len(c.json("GET", "/v1/renders")[1]) == before
        # A render that fails says why, with no video to fetch
        from headcast.server.api import renders

        def broken(*_: object, **__: object) -> None:
            raise renders.RenderError("the renderer broke")

        with monkeypatch.context() as m:
            m.setattr(renders, "render_file", broken)
            _, job = c.json("POST", "/v1/renders?size=256", speech.read_bytes())
            failed = c.wait(job["url"])
        assert failed["status"] == "failed" and "broke" in failed["error"], failed
        assert c.request("GET", f"{job['url']}/video")[0] == 409
        # Longer than the server renders: far longer by its header, or (inside the
        # header's slack) by its packets' durations; nothing is decoded either way
        settings = server.state.settings.model_copy(update={"max_render_audio_s": 0.5})
        server.state.settings = settings
        five = write_wav(tmp_path / "five.wav", np.zeros(5 * 16_000, np.float32))
        for upload, words in ((five, "declares 5 s"), (speech, "by its packets")):
            status, _, reply = c.request("POST", "/v1/renders?size=256", upload.read_bytes())
            detail = json.loads(reply)["detail"]
            assert status == 413 and words in detail and "max_render_audio_s" in detail, reply


def test_job_survives_client_disconnect_and_expires(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    speech, stub = files
    server = _server(stub, tmp_path, 1.0)
    jobs: RenderJobs = server.app.state.render_jobs
    with server:
        audio = speech.read_bytes()
        host, port = "127.0.0.1", server.settings.port
        # A client that uploads and hangs up without reading the answer.
        with socket.create_connection((host, port)) as sock:
            sock.sendall(
                f"POST /v1/renders?size=256 HTTP/1.1\r\nHost: {host}\r\n"
                f"Content-Length: {len(audio)}\r\n\r\n".encode()
                + audio
            )
        deadline = time.monotonic() + WAIT_S
        while not jobs.list():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        job = jobs.list()[0]
        while job.status in ("queued", "running"):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert job.status == "done" and job.video.is_file()
        c = Client(server.url)  # another client fetches the result later
        assert c.request("GET", f"/v1/renders/{job.id}/video")[0] == 200
        # past the retention period the sweeper removes job and files (polled: its thread
        # runs late on a loaded machine; a job that is never removed still fails here)
        deadline = time.monotonic() + WAIT_S
        while c.request("GET", f"/v1/renders/{job.id}")[0] != 404 or job.folder.exists():
            assert time.monotonic() < deadline, "the expired job was not removed"
            time.sleep(0.1)
        assert time.time() - job.finished > jobs.retention_s, "removed before its retention"
    assert not (tmp_path / "jobs").exists()  # shutting the app down removed the store
