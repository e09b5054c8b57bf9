"""Prometheus text exposition (format 0.0.4) of the server's state, no extra dependency.

Counters live on :class:`Metrics` (process lifetime); per-session gauges and latency
quantiles are read from the live sessions when ``/metrics`` is scraped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    body = ",".join(
        f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for k, v in labels.items()
    )
    return "{" + body + "}"


@dataclass
class Family:
    """One metric family: name, help, type, samples ``(labels, value)``."""

    name: str
    help: str
    kind: str = "gauge"
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)

    def add(self, value: float, **labels: str) -> Family:
        self.samples.append((labels, float(value)))
        return self

    def render(self) -> str:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]
        lines += [f"{self.name}{_labels(lab)} {val:.6g}" for lab, val in self.samples]
        return "\n".join(lines)


def quantile(values: Iterable[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, NaN when empty."""
    arr = np.fromiter(values, np.float64)
    return float(np.quantile(arr, q)) if arr.size else float("nan")


@dataclass
class Metrics:
    """Process-lifetime counters."""

    sessions_created: int = 0
    sessions_refused: int = 0
    sessions_closed: int = 0
    peers_created: int = 0
    peers_failed: int = 0
    bad_requests: int = 0
    interrupts: int = 0


def render(families: Iterable[Family]) -> str:
    return "\n".join(f.render() for f in families) + "\n"
