"""A quiet recording speaks in a render as it would live: only digital silence counts as
no input (the mouth released), however low the speech sits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from headcast.models.channels import CHANNEL_INDEX

SPEECH = Path(__file__).parent / "fixtures" / "speech.wav"


@pytest.fixture(scope="module")
def take_at():
    from headcast.models.audio.decode import load_audio
    from headcast.models.audio.features import to_mono_16k
    from headcast.models.motion import load_motion_model
    from headcast.models.take import speech_to_take

    model = load_motion_model(None, fps=25, provider="cpu", offline=True)
    pcm = to_mono_16k(*load_audio(SPEECH))
    rms = float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2)))

    def take(rms_db: float):
        # quantised to 16 bits, as a quiet file on disk is
        scaled = pcm * np.float32(10 ** (rms_db / 20) / rms)
        scaled = np.round(scaled * 32767) / 32767
        return speech_to_take(model, scaled.astype(np.float32), seed=0)

    return take


def test_quiet_speech_moves_the_mouth_as_loud_speech_does(take_at) -> None:
    loud, quiet = take_at(-20.0), take_at(-60.0)  # -60 dB RMS: a badly set microphone
    jaw = CHANNEL_INDEX["jawOpen"]
    # the frames of speech are input at both levels, not a released mouth
    speaking = loud.speech > 0.5
    assert speaking.sum() > 50
    assert quiet.voiced[speaking].mean() > 0.95, quiet.voiced[speaking].mean()
    assert float(quiet.coeffs[:, jaw].max()) > 0.25
    r = np.corrcoef(loud.coeffs[:, jaw], quiet.coeffs[:, jaw])[0, 1]
    assert r > 0.6, r


def test_digital_silence_is_no_input(take_at) -> None:
    from headcast.models.take import voiced_frames

    pcm = np.zeros(16_000, np.float32)
    pcm[8_000:] = np.float32(1 / 32767) * np.sign(np.sin(np.arange(8_000)))  # 1-bit dither
    voiced = voiced_frames(pcm, 25, 25)
    assert not voiced.any()
