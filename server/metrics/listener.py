"""The metrics listener: ``GET /metrics`` on a port of its own (``METRICS_PORT``).

Why a port of its own: the load balancer forwards only the serving port, so what is
bound here is never reachable from the internet, and Prometheus must reach each node at
its own address anyway (through the balancer it would read a random node). It binds
``METRICS_HOST`` (127.0.0.1 by default: only the machine itself); in a cluster, the
private interface the scraper reaches.

A tiny HTTP/1.1 server on the node's own event loop (asyncio streams), not
prometheus-client's threaded one: the collectors read the node's live objects, which
only the loop's thread may touch. Every request is untrusted: its head is bounded in
size and time, anything but ``GET /metrics`` is answered 404 or 405, and the connection
closes after one answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from server.metrics import REGISTRY

log = logging.getLogger(__name__)

#: A scraper's request head is a few hundred bytes.
MAX_HEAD_BYTES = 8192
HEAD_TIMEOUT_S = 5.0


def render() -> bytes:
    """The node's metrics in the Prometheus text format."""
    return generate_latest(REGISTRY)


def _answer(status: str, body: bytes, content_type: str = "text/plain; charset=utf-8") -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT_S)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            writer.write(_answer("400 Bad Request", b"bad request\n"))
            return
        method, _, rest = head.split(b"\r\n", 1)[0].partition(b" ")
        target = rest.partition(b" ")[0].split(b"?", 1)[0]
        if target != b"/metrics":
            writer.write(_answer("404 Not Found", b"not found: try /metrics\n"))
        elif method not in (b"GET", b"HEAD"):
            writer.write(_answer("405 Method Not Allowed", b"GET only\n"))
        else:
            body = render()
            answer = _answer("200 OK", body, CONTENT_TYPE_LATEST)
            writer.write(answer if method == b"GET" else answer[: len(answer) - len(body)])
        with contextlib.suppress(ConnectionError):
            await asyncio.wait_for(writer.drain(), HEAD_TIMEOUT_S)
    except (ConnectionError, TimeoutError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


class MetricsListener:
    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Bind, or raise OSError (a port taken is a deployment error: fail loudly)."""
        self._server = await asyncio.start_server(
            _serve, self.host, self.port, limit=MAX_HEAD_BYTES
        )
        log.info("metrics on http://%s:%d/metrics", self.host, self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
