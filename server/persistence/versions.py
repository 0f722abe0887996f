"""The version store: a doc's versions, each its whole state at one moment.

A version is a Yjs update holding the doc's entire state (``Doc.get_update()``),
compressed with zlib, plus its state vector (to tell what changed since) and the users
who edited since the version before it. Whole states rather than diffs: a version then
opens on its own (no chain to replay, nothing lost if an older one is deleted by a
retention rule), at a storage cost measured in the closing note of the progress issue.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from server.persistence.db import is_postgres, writer
from server.persistence.models import doc_t, doc_version_t, unix, utcnow

#: The kinds of version (``DocVersion.kind``).
KINDS = ("pause", "session", "interval", "named", "restore", "rendu")


@dataclass(frozen=True, slots=True)
class VersionInfo:
    id: int
    room_id: str
    doc_name: str
    kind: str
    name: str | None
    created_by: str | None
    created_at: float  # unix seconds
    contributors: list[str]
    state_vector: bytes

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "kind": self.kind,
            "name": self.name,
            "by": self.created_by,
            "at": self.created_at,
            "contributors": self.contributors,
        }


_INFO = (
    doc_version_t.c.id,
    doc_version_t.c.room_id,
    doc_version_t.c.doc_name,
    doc_version_t.c.kind,
    doc_version_t.c.name,
    doc_version_t.c.created_by,
    doc_version_t.c.created_at,
    doc_version_t.c.contributors,
    doc_version_t.c.state_vector,
)


def _info(row: sa.Row) -> VersionInfo:  # type: ignore[type-arg]
    return VersionInfo(
        id=int(row.id),
        room_id=row.room_id,
        doc_name=row.doc_name,
        kind=row.kind,
        name=row.name,
        created_by=row.created_by,
        created_at=unix(row.created_at),
        contributors=list(json.loads(row.contributors or "[]")),
        state_vector=bytes(row.state_vector),
    )


class VersionStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._writer = writer(engine)
        self._pg = is_postgres(engine)

    def _where(self, room_id: str, doc_name: str) -> sa.ColumnElement[bool]:
        return sa.and_(doc_version_t.c.room_id == room_id, doc_version_t.c.doc_name == doc_name)

    async def add(
        self,
        room_id: str,
        doc_name: str,
        kind: str,
        state: bytes,
        state_vector: bytes,
        *,
        contributors: list[str],
        name: str | None = None,
        by: str | None = None,
    ) -> VersionInfo:
        async with self._writer.begin() as conn:
            return await self.add_in(
                conn,
                room_id,
                doc_name,
                kind,
                state,
                state_vector,
                contributors=contributors,
                name=name,
                by=by,
            )

    async def add_in(
        self,
        conn: AsyncConnection,
        room_id: str,
        doc_name: str,
        kind: str,
        state: bytes,
        state_vector: bytes,
        *,
        contributors: list[str],
        name: str | None = None,
        by: str | None = None,
    ) -> VersionInfo:
        """``add`` inside the caller's write transaction (a rendu: with its work row)."""
        if kind not in KINDS:
            raise ValueError(f"unknown version kind {kind!r}")
        now = utcnow()
        insert_doc = (postgresql.insert if self._pg else sqlite.insert)(doc_t)
        await conn.execute(
            insert_doc.on_conflict_do_nothing(index_elements=["room_id", "name"]),
            {"room_id": room_id, "name": doc_name, "created_at": now, "updated_at": now},
        )
        new_id = await conn.scalar(
            doc_version_t.insert()
            .values(
                room_id=room_id,
                doc_name=doc_name,
                kind=kind,
                name=name,
                created_by=by,
                created_at=now,
                state=zlib.compress(state, 6),
                state_vector=state_vector,
                contributors=json.dumps(sorted(set(contributors))),
            )
            .returning(doc_version_t.c.id)
        )
        return VersionInfo(
            id=int(new_id or 0),
            room_id=room_id,
            doc_name=doc_name,
            kind=kind,
            name=name,
            created_by=by,
            created_at=unix(now),
            contributors=sorted(set(contributors)),
            state_vector=state_vector,
        )

    async def list(self, room_id: str, doc_name: str, limit: int = 200) -> list[VersionInfo]:
        """The newest ``limit`` versions, newest first."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                sa.select(*_INFO)
                .where(self._where(room_id, doc_name))
                .order_by(doc_version_t.c.id.desc())
                .limit(limit)
            )
            return [_info(r) for r in rows]

    async def latest(self, room_id: str, doc_name: str) -> VersionInfo | None:
        found = await self.list(room_id, doc_name, limit=1)
        return found[0] if found else None

    async def get(
        self, room_id: str, doc_name: str, version_id: int
    ) -> tuple[VersionInfo, bytes] | None:
        """A version and its state (a Yjs update), or None."""
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(*_INFO, doc_version_t.c.state).where(
                        self._where(room_id, doc_name), doc_version_t.c.id == version_id
                    )
                )
            ).first()
        if row is None:
            return None
        return _info(row), zlib.decompress(bytes(row.state))

    async def stored_bytes(self, room_id: str, doc_name: str) -> int:
        """Bytes of the compressed states kept for a doc (the storage cost of history)."""
        async with self._engine.connect() as conn:
            total = await conn.scalar(
                sa.select(
                    sa.func.coalesce(sa.func.sum(sa.func.length(doc_version_t.c.state)), 0)
                ).where(self._where(room_id, doc_name))
            )
        return int(total or 0)
