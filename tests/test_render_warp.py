"""The warp renderer: identity, locality, disentanglement, execution parity."""

from __future__ import annotations

import numpy as np
import pytest

from headcast.models.avatar import landmarks as L
from headcast.models.avatar.bases import POSE_OUTER, HeadEllipse, grid_points
from headcast.models.channels import (
    CHANNEL_INDEX,
    EXPRESSION_CHANNELS,
    MOUTH_CHANNELS,
    NUM_CHANNELS,
    from_mapping,
    zeros,
)
from headcast.models.render import warp_math as wm
from headcast.models.render.reference import render_reference
from headcast.models.render.warp import WarpRenderer

FLOW_NAMES = MOUTH_CHANNELS + EXPRESSION_CHANNELS


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def one(name: str, value: float = 1.0) -> np.ndarray:
    c = from_mapping({name: value})
    if name == "mouthClose":
        c[CHANNEL_INDEX["jawOpen"]] = value
    return c


@pytest.fixture(scope="module")
def fast(pack512):
    return WarpRenderer(pack512)


def test_zero_coefficients_reproduce_the_portrait(fast, pack512):
    out = fast.render(zeros())
    assert psnr(out, pack512.image) >= 45.0
    # Tiny non-zero values go through the whole warp and must stay faithful too.
    tiny = fast.render(from_mapping({"jawOpen": 1e-6, "headYaw": 1e-6}))
    assert psnr(tiny, pack512.image) >= 45.0


def test_reference_zero_is_identity(pack256):
    out = render_reference(pack256, from_mapping({"browInnerUp": 1e-7}))
    assert psnr(out, pack256.image) >= 45.0


def _regions(pack):
    """Boolean masks on the flow grid (FACS split): lower face below the infraorbital
    line (a little under the lower lids), upper face (eyes, brows) above the nose tip."""
    lm = pack.arrays["landmarks"]
    gx, gy = grid_points(pack.size, pack.grid)
    face_h = float(np.linalg.norm(lm[L.FOREHEAD_TOP, :2] - lm[L.CHIN, :2]))
    lids = lm[list(L.EYE_L_LOWER + L.EYE_R_LOWER), 1].mean()
    lower = gy > lids + 0.06 * face_h
    upper = gy < lm[L.NOSE_TIP, 1]
    return lower, upper


def test_mouth_channels_are_local_to_the_lower_face(pack512):
    lower, _ = _regions(pack512)
    bases = pack512.arrays["bases"]
    for k, name in enumerate(MOUTH_CHANNELS):
        energy = (bases[k] ** 2).sum(axis=0)
        share = energy[lower].sum() / energy.sum()
        assert share >= 0.95, f"{name}: only {share:.3f} of its flow energy in the lower face"


@pytest.mark.parametrize(
    "name,region",
    [
        ("browInnerUp", "upper"),
        ("browDownLeft", "upper"),
        ("eyeWideRight", "upper"),
        ("eyeSquintLeft", "upper"),
        ("mouthSmileLeft", "lower"),
        ("mouthFrownRight", "lower"),
    ],
)
def test_expression_channels_stay_in_their_region(pack512, name, region):
    lower, upper = _regions(pack512)
    k = FLOW_NAMES.index(name)
    energy = (pack512.arrays["bases"][k] ** 2).sum(axis=0)
    mask = upper if region == "upper" else lower
    assert energy[mask].sum() / energy.sum() >= 0.95


def _outside_head(pack, scale: float) -> np.ndarray:
    head = HeadEllipse(*pack.meta["head_ellipse"])
    c = np.arange(pack.size, dtype=np.float64)
    gx, gy = np.meshgrid(c, c)
    return head.radius(gx, gy) > scale


@pytest.mark.parametrize("name", FLOW_NAMES)
def test_mouth_and_expression_never_touch_pixels_outside_the_head(fast, pack512, name):
    out = fast.render(one(name))
    outside = _outside_head(pack512, 1.06)
    diff = np.abs(out.astype(int) - pack512.image.astype(int)).max(axis=-1)
    assert diff[outside].max() <= 1
    # ... and they do move something inside it.
    assert diff.max() > 10, f"{name} changes nothing visible"


@pytest.mark.parametrize(
    "pose",
    [
        {"headYaw": 15},
        {"headYaw": -15},
        {"headPitch": 15},
        {"headRoll": -15},
        {"headTx": 0.03, "headYaw": 10},
    ],
)
def test_pose_turns_the_head_and_leaves_the_background(fast, pack512, pose):
    out = fast.render(from_mapping(pose))
    diff = np.abs(out.astype(int) - pack512.image.astype(int)).max(axis=-1)
    outside = _outside_head(pack512, POSE_OUTER + 0.08)
    assert diff[outside].max() <= 1
    face = ~_outside_head(pack512, 0.6)
    assert diff[face].mean() > 5


