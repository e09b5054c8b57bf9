"""The motion mixer: speech drives the mouth only, idle life is seeded, interrupt closes fast."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from headcast.models.channels import (
    CHANNEL_INDEX,
    EXPRESSION_SLICE,
    MOUTH_SLICE,
    NUM_CHANNELS,
    POSE_ANGLE_LIMIT_DEG,
    POSE_SLICE,
)
from headcast.models.emotions import preset
from headcast.models.mixer import INTERRUPT_EASE, NUM_MOUTH, MotionMixer

FPS = 25
JAW = CHANNEL_INDEX["jawOpen"]


def open_mouth(value: float = 0.8) -> np.ndarray:
    m = np.zeros(NUM_MOUTH, np.float32)
    m[JAW - MOUTH_SLICE.start] = value
    return m


def test_output_shape_dtype_and_ranges() -> None:
    mixer = MotionMixer(FPS, seed=1)
    frames = np.stack([mixer.step(open_mouth(1.5), 1.0) for _ in range(10 * FPS)])
    assert frames.shape == (10 * FPS, NUM_CHANNELS) and frames.dtype == np.float32
    blend = frames[:, : POSE_SLICE.start]
    assert blend.min() >= 0.0 and blend.max() <= 1.0
    assert np.abs(frames[:, POSE_SLICE.start : POSE_SLICE.start + 3]).max() <= POSE_ANGLE_LIMIT_DEG


def test_same_seed_same_take_different_seed_different_take() -> None:
    def take(seed: int) -> np.ndarray:
        mixer = MotionMixer(FPS, seed=seed)
        return np.stack([mixer.step(None, 0.0) for _ in range(8 * FPS)])

    np.testing.assert_array_equal(take(3), take(3))
    assert np.abs(take(3) - take(4)).max() > 0.1


def test_idle_blinks_and_moves_head_with_mouth_closed() -> None:
    mixer = MotionMixer(FPS, seed=0)
    frames = np.stack([mixer.step(None, 0.0) for _ in range(12 * FPS)])
    blink = frames[:, CHANNEL_INDEX["eyeBlinkLeft"]]
    closed = blink > 0.9
    onsets = int(np.sum(closed[1:] & ~closed[:-1]))
    assert 2 <= onsets <= 7, "a blink every 2-5.5 s"
    # A blink is short: the eye is mostly closed for at most ~4 frames at a time.
    assert closed.sum() <= onsets * 4
    assert np.abs(frames[:, MOUTH_SLICE]).max() == 0.0
    yaw = frames[:, CHANNEL_INDEX["headYaw"]]
    assert 0.2 < yaw.std() < 4.0, "small, visible drift"
    # Smooth: no frame-to-frame jump above a degree.
    assert np.abs(np.diff(frames[:, POSE_SLICE.start : POSE_SLICE.start + 3], axis=0)).max() < 1.0


def test_mouth_follows_input_and_relaxes_when_speech_stops() -> None:
    mixer = MotionMixer(FPS, seed=0, idle=False)
    out = mixer.step(open_mouth(0.7), 1.0)
    assert out[JAW] == pytest.approx(0.7)
    values = [mixer.step(None, 0.0)[JAW] for _ in range(8)]
    assert all(b < a for a, b in itertools.pairwise(values))
    assert values[-1] < 0.01


def test_interrupt_closes_within_three_frames_whatever_the_input() -> None:
    mixer = MotionMixer(FPS, seed=0, idle=False)
    for _ in range(5):
        mixer.step(open_mouth(0.8), 1.0)
    mixer.interrupt()
    jaws = [mixer.step(open_mouth(0.8), 1.0)[JAW] for _ in range(len(INTERRUPT_EASE) + 1)]
    np.testing.assert_allclose(jaws[:-1], [0.8 * w for w in INTERRUPT_EASE], rtol=1e-6)
    assert jaws[-1] == 0.0
    assert not mixer.easing
    # After easing, the input drives the mouth again.
    assert mixer.step(open_mouth(0.5), 1.0)[JAW] == pytest.approx(0.5)


def test_emotion_cross_fades_and_does_not_touch_the_mouth() -> None:
    mixer = MotionMixer(FPS, seed=0, idle=False)
    mixer.set_emotion("happy", transition_s=0.4)
    smile = CHANNEL_INDEX["mouthSmileLeft"]
    target = preset("happy")[smile]
    values = [mixer.step(None, 0.0)[smile] for _ in range(12)]
    assert 0.0 < values[0] < values[4] < target
    assert values[-1] == pytest.approx(target)
    assert np.abs(mixer.step(None, 0.0)[MOUTH_SLICE]).max() == 0.0
    np.testing.assert_allclose(
        mixer.step(None, 0.0)[EXPRESSION_SLICE], preset("happy")[EXPRESSION_SLICE]
    )
    with pytest.raises(KeyError):
        mixer.set_emotion("ecstatic")


def test_speech_makes_nods_and_pose_offsets_apply() -> None:
    pitch = CHANNEL_INDEX["headPitch"]
    quiet = MotionMixer(FPS, seed=5)
    talk = MotionMixer(FPS, seed=5)
    syllables = [open_mouth(0.8 if (i // 5) % 2 else 0.0) for i in range(4 * FPS)]
    q = np.array([quiet.step(None, 0.0)[pitch] for _ in syllables])
    t = np.array([talk.step(m, 1.0)[pitch] for m in syllables])
    assert (t - q).max() > 1.0, "syllables nod the head"
    posed = MotionMixer(FPS, seed=0, idle=False)
    posed.set_pose({"headYaw": 10.0, "headTx": 0.02})
    out = posed.step(None, 0.0)
    assert out[CHANNEL_INDEX["headYaw"]] == pytest.approx(10.0)
    assert out[CHANNEL_INDEX["headTx"]] == pytest.approx(0.02)
    with pytest.raises(KeyError):
        posed.set_pose({"jawOpen": 1.0})


def test_rejects_wrong_mouth_shape() -> None:
    with pytest.raises(ValueError, match="float32"):
        MotionMixer(FPS).step(np.zeros(5, np.float32), 1.0)


def test_neutral_relaxes_a_smiling_portrait_and_happy_adds_what_it_lacks():
    """Presets describe the face to show: on a portrait photographed smiling (0.8 on its
    left, none on its right) neutral sends -1 (its own smile fully relaxed) where it
    smiles, happy (0.75) a little less than the photo's smile there and 0.75 elsewhere."""
    from headcast.models.mixer import relative_smile

    own = {"mouthSmileLeft": 0.8, "mouthSmileRight": 0.0}
    left, right = CHANNEL_INDEX["mouthSmileLeft"], CHANNEL_INDEX["mouthSmileRight"]
    mixer = MotionMixer(FPS, seed=0, idle=False, portrait_smile=own)
    neutral = mixer.step()
    assert neutral[left] == pytest.approx(-1.0) and neutral[right] == 0.0
    mixer.set_emotion("happy", transition_s=0.0)
    happy = mixer.step()
    target = float(preset("happy")[left])
    assert happy[left] == pytest.approx((target - 0.8) / 0.8)
    assert happy[right] == pytest.approx(target)
    assert relative_smile(0.9, 0.8) == pytest.approx(0.1)
    # Without a portrait smile the presets pass through unchanged.
    plain = MotionMixer(FPS, seed=0, idle=False)
    assert plain.step()[left] == 0.0


