"""The figures of the assignments feature, against real server processes on PostgreSQL.

One run (≈ 2–3 minutes on 2 cores) starts a throwaway PostgreSQL database and Redis
(tests/support/services.py), migrates and seeds it, inserts a bench roster **with SQL
(COPY) before the servers start** (the demo school has no class of 35 and no CLI loads a
roster from a file), then starts ``--nodes`` Atelier nodes (tests/support/server.py) with
the ENT webhook pointed at a real HMAC-checking receiver in this process
(tests/support/receiver.py) and ``ATELIER_DEADLINE_POLL_S=1``. Everything is 127.0.0.1.

Bench roster (school ``bench``): class ``bench-35``, teacher ``bt-35``, 35 students
``bs-35-NN`` each with ``--parents`` parents (2 by default: 70 parents, 105 recipients);
``--region`` classes ``r-NNN`` of the same shape (own teacher, 35 students, parents).

1. **fan-out** (``--fanout-runs``, 3): every student and parent of ``bench-35`` holds the
   class room channel ``/rooms/bench-35/live`` open (the notification feed is pushed
   there, server/live/room.py); the teacher publishes one assignment to ``students``
   (35 personal works, a starter doc each). Measured from the POST's start: the POST,
   each socket's ``notification`` event, each webhook delivery taken by the receiver
   (its first 2xx); rows inserted (table counts before/after the webhook drained).
2. **export**: an assignment to ``students`` due in ``--export-due-s`` s; each student
   opens its doc (y-websocket, tests/support/yclient.py) and writes 12 paragraphs
   (~2 KB, as Tiptap blocks) before it; the deadline clock freezes the 35 works (time
   from due_at to the last rendu row); then ``GET /api/assignments/{id}/export`` in ODT
   and HTML, ``--export-runs`` times each (medians, ZIP size, the server's own
   ``Server-Timing`` for building the ZIP).
3. **region** (``--region 50,200``): N teachers of N classes POST at the same moment
   (one new connection each, all fired together from this process): publish latency
   p50/p99/max, wall time, rows; then the webhook's drain rate (bounded by ``--drain-s``;
   what is left undelivered is marked delivered with SQL, so that the next round starts
   on an empty outbox).

The client (this process: sockets, webhook receiver thread) shares the 2 cores with the
server and PostgreSQL: each phase reports the CPU of the server, of the database's
backends, of this process and of every other process on the machine (a neighbour).
Prints a table; writes bench/results/raw/assignments-<stamp>.json (git-ignored).

Usage: python -m bench.assignments [--region 50,200] [--nodes 1] [--py-spy]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import msgpack
import psycopg
import websockets
from pycrdt import XmlElement, XmlFragment, XmlText

from bench.run_load import RAW_DIR, ROOT, _cpu_rss
from tests.support.receiver import Receiver
from tests.support.server import AtelierServer
from tests.support.services import postgres_database, redis_server
from tests.support.yclient import YClient

SECRET = "bench-ent-webhook-secret"
CLASS = "bench-35"
CLASS_SIZE = 35
TABLES = (
    "assignment",
    "work",
    "doc",
    "doc_update",
    "doc_version",
    "notification",
    "notification_delivery",
)
STARTER = (
    "# Rédaction\n\nConsigne : répondez en trois parties.\n\n## Introduction\n\n"
    "- idée 1\n- idée 2\n\n## Développement\n\n## Conclusion\n"
)
INSTRUCTIONS = (
    "Lisez le **chapitre 3** du manuel puis rédigez une réponse argumentée "
    "(une page environ). Citez au moins deux documents. " * 3
)
T0 = time.monotonic()
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg: str) -> None:
    print(f"[assignments {time.monotonic() - T0:6.1f}s] {msg}", file=sys.stderr, flush=True)


def pct(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (as bench/chat.py), in the values' unit, 1 decimal."""
    if not values:
        return None
    v = sorted(values)
    return round(v[min(len(v) - 1, max(0, round(p / 100 * len(v) + 0.5) - 1))], 1)


def spread(values: list[float]) -> dict[str, float | None]:
    return {
        "p50": pct(values, 50),
        "p99": pct(values, 99),
        "max": round(max(values), 1) if values else None,
        "n": len(values),
    }


