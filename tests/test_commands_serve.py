"""server/commands/serve.py: refusals before serving."""

from __future__ import annotations

from typing import Any


def test_serve_on_a_taken_port_is_a_one_line_error(capsys: Any) -> None:
    import socket

    from server.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and "Traceback" not in err


def test_library_chatter_is_left_out_unless_verbose() -> None:
    import logging

    from server.cli import QUIET_LOGGERS, configure_logging

    configure_logging(verbose=False)
    assert all(logging.getLogger(n).getEffectiveLevel() == logging.WARNING for n in QUIET_LOGGERS)
    assert "aioice" in QUIET_LOGGERS
    configure_logging(verbose=True)
    assert logging.getLogger("aioice").level == logging.NOTSET
    configure_logging(verbose=False)
