"""Progress: attribution, versions and the class console for the docs of a node.

Theory of operation. ``Progress`` watches the registry (``rooms.registry.DocWatcher``):

- **Attribution.** When a doc loads, its ledger (``attribution.Ledger``) is built from
  the stored snapshot, the summary kept when the log was folded, and the log's tail with
  each row's author. Every update that then enters the doc — from a socket here (its
  author is the socket's user) or from another node (the author travels with it) — is
  queued and folded into the ledger at the next tick or read: the hot path only appends.
  Client ids are bound to users in ``LiveDoc.owners`` (the session refuses an update
  that would add structs under another user's client id, sync/session.py).
- **Versions.** A ``CheckpointClock`` per doc decides when an automatic version is due
  (a pause, long activity); the end of an editing session (the doc settles before it
  unloads) takes one too. Only edits by this node's own clients start the clock.
- **Console.** Once a ``progress_event_s`` window, a doc edited by this node's clients
  sends one ``progress`` event to the teachers on its class's channel (live/hub.py).
- **Compaction** keeps attribution: ``fold`` is the registry's attribution folder; it
  turns the folded rows into the summary stored beside the new snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Sequence
from contextvars import Context
from dataclasses import dataclass, field
from typing import Any

import msgpack
from pycrdt import Doc

from server.config import Settings
from server.persistence.docs import DocStore, StoredDoc
from server.persistence.roster import Roster
from server.persistence.versions import VersionInfo, VersionStore
from server.progress import content
from server.progress.attribution import UNATTRIBUTED, Figures, Ledger
from server.progress.checkpoints import CheckpointClock
from server.progress.restore import restore_update
from server.rooms.livedoc import LiveDoc
from server.rooms.registry import RoomRegistry
from server.sync.messages import ProtocolError
from server.sync.structs import update_clients
from server.types import UpdateOrigin

log = logging.getLogger(__name__)

#: Queued updates folded into the ledger at once past this many (bounds the memory of a
#: doc nobody reads while it is typed in).
MAX_PENDING = 256
#: The console's activity series: edits per minute over the last hour.
SERIES_MINUTES = 60

ClassEvent = Callable[[str, dict[str, Any]], None]


@dataclass(slots=True)
class DocProgress:
    ledger: Ledger
    clock: CheckpointClock
    pending: list[tuple[bytes, str | None, float]] = field(default_factory=list)
    #: Edited by this node's clients since the last console event.
    local: bool = False
    class_id: str | None = None


def _ledger_of(snapshot: bytes | None, attribution: bytes | None) -> Ledger:
    if attribution is not None:
        try:
            summary = msgpack.unpackb(attribution, raw=False, strict_map_key=False)
            return Ledger.from_summary(summary, snapshot)
        except (ValueError, ProtocolError, msgpack.UnpackException) as exc:
            log.warning("attribution summary unreadable (%s): figures restart", exc)
    return Ledger.from_state(snapshot, {}) if snapshot else Ledger()


def _feed(ledger: Ledger, rows: Sequence[tuple[bytes, str | None, float]]) -> None:
    """Fold stored or received updates into a ledger, binding new client ids to their
    update's author first (the first user to send a client id owns it)."""
    for update, author, at in rows:
        if author is not None:
            try:
                for client in update_clients(update):
                    ledger.bind(client, author)
            except ProtocolError:
                pass  # pycrdt took it; our decoder did not: counted, unbound
        try:
            ledger.apply(update, author, at)
        except ProtocolError:
            log.warning("an update the ledger cannot read was left out of the figures")


def fold(
    snapshot: bytes | None,
    attribution: bytes | None,
    rows: Sequence[tuple[bytes, str | None, float]],
) -> bytes:
    """The attribution summary of ``snapshot`` + ``rows``, for the folded doc."""
    ledger = _ledger_of(snapshot, attribution)
    _feed(ledger, rows)
    return msgpack.packb(ledger.summary(), use_bin_type=True)


def rename_summary(attribution: bytes, old: str, new: str) -> bytes | None:
    """A stored attribution summary with user ``old`` renamed ``new`` (an erasure), or
    None when it does not name ``old``."""
    try:
        summary = msgpack.unpackb(attribution, raw=False, strict_map_key=False)
        bindings = summary["bindings"]
        users = summary["users"]
    except (ValueError, KeyError, TypeError, msgpack.UnpackException):
        return None  # unreadable: the ledger restarts from the snapshot anyway
    if old not in users and old not in bindings.values():
        return None
    summary["bindings"] = {c: (new if u == old else u) for c, u in bindings.items()}
    if old in users:
        users[new] = users.pop(old)
    return msgpack.packb(summary, use_bin_type=True)


def stored_ledger(stored: StoredDoc) -> Ledger:
    ledger = _ledger_of(stored.snapshot, stored.attribution)
    _feed(ledger, list(zip(stored.updates, stored.authors, stored.times, strict=False)))
    return ledger


