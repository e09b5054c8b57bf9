"""The motion mixer: mouth from speech + expression + idle life + pose -> one coefficient vector.

Shared by the live server and offline rendering, so one speech clip gives the same
motion in both. Each :meth:`MotionMixer.step` advances one video frame and returns
``float32 (K,)`` ordered as :data:`models.channels.ALL_CHANNELS`:

* mouth bank: the audio-to-motion output, ``float32 (16,)`` in 0..1 (``None`` when
  there is no speech: the mouth relaxes closed over :data:`MOUTH_RELEASE_S`);
* expression bank: an emotion preset, cross-faded over :data:`EMOTION_TRANSITION_S`
  (smoothstep), plus idle blinks at random intervals. Presets describe the face to
  show; a portrait photographed smiling already shows a smile, so for the smile
  channels the mixer sends the difference (:func:`relative_smile`): ``neutral`` relaxes
  the portrait's own smile (-1), ``happy`` adds what the photo lacks;
* pose: breathing (a slow pitch/translate sine), head drift (an Ornstein–Uhlenbeck
  walk per angle) and prosody nods (the fast-minus-slow envelope of jaw opening),
  plus explicit pose offsets from the API.

An interrupt eases the mouth to closed over :data:`INTERRUPT_EASE` (2–3 frames) whatever
the input says. All randomness comes from one seeded generator, so a seed reproduces
a take exactly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from headcast.models.channels import (
    CHANNEL_INDEX,
    EXPRESSION_SLICE,
    MOUTH_CHANNELS,
    MOUTH_SLICE,
    NUM_CHANNELS,
    POSE_CHANNELS,
    POSE_SLICE,
    SIGNED_CHANNELS,
    check_pose,
    clip,
)
from headcast.models.emotions import preset
from headcast.models.render.warp_math import SEAL_PRESS

NUM_MOUTH = len(MOUTH_CHANNELS)  # 16

#: mouth weight on the frames after an interrupt (then 0): closed within 3 frames
INTERRUPT_EASE: tuple[float, ...] = (0.45, 0.12)
#: time constant for the mouth relaxing closed when speech input stops (seconds)
MOUTH_RELEASE_S = 0.06
#: a portrait photographed with its lips apart brings them together (``mouthPress`` up to
#: a closure's) once the mouth has rested this long without speech (seconds), over
#: REST_SEAL_RISE_S; they part on the first frame of speech
REST_SEAL_AFTER_S = 0.25
REST_SEAL_RISE_S = 0.25
#: a mouth frame counts as resting below this opening (any channel that parts the lips)
#: and speech value
REST_OPENING = 0.02
REST_SPEECH = 0.2
#: emotion cross-fade duration (seconds)
EMOTION_TRANSITION_S = 0.4

#: seconds between blinks, drawn uniformly
BLINK_INTERVAL_S = (2.0, 5.5)
#: blink closing and opening durations (seconds); closing is faster than opening
BLINK_CLOSE_S = 0.08
BLINK_OPEN_S = 0.14

#: breathing: period (s) and amplitudes (degrees pitch, fraction of frame vertical shift)
BREATH_PERIOD_S = 4.2
BREATH_PITCH_DEG = 0.35
BREATH_SHIFT = 0.0015

#: head drift: Ornstein–Uhlenbeck standard deviation (degrees) and time constant (s)
DRIFT_STD_DEG = np.array([1.4, 0.9, 0.6], np.float32)  # yaw, pitch, roll
DRIFT_TAU_S = 2.5

#: prosody nods: gain (degrees per unit of jaw envelope difference), envelope time constants
NOD_GAIN_DEG = 7.0
NOD_FAST_S = 0.08
NOD_SLOW_S = 0.45
#: extra yaw sway while speaking (degrees std of the drift, scaled by speech)
SPEECH_SWAY_DEG = 0.8

#: mean mouthPress of a bilabial closure from the motion model, where the renderer
#: seals the lips: one value, defined with the seal
CLOSURE_PRESS = SEAL_PRESS

_JAW = CHANNEL_INDEX["jawOpen"] - MOUTH_SLICE.start
_CLOSE = CHANNEL_INDEX["mouthClose"] - MOUTH_SLICE.start
_PRESS = [CHANNEL_INDEX[n] - MOUTH_SLICE.start for n in ("mouthPressLeft", "mouthPressRight")]
# Channels that part the lips: a closure holds them back.
_PARTING = [
    CHANNEL_INDEX[n] - MOUTH_SLICE.start
    for n in (
        "mouthFunnel",
        "mouthLowerDownLeft",
        "mouthLowerDownRight",
        "mouthUpperUpLeft",
        "mouthUpperUpRight",
    )
]
_BLINK = (CHANNEL_INDEX["eyeBlinkLeft"], CHANNEL_INDEX["eyeBlinkRight"])
# A resting mouth: these mouth channels all near 0; the rest seal raises these outputs.
_RESTING = [_JAW, *_PARTING]
_SEAL = [MOUTH_SLICE.start + i for i in _PRESS]
_YAW, _PITCH, _ROLL, _TX, _TY = (CHANNEL_INDEX[name] for name in POSE_CHANNELS)


def hold_closure(mouth: np.ndarray) -> np.ndarray:
    """float32 (16,) mouth channels -> the same with a bilabial closure holding the lips
    shut: at mean mouthPress ``k * CLOSURE_PRESS`` (k <= 1), ``mouthClose`` is at least
    ``k * jawOpen`` (the lips stay together while the jaw moves, as ARKit defines it) and
    the channels that part the lips (funnel, lower lip down, upper lip up) keep ``1 - k``.
    The motion model blends neighbouring sounds into a closure (the rounding of a
    following /uw/ reaches into an /m/); without this, those frames showed an O-shaped
    opening while the lips were meant to be sealed."""
    k = float(np.clip(float(mouth[_PRESS].mean()) / CLOSURE_PRESS, 0.0, 1.0))
    if k == 0.0:
        return mouth
    out = mouth.copy()
    out[_CLOSE] = max(float(out[_CLOSE]), k * float(out[_JAW]))
    out[_PARTING] *= np.float32(1.0 - k)
    return out


def _alpha(dt: float, tau: float) -> float:
    """One-pole low-pass coefficient for step ``dt`` and time constant ``tau`` (seconds)."""
    return 1.0 - math.exp(-dt / tau) if tau > 0 else 1.0


def relative_smile(target: float, portrait: float) -> float:
    """A preset's smile ``target`` (0..1) on a portrait already smiling ``portrait`` (0..1)
    -> the smile channel's value: the extra smile when the target is larger, else the
    negative share of the portrait's own smile to relax (-1 at a target of 0)."""
    if target >= portrait:
        return target - portrait
    return (target - portrait) / portrait


