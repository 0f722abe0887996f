"""The demo school of the contract, seeded idempotently."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from server.persistence.models import (
    class_group_t,
    membership_t,
    parent_link_t,
    school_class_t,
    user_t,
)
from server.persistence.seed import FIRST_NAMES, is_empty, seed_demo


async def _counts(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        return {
            t.name: int(await conn.scalar(sa.select(sa.func.count()).select_from(t)) or 0)
            for t in (user_t, school_class_t, class_group_t, membership_t, parent_link_t)
        }


async def test_seed_twice_gives_the_same_data(engine: AsyncEngine) -> None:
    assert await is_empty(engine)
    assert await seed_demo(engine) is True
    assert not await is_empty(engine)
    first = await _counts(engine)
    assert await seed_demo(engine) is False
    assert (
        await _counts(engine)
        == first
        == {
            "app_user": 60 + 2 + 1 + 1,
            "school_class": 2,
            "class_group": 10,
            "membership": 60 * 2 + 2,
            "parent_link": 1,
        }
    )


async def test_seed_fills_in_what_is_missing(engine: AsyncEngine) -> None:
    await seed_demo(engine)
    async with engine.begin() as conn:
        await conn.execute(membership_t.delete().where(membership_t.c.user_id == "s-42"))
    assert await seed_demo(engine) is True
    assert (await _counts(engine))["membership"] == 122


async def test_display_names_are_distinct_french_first_names(engine: AsyncEngine) -> None:
    assert len(set(FIRST_NAMES)) == len(FIRST_NAMES) == 60
    await seed_demo(engine)
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(user_t.c.id, user_t.c.display_name))).all()
    names = dict(rows)
    assert names["s-01"] == "Léa" and names["s-60"] == "Mehdi"
    assert names["t-martin"] == "M. Martin" and names["t-durand"] == "Mme Durand"
    assert len({names[f"s-{n:02d}"] for n in range(1, 61)}) == 60
