"""The hot path's counts: plain attributes written per update, read at scrape time.

prometheus-client's ``Counter.inc`` and ``Histogram.observe`` take a lock and, through
``.labels()``, a dict lookup: fine per socket, too much per keystroke times thirty
sockets. Here an update costs attribute additions and, per histogram, one ``bisect``
over a dozen bounds. No lock: the node's code runs on one event loop, and a scrape
(which only reads) sees at worst a count one update behind another.

``HotCollector`` turns them into Prometheus families when ``/metrics`` is read.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

#: Seconds; a keystroke's apply and fan-out take tens of microseconds, a big paste or a
#: room of 40 on a loaded node milliseconds.
SPAN_BUCKETS = (
    0.00001,
    0.000025,
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.1,
)


class Timing:
    """A histogram without a lock: ``observe`` is a bisect and two additions."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...] = SPAN_BUCKETS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        # bisect_left: a value equal to a bound counts in that bound's bucket (le=).
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.total += seconds

    def cumulative(self) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        running = 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += n
            out.append(("+Inf" if bound == float("inf") else repr(bound), running))
        return out


class DocTraffic:
    """Updates into this node's docs and frames out of them (rooms/registry.py,
    rooms/livedoc.py)."""

    __slots__ = (
        "bus_bytes",
        "bus_updates",
        "bytes_out",
        "client_bytes",
        "client_updates",
        "frames_out",
    )

    def __init__(self) -> None:
        self.client_updates = 0
        self.client_bytes = 0
        self.bus_updates = 0
        self.bus_bytes = 0
        self.frames_out = 0
        self.bytes_out = 0


TRAFFIC = DocTraffic()


class SocketWrites:
    """The direct send path (transport/protocol.py): frames it wrote, and the socket
    writes that carried them — one per socket per loop turn with frames for it, so
    ``frames / writes`` is how much a turn's frames were coalesced."""

    __slots__ = ("frames", "writes")

    def __init__(self) -> None:
        self.frames = 0
        self.writes = 0


WRITES = SocketWrites()
#: Decode, check and apply of a client's update (its whole frame), or apply of a bus one.
APPLY_CLIENT = Timing()
APPLY_BUS = Timing()
#: The same bytes handed to every other socket on the doc.
FANOUT_CLIENT = Timing()
FANOUT_BUS = Timing()


class HotCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        t = TRAFFIC
        updates = CounterMetricFamily(
            "atelier_doc_updates_received",
            "Yjs updates integrated into this node's docs, by origin (client: a socket "
            "here or a change made on a user's behalf; bus: another node).",
            labels=["origin"],
        )
        updates.add_metric(["client"], t.client_updates)
        updates.add_metric(["bus"], t.bus_updates)
        yield updates
        size = CounterMetricFamily(
            "atelier_doc_update_bytes_received",
            "Bytes of the Yjs updates integrated into this node's docs, by origin.",
            labels=["origin"],
        )
        size.add_metric(["client"], t.client_bytes)
        size.add_metric(["bus"], t.bus_bytes)
        yield size
        yield CounterMetricFamily(
            "atelier_doc_frames_sent",
            "Doc frames (updates, awareness) handed to this node's sockets by fan-out.",
            value=t.frames_out,
        )
        yield CounterMetricFamily(
            "atelier_doc_bytes_sent",
            "Bytes of the doc frames handed to this node's sockets by fan-out.",
            value=t.bytes_out,
        )
        yield CounterMetricFamily(
            "atelier_direct_frames_sent",
            "Frames written by the direct (await-free) send path, to any socket.",
            value=WRITES.frames,
        )
        yield CounterMetricFamily(
            "atelier_direct_writes",
            "Socket writes made by the direct send path: one per socket per event-loop "
            "turn that had frames for it (frames_sent / writes: frames per write).",
            value=WRITES.writes,
        )
        for name, doc, client, bus in (
            (
                "atelier_doc_apply_seconds",
                "Time to apply one update: a client's frame decoded, checked and applied; "
                "a bus update applied.",
                APPLY_CLIENT,
                APPLY_BUS,
            ),
            (
                "atelier_doc_fanout_seconds",
                "Time to hand one update to every other socket on its doc.",
                FANOUT_CLIENT,
                FANOUT_BUS,
            ),
        ):
            family = HistogramMetricFamily(name, doc, labels=["origin"])
            family.add_metric(["client"], client.cumulative(), client.total)
            family.add_metric(["bus"], bus.cumulative(), bus.total)
            yield family