def figures_json(figures: dict[str, Figures], names: dict[str, str]) -> list[dict[str, Any]]:
    return [
        {
            "id": user,
            "name": names.get(user, user),
            "inserted": f.inserted,
            "deleted": f.deleted,
            "edits": f.edits,
            "active_minutes": f.active_minutes,
            "first_edit": f.first_edit,
            "last_edit": f.last_edit,
        }
        for user, f in figures.items()
        if user != UNATTRIBUTED
    ]


def minute_rows(ledger: Ledger, now: float) -> dict[str, list[int]]:
    """user → edits per minute over the last hour, oldest first."""
    last = int(now // 60)
    first = last - SERIES_MINUTES + 1
    rows: dict[str, list[int]] = {}
    for user, minutes in ledger.activity(first).items():
        row = rows[user] = [0] * SERIES_MINUTES
        for m, n in minutes.items():
            if first <= m <= last:
                row[m - first] = n
    return rows


def series(ledger: Ledger, now: float) -> list[int]:
    """Edits per minute over the last hour, oldest first, all users together."""
    return [sum(col) for col in zip(*minute_rows(ledger, now).values(), strict=True)] or [
        0
    ] * SERIES_MINUTES


def doc_of(state: bytes) -> Doc:
    doc: Doc = Doc()
    if state:
        doc.apply_update(state)
    return doc


class Progress:
    def __init__(
        self,
        settings: Settings,
        registry: RoomRegistry,
        store: DocStore,
        versions: VersionStore,
        roster: Roster,
        class_event: ClassEvent,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.store = store
        self.versions = versions
        self.roster = roster
        self.class_event = class_event
        self.docs: dict[tuple[str, str], DocProgress] = {}
        self._names: dict[str, str] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._ticker: asyncio.Task[None] | None = None
        registry.watchers.append(self)
        registry.fold = fold

    def start(self) -> None:
        self._ticker = asyncio.get_running_loop().create_task(self._tick_loop(), name="progress")

    async def close(self) -> None:
        for task in [self._ticker, *self._tasks]:
            if task is not None:
                task.cancel()
        for task in [self._ticker, *self._tasks]:
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    def _spawn(self, coro: Any, name: str) -> None:
        # A fresh context: shared work, whose log lines name no request's user.
        task = asyncio.get_running_loop().create_task(coro, name=name, context=Context())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- the registry's watcher ---

    def loaded(self, live: LiveDoc, stored: StoredDoc) -> None:
        ledger = stored_ledger(stored)
        live.owners.update(ledger.owners())
        settings = self.settings
        clock = CheckpointClock(settings.version_pause_s, settings.version_interval_s)
        self.docs[live.key] = DocProgress(ledger, clock)

    def integrated(
        self, live: LiveDoc, update: bytes, origin: UpdateOrigin, author: str | None
    ) -> None:
        dp = self.docs.get(live.key)
        if dp is None or origin is UpdateOrigin.STORE:
            return
        now = time.time()
        if origin is UpdateOrigin.BUS and author is not None:
            # Another node's socket bound these client ids: the sessions here must know.
            with contextlib.suppress(ProtocolError):
                for client in update_clients(update):
                    live.owners.setdefault(client, author)
        dp.pending.append((update, author, now))
        if origin is UpdateOrigin.CLIENT:
            dp.clock.edited(now, author)
            dp.local = True
        if len(dp.pending) >= MAX_PENDING:
            self._catch_up(live, dp)

    async def settling(self, live: LiveDoc) -> None:
        dp = self.docs.get(live.key)
        if dp is not None and dp.clock.dirty:
            await self._checkpoint(live, dp, "session")

    def gone(self, live: LiveDoc) -> None:
        self.docs.pop(live.key, None)

    def rename_user(self, old: str, new: str) -> int:
        """An erasure: the docs this node holds stop naming ``old`` (ledger, bindings of
        the live doc, the queued updates, the next checkpoint's contributors). Returns
        how many docs named them."""
        self._names.pop(old, None)
        touched = 0
        for key, dp in self.docs.items():
            live = self.registry.docs.get(key)
            hit = False
            if live is not None:
                for client, user in list(live.owners.items()):
                    if user == old:
                        live.owners[client] = new
                        hit = True
            if any(author == old for _, author, _ in dp.pending):
                dp.pending = [(u, new if a == old else a, t) for u, a, t in dp.pending]
                hit = True
            if old in dp.clock.contributors:
                dp.clock.contributors.discard(old)
                dp.clock.contributors.add(new)
                hit = True
            hit = dp.ledger.rename(old, new) or hit
            touched += hit
        return touched

    # --- figures ---

    def _catch_up(self, live: LiveDoc, dp: DocProgress) -> None:
        """Fold the queued updates into the ledger. Their client ids are bound already,
        in ``live.owners`` (by the session, or from the bus in ``integrated``)."""
        pending, dp.pending = dp.pending, []
        ledger = dp.ledger
        for update, author, at in pending:
            try:
                for client in update_clients(update):
                    owner = live.owners.get(client)
                    if owner is not None:
                        ledger.bind(client, owner)
                ledger.apply(update, author, at)
            except ProtocolError:
                log.warning("an update the ledger cannot read was left out of the figures")

    def ledger(self, live: LiveDoc) -> Ledger | None:
        """The up-to-date ledger of a doc this node holds."""
        dp = self.docs.get(live.key)
        if dp is None:
            return None
        self._catch_up(live, dp)
        return dp.ledger

    async def ledger_of(self, room_id: str, doc_name: str) -> tuple[Ledger, Doc]:
        """The ledger and content of any doc: live here, or read from the database."""
        live = self.registry.docs.get((room_id, doc_name))
        if live is not None and live.ready:
            ledger = self.ledger(live)
            if ledger is not None:
                return ledger, live.doc
        stored = await self.store.load(room_id, doc_name)
        whole = stored.as_update()
        return stored_ledger(stored), doc_of(whole or b"")

    async def names(self, users: Sequence[str]) -> dict[str, str]:
        """Display names of contributors; a user the roster removed keeps their name."""
        missing = [u for u in dict.fromkeys(users) if u not in self._names and u != UNATTRIBUTED]
        if missing:
            found = await self.roster.display_names(missing)
            for user in missing:
                self._names[user] = found.get(user, user)
        return {u: self._names.get(u, u) for u in users}

    async def doc_summary(self, room_id: str, doc_name: str) -> dict[str, Any]:
        """What the class console shows of one doc (the overview; the live events)."""
        ledger, doc = await self.ledger_of(room_id, doc_name)
        return await self._summary(room_id, doc_name, ledger, doc)

    async def _summary(
        self, room_id: str, doc_name: str, ledger: Ledger, doc: Doc
    ) -> dict[str, Any]:
        figures = ledger.figures()
        text = content.plain_text(doc)
        names = await self.names(list(figures))
        last = max((f.last_edit for f in figures.values() if f.last_edit), default=None)
        now = time.time()
        return {
            "room": room_id,
            "doc": doc_name,
            "at": now,
            "words": content.words(text),
            "chars": len(text),
            "preview": text[:200],
            "last_edit": last,
            "users": figures_json(figures, names),
            "activity": series(ledger, now),
        }

    # --- versions ---

    async def _checkpoint(
        self,
        live: LiveDoc,
        dp: DocProgress | None,
        kind: str,
        *,
        name: str | None = None,
        by: str | None = None,
    ) -> VersionInfo:
        contributors = dp.clock.taken() if dp is not None else []
        return await self.versions.add(
            live.room_id,
            live.name,
            kind,
            live.doc.get_update(),
            live.doc.get_state(),
            contributors=contributors,
            name=name,
            by=by,
        )

    async def name_version(self, room_id: str, doc_name: str, name: str, by: str) -> VersionInfo:
        live = await self.registry.open(room_id, doc_name)
        try:
            return await self._checkpoint(live, self.docs.get(live.key), "named", name=name, by=by)
        finally:
            self.registry.release(live)

    async def restore(self, room_id: str, doc_name: str, version_id: int, by: str) -> VersionInfo:
        """The doc becomes the version's content, as a new change by ``by``. Raises
        LookupError for an unknown version."""
        found = await self.versions.get(room_id, doc_name, version_id)
        if found is None:
            raise LookupError(version_id)
        _info, state = found
        live = await self.registry.open(room_id, doc_name)
        try:
            before = await self._checkpoint(live, self.docs.get(live.key), "restore", by=by)
            client = random.getrandbits(31) | 1
            update = restore_update(live.doc, state, client)
            live.owners[client] = by
            self.registry.change(live, update, by)
            return before
        finally:
            self.registry.release(live)

    # --- the console and the clocks ---

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.progress_event_s)
            try:
                await self._tick()
            except Exception:
                log.exception("progress tick failed")

    async def _tick(self) -> None:
        now = time.time()
        for key, dp in list(self.docs.items()):
            live = self.registry.docs.get(key)
            if live is None or not live.ready:
                continue
            due = dp.clock.due(now)
            if due is not None:
                self._spawn(self._checkpoint(live, dp, due), f"version {live.topic}")
            if dp.local:
                dp.local = False
                self._catch_up(live, dp)
                await self._send_progress(live, dp)
            # One doc at a time, the loop free in between: folding every doc's queue in
            # one go would hold the sockets of the whole node for that long.
            await asyncio.sleep(0)

    async def _send_progress(self, live: LiveDoc, dp: DocProgress) -> None:
        if dp.class_id is None:
            info = await self.roster.get_room(live.room_id)
            if info is None:
                return
            dp.class_id = info.class_id or info.id
        summary = await self._summary(live.room_id, live.name, dp.ledger, live.doc)
        self.class_event(dp.class_id, summary)
