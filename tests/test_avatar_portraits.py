"""The portrait set (tests/portrait_set.py) enrolls, and each pack keeps (nearly) every
channel, folds nothing, renders its portrait at rest, and closes its eyes."""

from __future__ import annotations

import os

import numpy as np
import pytest

from headcast.models.avatar.bases import field_jacobian_min
from headcast.models.avatar.enroll import BACKWARD_DRAWN
from headcast.models.avatar.pack import AvatarPack
from headcast.models.channels import (
    CHANNEL_INDEX,
    EXPRESSION_CHANNELS,
    MOUTH_CHANNELS,
    from_mapping,
)
from headcast.models.render.warp import WarpRenderer
from tests.portrait_set import FETCHED, FETCHED_DIR, FLOW_NAMES, HAVE_FETCHED, PORTRAITS, cases_for

pytest.importorskip("mediapipe")


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
def packs(portrait_packs: dict[str, AvatarPack]) -> dict[str, AvatarPack]:
    return portrait_packs


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


@pytest.mark.parametrize("name", cases_for("blink"))
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