def iso_in(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


# ------------------------------------------------------------------ roster (SQL, COPY)


def class_people(class_id: str, teacher: str, sprefix: str, pprefix: str, parents: int) -> dict:
    students = [f"{sprefix}-{k:02d}" for k in range(1, CLASS_SIZE + 1)]
    links = [
        (f"{pprefix}-{k:02d}{'ab'[j]}", s)
        for k, s in enumerate(students, 1)
        for j in range(parents)
    ]
    return {"class": class_id, "teacher": teacher, "students": students, "parents": links}


def roster(region: int, parents: int) -> list[dict]:
    out = [class_people(CLASS, "bt-35", "bs-35", "bp-35", parents)]
    for i in range(region):
        out.append(class_people(f"r-{i:03d}", f"rt-{i:03d}", f"rs-{i:03d}", f"rp-{i:03d}", parents))
    return out


def insert_roster(pg_url: str, classes: list[dict]) -> dict[str, int]:
    users, members, links, rooms = [], [], [], []
    for c in classes:
        rooms.append((c["class"], "bench", f"Classe {c['class']}"))
        users.append((c["teacher"], "bench", "teacher", f"Professeur {c['class']}"))
        members.append((c["teacher"], c["class"]))
        for s in c["students"]:
            users.append((s, "bench", "student", f"Élève {s}"))
            members.append((s, c["class"]))
        for p, s in c["parents"]:
            users.append((p, "bench", "parent", f"Parent de {s}"))
            links.append((p, s))
    with psycopg.connect(pg_url) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO school (id, name) VALUES ('bench', 'Lycée du bench')")
        for table, cols, rows in (
            ("school_class", "id, school_id, name", rooms),
            ("app_user", "id, school_id, role, display_name", users),
            ("membership", "user_id, room_id", members),
            ("parent_link", "parent_id, student_id", links),
        ):
            with cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
    return {"classes": len(rooms), "users": len(users), "parent_links": len(links)}


def counts(pg_url: str) -> dict[str, int]:
    with psycopg.connect(pg_url) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}  # type: ignore[index]


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    d = {t: after[t] - before[t] for t in TABLES}
    d["total"] = sum(d.values())
    return d


def scalar(pg_url: str, query: str, *args: Any) -> int:
    with psycopg.connect(pg_url) as conn:
        return int(conn.execute(query, args).fetchone()[0])  # type: ignore[index]


def discard_backlog(pg_url: str) -> int:
    """Mark what the webhook did not deliver within the bound as delivered (bench only)."""
    with psycopg.connect(pg_url) as conn:
        cur = conn.execute(
            "UPDATE notification_delivery SET delivered_at = now(), lease_until = NULL"
            " WHERE delivered_at IS NULL"
        )
        return cur.rowcount


def pid_cpu_s(pid: int) -> float | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    return None


def backend_pids(pg_url: str) -> set[int]:
    """The PostgreSQL backends connected to the bench's database (the server is shared)."""
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()"
        ).fetchall()
    return {int(r[0]) for r in rows}


def own_cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def machine_busy() -> tuple[float, float]:
    vals = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = vals[3] + vals[4]
    return float(sum(vals) - idle), float(sum(vals))


class Meter:
    """Server, PostgreSQL and whole-machine CPU over a phase."""

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.pg_start = {p: pid_cpu_s(p) for p in backend_pids(bench.pg)}
        self.start = (bench.cpu(), own_cpu_s(), machine_busy())

    def postgres(self) -> float:
        """CPU of the database's backends over the phase (a backend that closed meanwhile
        is lost: a lower bound)."""
        total = 0.0
        for p in backend_pids(self.bench.pg) | set(self.pg_start):
            now, then = pid_cpu_s(p), self.pg_start.get(p)
            if now is not None:
                total += now - (then or 0.0)
        return total

    def read(self) -> dict[str, float]:
        cpu, own, (busy, total) = self.start
        b1, t1 = machine_busy()
        server, postgres = self.bench.cpu() - cpu, self.postgres()
        bench = own_cpu_s() - own
        busy_s = (b1 - busy) / CLK_TCK
        return {
            "server_cpu_s": round(server, 2),
            "postgres_cpu_s": round(postgres, 2),
            "bench_cpu_s": round(bench, 2),
            "machine_busy_pct": round(100 * (b1 - busy) / max(1.0, t1 - total), 1),
            # everything else on the machine (other processes): a noisy neighbour
            "other_cpu_s": round(max(0.0, busy_s - server - postgres - bench), 2),
        }


