"""The Starlette application: routes and one lifespan."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from server.api import health, rest
from server.api.yjs import yjs_endpoint
from server.bus import create_bus
from server.config import Settings, get_settings
from server.context import AppContext
from server.live.endpoint import live_endpoint
from server.live.hub import LiveHub
from server.persistence.chat import ChatStore
from server.persistence.db import create_engine
from server.persistence.docs import DocStore
from server.persistence.roster import Roster
from server.rooms.registry import RoomRegistry

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


def create_app(settings: Settings | None = None) -> NodeHeader:
    settings = settings or get_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url)
        store = DocStore(engine)
        bus = create_bus(settings)
        await bus.start()
        registry = RoomRegistry(settings, store, bus)
        await registry.start()
        chat = ChatStore(engine)
        live = LiveHub(settings, chat, bus)
        await live.start()
        registry.on_saved = live.doc_saved
        ctx = AppContext(
            settings=settings,
            engine=engine,
            store=store,
            roster=Roster(engine),
            bus=bus,
            registry=registry,
            chat=chat,
            live=live,
            jwt_secret=settings.resolved_jwt_secret(),
        )
        app.state.ctx = ctx
        log.info("node %s ready", settings.node_id)
        try:
            yield
        finally:
            ctx.draining = True
            await live.close()
            ok = await registry.close(settings.shutdown_grace_s)
            await bus.close()
            await engine.dispose()
            log.info("node %s stopped (%s)", settings.node_id, "flushed" if ok else "NOT flushed")

    routes = [
        Route("/healthz", health.healthz),
        Route("/readyz", health.readyz),
        WebSocketRoute("/yjs/{room_id}/{doc_name}", yjs_endpoint),
        WebSocketRoute("/rooms/{room_id}/live", live_endpoint),
        *rest.routes,
    ]
    root = _client_root(settings)
    if root is not None:
        routes.append(Mount("/", StaticFiles(directory=root, html=True), name="client"))
    else:
        routes.append(Route("/", _client_missing))
    sockets = {"yjs": yjs_endpoint, "live": live_endpoint}
    return NodeHeader(Starlette(routes=routes, lifespan=lifespan), settings.node_id, sockets)


class NodeHeader:
    """The outermost ASGI layer: names the node, and gives sockets a short send path.

    HTTP: adds ``X-Atelier-Node`` to every response (operators see which node served a
    request behind the balancer; the tests check room affinity with it). WebSockets: the
    endpoints add the header to their handshake themselves, and the server's own
    ``send`` is kept in the scope as ``atelier.send``: frames to a socket then skip the
    framework's per-message wrappers (error middleware, exception handlers), which cost
    more than the frame itself on the broadcast path (measured with py-spy, bench/).
    """

    def __init__(
        self,
        app: Starlette,
        node_id: str,
        sockets: Mapping[str, Callable[[WebSocket], Awaitable[None]]] | None = None,
    ) -> None:
        self.app = app
        self.state = app.state
        self.header = (b"x-atelier-node", node_id.encode("latin-1", "replace"))
        self.sockets = dict(sockets or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            scope["atelier.send"] = send
            scope["atelier.node_header"] = self.header
            endpoint, params = self._socket_route(scope["path"])
            if endpoint is None:
                return await self.app(scope, receive, send)
            # The two socket endpoints are called directly, not through the framework's
            # middleware and router: a socket lives for hours, and each of those layers
            # keeps a coroutine frame alive for all that time (~4 KiB per idle socket).
            scope["app"] = self.app
            scope["path_params"] = params
            ws = WebSocket(scope, receive, send)
            try:
                await endpoint(ws)
            except Exception:
                log.exception("socket endpoint failed on %s", scope["path"].split("?")[0])
                with contextlib.suppress(Exception):
                    await ws.close(1011, "internal error")
            return None
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = dict(message)
                message["headers"] = [*message.get("headers", []), self.header]
            await send(message)

        await self.app(scope, receive, send_with_header)

    def _socket_route(
        self, path: str
    ) -> tuple[Callable[[WebSocket], Awaitable[None]] | None, dict[str, str]]:
        parts = path.split("/")
        # "/yjs/{room_id}/{doc_name}" and "/rooms/{room_id}/live"
        if len(parts) == 4 and parts[0] == "":
            if parts[1] == "yjs" and "yjs" in self.sockets:
                return self.sockets["yjs"], {"room_id": parts[2], "doc_name": parts[3]}
            if parts[1] == "rooms" and parts[3] == "live" and "live" in self.sockets:
                return self.sockets["live"], {"room_id": parts[2]}
        return None, {}
