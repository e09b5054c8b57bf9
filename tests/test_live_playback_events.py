"""Playback events follow the frames a session made, not the gaps of a late pipeline."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import numpy as np

from headcast.server.live.clock import MediaClock
from headcast.server.live.events import EventStream
from headcast.server.live.output import Frame
from headcast.server.live.playback_events import PlaybackEvents

SPEECH = range(5, 40)  # frames of one utterance


class LatePipeline:
    """Makes frames in bursts, keeps only the newest few (as a catch-up pushes the older
    ones out of a session's store) and counts no dropped input."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.next_frame = 0
        self.input = SimpleNamespace(dropped_samples=0)
        self._store: dict[int, Frame] = {}

    def make_until(self, last: int) -> list[Frame]:
        made = []
        while self.next_frame <= last:
            j = self.next_frame
            coeffs = np.full(3, j, np.float32)
            made.append(Frame(j, coeffs, j in SPEECH, None))
            self._store[j] = made[-1]
            self.next_frame += 1
        self._store = {k: v for k, v in self._store.items() if k > last - self.keep}
        return made

    def frame(self, j: int) -> Frame | None:
        return self._store.get(j)


def _drain(stream: EventStream) -> list[dict[str, Any]]:
    async def take() -> list[dict[str, Any]]:
        stream.close()
        out = []
        while (event := await stream.get()) is not None:
            out.append(event)
        return out

    return asyncio.run(take())


def test_a_late_pipeline_ends_no_utterance_midway_and_loses_no_coefficients() -> None:
    clock = MediaClock(25, delay_frames=2, start=0.0)
    played = [0]
    clock.output_frame = lambda now=None: played[0]  # type: ignore[method-assign]
    stream = EventStream(10_000, coefficients=True)
    events = PlaybackEvents(clock, lambda: [stream])
    pipeline = LatePipeline(keep=3)
    # the output runs on one frame at a time; the pipeline falls behind by up to 8
    # frames, then catches up in a burst that pushes most of them out of its store
    for out in range(60):
        played[0] = out
        if out % 9 == 0:
            events.made(pipeline.make_until(out + 1))
        events.emit(pipeline, 0)  # type: ignore[arg-type]
    played[0] = 80
    events.made(pipeline.make_until(80))
    events.emit(pipeline, 0)  # type: ignore[arg-type]
    got = _drain(stream)
    kinds = [e["type"] for e in got if e["type"] in ("speech_started", "speech_ended")]
    assert kinds == ["speech_started", "speech_ended"], kinds
    started = next(e for e in got if e["type"] == "speech_started")
    ended = next(e for e in got if e["type"] == "speech_ended")
    assert started["t_ms"] == clock.frame_ms(SPEECH[0])
    assert ended["t_ms"] == clock.frame_ms(SPEECH[-1] + 1)
    frames = [e["frame"] for e in got if e["type"] == "coefficients"]
    assert frames == list(range(81)), "one coefficients event per frame, in order"
    values = [e["values"][0] for e in got if e["type"] == "coefficients"]
    assert values == [float(j) for j in range(81)]