# ------------------------------------------------------------------ clients


class TimedReceiver(Receiver):
    """The tests' receiver, plus when each delivery was first taken, per assignment."""

    def __init__(self, secret: str, *, keep_alive: bool) -> None:
        super().__init__(secret)
        if keep_alive:  # the tests' handler answers HTTP/1.0: a new connection per POST
            self.server.RequestHandlerClass.protocol_version = "HTTP/1.1"  # type: ignore[attr-defined]
        self.per_assignment: dict[str, list[float]] = {}

    def _received(self, handler: BaseHTTPRequestHandler, raw: bytes) -> None:
        t = time.perf_counter()
        key = handler.headers.get("Idempotency-Key", "")
        fresh = key not in self.taken
        super()._received(handler, raw)
        if fresh and key in self.taken:
            aid = self.taken[key].get("assignment_id") or ""
            with self._lock:
                self.per_assignment.setdefault(aid, []).append(t)

    def got(self, aid: str) -> list[float]:
        with self._lock:
            return list(self.per_assignment.get(aid, ()))


class Channel:
    """One user's room-channel socket; records when each assignment's notification came."""

    def __init__(self, user: str, url: str) -> None:
        self.user = user
        self.url = url
        self.ws: Any = None
        self.hello = asyncio.Event()
        self.arrived: dict[str, float] = {}  # assignment id → perf_counter
        self.closed = False
        self.task: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        self.ws = await websockets.connect(
            self.url, max_size=None, ping_interval=None, open_timeout=20
        )
        self.task = asyncio.create_task(self._read())
        await asyncio.wait_for(self.hello.wait(), 20)

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                t = time.perf_counter()
                f = msgpack.unpackb(raw, raw=False)
                if f.get("t") == "hello":
                    self.hello.set()
                elif f.get("t") == "event" and f.get("kind") == "notification":
                    self.arrived.setdefault(f["item"].get("assignment_id") or "", t)
        except websockets.ConnectionClosed:
            pass
        finally:
            self.closed = True

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.task, 5)


async def gather_bounded(coros: list, limit: int = 25) -> list:  # type: ignore[type-arg]
    gate = asyncio.Semaphore(limit)

    async def one(c):  # type: ignore[no-untyped-def]
        async with gate:
            return await c

    return list(await asyncio.gather(*(one(c) for c in coros)))


async def until(predicate: Any, timeout: float, interval: float = 0.02) -> bool:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if predicate():
            return True
        await asyncio.sleep(interval)
    return bool(predicate())


# ------------------------------------------------------------------ the bench


