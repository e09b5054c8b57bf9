"""server/commands/serve.py: refusals before serving."""

from __future__ import annotations

from typing import Any


def test_serve_on_a_taken_port_is_a_one_line_error(capsys: Any) -> None:
    import socket

    from headcast.server.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and "another server" in err
    assert "Traceback" not in err


def test_serve_on_a_host_this_machine_lacks_says_so(capsys: Any) -> None:
    """Not a taken port: an address no interface has, or not an address at all."""
    from headcast.server.cli import main

    for host, words in (
        ("999.1.1.1", "not an address or host name"),
        ("192.0.2.1", "no interface of this machine has that address"),  # TEST-NET-1
    ):
        assert main(["serve", "--host", host, "--port", "0"]) == 2
        err = capsys.readouterr().err
        assert words in err and "--host 127.0.0.1" in err and "another server" not in err, err


def test_library_chatter_is_left_out_unless_verbose() -> None:
    import logging

    from headcast.server.cli import QUIET_LOGGERS, configure_logging

    configure_logging(verbose=False)
    assert all(logging.getLogger(n).getEffectiveLevel() == logging.WARNING for n in QUIET_LOGGERS)
    assert "aioice" in QUIET_LOGGERS
    configure_logging(verbose=True)
    assert logging.getLogger("aioice").level == logging.NOTSET
    configure_logging(verbose=False)


def test_demo_token_opens_the_demo_page_of_a_server_with_an_api_key() -> None:
    import time
    from urllib.parse import parse_qs, urlsplit

    from headcast.server.api.tokens import signing_secret, verify
    from headcast.server.commands.serve import demo_url
    from headcast.server.settings import ServerSettings

    keyed = ServerSettings(api_key="demo-key-0123456789abcdef", port=8090, host="0.0.0.0")
    url = urlsplit(demo_url(keyed))
    assert (url.hostname, url.port, url.path) == ("127.0.0.1", 8090, "/")
    token = parse_qs(url.query)["token"][0]
    secret = signing_secret(keyed)
    assert secret is not None
    claims = verify(secret, token)
    assert 3500 < claims.exp - time.time() <= 3600.01 and claims.session is None  # exp in ms
    assert demo_url(ServerSettings(port=8090)) == "http://127.0.0.1:8090/"


def test_minting_without_credentials_names_the_api_key() -> None:
    from tests.server_harness import ServerThread, free_port
    from tests.test_api_auth import API_KEY, _fake_motion, _settings, call

    with ServerThread(_settings(free_port(), api_key=API_KEY), **_fake_motion()) as server:
        status, body, _ = call(server, "POST", "/v1/tokens", {})
    assert status == 401 and "API key" in body["detail"]
