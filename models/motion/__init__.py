"""Audio-to-motion at serve time: ONNX Runtime only (no torch).

16 kHz mono PCM -> ARKit mouth coefficients at the video frame rate, streaming with a
fixed look-ahead (:mod:`models.motion.stream`) or offline (:func:`infer`).
"""

from headcast.models.motion.model import MotionModel, MotionModelError, load_motion_model
from headcast.models.motion.stream import MotionFrames, MotionStreamer, infer

__all__ = [
    "MotionFrames",
    "MotionModel",
    "MotionModelError",
    "MotionStreamer",
    "infer",
    "load_motion_model",
]
