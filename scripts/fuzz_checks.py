"""What scripts/fuzz_api.sh adds to schemathesis: the check (no 5xx except 503, the
documented answer of a server at capacity, with Retry-After, and 501 with its reason,
the documented answer of a feature this server is not set up for, e.g. LiveKit workers
without livekit_worker_python) and a serializer for WHEP's SDP offers."""

from typing import Any

import schemathesis


@schemathesis.check
def no_server_error(ctx: Any, response: Any, case: Any) -> None:
    status = response.status_code
    busy = status == 503 and "retry-after" in response.headers
    not_set_up = status == 501 and '"detail"' in response.text  # with the reason
    if status >= 500 and not (busy or not_set_up):
        raise AssertionError(f"{case.method} {case.formatted_path} answered {status}")


@schemathesis.serializer("application/sdp")
def sdp(ctx: Any, value: Any) -> bytes:
    """WHEP offers are text: whatever was generated goes as its text (or bytes)."""
    return value if isinstance(value, bytes) else str(value).encode("utf-8", "replace")
