"""A student's export and erasure after a school year of activity, on SQLite and PostgreSQL.

The year is generated before the server starts (no client can replay 36 weeks in a
bench), with the server's own code where it matters: the students of ``2nde-a-g1``
(``--students``, 5 by default: s-01 … s-05) each write, week after week, in the group's
docs — real Yjs updates (pycrdt, one client id per student and doc, a word per update),
appended to the doc log with their author and a time in the week, then folded into
snapshots with their attribution summaries (server/persistence/docs.py ``compact`` with
server/progress/service.py ``fold``), the last weeks left in the log as a tail. Beside
it, per student: chat messages in the group's channel, notifications, sign-in
sessions, automatic versions naming them as contributors, and one assignment a week with
a group work handed in by one of them in turn (a rendu version).

Then a real server process (tests/support/server.py) answers, as ``a-admin``:
``GET /api/people/{id}/data/export`` (each student once, then the first again: the
median of all) and ``POST /api/admin/privacy/erase/{id}`` (each student once: the
median). ``ERASURE_SETTLE_S`` is 0 here: a node adds that wait (2 s by default) on top;
``RETENTION_INTERVAL_S`` is 0, so that the whole year stays (the sessions generated have
all expired: an erasure ends only open ones).

Prints a table; writes bench/results/raw/erasure-<stamp>.json (git-ignored).

Usage: python -m bench.erasure [--students 5] [--weeks 36] [--only sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from pycrdt import Doc, Text

from bench.run_load import RAW_DIR
from server.persistence.db import create_engine
from server.persistence.docs import DocStore
from server.persistence.models import (
    assignment_t,
    auth_session_t,
    chat_message_t,
    doc_t,
    doc_update_t,
    doc_version_t,
    notification_t,
    room_counter_t,
    work_t,
)
from server.progress.service import fold
from tests.support.server import AtelierServer
from tests.support.services import postgres_database

GROUP = "2nde-a-g1"
CLASS = "2nde-a"
WORDS = (
    "la photosynthèse transforme la lumière en énergie chimique dans les feuilles des "
    "plantes vertes grâce à la chlorophylle et produit du dioxygène"
).split()
T0 = time.monotonic()


def log(msg: str) -> None:
    print(f"[erasure {time.monotonic() - T0:6.1f}s] {msg}", file=sys.stderr, flush=True)


def week_start(weeks: int, w: int) -> datetime:
    return datetime.now(UTC) - timedelta(weeks=weeks - w)


def generate(url: str, students: list[str], weeks: int, updates_per_week: int) -> dict[str, int]:
    """The year, into a migrated and seeded database; rows written per table."""
    rnd = random.Random(13)
    db = sa.create_engine(url.replace("+aiosqlite", ""))
    docs = [f"expose-{n:02d}" for n in range(1, weeks // 3 + 1)]
    rows: dict[str, list[dict[str, Any]]] = {
        k: []
        for k in (
            "doc",
            "doc_update",
            "chat",
            "notification",
            "session",
            "version",
            "assignment",
            "work",
        )
    }
    # Docs: one every three weeks, every student writing in it that fortnight.
    replicas: dict[tuple[str, str], Doc] = {}
    for d in docs:
        rows["doc"].append({"room_id": GROUP, "name": d})
    for w in range(weeks):
        d = docs[min(w // 3, len(docs) - 1)]
        base = week_start(weeks, w)
        for i, s in enumerate(students):
            doc = replicas.get((d, s))
            if doc is None:
                doc = replicas[(d, s)] = Doc(client_id=1000 + 97 * i + 7 * docs.index(d))
            text = doc.get("content", type=Text)
            for k in range(updates_per_week):
                sv = doc.get_state()
                text += rnd.choice(WORDS) + " "
                rows["doc_update"].append(
                    {
                        "room_id": GROUP,
                        "doc_name": d,
                        "data": doc.get_update(sv),
                        "author_id": s,
                        "created_at": base + timedelta(minutes=30 * i + k),
                    }
                )
            for m in range(10):
                rows["chat"].append(
                    {
                        "author_id": s,
                        "at": base + timedelta(hours=m, minutes=i),
                        "text": f"{s} : message {w}-{m}",
                    }
                )
            for n in range(4):
                rows["notification"].append(
                    {
                        "id": f"n{w:02d}{i:02d}{n}{rnd.getrandbits(40):010x}"[:32],
                        "user_id": s,
                        "kind": "assignment",
                        "title": f"Travail de la semaine {w + 1}",
                        "body": "À rendre vendredi",
                        "created_at": base + timedelta(days=n),
                    }
                )
                rows["session"].append(
                    {
                        "id": f"{w:03d}{i:03d}{n}{rnd.getrandbits(200):058x}"[:64],
                        "user_id": s,
                        "created_at": base + timedelta(days=n),
                        "expires_at": base + timedelta(days=n, hours=8),
                    }
                )
            for v in range(5):
                rows["version"].append(
                    {
                        "room_id": GROUP,
                        "doc_name": d,
                        "kind": "pause",
                        "created_at": base + timedelta(days=v),
                        "state": b"x\x9c\x03\x00\x00\x00\x00\x01",
                        "state_vector": b"\x00",
                        "contributors": json.dumps(sorted(students[: i + 1])),
                    }
                )
        aid = f"bench-a{w:02d}"
        rows["assignment"].append(
            {
                "id": aid,
                "class_id": CLASS,
                "title": f"Semaine {w + 1}",
                "target": "groups",
                "doc_name": d,
                "due_at": base + timedelta(days=4),
                "created_by": "t-martin",
                "created_at": base,
                "updated_at": base,
            }
        )
        rows["work"].append(
            {
                "id": f"bench-w{w:02d}",
                "assignment_id": aid,
                "room_id": GROUP,
                "doc_name": f"{d}-s{w:02d}",
                "due_at": base + timedelta(days=4),
                "status": "handed_in",
                "submitted_at": base + timedelta(days=3),
                "submitted_by": students[w % len(students)],
                "comment": "Voici notre travail",
                "appreciation": "Bien",
                "mark": "15/20",
                "feedback_by": "t-martin",
                "returned_at": base + timedelta(days=6),
            }
        )
    with db.begin() as conn:
        conn.execute(doc_t.insert(), rows["doc"])
        conn.execute(doc_update_t.insert(), rows["doc_update"])
        chat = sorted(rows["chat"], key=lambda r: r["at"])
        conn.execute(
            chat_message_t.insert(),
            [
                {
                    "room_id": GROUP,
                    "seq": n + 1,
                    "author_id": c["author_id"],
                    "author_name": c["author_id"],
                    "author_role": "student",
                    "text": c["text"],
                    "created_at": c["at"],
                }
                for n, c in enumerate(chat)
            ],
        )
        conn.execute(room_counter_t.insert(), [{"room_id": GROUP, "last_seq": len(chat)}])
        conn.execute(notification_t.insert(), rows["notification"])
        conn.execute(auth_session_t.insert(), rows["session"])
        conn.execute(doc_version_t.insert(), rows["version"])
        conn.execute(assignment_t.insert(), rows["assignment"])
        conn.execute(work_t.insert(), rows["work"])
    db.dispose()
    # Fold all but the last two docs: a year's log lives mostly in snapshots + summaries.
    asyncio.run(_fold(url, docs[:-2]))
    return {k: len(v) for k, v in rows.items()}


async def _fold(url: str, docs: list[str]) -> None:
    engine = create_engine(url)
    try:
        store = DocStore(engine)
        for d in docs:
            await store.compact(GROUP, d, fold)
    finally:
        await engine.dispose()


async def measure(server: AtelierServer, students: list[str]) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {server.token('a-admin')}"}
    exports: list[float] = []
    sizes: list[int] = []
    erasures: list[float] = []
    reports: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=server.http_url, headers=headers, timeout=300) as http:
        for s in [*students, students[0]]:
            started = time.perf_counter()
            r = await http.get(f"/api/people/{s}/data/export")
            assert r.status_code == 200, r.text
            exports.append(time.perf_counter() - started)
            sizes.append(len(r.content))
        for s in students:
            started = time.perf_counter()
            r = await http.post(f"/api/admin/privacy/erase/{s}", json={"confirm": s})
            assert r.status_code == 200, r.text
            erasures.append(time.perf_counter() - started)
            reports.append(r.json())
    return {
        "export_s": [round(x, 3) for x in exports],
        "export_median_s": round(statistics.median(exports), 3),
        "export_zip_kb": round(statistics.median(sizes) / 1024, 1),
        "erase_s": [round(x, 3) for x in erasures],
        "erase_median_s": round(statistics.median(erasures), 3),
        "erase_server_median_s": round(statistics.median(r["seconds"] for r in reports), 3),
        "erase_counts_first": reports[0]["counts"],
    }


@contextmanager
def database(kind: str, folder: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{folder}/atelier.db"
    else:
        with postgres_database("atelier_erase") as url:
            yield url


def run(kind: str, students: list[str], weeks: int, per_week: int) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix=f"erase-{kind}-") as tmp,
        database(kind, Path(tmp)) as url,
    ):
        server = AtelierServer(
            data_dir=Path(tmp),
            database_url=url,
            extra_env={"ATELIER_ERASURE_SETTLE_S": "0", "ATELIER_RETENTION_INTERVAL_S": "0"},
        )
        server.prepare()
        log(f"{kind}: generating {weeks} weeks for {len(students)} students")
        started = time.perf_counter()
        written = generate(url, students, weeks, per_week)
        log(f"{kind}: generated {written} in {time.perf_counter() - started:.1f}s")
        server.start()
        try:
            figures = asyncio.run(measure(server, students))
        finally:
            server.stop()
    per_student = {
        "doc_updates": weeks * per_week,
        "chat_messages": weeks * 10,
        "notifications": weeks * 4,
        "sessions": weeks * 4,
        "hand_ins": weeks // len(students),
    }
    return {"database": kind, "per_student": per_student, "rows": written, **figures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=5)
    parser.add_argument("--weeks", type=int, default=36)
    parser.add_argument("--updates-per-week", type=int, default=100)
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    args = parser.parse_args()
    students = [f"s-{n:02d}" for n in range(1, min(args.students, 6) + 1)]
    kinds = [args.only] if args.only else ["sqlite", "postgresql"]
    results = [run(k, students, args.weeks, args.updates_per_week) for k in kinds]
    print(f"\nA student's school year ({args.weeks} weeks), {len(students)} students, medians:")
    print(f"{'database':<11} {'export s':>9} {'zip KB':>8} {'erase s':>8} {'(server)':>9}")
    for r in results:
        print(
            f"{r['database']:<11} {r['export_median_s']:>9} {r['export_zip_kb']:>8} "
            f"{r['erase_median_s']:>8} {r['erase_server_median_s']:>9}"
        )
    RAW_DIR.mkdir(parents=True, exist_ok=True)
    out = RAW_DIR / f"erasure-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out.write_text(json.dumps({"args": vars(args), "results": results}, indent=1))
    print(f"\n{out}")


if __name__ == "__main__":
    main()
