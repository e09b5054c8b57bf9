"""Audio-to-motion at serve time: ONNX Runtime only (no torch).

16 kHz mono PCM -> ARKit mouth coefficients at the video frame rate, streaming with a
fixed look-ahead (:mod:`models.motion.stream`) or offline (:func:`infer`; files also get
the closure pass of :mod:`models.motion.closures`, :func:`infer_file`).
"""

from headcast.models.motion.closures import ClosurePass, infer_file
from headcast.models.motion.model import MotionModel, MotionModelError, load_motion_model
from headcast.models.motion.stream import MotionFrames, MotionStreamer, infer

__all__ = [
    "ClosurePass",
    "MotionFrames",
    "MotionModel",
    "MotionModelError",
    "MotionStreamer",
    "infer",
    "infer_file",
    "load_motion_model",
]
