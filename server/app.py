"""The Starlette application: routes and one lifespan."""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from server.api import admin as admin_api
from server.api import assignments as assignments_api
from server.api import audit as audit_api
from server.api import auth as auth_api
from server.api import groups as groups_api
from server.api import health, rest
from server.api import metrics as metrics_api
from server.api import notifications as notifications_api
from server.api import policy as policy_api
from server.api import privacy as privacy_api
from server.api import progress as progress_api
from server.api import revocations as revocations_api
from server.api import works as works_api
from server.api.access import recheck
from server.api.collab import collab_endpoint
from server.api.live import live_endpoint
from server.api.yjs import yjs_endpoint
from server.assignments.service import Assignments
from server.auth.tokens import Verifier
from server.bus import create_bus
from server.bus.outbox import Outbox
from server.bus.watch import NodeWatch
from server.config import Settings, get_settings
from server.context import AppContext
from server.live.hub import LiveHub
from server.metrics import node as node_metrics
from server.metrics.listener import MetricsListener
from server.notifications.feed import Notifier
from server.notifications.webhook import Webhook
from server.persistence.assignments import AssignmentStore
from server.persistence.chat import ChatStore
from server.persistence.db import create_engine
from server.persistence.docs import DocStore
from server.persistence.groups import GroupStore
from server.persistence.notifications import NotificationStore
from server.persistence.revoked import RevokedStore
from server.persistence.roster import Roster
from server.persistence.sessions import SessionStore
from server.persistence.versions import VersionStore
from server.privacy.erasure import Erasure
from server.privacy.retention import Retention
from server.progress.service import Progress
from server.revocation.service import Revocations
from server.revocation.sockets import SocketIndex
from server.rooms.registry import RoomRegistry
from server.sessions.oidc import EntProvider
from server.sessions.service import Sessions
from server.transport.edge import Edge, SocketRoute

log = logging.getLogger(__name__)

CLIENT_DIR = Path(__file__).resolve().parent.parent / "client_demo"


def _client_root(settings: Settings) -> Path | None:
    """The built web client: ATELIER_CLIENT_DIR, else client_demo/dist beside the code."""
    root = settings.client_dir or CLIENT_DIR / "dist"
    return root if (root / "index.html").exists() else None


async def _client_missing(request: Request) -> HTMLResponse:
    # Never serve the client's sources: without a build, say how to make one.
    return HTMLResponse(
        "<!doctype html><html lang=fr><meta charset=utf-8><title>Atelier</title>"
        "<main><h1>Atelier</h1><p>Le serveur fonctionne, mais le client web n'est pas "
        "construit : lancez <code>make client</code> (ou <code>make run</code>).</p>"
        "<p lang=en>The server runs; the web client is not built: run "
        "<code>make client</code>.</p></main>",
        status_code=503,
    )


def _chat_changed(live: LiveHub, room_id: str, messages: list[dict[str, Any]]) -> None:
    """Messages rewritten outside the channel (an erasure): shown to who has it open."""
    room = live.rooms.get(room_id)
    if room is not None:
        for message in messages:
            room.accept(message)


