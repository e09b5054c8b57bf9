"""Evaluation metrics: oracle and known-bad predictions score as they must."""

from __future__ import annotations

import numpy as np

from headcast.models.training.evaluate import energy_baseline, score
from headcast.models.training.visemes import make_targets

FPS = 25
SEGS = [("sil", 0.0, 0.5), ("AA", 0.5, 0.7), ("PBM", 0.7, 0.8), ("AA", 0.8, 1.0),
        ("IY", 1.0, 1.2), ("PBM", 1.2, 1.3), ("AA", 1.3, 1.5), ("sil", 1.5, 2.2)]  # fmt: skip


def truth() -> np.ndarray:
    return make_targets(SEGS, int(2.2 * FPS), FPS).coeffs[:, 0]


def test_oracle_scores_perfectly() -> None:
    t = truth()
    s = score("oracle", t, t, SEGS, FPS)
    assert s.r > 0.999 and s.lag == 0
    assert s.n_closures == 2 and s.closure == 1.0
    assert s.silence < 0.05


def test_late_prediction_shows_its_lag() -> None:
    t = truth()
    late = np.concatenate([np.zeros(2), t[:-2]])
    s = score("late", late, t, SEGS, FPS)
    assert s.lag == 2 and s.best_r > s.r


def test_open_mouth_scores_badly() -> None:
    t = truth()
    s = score("open", 0.5 + 0.01 * (np.arange(len(t)) % 2), t, SEGS, FPS)
    assert s.closure == 0.0 and s.silence > 0.9


def test_energy_baseline_follows_loudness() -> None:
    sr = 16_000
    x = np.zeros(2 * sr, np.float32)
    x[sr // 2 : sr] = 0.3 * np.sin(np.arange(sr // 2) * 0.1)
    e = energy_baseline(x, 50, FPS)
    assert e.shape == (50,) and e.dtype == np.float32
    assert e[15:23].min() > 0.8 and e[30:].max() < 0.1
