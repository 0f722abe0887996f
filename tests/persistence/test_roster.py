"""Roster queries against the seeded demo school."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from server.persistence.roster import RoomInfo, Roster, UserInfo
from server.persistence.seed import seed_demo
from server.types import Role, RoomKind


@pytest.fixture
async def roster(engine: AsyncEngine) -> Roster:
    await seed_demo(engine)
    return Roster(engine)


def _class(cid: str, name: str) -> RoomInfo:
    return RoomInfo(id=cid, kind=RoomKind.CLASS, class_id=cid, name=name, school_id="demo")


def _group(gid: str, cid: str) -> RoomInfo:
    name = f"Groupe {gid[-1]}"
    return RoomInfo(id=gid, kind=RoomKind.GROUP, class_id=cid, name=name, school_id="demo")


async def test_users(roster: Roster) -> None:
    assert await roster.get_user("s-01") == UserInfo("s-01", Role.STUDENT, "Léa", "demo")
    teacher = await roster.get_user("t-durand")
    assert teacher is not None and teacher.role is Role.TEACHER
    parent = await roster.get_user("p-01")
    assert parent is not None and parent.role is Role.PARENT
    assert await roster.get_user("a-admin") == UserInfo(
        "a-admin", Role.ADMIN, "Administration", None
    )
    assert await roster.get_user("nobody") is None


async def test_rooms(roster: Roster) -> None:
    assert await roster.get_room("2nde-a") == _class("2nde-a", "Seconde A")
    assert await roster.get_room("1ere-b-g5") == _group("1ere-b-g5", "1ere-b")
    assert await roster.get_room("nowhere") is None
    groups = await roster.groups_of_class("2nde-a")
    assert groups == [_group(f"2nde-a-g{i}", "2nde-a") for i in range(1, 6)]
    assert await roster.groups_of_class("nowhere") == []


@pytest.mark.parametrize(
    ("user", "room", "expected"),
    [
        ("s-01", "2nde-a", True),
        ("s-01", "2nde-a-g1", True),
        ("s-06", "2nde-a-g1", True),
        ("s-07", "2nde-a-g1", False),
        ("s-07", "2nde-a-g2", True),
        ("s-31", "1ere-b-g1", True),
        ("s-60", "1ere-b-g5", True),
        ("s-01", "1ere-b", False),
        ("t-martin", "2nde-a", True),
        ("t-martin", "2nde-a-g1", False),  # teachers are members of their class only
        ("t-martin", "1ere-b", False),
        ("p-01", "2nde-a", False),
        ("a-admin", "2nde-a", False),
    ],
)
async def test_membership(roster: Roster, user: str, room: str, expected: bool) -> None:
    assert await roster.is_member(user, room) is expected


async def test_parent_of_member(roster: Roster) -> None:
    assert await roster.is_parent_of_member("p-01", "2nde-a")
    assert await roster.is_parent_of_member("p-01", "2nde-a-g1")  # the permission table decides
    assert not await roster.is_parent_of_member("p-01", "2nde-a-g2")
    assert not await roster.is_parent_of_member("p-01", "1ere-b")
    assert not await roster.is_parent_of_member("t-martin", "2nde-a")


async def test_rooms_of(roster: Roster) -> None:
    assert await roster.rooms_of("s-01") == [
        _class("2nde-a", "Seconde A"),
        _group("2nde-a-g1", "2nde-a"),
    ]
    assert await roster.rooms_of("s-33") == [
        _class("1ere-b", "Première B"),
        _group("1ere-b-g1", "1ere-b"),
    ]
    assert await roster.rooms_of("t-martin") == [_class("2nde-a", "Seconde A")]
    assert await roster.rooms_of("p-01") == [_class("2nde-a", "Seconde A")]
    assert await roster.rooms_of("a-admin") == []
    assert await roster.rooms_of("nobody") == []