def test_banks_are_orthogonal(pack512):
    b = pack512.arrays["bases"].reshape(len(FLOW_NAMES), -1).astype(np.float64)
    nm = len(MOUTH_CHANNELS)
    norms = np.linalg.norm(b, axis=1)
    for i in range(nm):
        for j in range(nm, len(FLOW_NAMES)):
            dot = abs(b[i] @ b[j])
            assert dot <= 1e-4 * norms[i] * norms[j] + 1e-9, f"{FLOW_NAMES[i]} vs {FLOW_NAMES[j]}"


def _mouth_opening_in_head_coords(pack, c: np.ndarray) -> float:
    """Inner-lip gap measured after undoing the rigid pose (head coordinates)."""
    prepared = wm.prepare(c)
    ring = wm.lip_ring(pack.arrays, prepared, pack.size)
    rot = wm.rotation(*(float(v) for v in prepared[wm.YAW : wm.ROLL + 1]))
    pivot = pack.arrays["pivot"].astype(np.float64)
    shift = np.array([prepared[wm.TX], prepared[wm.TY]]) * pack.size
    up, lo = ring[wm.I_UP] - pivot[:2] - shift, ring[wm.I_LO] - pivot[:2] - shift
    # Project the gap vector back through the 2x2 image-plane part of the rotation.
    gap = np.linalg.solve(rot[:2, :2], lo - up)
    return float(np.linalg.norm(gap))


@pytest.mark.parametrize(
    "pose", [{"headYaw": 10}, {"headYaw": -10}, {"headPitch": 10}, {"headRoll": 10}]
)
def test_pose_does_not_change_the_mouth(pack512, pose):
    base = from_mapping({"jawOpen": 0.6})
    posed = from_mapping({"jawOpen": 0.6, **pose})
    a = _mouth_opening_in_head_coords(pack512, base)
    b = _mouth_opening_in_head_coords(pack512, posed)
    assert a > 5.0
    assert abs(a - b) <= 0.05 * a


def test_jaw_opens_a_textured_interior(fast, pack512):
    closed = fast.render(zeros())
    opened = fast.render(from_mapping({"jawOpen": 0.8}))
    lm = pack512.arrays["landmarks"]
    mid = lm[[L.UPPER_INNER_MID, L.LOWER_INNER_MID], :2].mean(0)
    x, y = int(mid[0]), int(mid[1])
    patch = opened[y : y + 25, x - 20 : x + 20].astype(np.float64)
    assert np.abs(patch - closed[y : y + 25, x - 20 : x + 20]).mean() > 20
    # Not a flat hole: the interior has structure (teeth, tongue, shading).
    assert patch.std(axis=(0, 1)).mean() > 12


def _lip_line_luma(
    frame: np.ndarray, m: wm.MouthState, t: float, lower: bool, across: tuple = (0.35, 0.65)
) -> float:
    """Mean luma along a stretch ``across`` the mouth (default: its middle), ``t`` mouth
    widths inside one lip's edge."""
    s = np.linspace(*across, 120)
    down = wm.lip_line(s, m.lower) - t if lower else wm.lip_line(s, m.upper) + t
    x = m.origin[0] + ((s - 0.5) * m.u[0] + down * m.v[0]) * m.width
    y = m.origin[1] + ((s - 0.5) * m.u[1] + down * m.v[1]) * m.width
    rgb = wm.bilinear(np.moveaxis(frame.astype(np.float64), -1, 0), x, y)
    return float((rgb.T @ [0.299, 0.587, 0.114]).mean())


def test_lower_teeth_show_at_a_mid_opening(fast, pack512):
    """At jawOpen 0.5 the lower incisors above the lower lip are about as light as the
    upper teeth below the upper lip (the synthesised ones were a grey band: 0.79)."""
    c = wm.prepare(from_mapping({"jawOpen": 0.5}))
    m = wm.mouth_state(pack512.arrays, c, pack512.size)
    frame = fast.render(c)
    lower = _lip_line_luma(frame, m, 0.03, lower=True)
    upper = _lip_line_luma(frame, m, 0.04, lower=False)
    assert lower >= 0.88 * upper, f"lower teeth {lower:.0f}, upper {upper:.0f}"


def test_lower_teeth_stand_on_the_lower_lip_beside_the_middle(fast, pack512):
    """A relaxed smile saying "ah" squares the opening: the lower teeth follow the lower
    lip's points, so no dark crescent opens between them and the lip beside the middle
    (with a parabola through its middle and corners: luma 55-65 there, now ~173)."""
    c = wm.prepare(
        from_mapping(
            {"jawOpen": 0.56, "mouthFunnel": 0.24, "mouthLowerDownLeft": 0.28,
             "mouthLowerDownRight": 0.28, "mouthSmileLeft": -1.0, "mouthSmileRight": -1.0}
        )
    )  # fmt: skip
    m = wm.mouth_state(pack512.arrays, c, pack512.size)
    frame = fast.render(c)
    upper = _lip_line_luma(frame, m, 0.04, lower=False)
    for side in ((0.22, 0.3), (0.7, 0.78)):
        lower = _lip_line_luma(frame, m, 0.02, lower=True, across=side)
        assert lower >= 0.6 * upper, f"beside the middle {side}: {lower:.0f}, upper {upper:.0f}"


