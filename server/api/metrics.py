"""``/metrics`` on the serving port, and what the node's scrape-time gauges read.

The serving port is the public one (the load balancer forwards it), so ``/metrics``
there is refused unless ``METRICS_TOKEN`` is set: 404 without it (the path does not
exist for the public), 401 to a request without the bearer token. The usual way is the
listener of its own (``METRICS_PORT``, server/metrics/listener.py); the token is for a
deployment whose scraper reaches each node only on its serving port.
"""

from __future__ import annotations

import hmac

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from server.api import rest
from server.context import AppContext
from server.metrics.listener import render
from server.metrics.node import Readings


async def metrics(request: Request) -> Response:
    """The node's metrics (Prometheus text format), to the bearer of METRICS_TOKEN only."""
    ctx: AppContext = request.app.state.ctx
    expected = ctx.settings.metrics_token
    if not expected:
        return rest.error(404, "not_found", "no such endpoint")
    header = request.headers.get("authorization", "")
    given = header[7:].strip() if header.lower().startswith("bearer ") else ""
    if not hmac.compare_digest(given.encode(), expected.encode()):
        response: JSONResponse = rest.error(401, "unauthenticated", "metrics token required")
        response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return Response(render(), media_type=CONTENT_TYPE_LATEST)


def readings(ctx: AppContext) -> Readings:
    """What the node's gauges read at each scrape (server/metrics/node.py)."""
    revocations = ctx.revocations
    outbox = ctx.registry.outbox  # the node's one outbox
    return Readings(
        docs_loaded=lambda: len(ctx.registry.docs),
        rooms_loaded=lambda: len(ctx.live.rooms),
        sockets=ctx.sockets.counts,
        writer_pending=lambda: ctx.registry.writer.pending,
        outbox_pending=outbox.__len__,
        outbox_age_s=outbox.oldest_age,
        revocations=lambda: (revocations.closed, revocations.regraded),
        admissions=lambda: (ctx.admission.in_flight, ctx.admission.waiting),
        loads=lambda: (ctx.registry.loads.in_flight, ctx.registry.loads.waiting),
    )
