"""Frame sizes, in one place (a light module: settings and the CLI import it)."""

from __future__ import annotations

#: head-frame sides (px) served live and rendered to files: a pack enrolled at 256 or 512
#: is resized to any of them, so live, `headcast render` and /v1/renders offer one list
FRAME_SIZES: tuple[int, ...] = (256, 384, 512)

#: sides (px) a portrait is enrolled at: the pack's own head frame (build_pack's ``size``)
PACK_SIZES: tuple[int, ...] = (256, 512)