@pytest.mark.parametrize(
    "closure",
    [
        {"jawOpen": 1.0, "mouthClose": 1.0},
        {"jawOpen": 0.3, "mouthClose": 0.3},
        {"mouthPressLeft": 0.35, "mouthPressRight": 0.35},  # a bilabial /p b m/
    ],
)
def test_closures_shut_a_toothy_smile(fast, pack512, closure):
    """The built-in portrait smiles with its teeth showing (rest gap ~14 px): mouthClose
    (at jawOpen) and a bilabial press bring the lips together over the teeth, and no
    tooth shows between them."""
    rest_gap = float(pack512.arrays["mouth_shape"][0])
    assert rest_gap > 8.0
    c = wm.prepare(from_mapping(closure))
    assert wm.mouth_state(pack512.arrays, c, pack512.size).opening <= 1.0
    import cv2

    mask = np.zeros((pack512.size, pack512.size), np.uint8)
    cv2.fillPoly(mask, [np.round(pack512.arrays["lip_points"]).astype(np.int32)], 1)

    def teeth(image: np.ndarray) -> int:
        """Bright, unsaturated pixels inside the rest opening."""
        rgb = image.astype(float)
        bright = rgb @ [0.299, 0.587, 0.114] > 150
        return int(np.count_nonzero(bright & (rgb[..., 0] - rgb[..., 2] < 30) & (mask > 0)))

    # None of the portrait's teeth remain between the sealed lips (176 at rest): the
    # lip fill repaints the band the warp squeezes them into (12-14 were left).
    assert teeth(pack512.image) > 100
    assert teeth(fast.render(c)) <= 2


def test_a_negative_smile_relaxes_the_portraits_own(fast, pack512):
    """The built-in portrait smiles with its teeth: at mouthSmile -1 (what the neutral
    emotion sends for it) the corners of its mouth come down to the middle of the lips'
    height (they stood 14-16 % of the mouth width above it) and the lips cover part of
    the teeth, without opening the mouth interior."""
    import cv2

    assert min(pack512.meta["smile"].values()) > 0.5

    def lifts(c: np.ndarray) -> tuple[np.ndarray, wm.MouthState]:
        m = wm.mouth_state(pack512.arrays, wm.prepare(c), pack512.size)
        mid = 0.5 * (m.ring[wm.I_UP] + m.ring[wm.I_LO])
        return (mid[1] - m.ring[[wm.I_CL, wm.I_CR], 1]) / m.width, m

    mask = np.zeros((pack512.size, pack512.size), np.uint8)
    cv2.fillPoly(mask, [np.round(pack512.arrays["lip_points"]).astype(np.int32)], 1)

    def teeth(image: np.ndarray) -> int:
        rgb = image.astype(float)
        bright = rgb @ [0.299, 0.587, 0.114] > 150
        return int(np.count_nonzero(bright & (rgb[..., 0] - rgb[..., 2] < 30) & (mask > 0)))

    relaxed = from_mapping({"mouthSmileLeft": -1.0, "mouthSmileRight": -1.0})
    before, _ = lifts(zeros())
    after, m = lifts(relaxed)
    assert before.min() > 0.12 and after.max() < 0.05, (before, after)
    assert m.alpha == 0.0  # no mouth interior drawn: the lips only came together
    assert teeth(fast.render(relaxed)) < 0.6 * teeth(pack512.image)


@pytest.mark.parametrize(
    "closure",
    [{"mouthPressLeft": 0.35, "mouthPressRight": 0.35}, {"jawOpen": 0.3, "mouthClose": 0.3}],
)
def test_closures_on_a_relaxed_smile_meet_once(pack512, closure):
    """The relaxed smile already closes the lips part of the way; a closure on top of it
    brings them together, not past each other (the two seals added up would cross the
    lips by about half the rest opening, ~7 px here)."""
    relaxed = {"mouthSmileLeft": -1.0, "mouthSmileRight": -1.0}
    c = wm.prepare(from_mapping({**relaxed, **closure}))
    opening = wm.mouth_state(pack512.arrays, c, pack512.size).opening
    assert -1.0 <= opening <= 1.0, opening
    alone = wm.mouth_state(pack512.arrays, wm.prepare(from_mapping(relaxed)), pack512.size)
    assert alone.opening > 3.0  # relaxed alone: the lips only part-way together


