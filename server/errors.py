"""Errors that are the user's to fix: reported as one readable line, never a traceback."""


class UserError(Exception):
    """Bad input or environment; the message says what is wrong and what to do."""
