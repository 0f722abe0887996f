"""The Redis bus — theory of operation.

One Redis pub/sub channel per topic (``atelier:t:doc:{room}/{doc}``), subscribed only
while this node holds the doc, plus one channel per node (``atelier:n:{node}``) for
messages addressed to it (anti-entropy replies). Payloads are msgpack envelopes.

redis-py does not resubscribe reliably after a connection loss, so this module owns the
loop: one task reads the subscription; on any error it waits (backoff up to 2 s), opens
a new subscription for every channel currently wanted, and then calls the reconnect
hooks — the registry answers by running anti-entropy on every loaded doc, because
whatever was published while we were away is lost for us. ``health_check_interval``
makes a silent dead connection show up as an error within seconds.

Liveness: every node keeps a key ``atelier:node:{id}`` alive with a TTL (heartbeats);
``alive()`` reads those keys so the other nodes can purge a dead node's awareness
states. A clean shutdown deletes the key at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Iterable

from redis import asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from server import metrics
from server.bus.base import Envelope, Handler, ReconnectHook
from server.types import NodeId

log = logging.getLogger(__name__)


class RedisBus:
    def __init__(
        self,
        url: str,
        node_id: NodeId,
        *,
        prefix: str = "atelier:",
        heartbeat_s: float = 5.0,
        node_ttl_s: float = 15.0,
    ) -> None:
        self.node_id = node_id
        self.prefix = prefix
        self.heartbeat_s = heartbeat_s
        self.node_ttl_s = node_ttl_s
        self._url = url
        self._redis = aioredis.Redis.from_url(
            url,
            decode_responses=False,
            socket_connect_timeout=2,
            socket_timeout=5,
            health_check_interval=5,
            # After a Redis restart the pool holds dead connections: retry on a fresh one.
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 3),
            retry_on_error=[RedisConnectionError, RedisTimeoutError],
        )
        self._handlers: dict[str, Handler] = {}
        self._hooks: list[ReconnectHook] = []
        self._pubsub: aioredis.client.PubSub | None = None
        self._subscribed: set[bytes] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        self.connected = asyncio.Event()

    # --- names ---

    def _topic_channel(self, topic: str) -> bytes:
        return f"{self.prefix}t:{topic}".encode()

    def _node_channel(self, node: str) -> bytes:
        return f"{self.prefix}n:{node}".encode()

    def _node_key(self, node: str) -> str:
        return f"{self.prefix}node:{node}"

    # --- lifecycle ---

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._listen(), name="redis-bus-listen"),
            loop.create_task(self._heartbeat(), name="redis-bus-heartbeat"),
        ]
        # Start serving even if Redis is down: the node works locally and catches up
        # (anti-entropy) once the bus is back. /readyz reports the outage meanwhile.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.connected.wait(), 5)

    async def close(self) -> None:
        self._closed = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            await self._redis.delete(self._node_key(self.node_id))
        with contextlib.suppress(Exception):
            await self._redis.aclose()

    # --- sending ---

    async def publish(self, topic: str, kind: str, payload: bytes) -> None:
        env = Envelope(self.node_id, kind, payload, topic)
        await self._redis.publish(self._topic_channel(topic), env.pack())

    async def publish_many(self, items: Iterable[tuple[str, str, bytes]]) -> None:
        pipe = self._redis.pipeline(transaction=False)
        n = 0
        for topic, kind, payload in items:
            pipe.publish(
                self._topic_channel(topic), Envelope(self.node_id, kind, payload, topic).pack()
            )
            n += 1
        if n:
            await pipe.execute()

    async def send_to(self, node: NodeId, topic: str, kind: str, payload: bytes) -> None:
        env = Envelope(self.node_id, kind, payload, topic)
        await self._redis.publish(self._node_channel(node), env.pack())

    # --- receiving ---

    async def subscribe(self, topic: str, handler: Handler) -> None:
        self._handlers[topic] = handler
        channel = self._topic_channel(topic)
        if self._pubsub is not None and channel not in self._subscribed:
            try:
                await self._pubsub.subscribe(channel)
                self._subscribed.add(channel)
            except (RedisError, OSError):
                pass  # the listen loop resubscribes everything when it reconnects

    async def unsubscribe(self, topic: str) -> None:
        self._handlers.pop(topic, None)
        channel = self._topic_channel(topic)
        if self._pubsub is not None and channel in self._subscribed:
            self._subscribed.discard(channel)
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.unsubscribe(channel)

    def on_reconnect(self, hook: ReconnectHook) -> None:
        self._hooks.append(hook)

    async def _listen(self) -> None:
        backoff = 0.1
        first = True
        node_channel = self._node_channel(self.node_id)
        while not self._closed:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                wanted = {node_channel, *(self._topic_channel(t) for t in self._handlers)}
                await pubsub.subscribe(*wanted)
                self._pubsub = pubsub
                self._subscribed = set(wanted)
                # Topics subscribed while we were connecting:
                late = {self._topic_channel(t) for t in self._handlers} - self._subscribed
                if late:
                    await pubsub.subscribe(*late)
                    self._subscribed |= late
                self.connected.set()
                if not first:
                    log.info("bus reconnected to Redis (%d channels)", len(self._subscribed))
                    metrics.BUS_RECONNECTS.inc()
                    await self._run_hooks()
                first = False
                backoff = 0.1
                while not self._closed:
                    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if msg is not None and msg.get("type") == "message":
                        await self._dispatch(msg["channel"], msg["data"])
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                if self.connected.is_set():
                    log.warning("bus lost Redis: %s; reconnecting", type(exc).__name__)
                self.connected.clear()
                self._pubsub = None
                self._subscribed = set()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def _run_hooks(self) -> None:
        for hook in self._hooks:
            try:
                result = hook()
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("bus reconnect hook failed")

    async def _dispatch(self, channel: bytes, data: bytes) -> None:
        try:
            env = Envelope.unpack(data)
        except ValueError as exc:
            log.warning("dropped a bus message on %r: %s", channel[:80], exc)
            return
        if env.origin == self.node_id:
            return  # our own echo
        handler = self._handlers.get(env.topic)
        if handler is None:
            return
        try:
            result = handler(env.topic, env)
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("bus handler failed on %s", env.topic)

    # --- liveness ---

    async def _heartbeat(self) -> None:
        key = self._node_key(self.node_id)
        ttl_ms = int(self.node_ttl_s * 1000)
        while not self._closed:
            with contextlib.suppress(RedisError, OSError):
                await self._redis.set(key, b"1", px=ttl_ms)
            await asyncio.sleep(self.heartbeat_s)

    async def alive(self, nodes: set[NodeId]) -> set[NodeId]:
        if not nodes:
            return set()
        ordered = sorted(nodes)
        try:
            pipe = self._redis.pipeline(transaction=False)
            for node in ordered:
                pipe.exists(self._node_key(node))
            found = await pipe.execute()
        except (RedisError, OSError):
            return set(nodes)  # our own outage says nothing about the others
        return {node for node, n in zip(ordered, found, strict=True) if n}

    async def ping(self) -> None:
        if not self.connected.is_set():
            raise ConnectionError("bus not subscribed")
        await self._redis.ping()