class Bench:
    def __init__(self, nodes: list[AtelierServer], pg_url: str, receiver: TimedReceiver) -> None:
        self.nodes = nodes
        self.pg = pg_url
        self.receiver = receiver

    def cpu(self) -> float:
        return sum(_cpu_rss(n.proc.pid)[0] for n in self.nodes if n.proc is not None)

    def node(self, i: int) -> AtelierServer:
        return self.nodes[i % len(self.nodes)]

    def http(self, user: str, i: int = 0, **kw: Any) -> httpx.AsyncClient:
        node = self.node(i)
        return httpx.AsyncClient(
            base_url=node.http_url,
            headers={"Authorization": f"Bearer {node.token(user)}"},
            timeout=60,
            **kw,
        )

    async def publish(
        self, http: httpx.AsyncClient, class_id: str, title: str, due_s: float
    ) -> httpx.Response:
        return await http.post(
            f"/api/classes/{class_id}/assignments",
            json={
                "title": title,
                "instructions": INSTRUCTIONS,
                "resources": [
                    {"title": "Manuel, chapitre 3", "url": "https://manuel.example/ch3"},
                    {"title": "Document 2", "url": "https://archives.example/doc2"},
                ],
                "due_at": iso_in(due_s),
                "target": "students",
                "starter": STARTER,
            },
        )

    async def wait_drained(self, timeout: float) -> tuple[bool, float]:
        t = time.perf_counter()
        q = "SELECT count(*) FROM notification_delivery WHERE delivered_at IS NULL"
        while time.perf_counter() - t < timeout:
            if await asyncio.to_thread(scalar, self.pg, q) == 0:
                return True, time.perf_counter() - t
            await asyncio.sleep(0.2)
        return False, time.perf_counter() - t

    # --- 1. fan-out

    async def fanout(self, c: dict, runs: int) -> dict:
        users = c["students"] + sorted({p for p, _ in c["parents"]})
        chans = [
            Channel(
                u, f"{self.node(i).ws_url}/rooms/{c['class']}/live?token={self.node(i).token(u)}"
            )
            for i, u in enumerate(users)
        ]
        async with self.http(c["teacher"]) as http:  # the first publish of a process is cold
            t = time.perf_counter()
            r = await self.publish(http, c["class"], "Échauffement", 3600)
            cold_ms = (time.perf_counter() - t) * 1000
            assert r.status_code == 201, r.text
        await self.wait_drained(15)
        t = time.perf_counter()
        await gather_bounded([ch.connect() for ch in chans])
        connect_s = time.perf_counter() - t
        log(f"fan-out: {len(chans)} room-channel sockets open in {connect_s:.2f} s")
        out: list[dict] = []
        async with self.http(c["teacher"]) as http:
            for run in range(runs):
                before = await asyncio.to_thread(counts, self.pg)
                meter = Meter(self)
                t0 = time.perf_counter()
                r = await self.publish(http, c["class"], f"Devoir maison {run + 1}", 3600)
                post_ms = (time.perf_counter() - t0) * 1000
                assert r.status_code == 201, r.text
                aid = r.json()["assignment"]["id"]
                await until(lambda: all(aid in ch.arrived for ch in chans), 15)  # noqa: B023
                sockets = [(ch.arrived[aid] - t0) * 1000 for ch in chans if aid in ch.arrived]
                want = len(c["students"]) + len(c["parents"])
                await until(lambda: len(self.receiver.got(aid)) >= want, 30, 0.05)  # noqa: B023
                hooks = [(x - t0) * 1000 for x in self.receiver.got(aid)]
                drained, _ = await self.wait_drained(10)
                cpu = meter.read()
                rows = delta(before, await asyncio.to_thread(counts, self.pg))
                out.append(
                    {
                        "post_ms": round(post_ms, 1),
                        "sockets": len(chans),
                        "notified": len(sockets),
                        "notification_ms": spread(sockets),
                        "all_notified_ms": round(max(sockets), 1) if sockets else None,
                        "webhooks_expected": want,
                        "webhooks": len(hooks),
                        "webhook_ms": spread(hooks),
                        "all_webhooks_ms": round(max(hooks), 1) if hooks else None,
                        "outbox_drained": drained,
                        "rows": rows,
                        **cpu,
                    }
                )
                log(
                    f"fan-out run {run + 1}: POST {post_ms:.0f} ms, {len(sockets)}/{len(chans)} "
                    f"sockets by {out[-1]['all_notified_ms']} ms, {len(hooks)}/{want} webhooks "
                    f"by {out[-1]['all_webhooks_ms']} ms, {rows['total']} rows"
                )
                await asyncio.sleep(0.5)
        closed_early = sum(ch.closed for ch in chans)
        await gather_bounded([ch.close() for ch in chans])

        def med(key: str) -> float | None:
            v = [r[key] for r in out if r[key] is not None]
            return round(statistics.median(v), 1) if v else None

        return {
            "class_size": len(c["students"]),
            "parents": len({p for p, _ in c["parents"]}),
            "recipients": len(c["students"]) + len(c["parents"]),
            "cold_post_ms": round(cold_ms, 1),
            "connect_s": round(connect_s, 2),
            "sockets_closed_early": closed_early,
            "median": {
                k: med(k)
                for k in (
                    "post_ms",
                    "all_notified_ms",
                    "all_webhooks_ms",
                    "server_cpu_s",
                    "postgres_cpu_s",
                    "other_cpu_s",
                )
            },
            "runs": out,
        }

    # --- 2. freeze and export

    async def export(self, c: dict, due_s: float, runs: int) -> dict:
        async with self.http(c["teacher"]) as http:
            r = await self.publish(http, c["class"], "Rédaction à rendre", due_s)
        assert r.status_code == 201, r.text
        a = r.json()["assignment"]
        aid, due = a["id"], a["due_at"]
        works = r.json()["works"]
        clients = [
            YClient(
                f"{self.node(i).ws_url}/yjs/{w['room_id']}/{w['doc']}"
                f"?token={self.node(i).token(w['student_id'])}"
            )
            for i, w in enumerate(works)
        ]
        await gather_bounded([cl.connect(timeout=20) for cl in clients])

        async def write(k: int, cl: YClient) -> int:
            frag = cl.doc.get("default", type=XmlFragment)
            chars = 0
            for p in range(12):
                text = (
                    f"Paragraphe {p + 1} de l'élève {k + 1} : "
                    + "la photosynthèse transforme la lumière en énergie chimique, " * 3
                )
                block = (
                    XmlElement("heading", {"level": "2"}, [XmlText(f"Partie {p // 4 + 1}")])
                    if p % 4 == 0
                    else XmlElement("paragraph", None, [XmlText(text)])
                )
                frag.children.append(block)
                await cl.flush()
                chars += len(text) if p % 4 else 8
                await asyncio.sleep(0.02)
            return chars

        t = time.perf_counter()
        written = await asyncio.gather(*(write(k, cl) for k, cl in enumerate(clients)))
        write_s = time.perf_counter() - t
        early = due - time.time()
        log(f"export: 35 docs written in {write_s:.1f} s, {early:.1f} s before the deadline")
        cpu0 = self.cpu()
        q = "SELECT count(*) FROM work WHERE assignment_id = %s AND version_id IS NOT NULL"
        await asyncio.sleep(max(0.0, due - time.time()))
        first = None
        frozen = 0
        deadline = time.time() + 40
        while time.time() < deadline:
            frozen = await asyncio.to_thread(scalar, self.pg, q, aid)
            if frozen and first is None:
                first = time.time() - due
            if frozen >= len(works):
                break
            await asyncio.sleep(0.1)
        freeze_s = time.time() - due
        freeze_cpu = self.cpu() - cpu0
        log(f"export: {frozen}/{len(works)} works frozen {freeze_s:.2f} s after due_at")
        await gather_bounded([cl.close() for cl in clients])
        await asyncio.sleep(2.0)  # the 35 docs unload (flush) before the exports are timed
        fmts: dict[str, Any] = {}
        async with self.http(c["teacher"]) as http:
            for fmt in ("odt", "html"):
                took, built, sizes, files = [], [], [], 0
                cpu0 = self.cpu()
                for _ in range(runs):
                    t = time.perf_counter()
                    r = await http.get(f"/api/assignments/{aid}/export", params={"format": fmt})
                    took.append((time.perf_counter() - t) * 1000)
                    assert r.status_code == 200, r.text
                    timing = r.headers.get("server-timing", "")
                    if "dur=" in timing:
                        built.append(float(timing.split("dur=")[1]))
                    sizes.append(len(r.content))
                    files = len(zipfile.ZipFile(io.BytesIO(r.content)).namelist())
                fmts[fmt] = {
                    "median_ms": round(statistics.median(took), 1),
                    "min_ms": round(min(took), 1),
                    "max_ms": round(max(took), 1),
                    "zip_build_median_ms": round(statistics.median(built), 1) if built else None,
                    "zip_bytes": sizes[-1],
                    "files": files,
                    "server_cpu_s_per_export": round((self.cpu() - cpu0) / runs, 3),
                    "runs": [round(x, 1) for x in took],
                }
                log(f"export {fmt}: median {fmts[fmt]['median_ms']} ms, {sizes[-1]} bytes")
        return {
            "works": len(works),
            "chars_written_per_doc": statistics.median(written),
            "written_before_due_s": round(early, 2),
            "frozen": frozen,
            "first_freeze_after_due_s": round(first, 2) if first is not None else None,
            "all_frozen_after_due_s": round(freeze_s, 2),
            "freeze_server_cpu_s": round(freeze_cpu, 2),
            "formats": fmts,
        }

    # --- 3. a region posting at 08:00

    async def region(self, classes: list[dict], drain_s: float) -> dict:
        n = len(classes)
        before = await asyncio.to_thread(counts, self.pg)
        go = asyncio.Event()
        clients = [
            self.http(c["teacher"], i, limits=httpx.Limits(max_connections=1))
            for i, c in enumerate(classes)
        ]

        async def one(i: int, c: dict, http: httpx.AsyncClient) -> tuple[float, float, int, str]:
            await go.wait()
            t = time.perf_counter()
            r = await self.publish(http, c["class"], f"Travail du matin {n}", 3 * 3600)
            aid = r.json()["assignment"]["id"] if r.status_code == 201 else ""
            return t, time.perf_counter(), r.status_code, aid

        tasks = [
            asyncio.create_task(one(i, c, h))
            for i, (c, h) in enumerate(zip(classes, clients, strict=True))
        ]
        await asyncio.sleep(0.2)
        meter = Meter(self)
        t0 = time.perf_counter()
        go.set()
        done = await asyncio.gather(*tasks)
        wall = time.perf_counter() - t0
        cpu = meter.read()
        for h in clients:
            await h.aclose()
        lat = [(b - a) * 1000 for a, b, _, _ in done]
        statuses: dict[str, int] = {}
        for _, _, s, _ in done:
            statuses[str(s)] = statuses.get(str(s), 0) + 1
        rows = delta(before, await asyncio.to_thread(counts, self.pg))
        log(f"region {n}: {n} POSTs in {wall:.2f} s (p50 {pct(lat, 50)} ms, p99 {pct(lat, 99)} ms)")
        want = rows["notification_delivery"]
        meter = Meter(self)
        drained, took = await self.wait_drained(drain_s)
        aids = [a for *_, a in done if a]
        hooks = sum(len(self.receiver.got(a)) for a in aids)
        log(f"region {n}: webhook {hooks}/{want} delivered in {took:.1f} s (drained: {drained})")
        left = 0
        if not drained:  # the next round starts on an empty outbox: the rest is dropped
            left = await asyncio.to_thread(discard_backlog, self.pg)
        return {
            "classes": n,
            "statuses": statuses,
            "wall_s": round(wall, 2),
            "publish_ms": spread(lat),
            "publishes_per_s": round(n / wall, 1),
            **cpu,
            # the burst's server CPU (the webhook starts on its deliveries meanwhile) / N
            "server_cpu_ms_per_publish": round(cpu["server_cpu_s"] / n * 1000, 1),
            "rows": rows,
            "rows_per_s": round(rows["total"] / wall),
            "webhook": {
                "expected": want,
                "delivered": hooks,
                "drained": drained,
                "drain_s": round(took, 1),
                "per_s": round(hooks / took, 1) if took else None,
                **meter.read(),
                "discarded_after_bound": left,
            },
        }