def create_app(settings: Settings | None = None) -> Edge:
    settings = settings or get_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # First, so that a metrics port already taken stops the node before anything runs.
        listener = None
        if settings.metrics_port is not None:
            listener = MetricsListener(settings.metrics_host, settings.metrics_port)
            await listener.start()
        secret = settings.resolved_jwt_secret()
        verifier = Verifier.from_settings(settings, secret)
        await verifier.start()  # the ENT's keys, when JWKS_URL is set (never fatal)
        engine = create_engine(settings.database_url)
        store = DocStore(engine)
        bus = create_bus(settings)
        await bus.start()
        outbox = Outbox(bus)
        outbox.start()
        watch = NodeWatch(bus, settings.node_heartbeat_s)
        registry = RoomRegistry(settings, store, outbox, watch)
        chat = ChatStore(engine)
        live = LiveHub(settings, chat, outbox, watch)
        registry.on_saved = live.doc_saved
        registry.on_lock = live.doc_locked
        roster = Roster(engine)
        versions = VersionStore(engine)
        progress = Progress(settings, registry, store, versions, roster, live.class_progress)
        notifications = NotificationStore(engine)
        webhook = Webhook(settings, notifications) if settings.ent_webhook_url else None
        notifier = Notifier(notifications, outbox=webhook is not None, push=live.notify)
        if webhook is not None:
            notifier.on_written = webhook.wake
        assignments = Assignments(
            settings,
            AssignmentStore(engine, versions),
            registry,
            store,
            roster,
            notifier,
            progress,
            outbox,
        )
        assignments.room_event = live.room_event
        assignments.teacher_event = live.class_teachers
        registry.watchers.append(assignments)
        sockets = SocketIndex()
        revocations = Revocations(outbox, sockets, RevokedStore(engine))
        await registry.start()
        await live.start()
        progress.start()
        await assignments.start()
        await revocations.start()
        if webhook is not None:
            webhook.start()
        sessions = Sessions(settings, SessionStore(engine), bus, outbox)
        await sessions.start()
        erasure = Erasure(
            engine,
            outbox,
            progress,
            sessions,
            revocations,
            settings.node_id,
            settings.erasure_settle_s,
        )
        erasure.chat_rooms = lambda: [room.room_id for room in live.rooms.values()]
        erasure.chat_changed = functools.partial(_chat_changed, live)
        await erasure.start()
        retention = Retention(settings, engine, settings.node_id)
        retention.start()
        watch.start()
        ctx = AppContext(
            settings=settings,
            engine=engine,
            store=store,
            roster=roster,
            bus=bus,
            registry=registry,
            chat=chat,
            live=live,
            progress=progress,
            assignments=assignments,
            notifications=notifications,
            groups=GroupStore(engine),
            sockets=sockets,
            revocations=revocations,
            jwt_secret=secret,
            verifier=verifier,
            sessions=sessions,
            ent=EntProvider(settings) if settings.oidc_enabled else None,
            erasure=erasure,
        )
        erasure.forget = ctx.forget
        revocations.forget = ctx.forget
        revocations.forget_all = ctx.forget_all
        sessions.on_end.append(revocations.session_ended_here)
        revocations.recheck = functools.partial(recheck, ctx)
        app.state.ctx = ctx
        readings = metrics_api.readings(ctx)
        node_metrics.bind(readings)
        log.info("node %s ready", settings.node_id)
        try:
            yield
        finally:
            ctx.draining = True
            if listener is not None:
                await listener.close()
            node_metrics.unbind(readings)
            await watch.close()
            await retention.close()
            await erasure.close()
            await sessions.close()
            if webhook is not None:
                await webhook.close()
            await revocations.close()
            await assignments.close()
            await progress.close()
            await live.close()
            ok = await registry.close(settings.shutdown_grace_s)
            await outbox.close()
            await bus.close()
            await engine.dispose()
            await verifier.close()
            log.info("node %s stopped (%s)", settings.node_id, "flushed" if ok else "NOT flushed")

    routes: list[BaseRoute] = [
        Route("/healthz", health.healthz),
        Route("/readyz", health.readyz),
        Route("/metrics", metrics_api.metrics),
        *rest.routes,
        *auth_api.routes,
        *progress_api.routes,
        *assignments_api.routes,
        *groups_api.routes,
        *revocations_api.routes,
        *works_api.routes,
        *notifications_api.routes,
        *admin_api.routes,
        *privacy_api.routes,
        *audit_api.routes,
        *policy_api.routes,
    ]
    root = _client_root(settings)
    if root is not None:
        routes.append(Mount("/", StaticFiles(directory=root, html=True), name="client"))
    else:
        routes.append(Route("/", _client_missing))
    sockets = [
        SocketRoute("/yjs/{room_id}/{doc_name}", yjs_endpoint),
        SocketRoute("/rooms/{room_id}/live", live_endpoint),
        SocketRoute("/collab", collab_endpoint),
    ]
    return Edge(
        Starlette(routes=routes, lifespan=lifespan),
        settings.node_id,
        sockets,
        max_sockets=settings.max_sockets_per_node,
        trusted_proxies=settings.trusted_proxies,
    )
