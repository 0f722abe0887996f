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

Update origins are typed (``UpdateOrigin``): CLIENT updates are stored and published;
BUS updates (another node stored them) are applied and fanned out only (rooms/relay.py);
STORE updates are only applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Protocol

from server.bus.base import Bus
from server.config import Settings
from server.persistence.docs import StoredDoc
from server.persistence.writer import Item, UpdateWriter
from server.rooms.livedoc import DocLoadError, DocState, LiveDoc
from server.rooms.peer import CLOSE_RESTART, Peer
from server.rooms.relay import KIND_AWARENESS, KIND_LOCK, KIND_UPDATE, Relay
from server.sync.messages import awareness_frame
from server.sync.session import DocSession, Outcome
from server.types import DocAccess

log = logging.getLogger(__name__)


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
            on_committed=self._committed,
        )
        #: Called with (room_id, doc_name, state vector) when everything this node received
        #: for a doc is in the database (the room channel tells clients: "Enregistré").
        self.on_saved: Callable[[str, str, bytes], None] | None = None
        self.relay = Relay(bus, self.docs, self.writer)
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()
        self.closing = False

    # --- lifecycle ---

    async def start(self) -> None:
        self.writer.start()
        self.bus.on_reconnect(self.relay.ask_peers_all)
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self.relay.run(), name="bus-relay"),
            loop.create_task(self._sweep_loop(), name="awareness-sweeper"),
            loop.create_task(self._liveness_loop(), name="node-liveness"),
        ]
        if self.settings.antientropy_interval_s > 0:
            self._tasks.append(loop.create_task(self._antientropy_loop(), name="anti-entropy"))

    async def close(self, grace_s: float) -> bool:
        """Close every socket with 1012, flush every pending write. True if all written."""
        self.closing = True
        for live in list(self.docs.values()):
            for peer in list(live.sessions):
                peer.close(CLOSE_RESTART, "server restarting")
            self.relay.secure(live)
        ok = await self.writer.close(grace_s)
        for task in [*self._tasks, *self._background]:
            task.cancel()
        for task in [*self._tasks, *self._background]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        return ok

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
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
            # Subscribe first, so nothing published after our read of the database is
            # missed; anti-entropy below covers what peers hold but have not stored yet.
            await self.bus.subscribe(live.topic, self.relay.on_message)
            stored = await self.store.load(live.room_id, live.name)
            # One merged update, never the log one by one: the log can be out of causal
            # order (several nodes append), which pycrdt mishandles (see sync/replica.py).
            whole = stored.as_update()
            if whole is not None:
                live.replica.apply(whole)
            live.locked = stored.locked
            live.log_size = len(stored.updates)
        except BaseException:
            live.state = DocState.FAILED
            self.docs.pop((live.room_id, live.name), None)
            with contextlib.suppress(Exception):
                await self.bus.unsubscribe(live.topic)
            log.exception("load failed for %s; it will not be served", live.topic)
            raise
        live.state = DocState.READY
        self.relay.ask_peers(live)

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
            self.relay.publish(live.topic, KIND_AWARENESS, _payload(gone))
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
                self.relay.secure(live)
                if not await self.writer.flush(timeout=30):
                    log.warning("unload of %s postponed: writes pending", live.topic)
                    delay = max(delay, 5.0)
                    continue
                if live.log_size > 0 and not live.compacting:
                    await self._compact(live)
                if live.sessions:
                    return  # somebody came back while we flushed: keep serving
                # Unsubscribe while the doc is still registered, so that a join arriving
                # meanwhile finds this replica (and we subscribe again) instead of loading
                # a second one whose subscription our unsubscribe would then cancel.
                await self.bus.unsubscribe(live.topic)
                if live.sessions:
                    await self.bus.subscribe(live.topic, self.relay.on_message)
                    self.relay.ask_peers(live)  # what the bus carried while we were off
                    return
                self.docs.pop((live.room_id, live.name), None)
                live.state = DocState.GONE
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

    def _committed(self, batch: Sequence[Item]) -> None:
        if self.on_saved is None:
            return
        for room_id, doc_name in {(r, d) for r, d, _ in batch}:
            live = self.docs.get((room_id, doc_name))
            if live is not None and not self.writer.pending_for(room_id, doc_name):
                self.on_saved(room_id, doc_name, live.doc.get_state())

    def saved_states(self, room_id: str) -> dict[str, bytes]:
        """doc name → state vector, for this room's loaded docs with nothing pending."""
        return {
            name: live.doc.get_state()
            for (room, name), live in self.docs.items()
            if room == room_id and live.ready and not self.writer.pending_for(room, name)
        }

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
            self.writer.enqueue(live.room_id, live.name, out.update)
            self.relay.publish(live.topic, KIND_UPDATE, out.update)
            live.log_size += 1
            if live.log_size >= self.settings.compact_after_updates and not live.compacting:
                live.compacting = True  # claimed now; _compact sets it again
                self._spawn(self._compact(live), name=f"compact {live.topic}")
        if out.awareness is not None:
            assert out.awareness_payload is not None
            live.fan_out(out.awareness)
            if live.remote:
                for cid in session.owned:
                    live.remote.pop(cid, None)  # a client that moved here is ours now
            self.relay.publish(live.topic, KIND_AWARENESS, out.awareness_payload)
        return out

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

    async def _liveness_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.node_heartbeat_s)
            try:
                await self.relay.purge_dead_nodes()
            except Exception:
                log.exception("liveness check failed")

    async def _antientropy_loop(self) -> None:
        interval = self.settings.antientropy_interval_s
        while True:
            # Jittered, so the nodes of a cluster do not all ask at the same instant.
            await asyncio.sleep(interval * random.uniform(0.8, 1.2))
            self.relay.ask_peers_all()

    async def set_locked(self, room_id: str, doc_name: str, locked: bool) -> None:
        await self.store.set_locked(room_id, doc_name, locked)
        live = self.docs.get((room_id, doc_name))
        if live is not None:
            live.locked = locked
            self.relay.publish(live.topic, KIND_LOCK, b"\x01" if locked else b"\x00")

    def stats(self) -> dict[str, int]:
        return {
            "docs": len(self.docs),
            "sockets": sum(len(d.sessions) for d in self.docs.values()),
            "pending_writes": self.writer.pending,
            "bus_dropped": self.relay.dropped,
        }


def _payload(frame: bytes) -> bytes:
    """The awareness update inside an awareness frame built by sync/ (type byte, varint length)."""
    i = 1
    while frame[i] & 0x80:
        i += 1
    return frame[i + 1 :]
