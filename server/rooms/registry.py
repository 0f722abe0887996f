"""The room registry: loads docs on first join, unloads them when idle — theory of operation.

``open`` returns a READY LiveDoc, loading it once however many sockets ask at the same
time (they await the same task). ``frame`` is the hot path: one socket's frame goes
through its DocSession once; the resulting update is fanned out as the same bytes to
every other local socket, queued for the database (write-behind, group commit) and
queued for the bus. Nothing there awaits.

When the last socket leaves, an unload task waits ``doc_unload_delay_s`` (a reload or a
reconnect keeps the doc warm), flushes the writer, folds the log into a snapshot, and
removes the doc — unless somebody joined meanwhile. If the flush fails the doc stays in
memory and the unload is retried: a doc is never dropped with unsaved updates.

Update origins are typed: CLIENT updates are stored and published; BUS updates (another
node stored them) are applied and fanned out only; STORE updates are only applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Sequence
from typing import Protocol

from server.bus.base import Bus, Envelope
from server.config import Settings
from server.persistence.docs import StoredDoc
from server.persistence.writer import Item, UpdateWriter
from server.rooms.livedoc import DocLoadError, DocState, LiveDoc
from server.rooms.peer import CLOSE_RESTART, Peer
from server.sync.messages import (
    AwarenessMessage,
    ProtocolError,
    awareness_frame,
    decode,
    update_frame,
)
from server.sync.session import DocSession, Outcome
from server.types import DocAccess, UpdateOrigin

log = logging.getLogger(__name__)

KIND_UPDATE = "update"
KIND_AWARENESS = "awareness"


class DocStoreLike(Protocol):
    async def load(self, room_id: str, doc_name: str) -> StoredDoc: ...

    async def append(self, items: Sequence[Item]) -> None: ...

    async def compact(self, room_id: str, doc_name: str) -> bool: ...

    async def set_locked(self, room_id: str, doc_name: str, locked: bool) -> None: ...


class RoomRegistry:
    def __init__(self, settings: Settings, store: DocStoreLike, bus: Bus) -> None:
        self.settings = settings
        self.store = store
        self.bus = bus
        self.docs: dict[tuple[str, str], LiveDoc] = {}
        self.writer = UpdateWriter(
            store,
            interval_s=settings.flush_interval_ms / 1000,
            max_batch=settings.flush_max_batch,
        )
        self._bus_out: deque[tuple[str, str, bytes]] = deque()
        self._bus_wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()
        self.closing = False

    # --- lifecycle ---

    async def start(self) -> None:
        self.writer.start()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._publish_loop(), name="bus-publisher"),
            loop.create_task(self._sweep_loop(), name="awareness-sweeper"),
        ]

    async def close(self, grace_s: float) -> bool:
        """Close every socket with 1012, flush every pending write. True if all written."""
        self.closing = True
        for live in list(self.docs.values()):
            for peer in list(live.sessions):
                peer.close(CLOSE_RESTART, "server restarting")
        ok = await self.writer.close(grace_s)
        for task in [*self._tasks, *self._background]:
            task.cancel()
        for task in [*self._tasks, *self._background]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        return ok

    def _spawn(self, coro: object, name: str) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro, name=name)  # type: ignore[arg-type]
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    # --- joining and leaving ---

    async def open(self, room_id: str, doc_name: str) -> LiveDoc:
        """Return the loaded doc, loading it if needed. Raises DocLoadError."""
        if self.closing:
            raise DocLoadError("server is shutting down")
        key = (room_id, doc_name)
        live = self.docs.get(key)
        if live is None:
            live = LiveDoc(room_id, doc_name)
            self.docs[key] = live
            live.loading = self._spawn(self._load(live), name=f"load {live.topic}")
        assert live.loading is not None
        try:
            await asyncio.shield(live.loading)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise DocLoadError("document unavailable, retry later") from exc
        return live

    async def _load(self, live: LiveDoc) -> None:
        try:
            stored = await self.store.load(live.room_id, live.name)
            # One merged update, never the log one by one: the log can be out of causal
            # order (several nodes append), which pycrdt mishandles (see sync/replica.py).
            whole = stored.as_update()
            if whole is not None:
                live.replica.apply(whole)
            live.locked = stored.locked
            live.log_size = len(stored.updates)
            await self.bus.subscribe(live.topic, self._on_bus)
        except BaseException:
            live.state = DocState.FAILED
            self.docs.pop((live.room_id, live.name), None)
            log.exception("load failed for %s; it will not be served", live.topic)
            raise
        live.state = DocState.READY

    def join(self, live: LiveDoc, peer: Peer) -> DocSession:
        if live.unload_task is not None:
            live.unload_task.cancel()
            live.unload_task = None
        session = live.attach(peer)
        peer.joined()
        for frame in session.opening():
            peer.send(frame)
        return session

    def leave(self, live: LiveDoc, peer: Peer) -> None:
        gone = live.detach(peer)
        if gone is not None:
            live.fan_out(gone)
            self._publish(live.topic, KIND_AWARENESS, gone)
        if not live.sessions and live.state is DocState.READY and not self.closing:
            self._schedule_unload(live)

    def _schedule_unload(self, live: LiveDoc) -> None:
        if live.unload_task is None:
            live.unload_task = self._spawn(self._unload(live), name=f"unload {live.topic}")

    async def _unload(self, live: LiveDoc) -> None:
        delay = self.settings.doc_unload_delay_s
        try:
            while True:
                await asyncio.sleep(delay)
                if live.sessions:
                    return
                if not await self.writer.flush(timeout=30):
                    log.warning("unload of %s postponed: writes pending", live.topic)
                    delay = max(delay, 5.0)
                    continue
                if live.log_size > 0 and not live.compacting:
                    await self._compact(live)
                if live.sessions:
                    return  # somebody came back while we flushed: keep serving
                self.docs.pop((live.room_id, live.name), None)
                live.state = DocState.GONE
                await self.bus.unsubscribe(live.topic)
                return
        finally:
            if live.unload_task is asyncio.current_task():
                live.unload_task = None

    async def _compact(self, live: LiveDoc) -> None:
        live.compacting = True
        try:
            await self.writer.flush(timeout=30)
            before = live.log_size
            await self.store.compact(live.room_id, live.name)
            live.log_size = max(0, live.log_size - before)
        except Exception:
            log.exception("compaction failed for %s (the log still holds everything)", live.topic)
        finally:
            live.compacting = False

    # --- the hot path ---

    def frame(self, live: LiveDoc, peer: Peer, session: DocSession, data: bytes) -> Outcome:
        """Handle one client frame. Raises ProtocolError (close 4400)."""
        access = peer.access
        writable = access is not None and access.doc_access(live.locked) is DocAccess.WRITE
        out = session.receive(data, writable=writable, now=time.monotonic())
        for reply in out.reply:
            peer.send(reply)
        if out.update is not None:
            assert out.broadcast is not None
            live.fan_out(out.broadcast, exclude=peer)
            self._on_update(live, out.update, UpdateOrigin.CLIENT)
        if out.awareness is not None:
            live.fan_out(out.awareness)
            assert out.awareness_payload is not None
            self._publish(live.topic, KIND_AWARENESS, out.awareness_payload)
        return out

    def _on_update(self, live: LiveDoc, update: bytes, origin: UpdateOrigin) -> None:
        if origin is not UpdateOrigin.CLIENT:
            return  # stored by the node that received it from its client
        self.writer.enqueue(live.room_id, live.name, update)
        self._publish(live.topic, KIND_UPDATE, update)
        live.log_size += 1
        if live.log_size >= self.settings.compact_after_updates and not live.compacting:
            live.compacting = True  # claimed now; _compact sets it again
            self._spawn(self._compact(live), name=f"compact {live.topic}")

    # --- the bus ---

    def _publish(self, topic: str, kind: str, payload: bytes) -> None:
        self._bus_out.append((topic, kind, payload))
        self._bus_wake.set()

    async def _publish_loop(self) -> None:
        while True:
            await self._bus_wake.wait()
            self._bus_wake.clear()
            while self._bus_out:
                topic, kind, payload = self._bus_out.popleft()
                try:
                    await self.bus.publish(topic, kind, payload)
                except Exception:
                    log.exception("bus publish failed on %s", topic)

    async def _on_bus(self, topic: str, env: Envelope) -> None:
        live = self._by_topic(topic)
        if live is None or live.state is not DocState.READY:
            return
        try:
            if env.kind == KIND_UPDATE:
                live.replica.apply(env.payload)
                live.fan_out(update_frame(env.payload))
            elif env.kind == KIND_AWARENESS:
                frame = awareness_frame(env.payload)
                msg = decode(frame)
                if isinstance(msg, AwarenessMessage) and live.awareness.apply(
                    msg.entries, time.monotonic()
                ):
                    live.fan_out(frame)
        except ProtocolError:
            log.warning("dropped a malformed %s from node %s on %s", env.kind, env.origin, topic)

    def _by_topic(self, topic: str) -> LiveDoc | None:
        room_doc = topic.removeprefix("doc:")
        room_id, _, name = room_doc.partition("/")
        return self.docs.get((room_id, name))

    # --- housekeeping ---

    async def _sweep_loop(self) -> None:
        timeout = self.settings.awareness_timeout_s
        while True:
            await asyncio.sleep(max(1.0, timeout / 6))
            now = time.monotonic()
            for live in list(self.docs.values()):
                gone = live.awareness.expire(now, timeout)
                if gone is not None:
                    live.fan_out(awareness_frame(gone))

    async def set_locked(self, room_id: str, doc_name: str, locked: bool) -> None:
        await self.store.set_locked(room_id, doc_name, locked)
        live = self.docs.get((room_id, doc_name))
        if live is not None:
            live.locked = locked

    def stats(self) -> dict[str, int]:
        return {
            "docs": len(self.docs),
            "sockets": sum(len(d.sessions) for d in self.docs.values()),
            "pending_writes": self.writer.pending,
        }
