"""Liveness and readiness."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse

from server.persistence.db import ping


async def healthz(request: Request) -> JSONResponse:
    """The process answers."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    """200 when the database and the bus answer, the node is not draining and within its
    memory budget; else 503 with the reason (the load balancer sends new clients on)."""
    ctx = request.app.state.ctx
    checks: dict[str, str] = {}
    if ctx.draining:
        return JSONResponse({"status": "draining"}, status_code=503)
    for name, probe in (("database", ping(ctx.engine)), ("bus", ctx.bus.ping())):
        try:
            await asyncio.wait_for(probe, timeout=2.0)
            checks[name] = "ok"
        except Exception as exc:
            checks[name] = f"down ({type(exc).__name__})"
    over = ctx.registry.budget.over()
    checks["memory"] = "ok" if over is None else over
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "unavailable", **checks},
        status_code=200 if ready else 503,
    )
