"""The synthesised mouth interior: lower teeth that read as teeth, a tongue behind them."""

from __future__ import annotations

import numpy as np
import pytest

from headcast.models.avatar import mouth as M

LUMA = np.array([0.299, 0.587, 0.114])
LIP = np.array([180.0, 100.0, 100.0])
TEETH = M.TYPICAL_TEETH


def _row(t: float) -> int:
    return int(t / M.T_MAX * M.TEX_H)


@pytest.fixture(scope="module")
def lower() -> np.ndarray:
    return M.synth_lower(LIP, TEETH).astype(np.float64)


def test_lower_incisors_are_as_light_as_the_upper_ones(lower):
    """Seen at a mid opening, the lower incisors are teeth, not a grey band (they were
    0.85 of the upper incisors' luma)."""
    upper = M.synth_upper_teeth(TEETH).astype(np.float64)
    mid = slice(M.TEX_W // 2 - 2, M.TEX_W // 2 + 2)
    row = _row(0.03)
    lo = float((lower[row, mid, :3] @ LUMA).max())
    up = float((upper[row, mid, :3] @ LUMA).max())
    assert lo >= 0.92 * up, f"lower incisors {lo:.0f}, upper {up:.0f}"


def test_lower_teeth_are_separate_teeth(lower):
    """Every boundary between two lower teeth in the middle half of the mouth is a
    visible seam: at least 15 % darker than the teeth beside it (one seam was 9 %)."""
    luma = lower[_row(0.03), :, :3] @ LUMA
    edges = M._tooth_edges(M.LOWER_TOOTH_WIDTHS)
    inner = edges[np.abs(2 * edges - 1) < 0.5]
    assert len(inner) >= 5
    for e in inner:
        i = e * M.TEX_W - 0.5
        seam = luma[int(np.floor(i)) : int(np.ceil(i)) + 1].min()
        beside = luma[[int(i - 3), int(i + 3)]].mean()
        assert seam <= 0.85 * beside, f"seam at s={e:.2f}: {seam:.0f} vs {beside:.0f}"


def test_lower_teeth_show_above_the_lip_and_the_tongue_behind_them(lower):
    """The incisors reach at least 0.06 mouth widths above the lower lip (they reached
    0.047); above them, the tongue: opaque, red rather than grey or white."""
    middle = lower[:, int(0.45 * M.TEX_W) : int(0.55 * M.TEX_W)]
    toothy = ((middle[..., :3] @ LUMA) > 0.7 * 191.0) & (middle[..., 3] > 128)
    top = (np.flatnonzero(toothy.any(axis=1)).max() + 1) / M.TEX_H * M.T_MAX
    assert top >= 0.06, f"lower incisors reach {top:.3f} mouth widths"
    col = lower[:, M.TEX_W // 2]
    tongue = col[_row(0.09) : _row(0.14)]
    assert (tongue[:, 3] == 255).all()
    assert (tongue[:, 0] > 1.6 * tongue[:, 2]).all()
