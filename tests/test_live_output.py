"""server/live/output.py: the bounded input buffer and the output audio ring."""

from __future__ import annotations

import numpy as np

from headcast.server.live.output import AudioRing, InputBuffer


def test_input_buffer_is_bounded_and_drops_oldest() -> None:
    buf = InputBuffer(max_samples=1000)
    buf.push(np.arange(800, dtype=np.float32))
    buf.push(np.arange(800, 1500, dtype=np.float32))
    assert len(buf) == 1000 and buf.dropped_samples == 500
    out, real = buf.pop(640)
    assert real == 640 and out[0] == 500.0
    out, real = buf.pop(640)  # underrun: padded with silence
    assert real == 360 and np.all(out[360:] == 0.0)
    assert buf.clear() == 0


def test_audio_ring_reads_silence_for_unwritten_and_stale_samples() -> None:
    ring = AudioRing(1000)
    ring.write(0, np.ones(640, np.float32))
    np.testing.assert_array_equal(ring.read(600, 80), np.r_[np.ones(40), np.zeros(40)])
    ring.write(1500, np.full(100, 2.0, np.float32))  # laps the ring over sample 500
    assert ring.read(500, 10).sum() == 0.0, "a lapped slot must not replay old audio"
    assert ring.read(1500, 100).sum() == 200.0
    assert ring.read(1500, 100).sum() == 200.0, "several viewers read the same audio"
    ring.clear_from(1550)
    assert ring.read(1500, 100).sum() == 100.0
    assert ring.read(-10, 20).sum() == 10.0, "negative samples read as silence"
