"""The import against a real database (SQLite and PostgreSQL): one transaction,
idempotent, guarded; removed users keep their row and come back."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from server.persistence import audit
from server.persistence.models import assignment_t, membership_t, parent_link_t, user_t
from server.persistence.roster import Roster
from server.persistence.seed import seed_demo
from server.roster import formats
from server.roster.diff import Why
from server.roster.formats import Membership, Snapshot, User
from server.roster.importer import ImportReport, export_roster, import_roster
from server.types import Role
from tests.roster.rosters import demo_snapshot, edit, moved, new_class

DEMO = demo_snapshot()


async def run(engine: AsyncEngine, snap: Snapshot, **kw: bool) -> ImportReport:
    return await import_roster(
        engine, snap, actor="cli", node="test-node", max_removed_share=0.1, **kw
    )


async def test_a_first_import_fills_an_empty_database_and_a_second_changes_nothing(
    engine: AsyncEngine,
) -> None:
    first = await run(engine, DEMO)
    assert first.status == "applied" and first.applied
    assert first.diff.counts()["users"] == {"added": 64, "changed": 0, "removed": 0}
    assert await export_roster(engine) == DEMO
    again = await run(engine, demo_snapshot())
    assert again.status == "unchanged" and not again.changed
    assert all(c == {"added": 0, "changed": 0, "removed": 0} for c in again.diff.counts().values())
    # Both imports are in the audit trail, with their counts.
    rows = await audit.entries(engine, "roster.import")
    assert [r.id for r in rows] == [again.audit_id, first.audit_id]
    assert rows[1].detail["counts"]["memberships"]["added"] == 122
    assert rows[0].detail["changed"] is False
    assert (rows[0].actor, rows[0].node, rows[0].target) == ("cli", "test-node", "roster")


async def test_the_seeded_demo_exports_as_the_demo_snapshot(engine: AsyncEngine) -> None:
    await seed_demo(engine)
    assert await export_roster(engine) == DEMO
    assert (await run(engine, formats.parse(formats.to_csv(DEMO).encode()))).status == "unchanged"


async def test_a_dry_run_writes_nothing(engine: AsyncEngine) -> None:
    await seed_demo(engine)
    report = await run(engine, new_class(DEMO), dry_run=True)
    assert report.status == "dry_run" and not report.applied and report.audit_id is None
    assert report.diff.counts()["users"]["added"] == 5
    assert await export_roster(engine) == DEMO
    assert await audit.entries(engine) == []


async def test_a_move_and_a_new_class(engine: AsyncEngine) -> None:
    await seed_demo(engine)
    roster = Roster(engine)
    target = moved(new_class(DEMO), "s-01", "2nde-a-g1", "2nde-a-g2")
    report = await run(engine, target)
    assert report.diff.counts()["memberships"] == {"added": 8, "changed": 0, "removed": 1}
    assert [lw.user_id for lw in report.lowered] == ["s-01"]
    assert report.lowered[0].rooms == frozenset({"2nde-a-g1"})
    assert await roster.is_member("s-01", "2nde-a-g2")
    assert not await roster.is_member("s-01", "2nde-a-g1")
    assert [r.id for r in await roster.rooms_of("p-02")] == ["3e-c"]
    assert await export_roster(engine) == target


async def test_removed_users_keep_their_row_and_come_back(engine: AsyncEngine) -> None:
    await seed_demo(engine)
    roster = Roster(engine)
    report = await run(engine, edit(DEMO, drop_users=["s-01", "s-02"]))
    assert report.status == "applied"
    assert {lw.user_id: lw.reasons for lw in report.lowered} == {
        "s-01": {Why.REMOVED},
        "s-02": {Why.REMOVED},
        "p-01": {Why.LOST_PARENT_LINK, Why.CHILD_LEFT_ROOM},
    }
    assert await roster.get_user("s-01") is None  # unknown at sign-in
    assert await roster.display_names(["s-01"]) == {"s-01": "Léa"}  # history names her
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(user_t).where(user_t.c.id == "s-01"))).one()
        assert row.removed_at is not None
        left = await conn.scalar(
            sa.select(sa.func.count()).where(membership_t.c.user_id.in_(["s-01", "s-02"]))
        )
        links = await conn.scalar(sa.select(sa.func.count()).select_from(parent_link_t))
    assert (left, links) == (0, 0)
    assert (await run(engine, edit(DEMO, drop_users=["s-01", "s-02"]))).status == "unchanged"
    # Listed again (renamed, moved): back, with the file's memberships.
    back = edit(
        moved(DEMO, "s-01", "2nde-a-g1", "2nde-a-g3"),
        drop=[next(u for u in DEMO.users if u.id == "s-01")],
        add=[User("s-01", Role.STUDENT, "Léa B.", "demo")],
    )
    report = await run(engine, back)
    assert report.diff.restored == frozenset({"s-01", "s-02"})
    assert report.diff.counts()["users"] == {"added": 2, "changed": 0, "removed": 0}
    lea = await roster.get_user("s-01")
    assert lea is not None and lea.display_name == "Léa B."
    assert await roster.is_member("s-01", "2nde-a-g3")
    assert await roster.children_of("p-01") == {"s-01"}
    assert await export_roster(engine) == back


async def test_removing_more_than_the_share_is_refused_unless_forced(
    engine: AsyncEngine,
) -> None:
    await seed_demo(engine)
    seven = edit(DEMO, drop_users=[f"s-{i:02d}" for i in range(1, 8)])  # 7 of 64: 10.9 %
    refused = await run(engine, seven)
    assert refused.status == "refused" and not refused.applied
    assert refused.refused is not None and "7 of 64 users (10.9%)" in refused.refused
    assert await export_roster(engine) == DEMO and await audit.entries(engine) == []
    dry = await run(engine, seven, dry_run=True)
    assert dry.status == "refused"  # a dry run says it would be refused
    six = edit(DEMO, drop_users=[f"s-{i:02d}" for i in range(1, 7)])  # 9.4 %: allowed
    assert (await run(engine, six, dry_run=True)).status == "dry_run"
    forced = await run(engine, seven, force=True)
    assert forced.status == "applied" and forced.forced
    assert (await audit.entries(engine))[0].detail["forced"] is True
    assert await export_roster(engine) == seven


async def test_removing_a_class_counts_the_assignments_it_takes(engine: AsyncEngine) -> None:
    await seed_demo(engine)
    async with engine.begin() as conn:
        await conn.execute(
            assignment_t.insert().values(
                id="a-1",
                class_id="1ere-b",
                title="Exposé",
                target="groups",
                doc_name="expose",
                due_at=datetime(2030, 1, 1, tzinfo=UTC),
                created_by="t-durand",
            )
        )
    ids = {f"1ere-b-g{i}" for i in range(1, 6)} | {"1ere-b"}
    without = edit(
        DEMO,
        drop=[
            *(k for k in DEMO.classes if k.id == "1ere-b"),
            *(g for g in DEMO.groups if g.id in ids),
        ],
    )
    without = Snapshot(
        without.schools,
        without.classes,
        without.groups,
        without.users,
        tuple(m for m in without.memberships if m.room_id not in ids),
        without.parent_links,
    )
    report = await run(engine, without, dry_run=True)
    assert report.assignments_deleted == 1
    assert report.diff.counts()["classes"]["removed"] == 1
    assert report.diff.counts()["groups"]["removed"] == 5
    assert (await run(engine, without)).status == "applied"
    async with engine.connect() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(assignment_t)) == 0
    # Its students stay in the roster, in no room.
    assert await Roster(engine).rooms_of("s-31") == []


async def test_an_import_is_one_transaction(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    await seed_demo(engine)

    async def broken(*args: object, **kw: object) -> int:
        raise RuntimeError("the audit trail is down")

    monkeypatch.setattr(audit, "record", broken)
    with pytest.raises(RuntimeError, match="audit trail"):
        await run(engine, moved(new_class(DEMO), "s-01", "2nde-a-g1", "2nde-a-g2"))
    assert await export_roster(engine) == DEMO  # nothing of it stayed


async def test_stray_rows_of_removed_users_go_with_the_next_import(engine: AsyncEngine) -> None:
    await seed_demo(engine)
    await run(engine, edit(DEMO, drop_users=["s-30"]))
    async with engine.begin() as conn:  # seed-demo run again re-adds its membership
        await conn.execute(membership_t.insert().values(user_id="s-30", room_id="2nde-a"))
    report = await run(engine, edit(DEMO, drop_users=["s-30"]))
    assert report.diff.memberships.removed == (Membership("s-30", "2nde-a"),)
    assert report.lowered == ()


async def test_the_bulk_paths_write_the_same_rows_and_roll_back_alike(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every insert through the driver's bulk path (COPY on PostgreSQL) as a region's
    file would go, in the import's one transaction."""
    from server.roster import importer

    monkeypatch.setattr(importer, "COPY_FROM", 1)
    target = moved(new_class(DEMO), "s-01", "2nde-a-g1", "2nde-a-g2")
    real = audit.record

    async def broken(*args: object, **kw: object) -> int:
        raise RuntimeError("the audit trail is down")

    monkeypatch.setattr(audit, "record", broken)
    with pytest.raises(RuntimeError):
        await run(engine, target)
    assert await export_roster(engine) == Snapshot()
    monkeypatch.setattr(audit, "record", real)
    assert (await run(engine, target)).status == "applied"
    assert await export_roster(engine) == target
    assert (await run(engine, target)).status == "unchanged"


async def test_a_role_change_is_named_in_the_audit_row(engine: AsyncEngine) -> None:
    await seed_demo(engine)
    [before] = [u for u in DEMO.users if u.id == "s-05"]
    promoted = User(before.id, Role.TEACHER, before.name, before.school_id)
    report = await run(engine, edit(DEMO, drop=[before], add=[promoted]))
    assert report.applied and report.changed
    [row] = await audit.entries(engine, "roster.import")
    assert row.detail["role_changed_users"] == ["s-05"]
    assert row.detail["removed_users"] == [] and row.detail["ids_truncated"] is False