def test_blink_closes_the_eye_with_skin_not_a_flat_patch(fast, pack512):
    lm = pack512.arrays["landmarks"]
    iris = lm[L.IRIS_L[0], :2].astype(int)
    shut = fast.render(from_mapping({"eyeBlinkLeft": 1.0}))
    before = pack512.image[iris[1] - 3 : iris[1] + 3, iris[0] - 3 : iris[0] + 3].astype(float)
    after = shut[iris[1] - 3 : iris[1] + 3, iris[0] - 3 : iris[0] + 3].astype(float)
    # The dark iris is covered by lighter lid skin.
    assert after.mean() > before.mean() + 25
    lid = shut[iris[1] - 8 : iris[1] + 2, iris[0] - 15 : iris[0] + 15].astype(float)
    assert lid.std(axis=(0, 1)).mean() > 4


@pytest.mark.parametrize(
    "coeffs",
    [
        {"jawOpen": 0.7, "mouthSmileLeft": 0.5, "headYaw": 12, "eyeBlinkLeft": 0.7},
        {"jawOpen": 1.0, "eyeBlinkRight": 1.0, "headYaw": -15, "browInnerUp": 1.0},
        {"headPitch": -10, "headRoll": 8, "jawOpen": 0.4, "headTx": 0.02, "mouthFunnel": 0.6},
        {"mouthPressLeft": 0.3, "mouthPressRight": 0.1, "jawOpen": 0.3, "mouthClose": 0.1},
        {"mouthPressLeft": 0.4, "mouthPressRight": 0.4, "headYaw": 6, "headRoll": -4},
        {"mouthSmileLeft": -1.0, "mouthSmileRight": -0.6, "jawOpen": 0.3, "headYaw": -5},
        {"eyeBlinkLeft": 0.5, "eyeBlinkRight": 0.05, "headPitch": 6},
    ],
)
def test_fast_path_onnx_and_reference_agree(pack256, coeffs):
    from headcast.models.render.warp_onnx import OnnxWarpRenderer

    c = from_mapping(coeffs)
    fast = WarpRenderer(pack256).render(c).astype(int)
    onnx = OnnxWarpRenderer(pack256, provider="cpu").render(c).astype(int)
    ref = render_reference(pack256, c).astype(int)
    assert np.abs(fast - onnx).max() <= 2
    assert np.abs(fast - ref).max() <= 2
    assert np.abs(onnx - ref).max() <= 2


def test_onnx_batch_renders_each_row(pack256):
    from headcast.models.render.warp_onnx import OnnxWarpRenderer

    graph = OnnxWarpRenderer(pack256, provider="cpu")
    batch = np.stack([zeros(), from_mapping({"jawOpen": 0.9}), from_mapping({"headYaw": -12})])
    out = graph.render_batch(batch)
    assert out.shape == (3, 256, 256, 3) and out.dtype == np.uint8
    for row, c in zip(out, batch, strict=True):
        assert np.array_equal(row, graph.render(c))
    assert np.array_equal(out[0], pack256.image)


def test_out_of_range_and_nan_coefficients_are_clamped(fast):
    wild = np.full(NUM_CHANNELS, np.nan, np.float32)
    assert np.array_equal(fast.render(wild), fast.render(zeros()))
    big = from_mapping({"jawOpen": 7.0, "headYaw": 500.0})
    assert np.array_equal(
        fast.render(big), fast.render(from_mapping({"jawOpen": 1.0, "headYaw": 20.0}))
    )
    with pytest.raises(ValueError):
        fast.render(np.zeros(3, np.float32))


def test_lip_line_is_linear_between_points_and_flat_beyond():
    across = np.array([0.0, 0.25, 0.5, 1.0])
    down = np.array([0.0, 0.2, 0.3, 0.0])
    s = np.array([-0.5, 0.0, 0.125, 0.25, 0.375, 0.75, 1.0, 1.5], np.float32)
    want = [0.0, 0.0, 0.1, 0.2, 0.25, 0.15, 0.0, 0.0]
    np.testing.assert_allclose(wm.lip_line(s, (across, down)), want, atol=1e-6)
    # Crossed landmarks (a segment running backwards): the sum of ramps the ONNX graph
    # computes, the backward segment a step at its start (0.5 + 0.2 past s = 0.5).
    crossed = (np.array([0.0, 0.5, 0.4, 1.0]), np.array([0.0, 0.2, 0.4, 0.0]))
    got = wm.lip_line(np.array([0.25, 0.45, 0.5, 0.51, 0.75], np.float32), crossed)
    ramp = [0.1, 0.18 - 0.4 / 12, 0.2 - 0.4 / 6, 0.4 - 0.4 * 0.11 / 0.6, 0.4 - 0.4 * 0.35 / 0.6]
    np.testing.assert_allclose(got, ramp, atol=1e-6)
