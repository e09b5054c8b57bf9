"""``headcast serve``: the live streaming server (HTTP API, WHEP, WebSocket audio)."""

from __future__ import annotations

import argparse
from pathlib import Path

from models.config import ConfigError
from server.errors import UserError

HELP = "run the live streaming server"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="server YAML (default configs/server.yaml)")
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (default 8080)")
    parser.add_argument("--avatar", help="default avatar pack directory (default: built in)")
    parser.add_argument("--size", type=int, dest="default_size", help="default frame size")
    parser.add_argument("--provider", choices=["auto", "cpu", "cuda"], help="ONNX provider")
    parser.add_argument(
        "--ice-host",
        action="append",
        dest="ice_host_addresses",
        metavar="ADDR",
        help="gather ICE host candidates on ADDR (repeatable; default 127.0.0.1)",
    )
    parser.add_argument("--max-sessions", type=int, help="hard cap on live sessions")


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from server.app import create_app
    from server.settings import load_settings

    overrides = {
        key: getattr(args, key)
        for key in (
            "host",
            "port",
            "avatar",
            "default_size",
            "provider",
            "ice_host_addresses",
            "max_sessions",
        )
        if getattr(args, key, None) is not None
    }
    try:
        settings = load_settings(args.config, **overrides)
    except ConfigError as exc:
        raise UserError(str(exc)) from exc
    if settings.avatar is not None and not Path(settings.avatar).is_dir():
        raise UserError(f"avatar pack {settings.avatar} is not a directory")
    from models.motion.model import DEFAULT_MODEL

    model = settings.motion_model or DEFAULT_MODEL
    if not Path(model).is_file():
        raise UserError(f"motion model {model} not found (train it: headcast train motion)")
    app = create_app(settings)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        ws="websockets-sansio",
        ws_max_size=settings.max_message_bytes,
        timeout_graceful_shutdown=5,
    )
    return 0
