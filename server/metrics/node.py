"""Gauges read at scrape time from the node's own objects.

A size is read where it lives (``len`` of the registry of docs, of the outbox, ...)
when Prometheus asks, instead of a gauge moved up and down on every join and leave: it
costs nothing between scrapes and can never drift from the truth.

The app binds one ``Readings`` per node when its lifespan starts (``bind``) and unbinds
it when it stops; between two, the collector yields nothing of the node's own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

#: (endpoint, role, sockets) for each pair that has any.
SocketCounts = Callable[[], Iterable[tuple[str, str, int]]]


@dataclass(frozen=True, slots=True)
class Readings:
    docs_loaded: Callable[[], int]
    rooms_loaded: Callable[[], int]
    sockets: SocketCounts
    writer_pending: Callable[[], int]
    outbox_pending: Callable[[], int]
    #: Seconds the oldest message in the outbox has waited (0 when empty).
    outbox_age_s: Callable[[], float]
    #: (sockets closed, sockets regraded read-only) by revocations on this node.
    revocations: Callable[[], tuple[int, int]]
    #: (in flight, waiting): socket admissions (server/admission/), and doc loads.
    admissions: Callable[[], tuple[int, int]] = lambda: (0, 0)
    loads: Callable[[], tuple[int, int]] = lambda: (0, 0)


#: Every endpoint and role, so a series exists (at 0) before its first socket: a
#: dashboard's rate() and a "sum by" see the whole closed set.
ENDPOINTS = ("yjs", "live", "collab")
ROLES = ("student", "teacher", "parent", "admin")


class NodeCollector(Collector):
    def __init__(self) -> None:
        self.readings: Readings | None = None

    def collect(self) -> Iterator[Metric]:
        r = self.readings
        if r is None:
            return
        yield GaugeMetricFamily(
            "atelier_docs_loaded", "Docs held in memory by this node.", value=r.docs_loaded()
        )
        yield GaugeMetricFamily(
            "atelier_rooms_loaded",
            "Room channels (chat, presence) held by this node.",
            value=r.rooms_loaded(),
        )
        sockets = GaugeMetricFamily(
            "atelier_sockets",
            "Open, admitted client sockets, by endpoint (yjs, live; collab: the docs open "
            "over /collab sockets) and role.",
            labels=["endpoint", "role"],
        )
        counts = {(e, role): 0 for e in ENDPOINTS for role in ROLES}
        for endpoint, role, n in r.sockets():
            if (endpoint, role) in counts:
                counts[(endpoint, role)] += n
        for (endpoint, role), n in counts.items():
            sockets.add_metric([endpoint, role], n)
        yield sockets
        yield GaugeMetricFamily(
            "atelier_writer_queue_depth",
            "Doc updates queued for the database, not yet committed.",
            value=r.writer_pending(),
        )
        yield GaugeMetricFamily(
            "atelier_bus_outbox_depth",
            "Messages queued in the outbox for the bus, not yet sent.",
            value=r.outbox_pending(),
        )
        yield GaugeMetricFamily(
            "atelier_bus_outbox_age_seconds",
            "How long the oldest message in the outbox has waited (0 when empty).",
            value=r.outbox_age_s(),
        )
        for name, what, (in_flight, waiting) in (
            ("atelier_admission", "Socket admissions (accept to first sync)", r.admissions()),
            ("atelier_doc_loads", "Doc loads from the database", r.loads()),
        ):
            yield GaugeMetricFamily(f"{name}_in_flight", f"{what}: running now.", value=in_flight)
            yield GaugeMetricFamily(
                f"{name}_waiting", f"{what}: waiting for a slot, in line.", value=waiting
            )
        closed, regraded = r.revocations()
        revocations = CounterMetricFamily(
            "atelier_revocations",
            "Sockets touched by revocations on this node: closed, or regraded read-only.",
            labels=["outcome"],
        )
        revocations.add_metric(["closed"], closed)
        revocations.add_metric(["regraded"], regraded)
        yield revocations


COLLECTOR = NodeCollector()


def bind(readings: Readings) -> None:
    """This node's objects, read from now on at every scrape."""
    COLLECTOR.readings = readings


def unbind(readings: Readings) -> None:
    """The node stopped; nothing read any more (unless another node bound since)."""
    if COLLECTOR.readings is readings:
        COLLECTOR.readings = None
