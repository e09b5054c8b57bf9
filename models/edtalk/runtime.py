"""EDTalk at serve time: ONNX Runtime only (no torch is imported here).

:class:`EdtalkRenderer` implements :class:`models.render.base.Renderer`. At
construction it runs the source graph once on the portrait and keeps its outputs
(latent, multi-scale features, EEM cache; on the CUDA provider they stay on the GPU);
every frame then runs only the per-frame graph. :class:`Audio2LipRunner` turns speech
into EDTalk's native mouth weights.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import cv2
import numpy as np
import onnxruntime as ort

from headcast.models.channels import NUM_CHANNELS
from headcast.models.edtalk.coeffs import MOUTH_DIM, CoeffMap
from headcast.models.edtalk.mel import mel_windows, melspectrogram, num_video_frames, smooth
from headcast.models.onnx_session import CUDA, session_metadata

if TYPE_CHECKING:
    from headcast.models.avatar.pack import AvatarPack


def to_model_image(image: np.ndarray, side: int) -> np.ndarray:
    """uint8 (H, W, 3) RGB -> float32 (1, 3, side, side) in [-1, 1], as upstream feeds it.

    The portrait should already be the face crop EDTalk expects (upstream crops with
    its own ``crop_image2``); here it is only resized.
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected uint8 (H, W, 3) RGB, got {image.dtype} {image.shape}")
    h, w = image.shape[:2]
    interp = cv2.INTER_AREA if min(h, w) > side else cv2.INTER_CUBIC
    resized = cv2.resize(image, (side, side), interpolation=interp)
    x = resized.astype(np.float32) / 127.5 - 1.0
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def to_frames(image: np.ndarray, size: int) -> np.ndarray:
    """float32 (B, 3, S, S) ~[-1, 1] -> uint8 (B, size, size, 3) RGB."""
    x = np.clip(image, -1.0, 1.0)
    frames = ((x + 1.0) * 127.5 + 0.5).astype(np.uint8).transpose(0, 2, 3, 1)
    if frames.shape[1] != size:
        frames = np.stack(
            [cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in frames]
        )
    return np.ascontiguousarray(frames)


class EdtalkRenderer:
    """One portrait animated by EDTalk.

    ``render``/``render_batch`` take either our coefficient vectors float32 (K,)/(B, K)
    (mapped by :class:`models.edtalk.coeffs.CoeffMap`, optionally with ``mouth``
    (B, 20) from Audio2Lip) or EDTalk's native weights (N,)/(B, N), N = 36 or 26.
    """

    def __init__(
        self,
        source: ort.InferenceSession,
        frame: ort.InferenceSession,
        portrait: np.ndarray,
        size: int = 256,
        expression_weights: Mapping[str, np.ndarray] | None = None,
        presets: Mapping[str, np.ndarray] | None = None,
        pack: AvatarPack | None = None,
    ) -> None:
        meta = session_metadata(frame)
        self.image_size = int(meta["headcast.image_size"])
        self.num_coeffs = int(meta["headcast.num_coeffs"])
        self.cached_names = meta["headcast.cached_inputs"].split(",")
        self.size = size
        #: the avatar pack the portrait came from, when it did (full-portrait paste-back)
        self.pack = pack
        self.source = source
        self.frame = frame
        cached, alpha = self.encode(portrait)
        self.source_alpha = alpha[0]
        self.coeff_map = CoeffMap(self.source_alpha, expression_weights, presets)
        self._on_cuda = CUDA in frame.get_providers()
        self._cached = cached
        self._device: dict[str, ort.OrtValue] = {}
        if self._on_cuda:
            # the cached features are ~27 MB per portrait: upload once, not every frame
            self._device = {
                n: ort.OrtValue.ortvalue_from_numpy(a, "cuda", 0) for n, a in cached.items()
            }

    def encode(self, image: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """uint8 (H, W, 3) -> (cached source tensors by name, alpha float32 (1, N))."""
        outs = self.source.run(None, {"image": to_model_image(image, self.image_size)})
        named = {o.name: v for o, v in zip(self.source.get_outputs(), outs, strict=True)}
        return {n: named[n] for n in self.cached_names}, named["alpha"]

    def coeffs_of(self, image: np.ndarray) -> np.ndarray:
        """The native weights float32 (N,) a driving frame carries (e.g. its head pose)."""
        return self.encode(image)[1][0]

    def native(self, coeffs: np.ndarray, mouth: np.ndarray | None = None) -> np.ndarray:
        """(B, K) ours or (B, N) native -> float32 (B, N) native weights."""
        coeffs = np.asarray(coeffs, np.float32)
        if coeffs.ndim != 2:
            raise ValueError(f"expected (B, K) coefficients, got shape {coeffs.shape}")
        if coeffs.shape[1] == self.num_coeffs:
            alpha = coeffs.copy()
            if mouth is not None:
                alpha[:, :MOUTH_DIM] = mouth
            return alpha
        if coeffs.shape[1] == NUM_CHANNELS:
            return self.coeff_map(coeffs, mouth)
        raise ValueError(
            f"expected {NUM_CHANNELS} named or {self.num_coeffs} EDTalk coefficients, "
            f"got {coeffs.shape[1]}"
        )

    def render_native(self, alpha: np.ndarray) -> np.ndarray:
        """alpha float32 (B, N) -> image float32 (B, 3, S, S) ~[-1, 1]."""
        alpha = np.ascontiguousarray(alpha, np.float32)
        if not self._on_cuda:
            return self.frame.run(["image"], {**self._cached, "alpha": alpha})[0]
        binding = self.frame.io_binding()
        for name, value in self._device.items():
            binding.bind_ortvalue_input(name, value)
        binding.bind_cpu_input("alpha", alpha)
        binding.bind_output("image", "cpu")
        self.frame.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]

    def render_batch(self, coeffs: np.ndarray, mouth: np.ndarray | None = None) -> np.ndarray:
        """float32 (B, K) or (B, N) -> uint8 (B, size, size, 3) RGB."""
        return to_frames(self.render_native(self.native(coeffs, mouth)), self.size)

    def render(self, coeffs: np.ndarray, mouth: np.ndarray | None = None) -> np.ndarray:
        """float32 (K,) or (N,) -> uint8 (size, size, 3) RGB."""
        m = None if mouth is None else np.asarray(mouth, np.float32)[None]
        return self.render_batch(np.asarray(coeffs, np.float32)[None], m)[0]


class Audio2LipRunner:
    """Speech -> EDTalk mouth weights, the way upstream's demos drive the generator."""

    def __init__(self, session: ort.InferenceSession) -> None:
        self.session = session
        meta = session_metadata(session)
        self.fps = int(meta["headcast.fps"])
        self.sample_rate = int(meta["headcast.sample_rate"])
        self.lookahead_ms = int(meta["headcast.lookahead_ms"])

    def from_windows(self, windows: np.ndarray) -> np.ndarray:
        """mel windows float32 (T, 1, 80, 16) -> raw mouth weights float32 (T, 20)."""
        return self.session.run(["mouth"], {"mel": np.ascontiguousarray(windows, np.float32)})[0]

    def from_wav(self, wav: np.ndarray) -> np.ndarray:
        """float32 (N,) 16 kHz mono -> smoothed mouth weights float32 (N // 640, 20)."""
        frames = num_video_frames(len(wav))
        if frames == 0:
            return np.zeros((0, MOUTH_DIM), np.float32)
        mel = melspectrogram(wav[: frames * (self.sample_rate // self.fps)])
        return smooth(self.from_windows(mel_windows(mel, frames)))
