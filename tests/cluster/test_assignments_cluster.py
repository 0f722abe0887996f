"""The deadline on three nodes (Redis, PostgreSQL), with the node that claimed the freezes
SIGKILLed as it starts them.

Two assignments for every group of 2nde-a, due at the same instant; three editors on each
work's doc, one per node, type until the server refuses their edits. At the deadline the
first node to announce a doc's lock (only a freeze announces one; each clock's own local
lock is silent) is killed mid-freeze, its claims held. Then: every editor left on the
survivors was refused by its own node's clock, not after the dead node's lease; every
work ends frozen once (late or missed, one rendu), the dead node's claims taken again
once their lease is over; no refused edit is in a rendu, a served doc or the database;
the restarted node serves the docs locked from their load. Last, a third assignment's
due date is moved: its docs are writable again on every node, loaded afresh.

The time from the due date to each surviving editor's first refusal is printed (run with
``-s``) and written to a JSON file in the test's tmp dir: a figure, not an assertion.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import msgpack
import pytest
import redis
import websockets

from server.bus.base import Envelope
from server.persistence.assignments import AssignmentStore
from server.persistence.db import create_engine
from server.persistence.versions import VersionStore
from tests.support.cluster import Cluster, cluster
from tests.support.server import AtelierServer
from tests.support.stored import stored_text
from tests.support.yclient import YClient, eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150)]

CLASS = "2nde-a"  # teacher t-martin; five groups of six students
LEASE_S = 3.0
SETTLE_S = 1.0  # the rendu's settle: the window in which the freezing node is killed
DUE_IN_S = 8.0  # time to publish and connect 30 editors before the deadline
# The editors type at a pupil's pace (every TYPING_EVERY_S from TYPING_FROM_S before the
# deadline), then from PROBING_FROM_S before it one edit each PROBE_EVERY_S until refused:
# the lock is seen to that resolution, without a storm on a small, shared box.
TYPING_FROM_S = 1.5
TYPING_EVERY_S = 0.25
PROBING_FROM_S = 0.02
PROBE_EVERY_S = 0.02
SANITY_S = 30.0  # no wait on the lock lasts longer than this
ROOM_CHANNEL = "atelier:t:room:"  # the bus's Redis channel of a room (default prefix)


@pytest.fixture
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with cluster(
        tmp_path_factory.mktemp("deadline"),
        3,
        ATELIER_DEADLINE_POLL_S="1",
        ATELIER_RENDU_SETTLE_S=str(SETTLE_S),
        ATELIER_DEADLINE_LEASE_S=str(LEASE_S),
    ) as c:
        yield c


def name_of(node: AtelierServer) -> str:
    return node.extra_env["ATELIER_NODE_ID"]


def api(node: AtelierServer, user: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=node.http_url,
        headers={"Authorization": f"Bearer {node.token(user)}"},
        timeout=20,
    )


def ws(node: AtelierServer, user: str, room: str, doc: str) -> str:
    return f"{node.ws_url}/yjs/{room}/{doc}?token={node.token(user)}"


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


@dataclass
class Editor:
    tag: str
    user: str
    node: int
    work: dict[str, Any]
    client: YClient
    sent: list[str] = field(default_factory=list)  # every token typed, in order
    sent_at: list[float] = field(default_factory=list)  # time.time() each was sent

    @property
    def early(self) -> str:
        return self.sent[0]

    def split(self) -> tuple[list[str], list[str]]:
        """(accepted, refused) tokens. Each token is one update carrying news; the
        server answers a refused one with one denial and an accepted one with none, and
        a deadline lock is never lifted: the refused ones are the last ``len(denied)``."""
        cut = len(self.sent) - len(self.client.denied)
        return self.sent[:cut], self.sent[cut:]

    def first_refused_sent_at(self) -> float:
        return self.sent_at[len(self.sent) - len(self.client.denied)]

    async def type(self, token: str) -> None:
        at = time.time()
        await self.client.type(token)
        self.sent.append(token)
        self.sent_at.append(at)

    async def keep_typing(self, due: float) -> None:
        n = 0
        while not self.client.denied and not self.client.closed.is_set():
            now = time.time()
            if now > due + SANITY_S:
                return
            try:
                await self.type(f"<{self.tag}.{n}>")
            except websockets.ConnectionClosed:
                return  # its node was killed
            n += 1
            if now < due - PROBING_FROM_S:
                await asyncio.sleep(min(TYPING_EVERY_S, due - PROBING_FROM_S - now))
            else:
                await asyncio.sleep(PROBE_EVERY_S)


class KillTheFreezer(threading.Thread):
    """Listens on the cluster's Redis, on the groups' room channels, for the docs' lock
    announcements (``doc_locked``): at a deadline only a freeze makes one
    (``RoomRegistry.set_locked``, once the work is claimed; the clocks' own local locks
    are not announced). The first announcer is SIGKILLed at once, from this thread, so
    that the test's busy event loop does not delay it past the freeze's settle."""

    def __init__(self, url: str, rooms: list[str], nodes: list[AtelierServer]) -> None:
        super().__init__(name="kill-the-freezer", daemon=True)
        self.redis = redis.Redis.from_url(url)
        self.pubsub = self.redis.pubsub()
        self.pubsub.subscribe(*(ROOM_CHANNEL + r for r in rooms))
        self.nodes = {name_of(n): n for n in nodes}
        self.locks: list[tuple[float, str, str]] = []  # (time, node, "room/doc")
        self.killed: tuple[float, AtelierServer] | None = None
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            message = self.pubsub.get_message(timeout=0.05)
            if message is None or message["type"] != "message":
                continue
            env = Envelope.unpack(message["data"])
            if env.kind != "event":
                continue
            event = msgpack.unpackb(env.payload)
            if event.get("kind") == "doc_locked" and event.get("locked"):
                room = message["channel"].decode().removeprefix(ROOM_CHANNEL)
                self.locks.append((time.time(), env.origin, f"{room}/{event['doc']}"))
                if self.killed is None:
                    victim = self.nodes[env.origin]
                    assert victim.proc is not None
                    victim.proc.send_signal(signal.SIGKILL)
                    self.killed = (time.time(), victim)

    def close(self) -> None:
        self.stopping.set()
        if self.is_alive():
            self.join(5)
        self.pubsub.close()
        self.redis.close()


async def works_now(node: AtelierServer, assignment_ids: list[str]) -> dict[str, dict[str, Any]]:
    """work id → the work as the teacher sees it (REST on ``node``)."""
    out: dict[str, dict[str, Any]] = {}
    async with api(node, "t-martin") as http:
        for aid in assignment_ids:
            r = await http.get(f"/api/assignments/{aid}")
            assert r.status_code == 200, r.text
            out.update({w["id"]: w for w in r.json()["works"]})
    return out


@dataclass(frozen=True)
class StoredWork:
    id: str
    status: str
    claim: str | None
    room_doc: str


async def stored_works(database_url: str, assignment_ids: list[str]) -> list[StoredWork]:
    """The works as the database holds them, claims included (read with the store)."""
    engine = create_engine(database_url)
    try:
        store = AssignmentStore(engine, VersionStore(engine))
        return [
            StoredWork(w.id, w.status, w.claim, f"{w.room_id}/{w.doc_name}")
            for aid in assignment_ids
            for w in await store.works_of(aid)
        ]
    finally:
        await engine.dispose()


async def writable_soon(node: AtelierServer, student: str, room: str, doc: str) -> None:
    """A student who opens the doc on ``node`` can write in it, within a clock's tick
    (each try opens it afresh: the last one's socket is gone and the doc unloaded)."""
    token = f"<{student}@{name_of(node)}>"
    deadline = time.time() + 6
    while True:
        client = await YClient(ws(node, student, room, doc)).connect()
        try:
            await client.type(token)
            await client.round_trip()
            if not client.denied:
                break
        finally:
            await client.close()
        assert time.time() < deadline, f"{room}/{doc} still read-only on {name_of(node)}"
        await asyncio.sleep(0.6)  # past the unload delay (0.2 s)
    assert token in await read_fresh(node, room, doc)


async def read_fresh(node: AtelierServer, room: str, doc: str) -> str:
    """The doc's text as ``node`` serves it to a newcomer (a teacher: not bound by locks,
    and it types nothing)."""
    reader = await YClient(ws(node, "t-martin", room, doc)).connect()
    try:
        return reader.content()
    finally:
        await reader.close()


async def test_a_deadline_survives_sigkill_of_the_freezing_node(
    nodes: Cluster, tmp_path: Path
) -> None:
    began = time.monotonic()
    c = nodes
    killer = KillTheFreezer(c.redis.url, [f"{CLASS}-g{i}" for i in range(1, 6)], c.nodes)
    killer.start()
    editors: list[Editor] = []
    try:
        await _story(c, killer, editors, tmp_path)
    finally:
        killer.close()
        for e in editors:
            with contextlib.suppress(Exception):
                await e.client.close()
    print(f"deadline cluster test: {time.monotonic() - began:.1f} s inside the cluster")


async def _story(c: Cluster, killer: KillTheFreezer, editors: list[Editor], tmp_path: Path) -> None:
    # --- 1. Two assignments for every group, due together, published on two nodes (and
    # a third that nobody opens, for step 5).
    due_iso = (datetime.now(UTC) + timedelta(seconds=DUE_IN_S)).isoformat()
    published = []
    for i, (title, late) in enumerate(
        [
            ("Exposé – Les volcans", True),
            ("Questions – Le cycle de l'eau", False),
            ("Fiche – Les séismes", True),
        ]
    ):
        async with api(c.nodes[i], "t-martin") as http:
            r = await http.post(
                f"/api/classes/{CLASS}/assignments",
                json={
                    "title": title,
                    "instructions": "Rédigez à plusieurs.",
                    "due_at": due_iso,
                    "target": "groups",
                    "starter": f"# {title}\n\nIntroduction :",
                    "allow_late": late,
                },
            )
        assert r.status_code == 201, r.text
        published.append(r.json()["assignment"])
    *published, untouched = published
    due: float = published[0]["due_at"]
    assert published[1]["due_at"] == untouched["due_at"] == due
    allow_late = {a["id"]: a["allow_late"] for a in published}
    aids = [a["id"] for a in published]
    works = await works_now(c.nodes[2], aids)
    assert len(works) == 10 and len({w["room_id"] for w in works.values()}) == 5

    # Three editors per work, one on each node: students of the work's group (the
    # first three for one assignment, the last three for the other).
    plan = []
    for k, w in enumerate(sorted(works.values(), key=lambda w: (w["assignment_id"], w["room_id"]))):
        members = [m["id"] for m in w["unit"]["members"]]
        first = 0 if allow_late[w["assignment_id"]] else 3
        for n in range(3):
            plan.append((f"w{k}n{n}", members[first + n], n, w))

    async def join(tag: str, user: str, n: int, w: dict[str, Any]) -> Editor:
        client = await YClient(ws(c.nodes[n], user, w["room_id"], w["doc"])).connect()
        return Editor(tag, user, n, w, client)

    editors.extend(await asyncio.gather(*(join(*p) for p in plan)))
    for e in editors:  # an early edit each, seen by the doc's editors on the other nodes
        await e.type(f"<{e.tag}.early>")
    early_of: dict[str, list[str]] = {}
    for e in editors:
        early_of.setdefault(e.work["id"], []).append(e.early)
    await eventually(
        lambda: all(all(t in e.client.content() for t in early_of[e.work["id"]]) for e in editors),
        timeout=10,
    )
    assert not any(e.client.denied for e in editors)
    assert time.time() < due - TYPING_FROM_S, "the setup outran the due date"

    # --- 2. Typing up to the deadline; the freezing node is killed as it starts.
    await asyncio.sleep(max(0.0, due - TYPING_FROM_S - time.time()))
    typing = [asyncio.create_task(e.keep_typing(due)) for e in editors]
    await eventually(lambda: killer.killed is not None, timeout=due + 10 - time.time())
    assert killer.killed is not None
    killed_at, victim = killer.killed
    victim_name = name_of(victim)
    assert victim.proc is not None
    await asyncio.to_thread(victim.proc.wait, 10)
    assert killer.locks[0][0] >= due
    survivors = [n for n in c.nodes if n is not victim]
    # What the dead node left claimed: the works still "freezing" under the claim of a
    # work whose lock it announced (one claim token per batch it claimed).
    locked_by_victim = {d for _, origin, d in killer.locks if origin == victim_name}
    rows = await stored_works(c.database_url, aids)
    tokens = {w.claim for w in rows if w.status == "freezing" and w.room_doc in locked_by_victim}
    orphans = {w.id for w in rows if w.status == "freezing" and w.claim in tokens}
    assert orphans, "the killed node had finished its freezes before the kill"
    kept = [e for e in editors if c.nodes[e.node] is not victim]
    dropped = [e for e in editors if c.nodes[e.node] is victim]
    assert len(kept) == 20 and len(dropped) == 10

    await asyncio.wait_for(asyncio.gather(*typing), timeout=due + SANITY_S + 5 - time.time())
    await eventually(lambda: all(e.client.closed.is_set() for e in dropped), timeout=10)
    for e in kept:
        assert not e.client.closed.is_set(), f"{e.tag} lost a surviving node"
        assert e.client.denied, f"{e.tag} was never refused"
        before = len(e.client.denied)
        await e.type(f"<{e.tag}.late>")  # one more edit, well after the lock
        await e.client.round_trip()
        assert len(e.client.denied) == before + 1
        assert all(b"read-only" in d for d in e.client.denied)
    # When each editor saw its first refusal (this process's own lag included), and
    # when it sent its first refused edit (the lock was in force when that arrived).
    observed = {e.tag: e.client.denied_at[0] - due for e in kept}
    refused_sent = {e.tag: e.first_refused_sent_at() - due for e in kept}
    assert all(0 <= v < SANITY_S for v in observed.values()), observed
    # Locked by the survivors' own clocks, not by the freeze that follows the lease.
    assert all(v < LEASE_S for v in refused_sent.values()), refused_sent

    # --- 3. Every work ends frozen once, by its deadline's rule, on the survivors.
    async def all_frozen() -> bool:
        now = await works_now(survivors[1], aids)
        return all(w["status"] in ("late", "missed") for w in now.values())

    await eventually(all_frozen, timeout=LEASE_S + SETTLE_S + 15, interval=0.2)
    frozen_after_s = time.time() - due
    final = await works_now(survivors[0], aids)
    rendus: dict[str, str] = {}
    async with api(survivors[0], "t-martin") as http:
        for w in final.values():
            assert w["status"] == ("late" if allow_late[w["assignment_id"]] else "missed")
            listed = await http.get(f"/api/rooms/{w['room_id']}/docs/{w['doc']}/versions")
            assert listed.status_code == 200, listed.text
            kinds = [v for v in listed.json()["versions"] if v["kind"] == "rendu"]
            assert [v["id"] for v in kinds] == [w["version_id"]], (w["id"], kinds)
            r = await http.get(f"/api/works/{w['id']}/rendu")
            assert r.status_code == 200, r.text
            rendus[w["id"]] = r.json()["text"]

    for e in editors:
        assert e.early in rendus[e.work["id"]], e.tag  # the dead node's editors too
    for e in kept:
        accepted, refused = e.split()
        text = rendus[e.work["id"]]
        assert all(t in text for t in accepted), (e.tag, [t for t in accepted if t not in text])
        assert not any(t in text for t in refused), (e.tag, [t for t in refused if t in text])
    by_work: dict[str, list[Editor]] = {}
    for e in kept:
        by_work.setdefault(e.work["id"], []).append(e)
    for wid, group in by_work.items():
        w = final[wid]
        refused = [t for e in group for t in e.split()[1]]
        for node in survivors:
            served = await read_fresh(node, w["room_id"], w["doc"])
            assert all(t in served for t in early_of[wid])
            assert not any(t in served for t in refused), (name_of(node), wid)
        stored = await stored_text(c.database_url, w["room_id"], w["doc"])
        assert not any(t in stored for t in refused), wid

    # --- 4. The killed node, restarted, serves every work's doc locked from its load.
    await asyncio.to_thread(victim.start)
    for wid, w in final.items():
        student = next(e.user for e in editors if e.work["id"] == wid)
        again = await YClient(ws(victim, student, w["room_id"], w["doc"])).connect()
        try:
            assert all(t in again.content() for t in early_of[wid])
            await again.type(f"<{wid}.after-restart>")
            await again.round_trip()
            assert len(again.denied) == 1 and b"read-only" in again.denied[0]
        finally:
            await again.close()
        served = await read_fresh(victim, w["room_id"], w["doc"])
        assert f"<{wid}.after-restart>" not in served
        refused = [t for e in by_work[wid] for t in e.split()[1]]
        assert not any(t in served for t in refused), wid
    # Still one rendu each, now that every lease is long over.
    assert time.time() > due + 2 * LEASE_S
    async with api(victim, "t-martin") as http:
        for w in (await works_now(victim, aids)).values():
            listed = await http.get(f"/api/rooms/{w['room_id']}/docs/{w['doc']}/versions")
            assert [v["id"] for v in listed.json()["versions"] if v["kind"] == "rendu"] == [
                w["version_id"]
            ]

    # --- 5. The teacher moves the untouched assignment's due date, on the restarted node.
    # Each of its docs was loaded only by the node that froze it; the other survivor's
    # clock had it overdue too. Loaded afresh anywhere now, each is writable again.
    async def frozen_untouched() -> bool:
        now = await works_now(survivors[0], [untouched["id"]])
        return all(w["status"] == "late" for w in now.values())

    await eventually(frozen_untouched, timeout=15, interval=0.2)
    later = (datetime.now(UTC) + timedelta(seconds=600)).isoformat()
    async with api(victim, "t-martin") as http:
        r = await http.patch(f"/api/assignments/{untouched['id']}", json={"due_at": later})
    assert r.status_code == 200, r.text
    reopened = r.json()["works"]
    assert len(reopened) == 5 and all(w["status"] == "open" for w in reopened)
    for w in reopened:
        student = w["unit"]["members"][0]["id"]
        for node in c.nodes:
            await writable_soon(node, student, w["room_id"], w["doc"])

    # --- The figures.
    def summary(seconds: dict[str, float]) -> dict[str, float]:
        values = list(seconds.values())
        return {
            "p50_ms": round(nearest_rank(values, 0.50) * 1000, 1),
            "p99_ms": round(nearest_rank(values, 0.99) * 1000, 1),
            "max_ms": round(max(values) * 1000, 1),
            "min_ms": round(min(values) * 1000, 1),
        }

    seen, sent = summary(observed), summary(refused_sent)
    figures: dict[str, Any] = {
        "editors": len(kept),
        "observed": seen,  # due → the editor's first refusal arrived
        "refused_edit_sent": sent,  # due → its first refused edit left
        "probe_every_ms": PROBE_EVERY_S * 1000,
        "killed": victim_name,
        "killed_after_due_ms": round((killed_at - due) * 1000, 1),
        "locks_announced_by_killed_node": len(locked_by_victim),
        "freezes_left_claimed_by_killed_node": len(orphans),
        "all_frozen_after_due_s": round(frozen_after_s, 2),
        "lease_s": LEASE_S,
        "settle_s": SETTLE_S,
        "per_editor_ms": {
            f"{e.tag}@{name_of(c.nodes[e.node])}": {
                "observed": round(observed[e.tag] * 1000, 1),
                "refused_edit_sent": round(refused_sent[e.tag] * 1000, 1),
            }
            for e in kept
        },
    }
    out = tmp_path / "deadline_lock_latency.json"
    out.write_text(json.dumps(figures, indent=2))
    print(
        f"\ndeadline lock, {len(kept)} editors on the surviving nodes, due → refusal seen: "
        f"p50 {seen['p50_ms']} ms, p99 {seen['p99_ms']} ms, max {seen['max_ms']} ms; "
        f"due → first refused edit sent: p50 {sent['p50_ms']} ms, p99 {sent['p99_ms']} ms, "
        f"max {sent['max_ms']} ms (a probing edit every {PROBE_EVERY_S * 1000:.0f} ms). "
        f"Killed {victim_name} {figures['killed_after_due_ms']} ms after due holding "
        f"{len(orphans)} claimed freezes; all frozen {frozen_after_s:.2f} s after due."
        f"\nfigures: {out}"
    )