def test_portrait_smile_names_only_smile_channels():
    with pytest.raises(KeyError):
        MotionMixer(FPS, portrait_smile={"jawOpen": 0.5})


def test_a_pack_folders_smile_reaches_the_mixer():
    """The built-in avatar smiles: its folder's smile, read from the metadata alone,
    makes the neutral emotion relax it."""
    from headcast.models.avatar.relax import folder_smile

    smile = folder_smile(None)
    assert smile is not None and min(smile.values()) > 0.5
    out = MotionMixer(FPS, seed=0, idle=False, portrait_smile=smile).step()
    assert out[CHANNEL_INDEX["mouthSmileLeft"]] == pytest.approx(-1.0)


def test_a_bilabial_closure_holds_the_lips_shut_through_rounding(pack512):
    """The motion model blends a following /uw/'s rounding into an /m/: at mouthPress 0.35
    it also sends mouthFunnel up to 0.8 and a little jawOpen (seen in rendered speech,
    where those frames measured 3-5 % of the face height between the lips). Through the
    mixer the lips stay together; the same frame unmixed leaves them apart."""
    from headcast.models.mixer import CLOSURE_PRESS, hold_closure
    from headcast.models.render import warp_math as wm

    assert CLOSURE_PRESS == wm.SEAL_PRESS
    m = np.zeros(NUM_MOUTH, np.float32)
    for name, value in (
        ("mouthPressLeft", 0.35),
        ("mouthPressRight", 0.35),
        ("mouthFunnel", 0.8),
        ("mouthPucker", 0.5),
        ("jawOpen", 0.1),
    ):
        m[CHANNEL_INDEX[name] - MOUTH_SLICE.start] = value
    out = MotionMixer(FPS, seed=0).step(m)
    assert out[CHANNEL_INDEX["mouthPucker"]] == pytest.approx(0.5)  # rounding stays

    def opening(mouth: np.ndarray) -> float:
        c = np.zeros(NUM_CHANNELS, np.float32)
        c[MOUTH_SLICE] = mouth
        return wm.mouth_state(pack512.arrays, wm.prepare(c), pack512.size).opening

    assert opening(out[MOUTH_SLICE]) <= 1.0
    assert opening(m) > 3.0
    # Half the closing press: half held back, the lips half closed over the jaw.
    half = m.copy()
    for name in ("mouthPressLeft", "mouthPressRight"):
        half[CHANNEL_INDEX[name] - MOUTH_SLICE.start] = 0.5 * CLOSURE_PRESS
    held = hold_closure(half)
    funnel, close = (CHANNEL_INDEX[n] - MOUTH_SLICE.start for n in ("mouthFunnel", "mouthClose"))
    assert held[funnel] == pytest.approx(0.4)
    assert held[close] == pytest.approx(0.05)
    # No press, nothing held back.
    m[CHANNEL_INDEX["mouthPressLeft"] - MOUTH_SLICE.start] = 0.0
    m[CHANNEL_INDEX["mouthPressRight"] - MOUTH_SLICE.start] = 0.0
    assert np.array_equal(hold_closure(m), m)


