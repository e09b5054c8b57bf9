"""What scripts/fuzz_api.sh adds to schemathesis: the check (no 5xx except 503, the
documented answer of a server at capacity, with Retry-After) and a serializer for WHEP's
SDP offers."""

from typing import Any

import schemathesis


@schemathesis.check
def no_server_error(ctx: Any, response: Any, case: Any) -> None:
    status = response.status_code
    if status >= 500 and not (status == 503 and "retry-after" in response.headers):
        raise AssertionError(f"{case.method} {case.formatted_path} answered {status}")


@schemathesis.serializer("application/sdp")
def sdp(ctx: Any, value: Any) -> bytes:
    """WHEP offers are text: whatever was generated goes as its text (or bytes)."""
    return value if isinstance(value, bytes) else str(value).encode("utf-8", "replace")
