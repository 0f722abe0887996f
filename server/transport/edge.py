"""The outermost ASGI layer — theory of operation.

Every request enters here, once. HTTP goes on to the Starlette application, with
``X-Atelier-Node`` added to each response (operators see which node served a request
behind the balancer; the tests check room affinity with it) and ``X-Request-Id``: the
proxy's when it comes from TRUSTED_PROXIES and is well-formed, else one made here — the
id every log line of the request carries (``logctx``). WebSockets are routed
here and only here: the application has no WebSocket routes. A socket's path is matched
against ``SocketRoute``s (Starlette's own path syntax and matcher); the endpoint is
called with one :class:`~server.transport.socket.ClientSocket` that carries everything
the lower layers need (path parameters, the node header, the direct send path), and the
application's context. An unknown socket path goes to the application, whose router
refuses it.

Socket endpoints are called directly, not through the framework's middleware and
router: a socket lives for hours, and each of those layers keeps a coroutine frame alive
for all that time (~4 KiB per idle socket), and wraps every frame sent (measured with
py-spy, bench/).
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.routing import compile_path
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from server import metrics
from server.transport import logctx
from server.transport.codes import Close
from server.transport.protocol import AtelierWebSocketProtocol
from server.transport.socket import ClientSocket

log = logging.getLogger(__name__)

SocketEndpoint = Callable[[ClientSocket, Any], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class SocketRoute:
    path: str
    endpoint: SocketEndpoint

    @property
    def regex(self) -> re.Pattern[str]:
        return compile_path(self.path)[0]


class Edge:
    def __init__(
        self,
        app: Starlette,
        node_id: str,
        sockets: Sequence[SocketRoute] = (),
        *,
        max_sockets: int | None = None,
        trusted_proxies: str | None = None,
    ) -> None:
        self.app = app
        self.state = app.state
        self.header = (b"x-atelier-node", node_id.encode("latin-1", "replace"))
        self._sockets = [(route.regex, route.endpoint) for route in sockets]
        #: Sockets in an endpoint now, admitted or not (``max_sockets_per_node``).
        self.open_sockets = 0
        self.max_sockets = max_sockets
        # Behind TRUSTED_PROXIES, uvicorn has already replaced the scope's client with
        # the forwarded address, so the proxy cannot be recognised here by its address:
        # a deployment that names a proxy says every request comes through it, and the
        # proxy sets (overwrites) X-Request-Id (nginx: `proxy_set_header X-Request-Id
        # $request_id`).
        self._trust_request_id = bool((trusted_proxies or "").strip())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            rid = self._request_id(scope)
            logctx.request_id.set(rid)
            return await self.app(scope, receive, self._named(send, rid))
        if kind == "websocket":
            logctx.request_id.set(self._request_id(scope))
            logctx.conn_id.set(logctx.new_id())
            route = self._match(scope["path"])
            if route is not None:
                return await self._socket(scope, receive, send, *route)
        return await self.app(scope, receive, send)

    def _request_id(self, scope: Scope) -> str:
        """The trusted proxy's X-Request-Id when well-formed, else a new one. Without a
        proxy it is ignored: a client must not choose what its lines are filed under."""
        if self._trust_request_id:
            for name, value in scope.get("headers", ()):
                if name == b"x-request-id":
                    text = value.decode("latin-1")
                    if logctx.REQUEST_ID_RE.fullmatch(text):
                        return text
                    break
        return logctx.new_id()

    def _named(self, send: Send, request_id: str) -> Send:
        echoed = (b"x-request-id", request_id.encode("ascii"))

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = dict(message)
                message["headers"] = [*message.get("headers", []), self.header, echoed]
            await send(message)

        return send_with_header

    def _match(self, path: str) -> tuple[SocketEndpoint, dict[str, str]] | None:
        for regex, endpoint in self._sockets:
            m = regex.match(path)
            if m is not None:
                return endpoint, m.groupdict()
        return None

    async def _socket(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        endpoint: SocketEndpoint,
        params: dict[str, str],
    ) -> None:
        scope["app"] = self.app
        scope["path_params"] = params
        # Under `atelier serve`, uvicorn's send is our protocol's bound method: the
        # direct path. Elsewhere (another server, a test client) sends are awaited.
        owner = getattr(send, "__self__", None)
        direct = owner if isinstance(owner, AtelierWebSocketProtocol) else None
        ws = WebSocket(scope, receive, send)
        if self.max_sockets is not None and self.open_sockets >= self.max_sockets:
            # Counted before any check: the limit protects the node from sockets that
            # never authorise as much as from admitted ones. Accepted, so that the close
            # code and its reason reach the client (a refused upgrade is a bare 403).
            metrics.refused("sockets_per_node")
            log.warning("refused a socket: %d sockets open on this node", self.open_sockets)
            with contextlib.suppress(Exception):
                await ws.accept(headers=[self.header])
                await ws.close(Close.TRY_LATER, "node at capacity, try again later")
            return
        sock = ClientSocket(ws, params, send, node_header=self.header, direct=direct)
        self.open_sockets += 1
        try:
            await endpoint(sock, self.state.ctx)
        except Exception:
            log.exception("socket endpoint failed on %s", scope["path"])
            with contextlib.suppress(Exception):
                await ws.close(Close.INTERNAL, "internal error")
        finally:
            self.open_sockets -= 1
