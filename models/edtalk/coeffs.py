"""Our named coefficients -> EDTalk bank weights (numpy only).

EDTalk's 36 weights (``alpha``: 20 mouth | 6 pose | 10 expression, arXiv 2404.01647)
drive learned latent directions that have no fixed meaning, so there is no exact
map from ARKit channels. What can be justified:

* **Expression**: upstream publishes one ``(1, 10)`` vector per emotion
  (``predefined_exp_weights/<name>.npy``). Our presets with the same names are
  vectors in the ARKit expression bank. An ARKit expression ``c`` is written as a
  non-negative combination of our presets, ``c ~ sum_i w_i p_i`` (NNLS), and mapped to
  ``e_neutral + sum_i w_i (e_i - e_neutral)``: exact on every shared preset, linear
  in between (so cross-fades between emotions stay cross-fades). Without the
  upstream vectors the portrait keeps its own expression.
* **Pose**: the portrait's own pose weights (a fixed head), or per-frame weights
  read from a driving video with :meth:`EdtalkRenderer.coeffs_of`.
* **Mouth**: from EDTalk's Audio2Lip (native weights); ARKit mouth channels cannot be
  translated, and the portrait's own mouth is used when none is given.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from scipy.optimize import nnls

from headcast.models.channels import EXPRESSION_SLICE, NUM_CHANNELS

MOUTH_DIM, POSE_DIM, EXP_DIM = 20, 6, 10
MOUTH = slice(0, MOUTH_DIM)
POSE = slice(MOUTH_DIM, MOUTH_DIM + POSE_DIM)
EXPRESSION = slice(MOUTH_DIM + POSE_DIM, MOUTH_DIM + POSE_DIM + EXP_DIM)
FULL_DIM = MOUTH_DIM + POSE_DIM + EXP_DIM  # 36: EDTalk.pt
LIP_POSE_DIM = MOUTH_DIM + POSE_DIM  # 26: EDTalk_lip_pose.pt
# Vectors are told apart by length, so ours must differ from both native sizes.
assert NUM_CHANNELS not in (FULL_DIM, LIP_POSE_DIM)


def load_expression_weights(folder: str | Path) -> dict[str, np.ndarray]:
    """``{name: float32 (10,)}`` from upstream ``*.npy`` files ((1, 10) float32); {} if none."""
    out: dict[str, np.ndarray] = {}
    root = Path(folder)
    if not root.is_dir():
        return out
    for path in sorted(root.glob("*.npy")):
        arr = np.load(path, allow_pickle=False)
        if arr.size != EXP_DIM:
            raise ValueError(
                f"{path}: expected {EXP_DIM} expression weights, got shape {arr.shape}"
            )
        out[path.stem] = arr.reshape(EXP_DIM).astype(np.float32)
    return out


class CoeffMap:
    """ARKit coefficients float32 (B, K) -> EDTalk alpha float32 (B, N).

    source_alpha: float32 (N,), the weights the portrait itself carries (N = 36 or 26).
    expression_weights: upstream emotion vectors by name; presets: ours, float32 (K,).
    """

    def __init__(
        self,
        source_alpha: np.ndarray,
        expression_weights: Mapping[str, np.ndarray] | None = None,
        presets: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        self.source_alpha = np.asarray(source_alpha, np.float32).reshape(-1)
        self.num_coeffs = self.source_alpha.size
        if self.num_coeffs not in (FULL_DIM, LIP_POSE_DIM):
            raise ValueError(
                f"EDTalk has {FULL_DIM} or {LIP_POSE_DIM} weights, got {self.num_coeffs}"
            )
        weights = dict(expression_weights or {})
        shared = sorted(name for name in set(weights) & set(presets or {}) if name != "neutral")
        self.emotions: tuple[str, ...] = tuple(shared)
        self._ours = (
            np.stack([np.asarray(presets[n], np.float32)[EXPRESSION_SLICE] for n in shared], axis=1)
            if presets and shared
            else np.zeros((EXPRESSION_SLICE.stop - EXPRESSION_SLICE.start, 0))
        )
        has_exp = self.num_coeffs == FULL_DIM
        self._neutral = (
            weights.get("neutral", self.source_alpha[EXPRESSION]) if has_exp else np.zeros(0)
        ).astype(np.float32)
        self._theirs = (
            np.stack([weights[n] - self._neutral for n in shared], axis=1)
            if has_exp and shared
            else np.zeros((EXP_DIM if has_exp else 0, 0), np.float32)
        )

    def emotion_weights(self, expression: np.ndarray) -> np.ndarray:
        """ARKit expression bank float32 (E,) -> non-negative preset weights (len(emotions),)."""
        if not self.emotions:
            return np.zeros(0, np.float32)
        w, _ = nnls(self._ours.astype(np.float64), np.asarray(expression, np.float64))
        return w.astype(np.float32)

    def __call__(self, coeffs: np.ndarray, mouth: np.ndarray | None = None) -> np.ndarray:
        """coeffs float32 (B, K) [+ mouth (B, 20) from Audio2Lip] -> alpha float32 (B, N)."""
        coeffs = np.asarray(coeffs, np.float32)
        batch = coeffs.shape[0]
        alpha = np.repeat(self.source_alpha[None], batch, axis=0)
        if mouth is not None:
            alpha[:, MOUTH] = np.asarray(mouth, np.float32).reshape(batch, MOUTH_DIM)
        if self.num_coeffs == FULL_DIM and self.emotions:
            for b in range(batch):
                w = self.emotion_weights(coeffs[b, EXPRESSION_SLICE])
                alpha[b, EXPRESSION] = self._neutral + self._theirs @ w
        return alpha