# ------------------------------------------------------------------ run


def py_spy_exe() -> str | None:  # not a dependency: `pip install py-spy` to profile
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


def log_summary(logs: str) -> dict[str, Any]:
    """Counts of the servers' ERROR/WARNING lines and of the exceptions their tracebacks end
    with (the logs go with the data folder)."""
    lines = logs.splitlines()
    exceptions: dict[str, int] = {}
    for i, line in enumerate(lines):
        if line.startswith("Traceback"):
            j = i + 1
            while j < len(lines) and (lines[j].startswith((" ", "\t")) or not lines[j]):
                j += 1
            if j < len(lines):
                key = lines[j][:160]
                exceptions[key] = exceptions.get(key, 0) + 1
    return {
        "errors": sum(" ERROR " in ln or ln.startswith("ERROR") for ln in lines),
        "warnings": sum(" WARNING " in ln or ln.startswith("WARNING") for ln in lines),
        "exceptions": exceptions,
    }


def save(path: Path, out: dict) -> None:
    path.write_text(json.dumps(out, indent=1))


def start_py_spy(pid: int, path: Path) -> subprocess.Popen[bytes] | None:
    """py-spy record (raw folded stacks, 100 Hz, at most 60 s) of one node, if installed."""
    exe = py_spy_exe()
    if exe is None:
        log("py-spy not found (beside python or on PATH): no profile")
        return None
    cmd = [
        exe,
        "record",
        "-p",
        str(pid),
        "-o",
        str(path),
        "-f",
        "raw",
        "-r",
        "100",
        "-d",
        "60",
        "--nonblocking",
    ]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def machine() -> dict[str, Any]:
    m: dict[str, Any] = {"nproc": os.cpu_count(), "python": platform.python_version()}
    with contextlib.suppress(Exception):
        m["cpu_model"] = next(
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        )
    m["loadavg_start"] = os.getloadavg()
    return m


