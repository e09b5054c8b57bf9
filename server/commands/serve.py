"""``headcast serve``: the live streaming server (HTTP API, WHEP, WebSocket audio)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from headcast.models.config import ConfigError
from headcast.server.cli_args import add_renderer_arguments
from headcast.server.errors import UserError

HELP = "run the live streaming server"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="server YAML (default configs/server.yaml)")
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (default 8080)")
    parser.add_argument("--avatar", help="default avatar pack directory (default: built in)")
    parser.add_argument("--size", type=int, dest="default_size", help="default frame size")
    parser.add_argument("--provider", choices=["auto", "cpu", "cuda"], help="ONNX provider")
    # No defaults here: an option left out keeps the value from the server YAML.
    add_renderer_arguments(
        parser,
        backend_dest="renderer_backend",
        backend_help="renderer (default auto: warp on CPU, its ONNX graph on a GPU; edtalk: "
        "the EDTalk neural generator, needs --edtalk-weights)",
        precision_help="EDTalk per-frame graph precision (default fp32; fp16 for CUDA)",
    )
    parser.add_argument(
        "--ice-host",
        action="append",
        dest="ice_host_addresses",
        metavar="ADDR",
        help="gather ICE host candidates on ADDR (repeatable; default 127.0.0.1)",
    )
    parser.add_argument("--max-sessions", type=int, help="hard cap on live sessions")
    parser.add_argument(
        "--demo-token",
        action="store_true",
        help="with an api_key: print the demo page's address with a session token (1 h) in it",
    )


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from headcast.server.app import create_app
    from headcast.server.settings import load_settings

    overrides = {
        key: getattr(args, key)
        for key in (
            "host",
            "port",
            "avatar",
            "default_size",
            "provider",
            "renderer_backend",
            "edtalk_weights",
            "edtalk_precision",
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
    if settings.renderer_backend == "edtalk":
        check_edtalk(settings.edtalk_weights, settings.edtalk_precision)
    from headcast.models.motion.model import DEFAULT_MODEL

    model = settings.motion_model or DEFAULT_MODEL
    if not Path(model).is_file():
        raise UserError(f"motion model {model} not found (train it: headcast train motion)")
    _check_port_free(settings.host, settings.port)
    if args.demo_token:
        print(f"demo page: {demo_url(settings)}", flush=True)
    app = create_app(settings)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        ws="websockets-sansio",
        ws_max_size=settings.max_message_bytes,
        proxy_headers=False,  # server.api.client_address applies trusted_proxies instead
        timeout_graceful_shutdown=5,
    )
    return 0


DEMO_TOKEN_TTL_S = 3600.0


def demo_url(settings: Any) -> str:
    """The demo page's address; with an ``api_key``, carrying a session token for it (the
    page reads ``?token=``), so a local try-out needs no back end to mint one."""
    import time

    from headcast.server.api.tokens import Claims, mint, signing_secret

    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    url = f"http://{host}:{settings.port}/"
    secret = signing_secret(settings)
    if secret is None:
        return url  # no api_key: the page needs no token
    ttl = min(DEMO_TOKEN_TTL_S, settings.token_max_ttl_s)
    return f"{url}?token={mint(secret, Claims(exp=time.time() + ttl))}"


def check_edtalk(weights: Path | None, precision: str) -> None:
    """UserError naming what is missing for ``--backend edtalk`` (no torch, no loading)."""
    from headcast.models.edtalk import WeightsError, check_weights

    if weights is None:
        raise UserError(
            "--backend edtalk needs --edtalk-weights DIR, the folder with EDTalk.pt, "
            "Audio2Lip.pt and their ONNX export (see docs/edtalk.md)"
        )
    try:
        check_weights(weights, "edtalk", "fp16" if precision == "fp16" else "fp32")
    except WeightsError as exc:
        raise UserError(f"--backend edtalk: {exc}") from exc


def _check_port_free(host: str, port: int) -> None:
    """UserError now, before models load and calibrate, when the port is taken."""
    import errno
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except socket.gaierror as exc:  # not an address of this machine, nor a name of one
            raise UserError(
                f"cannot listen on {host}: not an address or host name this machine has "
                f"({exc.strerror}); use --host 127.0.0.1, or 0.0.0.0 for every interface"
            ) from exc
        except OSError as exc:
            why = exc.strerror or str(exc)
            if exc.errno == errno.EADDRNOTAVAIL:  # a valid address, not on this machine
                raise UserError(
                    f"cannot listen on {host}: no interface of this machine has that "
                    "address; use --host 127.0.0.1, or 0.0.0.0 for every interface"
                ) from exc
            raise UserError(
                f"cannot listen on {host}:{port} ({why}); is another server "
                "running there? Choose another with --port"
            ) from exc
