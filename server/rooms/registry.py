"""The room registry: the docs this node holds, and the hot path — theory of operation.

``open`` returns a READY LiveDoc, loaded once however many sockets ask at the same time
(``rooms/residency.py`` runs the load and, after the last socket leaves and
``doc_unload_delay_s`` passes, the unload: secure, flush, compact, unsubscribe).

``frame`` is the hot path: one socket's frame goes through its DocSession once; an
update it carries enters the doc through ``integrate``, the one place that decides by
its origin (``UpdateOrigin``) what happens to it:

- CLIENT (a socket here): the session applied it (it had to read the doc to decide);
  the same bytes go to every other local socket, to the write-behind queue (group
  commit) and to the bus outbox. Nothing awaits.
- BUS (another node's client, or an anti-entropy diff): applied and fanned out locally,
  never stored here — that node stored it (see rooms/relay.py for the one exception).
- STORE (the database, at load): applied only.

If a flush fails the doc stays in memory and the unload is retried: a doc is never
dropped with unsaved updates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Coroutine, Sequence
from contextvars import Context
from typing import Any, Protocol

from cachetools import TTLCache

from server import metrics
from server.admission.loads import LoadBound
from server.bus.outbox import Outbox
from server.bus.watch import NodeWatch
from server.cache import Loads
from server.config import Settings
from server.metrics.hot import APPLY_BUS, APPLY_CLIENT, FANOUT_BUS, FANOUT_CLIENT, TRAFFIC
from server.persistence.audit import Note
from server.persistence.docs import Fold, StoredDoc
from server.persistence.writer import Item, UpdateWriter
from server.rooms.livedoc import DocLoadError, DocState, LiveDoc
from server.rooms.memory import MemoryBudget
from server.rooms.relay import KIND_AWARENESS, KIND_LOCK, KIND_UPDATE, Relay, authored
from server.rooms.residency import Residency
from server.sync.messages import awareness_frame, update_frame
from server.sync.session import DocSession, Outcome
from server.transport.codes import Close
from server.types import DocAccess, PeerHandle, UpdateOrigin

log = logging.getLogger(__name__)

#: How long a room's list of docs is trusted by ``may_load``, and how many rooms are kept.
ROOM_NAMES_TTL_S = 60.0
ROOM_NAMES_KEPT = 4096

#: (room id, doc name, locked, by whom) — a lock changed here or on another node.
LockHook = Callable[[str, str, bool, str], None]


class DocWatcher(Protocol):
    """Something that follows the docs of this node (server/progress/ does: attribution,
    versions, the class console). Called on the hot path: ``integrated`` must not await
    nor do more than book-keeping."""

    def loaded(self, live: LiveDoc, stored: StoredDoc) -> None: ...

    def integrated(
        self, live: LiveDoc, update: bytes, origin: UpdateOrigin, author: str | None
    ) -> None: ...

    async def settling(self, live: LiveDoc) -> None:
        """Before the doc unloads (its editing session ended)."""

    def gone(self, live: LiveDoc) -> None: ...


class DocStoreLike(Protocol):
    async def load(self, room_id: str, doc_name: str) -> StoredDoc: ...

    async def append(self, items: Sequence[Item]) -> None: ...

    async def compact(self, room_id: str, doc_name: str, fold: Fold | None = None) -> bool: ...

    async def set_locked(
        self, room_id: str, doc_name: str, locked: bool, audit: Note | None = None
    ) -> None: ...

    async def names(self, room_id: str, limit: int) -> set[str]: ...


class RoomRegistry:
    def __init__(
        self, settings: Settings, store: DocStoreLike, outbox: Outbox, watch: NodeWatch
    ) -> None:
        self.settings = settings
        self.store = store
        self.outbox = outbox
        self.bus = outbox.bus
        self.writer = UpdateWriter(
            store,
            interval_s=settings.flush_interval_ms / 1000,
            max_batch=settings.flush_max_batch,
            on_committed=self._committed,
        )
        #: Called with (room_id, doc_name, state vector) when everything this node received
        #: for a doc is in the database (the room channel tells clients: "Enregistré").
        self.on_saved: Callable[[str, str, bytes], None] | None = None
        #: Called when a teacher (un)locks a doc on this node.
        self.on_lock: LockHook | None = None
        self.watchers: list[DocWatcher] = []
        #: Folds the attribution of the log rows a compaction folds (server/progress/).
        self.fold: Fold | None = None
        self.budget = MemoryBudget(settings.memory_budget_mb)
        self.relay = Relay(self)
        #: Doc loads at once (``admission_loads``): a storm of first opens must not
        #: queue more reads than the database pool serves.
        self.loads = LoadBound(settings.admission_loads)
        self.docs: Residency[tuple[str, str], LiveDoc] = Residency(
            self.bus,
            self.relay.on_message,
            self,
            delay_s=settings.doc_unload_delay_s,
            bound=self.loads,
        )
        watch.watch(self.relay.suspects, self.relay.purge)
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()
        #: room id → the names of its docs: ``may_load``'s room look-ups, concurrent
        #: misses of one room sharing one read.
        self._names: Loads[str, set[str]] = Loads(TTLCache(ROOM_NAMES_KEPT, ROOM_NAMES_TTL_S))
        self.closing = False

    # --- lifecycle ---

    async def start(self) -> None:
        self.writer.start()
        self.bus.on_reconnect(self.relay.ask_peers_all)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._sweep_loop(), name="awareness-sweeper")]
        if self.settings.antientropy_interval_s > 0:
            self._tasks.append(loop.create_task(self._antientropy_loop(), name="anti-entropy"))

    async def close(self, grace_s: float) -> bool:
        """Close every socket with 1012, flush every pending write. True if all written."""
        self.closing = True
        for live in self.docs.values():
            for peer in list(live.sessions):
                peer.close(Close.RESTART, "server restarting")
            self.relay.secure(live)
        await self.docs.close()
        ok = await self.writer.close(grace_s)
        for task in [*self._tasks, *self._background]:
            task.cancel()
        for task in [*self._tasks, *self._background]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        return ok

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        # A fresh context: shared work (a load, a compaction) is nobody's, so its log
        # lines must not carry the user and socket that happened to start it.
        task = asyncio.get_running_loop().create_task(coro, name=name, context=Context())
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    # --- joining and leaving ---

    async def open(self, room_id: str, doc_name: str) -> LiveDoc:
        """Return the loaded doc, loading it if needed. Raises DocLoadError."""
        if self.closing:
            raise DocLoadError("server is shutting down")
        try:
            return await self.docs.open(
                (room_id, doc_name),
                lambda: LiveDoc(room_id, doc_name, max_bytes=self.settings.max_doc_bytes),
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise DocLoadError("document unavailable, retry later") from exc

    def resident(self, room_id: str, doc_name: str) -> bool:
        """The doc is loaded here and ready: opening it waits on nothing."""
        live = self.docs.get((room_id, doc_name))
        return live is not None and live.ready

    async def may_load(self, room_id: str, doc_name: str) -> tuple[Close, str] | None:
        """Before a socket opens a doc: None, or the close code and reason refusing it.

        A doc already here is always served. Loading one more is refused past the
        node's memory budget (1013: another node, or later) and, for a doc the room does
        not have yet, past ``max_docs_per_room`` (1008). Loads the server makes itself
        (an assignment's freeze, a version) do not ask: they must not fail on a busy node.
        """
        if self.docs.get((room_id, doc_name)) is not None:
            return None
        over = self.budget.over()
        if over is not None:
            metrics.refused("memory_budget")
            log.warning("refused to load %s/%s: %s", room_id, doc_name, over)
            return Close.TRY_LATER, over
        most = self.settings.max_docs_per_room
        stored = await self._room_names(room_id, most + 1)
        if doc_name in stored:
            return None
        names = stored
        if len(names) + len(self.docs) >= most:  # the docs loaded here may reach it
            names = names | {live.name for live in self.docs.values() if live.room_id == room_id}
        if len(names) >= most:
            metrics.refused("docs_per_room")
            log.warning("refused a new doc in %s: the room has %d docs", room_id, len(names))
            return Close.POLICY, f"this room has reached its limit of {most} documents"
        stored.add(doc_name)  # about to be loaded: one more doc of the room, kept
        return None

    async def _room_names(self, room_id: str, limit: int) -> set[str]:
        """The room's stored docs, read at most once per ``ROOM_NAMES_TTL_S``: a storm of
        first loads (every group opening its docs at 08:00) asks once per room, not once
        per doc. What another node creates meanwhile is seen at the next read; the limit
        is a guard against runaway clients, not an exact quota."""
        return await self._names.get(room_id, lambda: self.store.names(room_id, limit))

    def join(self, live: LiveDoc, peer: PeerHandle) -> DocSession:
        session = live.attach(peer)
        for frame in session.opening():
            peer.send(frame)
        return session

    def release(self, live: LiveDoc) -> None:
        """Done with a doc opened without a socket (a version, a restore): unload it
        later if nobody is on it."""
        if live.ready and not self.closing:
            self.docs.release(live.key, live)

    def leave(self, live: LiveDoc, peer: PeerHandle) -> None:
        gone = live.detach(peer)
        if gone is not None:
            live.fan_out(awareness_frame(gone))
            self.outbox.publish(live.topic, KIND_AWARENESS, gone)
        if live.ready and not self.closing:
            self.docs.release(live.key, live)

    # --- the residency keeper (rooms/residency.py) ---

    def in_use(self, live: LiveDoc) -> bool:
        return bool(live.sessions)

    async def load(self, live: LiveDoc) -> None:
        stored = await self.store.load(live.room_id, live.name)
        # One merged update, never the log one by one: the log can be out of causal
        # order (several nodes append), which pycrdt mishandles (see sync/replica.py).
        whole = stored.as_update()
        if whole is not None:
            self.integrate(live, whole, UpdateOrigin.STORE)
        live.locked = stored.locked
        live.log_size = len(stored.updates)
        for watcher in self.watchers:
            watcher.loaded(live, stored)

    def loaded(self, live: LiveDoc) -> None:
        live.state = DocState.READY
        self.relay.ask_peers(live)  # what the other nodes hold and have not stored yet

    def failed(self, live: LiveDoc) -> None:
        live.state = DocState.FAILED
        log.exception("load failed for %s; it will not be served", live.topic)

    async def settle(self, live: LiveDoc) -> bool:
        for watcher in self.watchers:
            await watcher.settling(live)
        self.relay.secure(live)
        if not await self.writer.flush(timeout=30):
            return False
        if live.log_size > 0 and not live.compacting:
            await self._compact(live)
        return True

    async def resumed(self, live: LiveDoc) -> None:
        self.relay.ask_peers(live)  # what the bus carried while we were unsubscribed

    async def gone(self, live: LiveDoc) -> None:
        live.state = DocState.GONE
        for watcher in self.watchers:
            watcher.gone(live)

    # --- the hot path ---

    def frame(self, live: LiveDoc, peer: PeerHandle, session: DocSession, data: bytes) -> Outcome:
        """Handle one client frame. Raises ProtocolError (close 4400)."""
        access = peer.access
        writable = access is not None and access.doc_access(live.locked) is DocAccess.WRITE
        now = time.monotonic()
        out = session.receive(data, writable=writable, now=now)
        for reply in out.reply:
            peer.send(reply)
        if out.limit is not None:
            metrics.refused(out.limit)
            if out.first:  # once per socket: the size only, never the content
                log.warning(
                    "refused an edit of %s on %s: document too large (%d bytes, limit %d)",
                    peer.user_id,
                    live.topic,
                    live.replica.size,
                    self.settings.max_doc_bytes,
                )
        if out.update is not None:
            APPLY_CLIENT.observe(time.monotonic() - now)  # decoded, checked, applied
            self.integrate(live, out.update, UpdateOrigin.CLIENT, out.broadcast, peer)
        if out.awareness is not None:
            assert out.awareness_payload is not None
            live.fan_out(out.awareness)
            if live.remote:
                for cid in session.owned:
                    live.remote.pop(cid, None)  # a client that moved here is ours now
            self.outbox.publish(live.topic, KIND_AWARENESS, out.awareness_payload)
        return out

    def integrate(
        self,
        live: LiveDoc,
        update: bytes,
        origin: UpdateOrigin,
        frame: bytes | None = None,
        sender: PeerHandle | None = None,
        author: str | None = None,
    ) -> None:
        """The one way an update enters a live doc (see the module's docstring).

        ``author``: who made a BUS update (the other node's socket user); for a CLIENT
        update it is the sender's user, always (never what the client claims)."""
        if origin is UpdateOrigin.CLIENT:
            if sender is not None:
                author = sender.user_id  # never what a client claims
            TRAFFIC.client_updates += 1
            TRAFFIC.client_bytes += len(update)
            started = time.monotonic()
            live.fan_out(frame or update_frame(update), exclude=sender)
            FANOUT_CLIENT.observe(time.monotonic() - started)
            self.writer.enqueue(live.room_id, live.name, update, author)
            self.outbox.publish(live.topic, KIND_UPDATE, authored(author, update))
            live.log_size += 1
            if live.log_size >= self.settings.compact_after_updates and not live.compacting:
                live.compacting = True  # claimed now; _compact sets it again
                self._spawn(self._compact(live), name=f"compact {live.topic}")
        elif origin is UpdateOrigin.BUS:
            TRAFFIC.bus_updates += 1
            TRAFFIC.bus_bytes += len(update)
            started = time.monotonic()
            live.replica.apply(update)
            applied = time.monotonic()
            APPLY_BUS.observe(applied - started)
            live.bus_updates += 1
            live.fan_out(frame or update_frame(update))
            FANOUT_BUS.observe(time.monotonic() - applied)
        else:
            live.replica.apply(update)  # the load: not traffic
        for watcher in self.watchers:
            watcher.integrated(live, update, origin, author)

    def change(self, live: LiveDoc, update: bytes, author: str) -> None:
        """A change the server makes on a user's behalf (a restore): applied here, then
        stored, published and fanned out exactly like that user's own edit."""
        live.replica.apply(update)
        self.integrate(live, update, UpdateOrigin.CLIENT, author=author)

    async def _compact(self, live: LiveDoc) -> None:
        live.compacting = True
        try:
            await self.writer.flush(timeout=30)
            before = live.log_size
            await self.store.compact(live.room_id, live.name, self.fold)
            live.log_size = max(0, live.log_size - before)
        except Exception:
            log.exception("compaction failed for %s (the log still holds everything)", live.topic)
        finally:
            live.compacting = False

    def _committed(self, batch: Sequence[Item]) -> None:
        if self.on_saved is None:
            return
        for room_id, doc_name in {(item[0], item[1]) for item in batch}:
            live = self.docs.get((room_id, doc_name))
            if live is not None and not self.writer.pending_for(room_id, doc_name):
                self.on_saved(room_id, doc_name, live.doc.get_state())

    def saved_states(self, room_id: str) -> dict[str, bytes]:
        """doc name → state vector, for this room's loaded docs with nothing pending."""
        return {
            live.name: live.doc.get_state()
            for live in self.docs.values()
            if live.room_id == room_id
            and live.ready
            and not self.writer.pending_for(room_id, live.name)
        }

    # --- locks ---

    async def set_locked(
        self, room_id: str, doc_name: str, locked: bool, by: str, audit: Note | None = None
    ) -> None:
        """Store the lock, apply it here and on every node holding the doc, and tell the
        room (``on_lock``: the room channel's ``doc_locked`` event).

        Two bus messages, for two audiences that differ when a room's sockets are split
        over nodes: the nodes holding the doc (its topic: their students lose write
        access now) and the nodes holding the room channel (the room's topic: the
        clients show the lock). With the balancer's room affinity both are one node.
        """
        await self.store.set_locked(room_id, doc_name, locked, audit)
        live = self.docs.get((room_id, doc_name))
        if live is not None:
            live.set_locked(locked)
        self.outbox.publish(LiveDoc.topic_of(room_id, doc_name), KIND_LOCK, bytes((locked,)))
        if self.on_lock is not None:
            self.on_lock(room_id, doc_name, locked, by)

    # --- housekeeping ---

    async def _sweep_loop(self) -> None:
        timeout = self.settings.awareness_timeout_s
        while True:
            await asyncio.sleep(max(1.0, timeout / 6))
            now = time.monotonic()
            for live in self.docs.values():
                gone = live.awareness.expire(now, timeout)
                if gone is not None:
                    live.fan_out(awareness_frame(gone))

    async def _antientropy_loop(self) -> None:
        interval = self.settings.antientropy_interval_s
        while True:
            # Jittered, so the nodes of a cluster do not all ask at the same instant.
            await asyncio.sleep(interval * random.uniform(0.8, 1.2))
            self.relay.ask_peers_all()
