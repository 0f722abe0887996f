"""What a node counts, in the Prometheus format (prometheus-client) — theory of operation.

Every metric of the node is declared in this package, once, on one ``REGISTRY`` that
``/metrics`` serves. Any package but ``sync/`` may import it (like ``server/types.py``):
it imports nothing of ours, and recording is a counter increment, never I/O.

Three kinds of recording, cheapest where it runs most often:

- **Read at scrape time** (``node.py``): what is a size (docs and rooms loaded, sockets
  by endpoint and role, queue depths) is read from the live objects when Prometheus
  asks, by a custom collector; nothing is counted on the way in or out.
- **The hot path** (``hot.py``): per update and per fanned-out frame, plain integer
  attributes and a lock-free histogram (the node runs one event loop), turned into
  Prometheus families at scrape time.
- **Everything else** (this module): prometheus-client counters and histograms for
  events that happen per socket, per batch or per message at most, with their label
  children bound here once when the label set is closed.

No label ever carries a room id, a user id or a doc name: a region holds hundreds of
thousands of rooms. Labels are small closed sets (endpoint, role, code, kind, outcome).
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)

# The ``_created`` series double every counter's lines and no dashboard reads them.
disable_created_metrics()

#: The node's registry: only Atelier's metrics (and the process collector), nothing a
#: test or a library registered on prometheus_client's global one.
REGISTRY = CollectorRegistry(auto_describe=True)

# The process's CPU, memory, file descriptors and Python's GC, as every exporter has them.
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

#: A limit that protected the service refused something (docs/operations.md, Limits).
#: ``limit`` names the setting: doc_bytes, docs_per_room, sockets_per_user,
#: sockets_per_node, preauth_timeout, memory_budget, ...
LIMIT_REFUSALS = Counter(
    "atelier_limit_refusals",
    "Requests refused by a limit that protects the service, by limit.",
    ["limit"],
    registry=REGISTRY,
)


def refused(limit: str) -> None:
    """Count one refusal by ``limit`` (a setting's name without its unit suffix)."""
    LIMIT_REFUSALS.labels(limit=limit).inc()


# --- sockets ---

SOCKET_CLOSES = Counter(
    "atelier_socket_closes",
    "Sockets this node closed, by close code (refusals, too slow, restarts).",
    ["code"],
    registry=REGISTRY,
)
#: The close codes a node sends (transport/codes.py), bound once; any other is "other".
_CLOSE_CODES = (1000, 1008, 1009, 1011, 1012, 1013, 4400, 4401, 4403)
_CLOSES = {code: SOCKET_CLOSES.labels(code=str(code)) for code in _CLOSE_CODES}
_CLOSE_OTHER = SOCKET_CLOSES.labels(code="other")


def closed(code: int) -> None:
    """Count one socket closed by this node with ``code``."""
    _CLOSES.get(code, _CLOSE_OTHER).inc()


#: Sockets held back at least once by their frame rate (transport/socket.py frames():
#: slowed, not closed; the closes for sustained abuse are limit refusals).
SOCKETS_SLOWED = Counter(
    "atelier_sockets_slowed",
    "Sockets whose reading was paused at least once for going over their frame rate.",
    registry=REGISTRY,
)


# --- persistence: the write-behind queue (persistence/writer.py) ---

WRITER_COMMIT_SECONDS = Histogram(
    "atelier_writer_commit_seconds",
    "Time of one group commit of queued doc updates (one transaction).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)
WRITER_COMMITTED = Counter(
    "atelier_writer_committed_updates",
    "Doc updates written to the database by the write-behind queue.",
    registry=REGISTRY,
)
WRITER_FAILURES = Counter(
    "atelier_writer_failures",
    "Group commits that failed (the batch stays queued and is retried).",
    registry=REGISTRY,
)

# --- the bus (bus/outbox.py, bus/redis.py) ---

BUS_RECONNECTS = Counter(
    "atelier_bus_reconnects",
    "Times the bus reconnected to Redis after losing it.",
    registry=REGISTRY,
)
BUS_PUBLISH_LAG = Histogram(
    "atelier_bus_publish_lag_seconds",
    "Time the oldest message of each outbox batch waited before it was sent.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0),
    registry=REGISTRY,
)
BUS_SEND_FAILURES = Counter(
    "atelier_bus_send_failures",
    "Outbox sends that failed (their messages are dropped; anti-entropy repairs).",
    registry=REGISTRY,
)
BUS_DROPPED = Counter(
    "atelier_bus_outbox_dropped",
    "Messages dropped because the outbox was full (the bus far behind the node).",
    registry=REGISTRY,
)

# --- anti-entropy (rooms/relay.py) ---

ANTIENTROPY_DIFFS = Counter(
    "atelier_antientropy_diffs",
    "Anti-entropy diffs between nodes: sent (what a peer lacked), received (a repair).",
    ["direction"],
    registry=REGISTRY,
)
DIFF_SENT = ANTIENTROPY_DIFFS.labels(direction="sent")
DIFF_RECEIVED = ANTIENTROPY_DIFFS.labels(direction="received")

# --- chat, notifications ---

CHAT_POSTS = Counter(
    "atelier_chat_posts",
    "Chat messages posted on this node (stored), by the poster's role.",
    ["role"],
    registry=REGISTRY,
)
_POSTS = {role: CHAT_POSTS.labels(role=role) for role in ("student", "teacher", "parent")}


def posted(role: str) -> None:
    """Count one chat message posted by a user of ``role``."""
    child = _POSTS.get(role)
    if child is not None:
        child.inc()


NOTIFICATIONS = Counter(
    "atelier_notifications",
    "Notifications: written to the feed, or POSTed to the ENT webhook; by outcome.",
    ["channel", "outcome"],
    registry=REGISTRY,
)
FEED_SENT = NOTIFICATIONS.labels(channel="feed", outcome="sent")
FEED_FAILED = NOTIFICATIONS.labels(channel="feed", outcome="failed")
WEBHOOK_SENT = NOTIFICATIONS.labels(channel="webhook", outcome="sent")
WEBHOOK_FAILED = NOTIFICATIONS.labels(channel="webhook", outcome="failed")


# The hot path's counts and the node's sizes, read at scrape time (hot.py, node.py).
from server.metrics import hot, node  # noqa: E402

REGISTRY.register(hot.HotCollector())
REGISTRY.register(node.COLLECTOR)
