"""Offline rendering: speech files to MP4s, one at a time or in batches (local or Ray).

This module is the front: callers import from here. Behind it, one module per step:

* :mod:`~models.offline.render` — one speech file to one MP4 (decode, motion, render,
  mux), :func:`render_file`
* :mod:`~models.offline.options` — what a render is asked for (:class:`RenderOptions`)
  and its errors
* :mod:`~models.offline.context` — the renderer and motion model, built once per size
* :mod:`~models.offline.speech`, :mod:`~models.offline.audio` — the speech in, the
  audio track out
* :mod:`~models.offline.paste` — frames pasted back into the whole portrait
* :mod:`~models.offline.output` — output files written whole or not at all
* :mod:`~models.offline.batch`, :mod:`~models.offline.pool`,
  :mod:`~models.offline.ray_batch` — batches over folders on local processes or Ray
"""

from headcast.models.offline.batch import BatchItem, ItemResult, collect, is_pattern
from headcast.models.offline.context import RenderContext
from headcast.models.offline.options import FULL, RenderError, RenderOptions, RenderResult, Size
from headcast.models.offline.pool import run_local
from headcast.models.offline.ray_batch import RayUnavailable, run_ray
from headcast.models.offline.render import default_workers, render_file

__all__ = [
    "FULL",
    "BatchItem",
    "ItemResult",
    "RayUnavailable",
    "RenderContext",
    "RenderError",
    "RenderOptions",
    "RenderResult",
    "Size",
    "collect",
    "default_workers",
    "is_pattern",
    "render_file",
    "run_local",
    "run_ray",
]
