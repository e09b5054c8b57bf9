"""server/metrics.py: Prometheus text."""

from __future__ import annotations

import numpy as np

from headcast.server.metrics import Family, quantile, render


def test_metrics_render_prometheus_text() -> None:
    fam = Family("headcast_x_ms", "a thing", "gauge").add(1.5, session='a"b')
    text = render([fam])
    assert '# TYPE headcast_x_ms gauge\nheadcast_x_ms{session="a\\"b"} 1.5\n' in text
    assert quantile([1.0, 2.0, 3.0], 0.5) == 2.0
    assert np.isnan(quantile([], 0.5))
