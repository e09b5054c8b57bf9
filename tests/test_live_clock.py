"""server/live/clock.py: the media clock and the output delay."""

from __future__ import annotations

import pytest

from headcast.server.live.clock import (
    AUDIO_CHUNK,
    OPUS_LOOKAHEAD_SAMPLES,
    MediaClock,
    output_delay_frames,
    output_delay_s,
    samples_per_frame,
)


def test_clock_derives_every_timestamp_from_the_sample_counter() -> None:
    assert samples_per_frame(25) == 640 and samples_per_frame(20) == 800
    with pytest.raises(ValueError, match="divide"):
        samples_per_frame(7)
    # 30 fps: frames of 533 or 534 samples that add up exactly, every second
    c30 = MediaClock(30, delay_frames=2, start=100.0)
    sizes = [c30.frame_samples(j) for j in range(90)]
    assert set(sizes) == {533, 534} and sum(sizes[:30]) == 16_000 and sum(sizes) == 48_000
    for s in (0, 532, 533, 534, 1066, 1067, 15_999, 16_000, 123_457):
        j = c30.frame_of(s)
        assert c30.frame_sample(j) <= s < c30.frame_sample(j + 1)
        k = c30.first_frame_from(s)
        assert c30.frame_sample(k) >= s and (k == 0 or c30.frame_sample(k - 1) < s)
    for j in (0, 1, 29, 30, 3001):  # frame j and its first sample leave together (< 1 sample)
        assert (
            abs(c30.video_time(j) - (100.0 + c30.delay_s + c30.frame_sample(j) / 16_000))
            < 1 / 16_000
        )
        assert c30.video_pts(j) == j * 3000
    clock = MediaClock(25, delay_frames=2, start=100.0)
    # video frame j and audio sample j * 640 leave at the same wall time
    for j in (0, 7, 1234):
        k = j * 640 // AUDIO_CHUNK
        assert clock.video_time(j) == pytest.approx(clock.audio_time(k))
        assert clock.video_pts(j) == j * 3600  # 90 kHz
    assert clock.video_time(0) - clock.tick_time(0) == pytest.approx(0.080)
    assert clock.output_frame(100.080 + 0.041) == 1
    assert clock.input_tick(99.0) < 0
    assert OPUS_LOOKAHEAD_SAMPLES == 104  # 312 samples at 48 kHz


def test_output_delay_covers_look_ahead_and_mel_window() -> None:
    # 40 ms look-ahead + 12.5 ms half window -> frame f final during tick f + 1
    assert output_delay_frames(0.0525, 0.0, 25) == 2
    assert output_delay_frames(0.0925, 0.0, 25) == 3
    assert output_delay_frames(0.0525, 0.040, 25) == 3
    assert output_delay_frames(0.0, 0.0, 25) == 1
    # sent a render budget after the tick that makes the frame, not a whole tick later
    assert output_delay_s(0.0525, 0.025, 0.0, 25) == pytest.approx(0.065)
    assert output_delay_s(0.0525, 0.025, 0.040, 25) == pytest.approx(0.105)
    assert output_delay_s(0.030, 0.010, 0.0, 25) == pytest.approx(0.010)
    clock = MediaClock(25, delay_frames=2, start=100.0, output_delay=0.065)
    assert clock.delay_s == pytest.approx(0.065) and clock.delay_frames == 2
    assert clock.video_time(3) == pytest.approx(100.0 + 0.065 + 0.120)
    assert clock.video_time(3) == pytest.approx(clock.audio_time(6))
    assert clock.output_frame(100.065 + 0.121) == 3
    long = MediaClock(25, delay_frames=2, start=0.0, output_delay=0.130)
    assert long.delay_frames == 4  # made frames stay queued until they leave
