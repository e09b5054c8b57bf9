"""Live sessions at run time: the session and its pipeline, the media clock, tracks and
encoders, scheduling and admission, render processes, model loaders, ICE.

Nothing here imports :mod:`server.api` (a test checks): the HTTP surface drives these
objects, they do not know it.
"""
