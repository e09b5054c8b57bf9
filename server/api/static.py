"""The browser client: the demo page at ``/``, the widget at ``/headcast.js``, and the
small configuration a page needs (``GET /v1/client/config``).

The files live in ``client/web/`` as plain ES modules (no build step). Only names in
that folder are served, never a path that leaves it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse

from headcast.models.emotions import load_presets
from headcast.server.state import get_state

router = APIRouter(tags=["client"])

WEB_DIR = Path(__file__).resolve().parents[2] / "client" / "web"
ASSET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\.(js|css|html|svg|png)$")
MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
# Revalidate every load: the files are small and a stale widget against a newer
# server is a confusing failure.
CACHE_CONTROL = "no-cache"


def _file(name: str) -> FileResponse:
    path = WEB_DIR / name
    if not ASSET_NAME.match(name) or not path.is_file():
        raise HTTPException(404, f"no client file {name!r}")
    return FileResponse(
        path, media_type=MEDIA_TYPES[path.suffix], headers={"Cache-Control": CACHE_CONTROL}
    )


@router.get("/", include_in_schema=False)
async def demo_page() -> FileResponse:
    return _file("index.html")


@router.get("/headcast.js", include_in_schema=False)
async def widget() -> FileResponse:
    # Public code, loaded by pages on any site (a module script needs CORS): so a page
    # whose origin the server does not allow still gets the widget, which then says why
    # it is refused, rather than a blank page and a console error.
    response = _file("headcast.js")
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


@router.get("/web/{name}", include_in_schema=False)
async def asset(name: str) -> FileResponse:
    return _file(name)


@router.get("/v1/client/config")
async def client_config(request: Request) -> dict[str, Any]:
    """What a browser needs before connecting: ICE servers, emotions, sizes, fps."""
    s = get_state(request).settings
    return {
        "ice_servers": [server.model_dump(exclude_none=True) for server in s.ice_servers],
        "emotions": list(load_presets()),
        "sizes": list(s.allowed_sizes),
        "default_size": s.default_size,
        "fps": s.default_fps,
        "auth": s.api_key is not None,
    }
