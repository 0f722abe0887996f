"""What a node counts, in the Prometheus format (prometheus-client).

Every metric of the node is declared in this package, once, on one ``REGISTRY`` that
``/metrics`` serves. Any package may import it (like ``server/types.py``): it imports
nothing of ours, and recording is a counter increment, never I/O.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

#: The node's registry: only Atelier's metrics (and the process collector), nothing a
#: test or a library registered on prometheus_client's global one.
REGISTRY = CollectorRegistry(auto_describe=True)

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