def _smoothstep(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return x * x * (3.0 - 2.0 * x)


class MotionMixer:
    """Frame-by-frame motion mixing; a plain synchronous object, one per session or take.

    ``fps``: frames per second the caller steps at. ``seed``: RNG seed (None = random).
    ``emotion``: initial preset name from ``configs/emotions.yaml``. ``idle``: False turns
    off blinks, breathing, drift and nods (deterministic output, used by tests and tools).
    ``portrait_smile``: the smile the avatar's portrait shows, ``{mouthSmileLeft: 0..1,
    mouthSmileRight: 0..1}`` (the pack's ``smile``; None: none), so presets are relative
    to a neutral face rather than to the photo. ``lips_apart``: the portrait's lips are
    apart at rest (photographed mid-word or with a toothy smile): in a pause of
    :data:`REST_SEAL_AFTER_S` or more they come together, as a listener's do.
    """

    def __init__(
        self,
        fps: float = 25.0,
        seed: int | None = None,
        emotion: str = "neutral",
        *,
        idle: bool = True,
        portrait_smile: Mapping[str, float] | None = None,
        lips_apart: bool = False,
    ) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.fps = float(fps)
        self.dt = 1.0 / self.fps
        self.idle = idle
        self._seed = seed
        self._emotion_name = emotion
        self._start_expr = preset(emotion)[EXPRESSION_SLICE]
        self._smile: list[tuple[int, float]] = []
        for name, value in (portrait_smile or {}).items():
            if name not in SIGNED_CHANNELS:
                raise KeyError(f"{name!r} is not a smile channel; known: {SIGNED_CHANNELS}")
            if value > 0.0:
                self._smile.append((CHANNEL_INDEX[name], min(float(value), 1.0)))
        self.lips_apart = bool(lips_apart)
        self.reset()

    # ---- state -------------------------------------------------------------------

    def reset(self) -> None:
        """Back to the initial state (same seed -> same take)."""
        self.rng = np.random.default_rng(self._seed)
        self.frame = 0
        self._mouth = np.zeros(NUM_MOUTH, np.float32)
        self._resting_s = REST_SEAL_AFTER_S + REST_SEAL_RISE_S  # a take starts at rest
        self._eased = False  # this frame's mouth came from an interrupt's ease
        self._ease: list[float] = []
        self._ease_from = self._mouth.copy()
        self._expr_rate = 1.0
        self._expr_from = self._start_expr.copy()
        self._expr_to = self._start_expr.copy()
        self._expr_t = 1.0  # transition progress 0..1
        self.emotion = self._emotion_name
        self._next_blink = self._draw_blink_gap()
        self._blink_t = -1.0  # seconds into the current blink, <0 when not blinking
        self._drift = np.zeros(3, np.float32)
        self._env_fast = 0.0
        self._env_slow = 0.0
        self._breath_phase = float(self.rng.uniform(0.0, 2.0 * math.pi))
        self._pose_offset = np.zeros(len(POSE_CHANNELS), np.float32)

    def _draw_blink_gap(self) -> int:
        """Frames until the next blink."""
        return max(1, round(self.rng.uniform(*BLINK_INTERVAL_S) * self.fps))

    # ---- controls ----------------------------------------------------------------

    def set_emotion(self, name: str, transition_s: float = EMOTION_TRANSITION_S) -> None:
        """Cross-fade to preset ``name`` over ``transition_s`` seconds; ``KeyError`` if unknown."""
        target = preset(name)[EXPRESSION_SLICE]
        self._expr_from = self._current_expression()
        self._expr_to = target
        self._expr_t = 0.0 if transition_s > 0 else 1.0
        self._expr_rate = self.dt / transition_s if transition_s > 0 else 1.0
        self.emotion = name

    def set_pose(self, offsets: Mapping[str, float]) -> None:
        """Pose offsets added to the idle motion: ``{headYaw: deg, ..., headTx: fraction}``.

        Channels left out keep their offset; unknown names raise ``KeyError``, values
        past a channel's limit ``ValueError``.
        """
        check_pose(offsets)
        for name, value in offsets.items():
            self._pose_offset[POSE_CHANNELS.index(name)] = float(value)

    def interrupt(self) -> None:
        """Ease the mouth closed: the next frames scale it by INTERRUPT_EASE, then 0 (closed).
        Lips apart at rest are sealed at once (closed means sealed there)."""
        self._ease_from = self._mouth.copy()
        self._ease = [*INTERRUPT_EASE, 0.0]
        self._resting_s = REST_SEAL_AFTER_S + REST_SEAL_RISE_S

    @property
    def easing(self) -> bool:
        """True while an interrupt is still closing the mouth."""
        return bool(self._ease)

    # ---- stepping ----------------------------------------------------------------

    def _current_expression(self) -> np.ndarray:
        w = _smoothstep(self._expr_t)
        return (1.0 - w) * self._expr_from + w * self._expr_to

    def _step_mouth(self, mouth: np.ndarray | None) -> np.ndarray:
        self._eased = bool(self._ease)
        if self._ease:
            # Interrupt: ignore the input; scale the last speaking mouth down to closed.
            self._mouth = self._ease_from * np.float32(self._ease.pop(0))
            return self._mouth
        if mouth is None:
            self._mouth = self._mouth * np.float32(1.0 - _alpha(self.dt, MOUTH_RELEASE_S))
        else:
            m = np.asarray(mouth, np.float32)
            if m.shape != (NUM_MOUTH,):
                raise ValueError(f"mouth must be float32 ({NUM_MOUTH},), got {m.shape}")
            self._mouth = hold_closure(np.clip(m, 0.0, 1.0))
        return self._mouth

    def _rest_seal(self, out: np.ndarray, speech: float) -> None:
        """Lips apart at rest come together in a pause: mouthPress rises to a closure's
        once the mouth has rested REST_SEAL_AFTER_S, and drops on the first speech."""
        m = self._mouth
        resting = self._eased or (speech < REST_SPEECH and float(m[_RESTING].max()) < REST_OPENING)
        self._resting_s = self._resting_s + self.dt if resting else 0.0
        seal = _smoothstep((self._resting_s - REST_SEAL_AFTER_S) / REST_SEAL_RISE_S)
        if seal > 0.0:
            out[_SEAL] = np.maximum(out[_SEAL], np.float32(seal * CLOSURE_PRESS))

    def _step_blink(self) -> float:
        if self._blink_t < 0:
            self._next_blink -= 1
            if self._next_blink > 0:
                return 0.0
            self._blink_t = 0.0
            self._next_blink = self._draw_blink_gap()
        t = self._blink_t
        self._blink_t += self.dt
        if t < BLINK_CLOSE_S:
            return _smoothstep((t + self.dt) / BLINK_CLOSE_S)
        if t < BLINK_CLOSE_S + BLINK_OPEN_S:
            return 1.0 - _smoothstep((t - BLINK_CLOSE_S + self.dt) / BLINK_OPEN_S)
        self._blink_t = -1.0
        return 0.0

    def _step_pose(self, jaw: float, speech: float) -> np.ndarray:
        pose = self._pose_offset.copy()
        if not self.idle:
            return pose
        t = self.frame * self.dt
        breath = math.sin(2.0 * math.pi * t / BREATH_PERIOD_S + self._breath_phase)
        pose[_PITCH - POSE_SLICE.start] += BREATH_PITCH_DEG * breath
        pose[_TY - POSE_SLICE.start] += BREATH_SHIFT * breath
        # Ornstein–Uhlenbeck drift: exact discretisation keeps the stationary std.
        a = math.exp(-self.dt / DRIFT_TAU_S)
        std = DRIFT_STD_DEG.copy()
        std[0] += SPEECH_SWAY_DEG * float(np.clip(speech, 0.0, 1.0))
        noise = self.rng.standard_normal(3).astype(np.float32)
        self._drift = a * self._drift + math.sqrt(1.0 - a * a) * std * noise
        pose[:3] += self._drift
        # Prosody nods: the head dips when the jaw opens faster than its slow average.
        self._env_fast += _alpha(self.dt, NOD_FAST_S) * (jaw - self._env_fast)
        self._env_slow += _alpha(self.dt, NOD_SLOW_S) * (jaw - self._env_slow)
        pose[_PITCH - POSE_SLICE.start] += NOD_GAIN_DEG * max(0.0, self._env_fast - self._env_slow)
        return pose

    def step(self, mouth: np.ndarray | None = None, speech: float = 0.0) -> np.ndarray:
        """Advance one frame. ``mouth``: float32 (16,) 0..1 over MOUTH_CHANNELS or None;
        ``speech``: 0..1 speech probability for this frame. Returns float32 (K,), clipped."""
        out = np.zeros(NUM_CHANNELS, np.float32)
        out[MOUTH_SLICE] = self._step_mouth(mouth)
        if self.lips_apart:
            self._rest_seal(out, speech)
        if self._expr_t < 1.0:
            self._expr_t = min(1.0, self._expr_t + self._expr_rate)
        expr = self._current_expression()
        out[EXPRESSION_SLICE] = expr
        for k, own in self._smile:
            out[k] = relative_smile(float(out[k]), own)
        if self.idle:
            blink = self._step_blink()
            for i in _BLINK:
                out[i] = max(out[i], blink)
        out[POSE_SLICE] = self._step_pose(float(out[MOUTH_SLICE][_JAW]), speech)
        self.frame += 1
        return clip(out)
