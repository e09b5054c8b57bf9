"""Enrollment and avatar-pack errors: readable messages for the user."""


class AvatarError(ValueError):
    """An avatar pack is missing, corrupt or from an incompatible version."""


class EnrollError(ValueError):
    """A portrait cannot be enrolled; the message says why and what to do."""