async def run(args: argparse.Namespace, out: dict, raw_path: Path) -> None:
    sizes = [int(x) for x in args.region.split(",") if x.strip()] if args.region else []
    biggest = max(sizes, default=0)
    with redis_server() as redis, postgres_database("atelier_bench") as db_url:
        pg = db_url.replace("postgresql+psycopg", "postgresql", 1)
        receiver = TimedReceiver(SECRET, keep_alive=not args.receiver_close)
        receiver.start()
        folder = Path(tempfile.mkdtemp(prefix="atelier-assign-"))
        nodes = [
            AtelierServer(
                data_dir=folder / f"node-{i + 1}",
                database_url=db_url,
                extra_env={
                    "ATELIER_REDIS_URL": redis.url,
                    "ATELIER_NODE_ID": f"node-{i + 1}",
                    "ATELIER_ENT_WEBHOOK_URL": receiver.url,
                    "ATELIER_ENT_WEBHOOK_SECRET": SECRET,
                    "ATELIER_DEADLINE_POLL_S": "1",
                    **dict(e.split("=", 1) for e in args.env),
                },
            )
            for i in range(args.nodes)
        ]
        try:
            for node in nodes:
                node.data_dir.mkdir(parents=True)
            nodes[0].prepare()  # migrate + seed-demo, once: the database is shared
            classes = roster(biggest, args.parents)
            out["roster"] = insert_roster(pg, classes)
            log(f"roster inserted with SQL: {out['roster']}")
            for node in nodes:
                node.start()
            bench = Bench(nodes, pg, receiver)
            log(f"{len(nodes)} node(s) up on PostgreSQL + Redis")
            out["fanout"] = await bench.fanout(classes[0], args.fanout_runs)
            save(raw_path, out)
            out["export"] = await bench.export(classes[0], args.export_due_s, args.export_runs)
            save(raw_path, out)
            out["region"] = []
            for n in sizes:
                spy_path = RAW_DIR / f"pyspy-assignments-region{n}.txt"
                spy = None
                if args.py_spy and nodes[0].proc is not None:
                    spy = start_py_spy(nodes[0].proc.pid, spy_path)
                    await asyncio.sleep(1.0)
                out["region"].append(await bench.region(classes[1 : n + 1], args.drain_s))
                if spy is not None:
                    spy.send_signal(signal.SIGINT)  # py-spy writes what it sampled
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        spy.wait(20)
                    out["region"][-1]["py_spy"] = str(spy_path.relative_to(ROOT))
                save(raw_path, out)
        finally:
            for node in nodes:
                if node.proc is not None and node.proc.poll() is None:
                    with contextlib.suppress(Exception):
                        node.stop()
            logs = "\n".join(n.all_logs() for n in nodes)
            out["server_log"] = log_summary(logs)
            receiver.stop()
            out["webhook_bad_signatures"] = receiver.bad_signatures
            shutil.rmtree(folder, ignore_errors=True)


