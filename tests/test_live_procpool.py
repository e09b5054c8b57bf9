"""Pipelines in render processes: the same frames as in process, and a lost process ends
only its own sessions, cleanly."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from headcast.client.headcast_client import HeadcastClient, Viewer
from headcast.models.channels import CHANNEL_INDEX
from headcast.models.mixer import MotionMixer
from headcast.server.live.clock import MediaClock
from headcast.server.live.loaders import default_streamer
from headcast.server.live.pipeline import SessionPipeline
from headcast.server.live.pipeline_spec import (
    PipelineSpec,
    portrait_lips_apart,
    portrait_smile,
)
from headcast.server.live.procpool import ProcessPool, RemotePipeline
from headcast.server.settings import ServerSettings
from tests.server_harness import ServerThread, load_speech, require_motion_model, run

SIZE = 128


@pytest.fixture(scope="module")
def pool() -> Iterator[ProcessPool]:
    require_motion_model()
    procs = ProcessPool(1, ServerSettings())
    try:
        yield procs
    finally:
        procs.close()


def _spec(clock: MediaClock) -> PipelineSpec:
    return PipelineSpec(
        avatar=None,
        size=SIZE,
        fps=25,
        seed=7,
        emotion="neutral",
        clock=clock,
        max_buffered_s=5.0,
        echo_audio=True,
        early_onsets=False,
        read_ahead=120,
    )


def test_a_remote_pipeline_makes_the_frames_and_audio_an_in_process_one_makes(
    pool: ProcessPool,
) -> None:
    from headcast.models.motion import load_motion_model
    from headcast.models.render import create_renderer

    speech = load_speech(2.0)
    start = time.monotonic() + 100.0  # far future: no render is ever late
    remote = RemotePipeline(pool.pick(), _spec(MediaClock(25, 2, start=start, output_delay=0.08)))
    model = load_motion_model()
    local = SessionPipeline(
        clock=MediaClock(25, 2, start=start, output_delay=0.08),
        streamer=default_streamer(model),
        mixer=MotionMixer(
            25,
            seed=7,
            emotion="neutral",
            portrait_smile=portrait_smile(None),
            lips_apart=portrait_lips_apart(None),
        ),
        render=create_renderer(None, backend="warp", size=SIZE).render,
        max_buffered_s=5.0,
    )
    try:
        for p in (remote, local):
            p.push(speech)
        made: dict[str, dict[int, Any]] = {"remote": {}, "local": {}}
        for n in range(0, 60, 3):  # catch up three ticks per call, as a late ticker does
            for name, p in (("remote", remote), ("local", local)):
                made[name].update({f.index: f for f in p.tick_until(n)})
        assert remote.buffered() == local.buffered() and remote.next_frame == local.next_frame
        assert sorted(made["remote"]) == sorted(made["local"]) and len(made["local"]) > 50
        for j, ours in made["local"].items():
            theirs = made["remote"][j]
            np.testing.assert_allclose(theirs.coeffs, ours.coeffs, atol=1e-6)
            assert theirs.speech == ours.speech
            assert theirs.image is None, "replies carry I420 only"
            np.testing.assert_array_equal(theirs.yuv, ours.yuv)
        last = remote.frame(remote.next_frame - 1)
        assert last is not None and last.index == remote.next_frame - 1, "kept for the tracks"
        np.testing.assert_array_equal(remote.read_audio(0, 32_000), local.read_audio(0, 32_000))
        assert max(f.coeffs[CHANNEL_INDEX["jawOpen"]] for f in made["remote"].values()) > 0.3
        cut_remote, cut_local = remote.interrupt(start), local.interrupt(start)
        assert cut_remote == cut_local
        remote.control("set_emotion", "happy", 0.0)
        with pytest.raises(Exception, match="not a mixer control"):
            remote.control("reset")
    finally:
        remote.close()


def test_a_lost_render_process_closes_its_sessions_and_the_server_goes_on() -> None:
    require_motion_model()
    settings = ServerSettings(
        host="127.0.0.1",
        port=0,
        default_size=SIZE,
        allowed_sizes=(SIZE,),
        render_processes=1,
    )
    from tests.server_harness import free_port

    settings = settings.model_copy(update={"port": free_port()})
    with ServerThread(settings) as server:
        state = server.state
        assert state.processes is not None and len(state.processes.workers) == 1

        async def main() -> None:
            client = HeadcastClient(server.url)
            s = await client.create_session()
            viewer = await Viewer(client, keep_video=False).watch(s["whep"])
            try:
                await asyncio.sleep(1.0)
                pid = state.processes.workers[0].process.pid
                os.kill(pid, signal.SIGKILL)
                deadline = time.monotonic() + 10
                while not state.sessions[s["id"]].closed:
                    assert time.monotonic() < deadline, "the session outlived its process"
                    await asyncio.sleep(0.1)
                # a new session gets a new process and frames
                s2 = await client.create_session()
                v2 = await Viewer(client, keep_video=False).watch(s2["whep"])
                # a second's worth of rendered frames: polled, as a loaded machine may
                # take longer to start the process and connect than a fixed sleep allows
                deadline = time.monotonic() + 20
                while True:
                    stats = (await client.request("GET", f"/v1/sessions/{s2['id']}")).json()
                    if stats["frames_sent"] - stats["dropped_frames"] > 25:
                        break
                    assert time.monotonic() < deadline, f"no frames from a new process: {stats}"
                    await asyncio.sleep(0.2)
                assert state.processes.workers[0].process.pid != pid
                await v2.close()
            finally:
                await viewer.close()

        run(main(), timeout=60)


def test_an_early_onset_sends_its_audio_before_the_ticks_run(pool: ProcessPool) -> None:
    """In a render process the speech's audio reaches the server's ring in a message of
    its own, before the catch-up ticks render, so the audio track cannot read silence
    where the speech now starts."""
    speech = load_speech(1.5)
    onset = int(np.argmax(np.abs(speech) > 0.02))
    worker = pool.pick()
    worker.call("warm", None, [SIZE], 25)
    n = 12
    # The speech can start early only while the output has not reached tick n + 1: with
    # the live 80 ms delay that leaves ~60 ms for the pipeline's set-up, silent ticks and
    # push in the render process (a loaded machine took ~70). With 300 ms of delay
    # the window is ~290 ms; the splice and the messages are the same.
    clock = MediaClock(25, 2, start=time.monotonic() - (n + 0.5) / 25, output_delay=0.3)
    remote = RemotePipeline(worker, replace(_spec(clock), early_onsets=True))
    seen: list[int] = []
    mirror = remote._apply_audio
    remote._apply_audio = lambda ops: (seen.append(len(ops)), mirror(ops))  # type: ignore[method-assign]
    try:
        remote.tick_until(n)  # silence up to input tick n; now is mid-tick n
        seen.clear()
        remote.push(speech[onset:])
        remote.tick_until(n)
        assert remote.early_onsets_taken == 1
        assert len(seen) >= 2 and seen[0] > 0, "the audio came ahead of the reply"
        heard = remote.read_audio(0, remote.next_tick * 640)
        s0 = int(np.argmax(heard != 0.0))
        assert s0 < (n + 1) * 640, "earlier than the next tick would have taken it"
        np.testing.assert_array_equal(heard[s0:], speech[onset:][: len(heard) - s0])
    finally:
        remote.close()


def test_warming_a_render_process_runs_its_models_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A session's first frames in a render process must not pay for the first run of a
    renderer or motion model there: ``warm`` runs each once (and only once)."""
    import headcast.server.live.loaders as loaders
    from headcast.server.live.render_process import _Host

    runs: list[str] = []

    class Renderer:
        def render(self, coeffs: np.ndarray) -> np.ndarray:
            runs.append("render")
            return np.zeros((SIZE, SIZE, 3), np.uint8)

    class Streamer:
        def push(self, pcm: np.ndarray) -> None:
            runs.append(f"motion {len(pcm)}")

    host = _Host(ServerSettings(), conn=None)  # type: ignore[arg-type]
    host.models.make_renderer = lambda avatar, size: Renderer()
    host.models.load_motion = lambda fps: object()
    monkeypatch.setattr(loaders, "default_streamer", lambda model: Streamer())
    host.warm(None, [SIZE, 2 * SIZE], 25)
    assert runs == ["motion 8000", "render", "render"]
    host.warm(None, [SIZE], 25)  # already warm: nothing runs again
    assert len(runs) == 3