def test_lips_apart_at_rest_meet_in_pauses_and_part_with_speech(tmp_path):
    """lips_apart: mouthPress rises to a closure's after REST_SEAL_AFTER_S of rest (a
    take starts sealed), a short pause keeps the portrait's mouth, the first speech frame
    drops the seal; without lips_apart the press is never raised."""
    from headcast.models.avatar.relax import folder_lips_apart
    from headcast.models.mixer import CLOSURE_PRESS, REST_SEAL_AFTER_S, REST_SEAL_RISE_S

    press = CHANNEL_INDEX["mouthPressLeft"], CHANNEL_INDEX["mouthPressRight"]

    def run(mixer: MotionMixer, frames: list[tuple[float, float]]) -> np.ndarray:
        """(jawOpen, speech) per frame -> mean mouthPress per frame."""
        return np.array(
            [float(mixer.step(open_mouth(j), s)[list(press)].mean()) for j, s in frames]
        )

    speak, rest = (0.5, 1.0), (0.0, 0.0)
    short = int(REST_SEAL_AFTER_S * FPS) - 1
    long_ = round((REST_SEAL_AFTER_S + REST_SEAL_RISE_S) * FPS) + 1
    frames = [rest] * 3 + [speak] * 10 + [rest] * short + [speak] * 5 + [rest] * long_ + [speak]
    sealed = run(MotionMixer(FPS, seed=0, idle=False, lips_apart=True), frames)
    assert np.allclose(sealed[:3], CLOSURE_PRESS)  # starts sealed
    assert np.all(sealed[3:13] == 0.0)  # parted on the first speech frame
    assert np.all(sealed[13 : 13 + short] == 0.0)  # a short pause keeps the photo's mouth
    pause = sealed[18 + short : 18 + short + long_]
    assert np.all(pause[: round(REST_SEAL_AFTER_S * FPS) - 1] == 0.0)
    assert np.all(np.diff(pause) >= 0.0) and pause[-1] == pytest.approx(CLOSURE_PRESS)
    assert sealed[-1] == 0.0
    plain = run(MotionMixer(FPS, seed=0, idle=False), frames)
    assert np.all(plain == 0.0)
    # an interrupt shuts the mouth: lips apart at rest are sealed at once, whatever comes
    mixer = MotionMixer(FPS, seed=0, idle=False, lips_apart=True)
    assert np.all(run(mixer, [speak] * 5) == 0.0)
    mixer.interrupt()
    assert np.allclose(run(mixer, [speak] * 3 + [rest] * 3), CLOSURE_PRESS)
    # the built-in astronaut smiles with her teeth; a folder that is not a pack has none
    assert folder_lips_apart(None) and not folder_lips_apart(tmp_path)
