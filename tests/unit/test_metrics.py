"""server/metrics without a server: the lock-free histogram against prometheus-client's
own, and the metrics settings' refusals."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from pydantic import ValidationError

from server.config import Settings
from server.metrics.hot import Timing


def buckets(text: str) -> dict[str, float]:
    (family,) = [f for f in text_string_to_metric_families(text) if f.type == "histogram"]
    return {s.labels["le"]: s.value for s in family.samples if s.name.endswith("_bucket")}


def test_timing_buckets_match_prometheus_client_histogram() -> None:
    bounds = (0.001, 0.01, 0.1)
    values = [0.0005, 0.001, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 2.0]
    reference = CollectorRegistry()
    histogram = Histogram("ref_seconds", "reference", buckets=bounds, registry=reference)
    timing = Timing(bounds)
    for v in values:
        histogram.observe(v)
        timing.observe(v)
    family = HistogramMetricFamily("ours_seconds", "ours")
    family.add_metric([], timing.cumulative(), timing.total)

    class One(Collector):
        def collect(self) -> Iterator[Metric]:
            yield family

    ours = CollectorRegistry()
    ours.register(One())
    expected = buckets(generate_latest(reference).decode())
    got = buckets(generate_latest(ours).decode())
    assert {float(k): v for k, v in got.items()} == {float(k): v for k, v in expected.items()}
    assert got["+Inf"] == len(values)
    assert timing.total == pytest.approx(sum(values))


def test_metrics_settings() -> None:
    assert Settings(metrics_token="").metrics_token is None  # an empty variable: unset
    with pytest.raises(ValidationError):
        Settings(metrics_token="too-short")
    with pytest.raises(ValidationError):
        Settings(metrics_port=70000)
    defaults = Settings()
    assert defaults.metrics_port is None and defaults.metrics_token is None
    assert defaults.metrics_host == "127.0.0.1"
