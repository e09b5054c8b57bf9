"""Blinks: the lid comes down over the eye from the portrait's own lid skin, and only there."""

from __future__ import annotations

import numpy as np
import pytest

from headcast.models.channels import from_mapping, zeros
from headcast.models.render.warp import WarpRenderer
from tests.eye_meter import EYES, closed_eye, eye_regions

CHANGED = 8  # grey levels: a pixel differing from the portrait by more has changed


@pytest.fixture(scope="module")
def fast(pack512):
    return WarpRenderer(pack512)


@pytest.mark.parametrize("channel", list(EYES))
def test_a_full_blink_shows_no_sclera_and_no_iris(fast, pack512, channel):
    """Before the lid layer, the lid maps (4 px cells) left a white line of sclera and a
    dark V of iris under the lid: on this avatar 26 % and 57 % of the opening stayed
    darker than the lid skin by 50 grey levels."""
    regions = eye_regions(pack512.arrays["landmarks"], pack512.size, channel)
    assert regions is not None
    at_rest = closed_eye(pack512.image, fast.render(zeros()), regions)
    assert at_rest.dark_share > 0.5  # the measure sees the open eye's iris...
    shut = closed_eye(pack512.image, fast.render(from_mapping({channel: 1.0})), regions)
    assert shut.brightest_over_skin <= 10.0, shut
    assert shut.dark_share <= 0.2, shut  # ...and none of it once the eye is shut


def _changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(int) - b.astype(int)).max(axis=-1) > CHANGED


@pytest.mark.parametrize("channel", list(EYES))
def test_a_blink_moves_nothing_outside_the_eye_opening(fast, pack512, channel):
    """Glasses rims, brows and make-up above the lid stay put; the other eye too."""
    lm = pack512.arrays["landmarks"]
    upper, lower, corners = EYES[channel]
    gap = float(lm[list(lower), 1].max() - lm[list(upper), 1].min())
    changed = _changed(fast.render(from_mapping({channel: 1.0})), pack512.image)
    ys, xs = np.nonzero(changed)
    assert len(ys) > 0
    assert xs.min() >= lm[list(corners), 0].min() - 1
    assert xs.max() <= lm[list(corners), 0].max() + 1
    assert ys.min() >= lm[list(upper), 1].min() - 0.5 * gap
    assert ys.max() <= lm[list(lower), 1].max() + 0.5 * gap


@pytest.mark.parametrize("channel", list(EYES))
def test_a_half_blink_covers_the_top_of_the_eye_and_leaves_its_bottom(fast, pack512, channel):
    regions = eye_regions(pack512.arrays["landmarks"], pack512.size, channel)
    assert regions is not None
    half = fast.render(from_mapping({channel: 0.5}))
    changed = _changed(half, pack512.image)[:, regions.columns]
    y = np.arange(pack512.size)[:, None]
    gap = regions.low - regions.lid
    top = (y >= regions.lid + 1) & (y <= regions.lid + 0.35 * gap)
    bottom = (y >= regions.lid + 0.7 * gap) & (y <= regions.low - 1)
    assert changed[top].mean() >= 0.8
    assert changed[bottom].mean() <= 0.2


def test_blinks_at_rest_leave_the_portrait_untouched(fast, pack512):
    out = fast.render(from_mapping({"eyeBlinkLeft": 0.0, "eyeBlinkRight": 0.0, "jawOpen": 1e-6}))
    assert not _changed(out, pack512.image).any()
