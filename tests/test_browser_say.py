"""The demo page as a first-time visitor meets it (Chromium): what it says before anything
is pressed, Start, a typed sentence spoken on Enter, one error shown once, stats on
demand and cleared on Stop — at a desktop and a phone size, with screenshots."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser_support import (
    CONNECT_TIMEOUT_MS,
    NAV_TIMEOUT_MS,
    ConsoleLog,
    artifact,
    server_settings,
    wait_state,
)
from tests.server_harness import ServerThread, require_motion_model

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(shutil.which("flite") is None, reason="flite is not installed"),
]


@pytest.fixture(scope="module")
def srv(mic_wav: Path) -> Iterator[ServerThread]:
    require_motion_model()
    with ServerThread(server_settings()) as server:
        yield server


def body_text(page: Any) -> str:
    return str(page.evaluate("document.body.innerText"))


@pytest.mark.parametrize("viewport", [(1280, 800), (360, 740)], ids=["desktop", "phone"])
def test_typed_text_is_spoken_and_the_page_explains_itself(
    browser: Any, srv: ServerThread, viewport: tuple[int, int]
) -> None:
    width, height = viewport
    page = browser.new_page(viewport={"width": width, "height": height})
    log = ConsoleLog(page)
    page.goto(srv.url + "/", timeout=NAV_TIMEOUT_MS)
    page.wait_for_function(
        "document.querySelectorAll('#voice option').length > 0", timeout=NAV_TIMEOUT_MS
    )
    # before anything is pressed: what it is, the one first action, a sample sentence
    assert "portrait that speaks" in body_text(page)
    assert page.is_visible("#hint") and "Start" in (page.text_content("#hint") or "")
    assert page.is_enabled("#connect") and page.is_disabled("#say")
    assert "Type any sentence" in page.input_value("#say-text")
    # voices are named with what they are, not only an engine's code name
    labels = page.evaluate("[...document.querySelectorAll('#voice option')].map((o) => o.text)")
    assert labels and all("English" in label for label in labels), labels
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    page.screenshot(path=artifact(f"demo-{width}x{height}-start.png"))
    page.focus("#say-text")
    page.keyboard.press("Enter")  # before Start: told why nothing happens
    assert "Press Start first" in (page.text_content("#error") or "")

    page.click("#connect")
    assert page.is_hidden("#error")
    assert wait_state(page, "#avatar", ("idle", "failed"), CONNECT_TIMEOUT_MS) == "idle"
    assert page.is_hidden("#hint")
    wait_state(page, "#avatar", ("idle",), 5000)
    page.focus("#say-text")
    page.keyboard.press("Enter")  # the sample sentence, spoken
    assert wait_state(page, "#avatar", ("speaking",), 10_000) == "speaking"
    enter_to_mouth = page.evaluate("document.querySelector('#avatar').stats()")["pushToMouthMs"]
    assert enter_to_mouth is not None and 0 < enter_to_mouth < 2000
    page.screenshot(path=artifact(f"demo-{width}x{height}-speaking.png"))
    sid = page.evaluate("document.querySelector('#avatar').sessionId")
    deadline = time.monotonic() + 20  # every sentence said (it idles between sentences too)
    while time.monotonic() < deadline:
        stats = srv.state.sessions[sid].stats()
        if not stats["speaking"] and stats["buffered_ms"] == 0:
            break
        time.sleep(0.1)
    assert wait_state(page, "#avatar", ("idle",), 5000) == "idle"

    # stats on demand: folded away until asked for
    assert page.is_hidden("#stats")
    page.click("#stats-panel summary")
    page.wait_for_function(
        "document.getElementById('stats').textContent.includes('fps')", timeout=5000
    )

    # an error is shown once, in one place
    page.evaluate(
        "document.getElementById('voice').add(new Option('nobody', 'nobody', true, true))"
    )
    page.click("#say")
    page.wait_for_function("!document.getElementById('error').hidden", timeout=5000)
    text = body_text(page)
    assert "unknown voice 'nobody'" in text and text.count("unknown voice") == 1
    assert page.evaluate("document.querySelector('#avatar').state") == "idle"

    page.click("#disconnect")
    assert wait_state(page, "#avatar", ("disconnected",), 5000) == "disconnected"
    assert page.text_content("#stats") == "not connected"  # no stale numbers
    assert page.is_visible("#hint")
    # only the refused say (400), and a busy server's 503 that the widget waited out
    assert [e for e in log.errors if "400" not in e and "503" not in e] == []
    page.close()
    print(f"{width}x{height}: Enter -> mouth {enter_to_mouth:.0f} ms")