def table(out: dict) -> str:
    lines = []
    f = out.get("fanout")
    if f:
        m = f["median"]
        r0 = f["runs"][0]
        lines += [
            f"1. fan-out: class of {f['class_size']}, {f['parents']} parents → "
            f"{f['recipients']} recipients, {r0['sockets']} room-channel sockets "
            f"(median of {len(f['runs'])} publishes)",
            f"   POST /api/classes/…/assignments      {m['post_ms']:>8} ms",
            "   (times from the POST's start)",
            f"   every socket had its notification    {m['all_notified_ms']:>8} ms",
            f"   every webhook taken by the receiver  {m['all_webhooks_ms']:>8} ms",
            f"   server CPU per publish (+ webhooks)  {m['server_cpu_s']:>8} s "
            f"(PostgreSQL {m['postgres_cpu_s']} s, other processes {m['other_cpu_s']} s)",
            f"   cold first publish of the process    {f['cold_post_ms']:>8} ms",
            "   rows inserted per publish            "
            + ", ".join(f"{k} {v}" for k, v in r0["rows"].items() if v),
        ]
    e = out.get("export")
    if e:
        lines += [
            f"2. export: {e['works']} rendus (starter + ~{e['chars_written_per_doc']:.0f} chars "
            "each); "
            f"deadline froze {e['frozen']} in {e['all_frozen_after_due_s']} s after due_at "
            f"(first {e['first_freeze_after_due_s']} s)",
        ]
        for fmt, v in e["formats"].items():
            lines.append(
                f"   export {fmt:<4} median {v['median_ms']:>7} ms (min {v['min_ms']}, max "
                f"{v['max_ms']}; ZIP built in {v['zip_build_median_ms']} ms)  "
                f"{v['zip_bytes'] / 1024:.0f} KiB, {v['files']} files"
            )
    for r in out.get("region", []):
        p = r["publish_ms"]
        w = r["webhook"]
        lines += [
            f"3. region: {r['classes']} classes publish at once (target students, 35 + 70 parents"
            " each)",
            f"   publish p50 {p['p50']} ms, p99 {p['p99']} ms, max {p['max']} ms; wall "
            f"{r['wall_s']} s ({r['publishes_per_s']}/s); statuses {r['statuses']}",
            f"   CPU in the burst: server {r['server_cpu_s']} s ({r['server_cpu_ms_per_publish']}"
            f" ms per publish), PostgreSQL {r['postgres_cpu_s']} s, machine "
            f"{r['machine_busy_pct']} % busy (other processes {r['other_cpu_s']} s); "
            f"{r['rows']['total']} rows inserted",
            f"   webhook: {w['delivered']}/{w['expected']} delivered in {w['drain_s']} s "
            f"({w['per_s']}/s; bound {out['args']['drain_s']} s, "
            f"{w['discarded_after_bound']} left undelivered and dropped)",
        ]
    if len(out.get("region", [])) >= 2:
        a, b = out["region"][0], out["region"][-1]
        ratio = b["classes"] / a["classes"]
        lines.append(
            f"   scaling ×{ratio:.0f} classes: wall ×{b['wall_s'] / a['wall_s']:.1f}, "
            f"p50 ×{b['publish_ms']['p50'] / a['publish_ms']['p50']:.1f}, CPU per publish "
            f"×{b['server_cpu_ms_per_publish'] / a['server_cpu_ms_per_publish']:.2f}"
        )
    m = out["machine"]
    lines.append(
        f"server log: {out.get('server_log')}; total {out.get('total_s')} s; load average "
        f"{m['loadavg_start'][0]:.1f} → {m.get('loadavg_end', [0])[0]:.1f} on {m['nproc']} cores"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--nodes", type=int, default=1)
    ap.add_argument("--parents", type=int, default=2, choices=(0, 1, 2), help="per student")
    ap.add_argument("--fanout-runs", type=int, default=3)
    ap.add_argument("--export-runs", type=int, default=5)
    ap.add_argument("--export-due-s", type=float, default=8.0)
    ap.add_argument("--region", default="50,200", help="comma list of class counts ('' skips)")
    ap.add_argument("--drain-s", type=float, default=20.0, help="max wait for the webhook drain")
    ap.add_argument(
        "--receiver-close",
        action="store_true",
        help="the receiver answers HTTP/1.0 and closes (default: HTTP/1.1 keep-alive)",
    )
    ap.add_argument("--py-spy", action="store_true", help="py-spy record node 1 in region runs")
    ap.add_argument("--env", action="append", default=[], help="ATELIER_X=… for the servers")
    args = ap.parse_args(argv)
    RAW_DIR.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    raw_path = RAW_DIR / f"assignments-{stamp}.json"
    out: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "args": vars(args),
        "machine": machine(),
    }
    asyncio.run(run(args, out, raw_path))
    out["total_s"] = round(time.monotonic() - T0, 1)
    out["machine"]["loadavg_end"] = os.getloadavg()
    save(raw_path, out)
    print(table(out))
    print(f"wrote {raw_path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
