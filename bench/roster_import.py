"""Roster import at the size of a region: how long a first import, a re-import of the
same file (no change) and a 1 % change take, on SQLite and on PostgreSQL.

The roster is generated (same one every run): 4,000 classes in 160 schools, 4 groups a
class, 17 students a class (68,000), 4,000 teachers (each in two classes), the rest of
the 100,000 users parents (one or two per student) and a few admins. The 1 % change
touches 1,000 users: 400 students move to another group of their class, 200 are renamed,
200 leave, 200 arrive (with their memberships and a parent).

Each run: import into a freshly migrated database, import the same file again, import
the changed file (the CSV parse is timed apart), in-process: server/roster/importer.py,
the code the CLI and the REST handler call. Local only: SQLite in a temporary folder,
PostgreSQL a throwaway database on ``ATELIER_TEST_PG`` (default 127.0.0.1:5432; skipped
if it does not answer).

Usage: python -m bench.roster_import [--users 100000] [--classes 4000] [--repeat 3]
       [--only sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from server.persistence.db import create_engine, run_migrations
from server.roster import formats
from server.roster.formats import Group, Membership, ParentLink, School, SchoolClass, Snapshot, User
from server.roster.importer import ImportReport, import_roster
from server.types import Role

PG_SERVER = os.environ.get("ATELIER_TEST_PG", "postgresql://postgres@127.0.0.1:5432")
CLASSES_PER_SCHOOL = 25
GROUPS_PER_CLASS = 4
TEACHERS_PER_CLASS = 2
ADMINS = 10


def region(users: int, classes: int) -> Snapshot:
    """A roster of ``users`` users in ``classes`` classes (see the module docstring)."""
    n_schools = max(1, classes // CLASSES_PER_SCHOOL)
    students_per_class = max(1, int(users * 0.68) // classes)
    n_teachers = classes  # each in TEACHERS_PER_CLASS classes: two teachers a class
    n_students = students_per_class * classes
    n_parents = max(1, users - n_students - n_teachers - ADMINS)
    schools = [School(f"sch-{i:04d}", f"Lycée n°{i}") for i in range(n_schools)]
    klasses, groups, people, members, links = [], [], [], [], []
    for c in range(classes):
        school = schools[c % n_schools].id
        cid = f"c{c:05d}"
        klasses.append(SchoolClass(cid, school, f"Classe {c}"))
        for g in range(GROUPS_PER_CLASS):
            groups.append(Group(f"{cid}-g{g + 1}", cid, f"Groupe {g + 1}"))
        for t in range(TEACHERS_PER_CLASS):
            members.append(Membership(f"t-{(c + t * 7) % n_teachers:06d}", cid))
        for k in range(students_per_class):
            sid = f"s-{c * students_per_class + k:06d}"
            people.append(User(sid, Role.STUDENT, f"Élève {sid}", school))
            members.append(Membership(sid, cid))
            members.append(Membership(sid, f"{cid}-g{k % GROUPS_PER_CLASS + 1}"))
    for t in range(n_teachers):
        people.append(User(f"t-{t:06d}", Role.TEACHER, f"Prof {t}", schools[t % n_schools].id))
    for p in range(n_parents):
        people.append(User(f"p-{p:06d}", Role.PARENT, f"Parent {p}", None))
    for s in range(n_students):
        sid = f"s-{s:06d}"
        links.append(ParentLink(f"p-{s % n_parents:06d}", sid))
        if s % 3 == 0:
            links.append(ParentLink(f"p-{(s * 7 + 1) % n_parents:06d}", sid))
    links = list(set(links))
    for a in range(ADMINS):
        people.append(User(f"a-{a:03d}", Role.ADMIN, f"Admin {a}", None))
    return formats.snapshot(schools, klasses, groups, people, members, links)


def one_percent(snap: Snapshot) -> Snapshot:
    """1 % of the users touched: 40 % moved, 20 % renamed, 20 % gone, 20 % new."""
    touched = len(snap.users) // 100
    students = [u for u in snap.users if u.role is Role.STUDENT]
    step = max(1, len(students) // touched)
    chosen = students[::step][:touched]
    move = chosen[: touched * 4 // 10]
    rename = {u.id for u in chosen[len(move) : len(move) + touched // 5]}
    gone = {u.id for u in chosen[len(move) + len(rename) : len(move) + len(rename) + touched // 5]}
    groups_of = {m.user_id: m.room_id for m in snap.memberships if "-g" in m.room_id}
    memberships = set(snap.memberships)
    for u in move:
        old = groups_of[u.id]
        cid, g = old.rsplit("-g", 1)
        memberships.discard(Membership(u.id, old))
        memberships.add(Membership(u.id, f"{cid}-g{int(g) % GROUPS_PER_CLASS + 1}"))
    users = [
        User(u.id, u.role, u.name + " (nouveau nom)", u.school_id) if u.id in rename else u
        for u in snap.users
        if u.id not in gone
    ]
    memberships = {m for m in memberships if m.user_id not in gone}
    links = [p for p in snap.parent_links if p.student_id not in gone]
    parent = next(u.id for u in snap.users if u.role is Role.PARENT)
    first_class = snap.classes[0]
    for i in range(touched // 5):
        sid = f"s-new-{i:05d}"
        users.append(User(sid, Role.STUDENT, f"Nouvel élève {i}", first_class.school_id))
        memberships.add(Membership(sid, first_class.id))
        memberships.add(Membership(sid, f"{first_class.id}-g{i % GROUPS_PER_CLASS + 1}"))
        links.append(ParentLink(parent, sid))
    return formats.snapshot(snap.schools, snap.classes, snap.groups, users, memberships, links)


@contextlib.contextmanager
def sqlite_url() -> Iterator[str | None]:
    with tempfile.TemporaryDirectory(prefix="atelier-roster-bench-") as folder:
        yield f"sqlite+aiosqlite:///{Path(folder) / 'atelier.db'}"


@contextlib.contextmanager
def postgres_url() -> Iterator[str | None]:
    import psycopg
    from psycopg import sql

    try:
        admin = psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True, connect_timeout=3)
    except psycopg.OperationalError:
        try:
            admin = psycopg.connect(f"{PG_SERVER}/test", autocommit=True, connect_timeout=3)
        except psycopg.OperationalError:
            yield None
            return
    name = f"atelier_bench_{uuid.uuid4().hex[:10]}"
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield PG_SERVER.replace("postgresql", "postgresql+psycopg", 1) + f"/{name}"
        finally:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


async def timed_import(url: str, snap: Snapshot) -> tuple[float, ImportReport]:
    engine = create_engine(url)
    try:
        start = time.perf_counter()
        report = await import_roster(engine, snap, actor="cli", node="bench", max_removed_share=0.1)
        return time.perf_counter() - start, report
    finally:
        await engine.dispose()


def totals(report: ImportReport) -> str:
    counts = report.diff.counts()
    parts = []
    for kind, c in counts.items():
        moved = {k: v for k, v in c.items() if v}
        if moved:
            parts.append(f"{kind} " + "/".join(f"{k[0]}{v}" for k, v in moved.items()))
    return ", ".join(parts) or "no change"


STEPS = ("first import", "re-import, no change", "1% change")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--classes", type=int, default=4_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs, each on a fresh database")
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    args = parser.parse_args()
    if not (1_000 <= args.users <= 1_000_000 and 10 <= args.classes <= args.users // 20):
        parser.error("users: 1,000 … 1,000,000; classes: 10 … users/20")
    if not 1 <= args.repeat <= 10:
        parser.error("repeat: 1 … 10")

    start = time.perf_counter()
    snap = region(args.users, args.classes)
    changed = one_percent(snap)
    built = time.perf_counter() - start
    text = formats.to_csv(snap).encode()
    changed_text = formats.to_csv(changed).encode()
    parse_times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        parsed = formats.parse(text)
        parse_times.append(time.perf_counter() - start)
    assert parsed == snap and formats.parse(changed_text) == changed
    sizes = ", ".join(f"{n:,} {k}" for k, n in snap.sizes().items())
    print(f"roster: {sizes}")
    print(f"file: {len(text) / 1e6:.1f} MB CSV ({len(formats.to_json(snap)) / 1e6:.1f} MB JSON)")
    print(f"generated in {built:.1f} s; CSV parsed and validated in {_figure(parse_times)}")
    print(f"import times (best / median of {args.repeat}, each on a fresh database; parse apart):")

    backends = [("sqlite", sqlite_url), ("postgresql", postgres_url)]
    for name, make in backends:
        if args.only and name != args.only:
            continue
        times: dict[str, list[float]] = {step: [] for step in STEPS}
        reports: dict[str, ImportReport] = {}
        for _ in range(args.repeat):
            with make() as url:
                if url is None:
                    break
                run_migrations(url)
                for step, target in zip(STEPS, (snap, snap, changed), strict=True):
                    took, reports[step] = asyncio.run(timed_import(url, target))
                    times[step].append(took)
        if not reports:
            print(f"{name}: not reachable, skipped")
            continue
        print(f"\n{name}")
        for step in STEPS:
            report = reports[step]
            print(
                f"  {step:22} {_figure(times[step]):>18}   {report.status}: {totals(report)}; "
                f"lowered {len(report.lowered)}"
            )


def _figure(seconds: list[float]) -> str:
    return f"{min(seconds):.2f} / {statistics.median(seconds):.2f} s"


if __name__ == "__main__":
    main()
