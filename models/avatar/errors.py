"""Enrollment and avatar-pack errors: readable messages for the user."""


class AvatarError(ValueError):
    """An avatar pack is missing, corrupt or from an incompatible version."""


class EnrollError(ValueError):
    """A portrait cannot be enrolled; the message says why and what to do."""


class NoFaceError(EnrollError):
    """No face in the portrait (perhaps only as the photo lies: upside down, on its side)."""


class PoseError(EnrollError):
    """The face is turned or tilted past what the renderer can hold."""
