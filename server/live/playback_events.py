"""Playback events of one session: what its output frames mean for its event sockets.

``speech_started`` / ``speech_ended`` / ``position`` / per-frame ``coefficients`` as
frames reach the output, ``dropped`` when drops grow, ``interrupted`` on a cut. Times
are on the session clock (``t_ms`` from the sample counter).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from headcast.server.live.clock import SAMPLE_RATE, MediaClock
from headcast.server.live.events import EventStream
from headcast.server.live.output import Frame, PipelineOutput

POSITION_EVERY_S = 0.2  # playback position events while speaking
DROPPED_EVERY_S = 1.0  # at most one dropped event per second


class PlaybackEvents:
    """Turns the frames a session plays into events on its streams."""

    def __init__(self, clock: MediaClock, streams: Callable[[], Iterable[EventStream]]) -> None:
        self.clock = clock
        self._streams = streams
        self.speaking = False
        self._event_frame = -1
        self._utterance_start = 0
        self._last_position = 0.0
        self._last_dropped = (0.0, 0, 0)  # (time, frames, audio samples) last reported
        # (speech, coeffs) of frames made and not yet played: a catch-up burst can push
        # a frame out of the pipeline's store before its play time comes
        self._made: dict[int, tuple[bool, np.ndarray]] = {}

    def broadcast(self, event: dict[str, Any]) -> None:
        for stream in self._streams():
            stream.put(event)

    def made(self, frames: Iterable[Frame]) -> None:
        """Remember the frames a tick just made until they are played."""
        for frame in frames:
            if frame.index > self._event_frame:
                self._made[frame.index] = (frame.speech, frame.coeffs)

    def emit(self, pipeline: PipelineOutput, dropped_frames: int) -> None:
        """Events for every frame that reached the output since the last call.

        Only frames the pipeline has made: one running late has not made those at the
        output yet, and reading them as silence would end an utterance mid-word (and
        lose their coefficients); their events follow once they are made.
        """
        j_out = min(self.clock.output_frame(), pipeline.next_frame - 1)
        coeff_streams = [s for s in self._streams() if s.coefficients]
        for j in range(self._event_frame + 1, j_out + 1):
            frame = pipeline.frame(j)  # the latest make of it (an interrupt remakes some)
            speech, coeffs = (
                (frame.speech, frame.coeffs)
                if frame is not None
                else self._made.get(j, (False, None))
            )
            t_ms = round(self.clock.frame_ms(j), 1)
            if speech and not self.speaking:
                self.speaking = True
                self._utterance_start = self.clock.frame_sample(j)
                self._last_position = t_ms
                self.broadcast({"type": "speech_started", "t_ms": t_ms})
            elif not speech and self.speaking:
                self.speaking = False
                self.broadcast({"type": "speech_ended", "t_ms": t_ms})
            if self.speaking and t_ms - self._last_position >= POSITION_EVERY_S * 1000:
                self._last_position = t_ms
                played = self.clock.frame_sample(j) - self._utterance_start
                self.broadcast(
                    {"type": "position", "t_ms": t_ms, "position_ms": played * 1000.0 / SAMPLE_RATE}
                )
            if coeff_streams and coeffs is not None:
                event = {
                    "type": "coefficients",
                    "frame": j,
                    "t_ms": t_ms,
                    "values": [round(float(v), 4) for v in coeffs],
                }
                for s in coeff_streams:
                    s.put(event)
        self._event_frame = max(self._event_frame, j_out)
        for k in [k for k in self._made if k <= self._event_frame]:
            del self._made[k]
        now = time.monotonic()
        last_t, last_n, last_audio = self._last_dropped
        audio = pipeline.input.dropped_samples
        grew = dropped_frames > last_n or audio > last_audio
        if grew and now - last_t >= DROPPED_EVERY_S:
            self._last_dropped = (now, dropped_frames, audio)
            self.broadcast(
                {
                    "type": "dropped",
                    "frames": dropped_frames,
                    "audio_ms": round(audio * 1000.0 / SAMPLE_RATE, 1),
                }
            )

    def interrupted(self, cut: dict[str, int]) -> dict[str, Any]:
        """The ``interrupted`` event for a pipeline cut (ending the utterance first)."""
        position = max(0, cut["sample"] - self._utterance_start) if self.speaking else 0
        event = {
            "type": "interrupted",
            "t_ms": round(cut["sample"] * 1000.0 / SAMPLE_RATE, 1),
            "position_ms": round(position * 1000.0 / SAMPLE_RATE, 1),
            "dropped_ms": round(cut["dropped_samples"] * 1000.0 / SAMPLE_RATE, 1),
        }
        if self.speaking:
            self.speaking = False
            self.broadcast({"type": "speech_ended", "t_ms": event["t_ms"], "interrupted": True})
        self._event_frame = max(self._event_frame, cut["frame"] - 1)
        self.broadcast(event)
        return event
