"""Which local addresses aiortc peers gather ICE host candidates on.

aioice picks host candidates from every interface except loopback and has no option to
choose them, so :func:`restrict_host_addresses` replaces its address lookup. That is
process-wide (aioice keeps it as a module function): every peer in the process — the
server's, a viewer's, pipecat's SmallWebRTC connection — gathers on those addresses
only. Tests and benchmarks use ``["127.0.0.1"]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import aioice.ice

_ORIGINAL = aioice.ice.get_host_addresses


def restrict_host_addresses(addresses: Sequence[str]) -> None:
    """Gather host candidates on ``addresses`` only; empty restores aioice's own choice."""
    chosen = list(addresses)
    if not chosen:
        aioice.ice.get_host_addresses = _ORIGINAL
        return

    def host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in chosen if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    aioice.ice.get_host_addresses = host_addresses
