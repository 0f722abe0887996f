"""Presence, Phoenix style: a user is a key holding one meta per connection.

Pure bookkeeping, no I/O. Every change returns the diff to send (``joins``/``leaves``,
both shaped like the state: ``{user_id: {name, role, metas: [...]}}``). Each meta
remembers the node that owns its connection, so a dead node's entries can be purged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Diff = dict[str, dict[str, dict[str, Any]]]


@dataclass(slots=True)
class Meta:
    conn: str
    node: str
    user_id: str
    name: str
    role: str
    online_at: float
    doc: str | None = None
    typing: bool = False

    def wire(self) -> dict[str, Any]:
        return {
            "conn": self.conn,
            "doc": self.doc,
            "typing": self.typing,
            "online_at": self.online_at,
        }

    def record(self) -> dict[str, Any]:
        """Everything, for another node."""
        return {
            **self.wire(),
            "node": self.node,
            "user": self.user_id,
            "name": self.name,
            "role": self.role,
        }

    @classmethod
    def from_record(cls, r: dict[str, Any], node: str) -> Meta:
        doc = r.get("doc")
        return cls(
            conn=str(r["conn"]),
            node=node,
            user_id=str(r["user"]),
            name=str(r.get("name", "")),
            role=str(r.get("role", "")),
            online_at=float(r.get("online_at", 0.0)),
            doc=doc if isinstance(doc, str) else None,
            typing=bool(r.get("typing", False)),
        )


@dataclass(slots=True)
class _Diff:
    joins: dict[str, dict[str, Any]] = field(default_factory=dict)
    leaves: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, side: dict[str, dict[str, Any]], meta: Meta) -> None:
        entry = side.setdefault(meta.user_id, {"name": meta.name, "role": meta.role, "metas": []})
        entry["metas"].append(meta.wire())

    def frame(self) -> dict[str, Any] | None:
        if not self.joins and not self.leaves:
            return None
        return {"t": "presence_diff", "joins": self.joins, "leaves": self.leaves}


class PresenceTable:
    def __init__(self) -> None:
        self._by_conn: dict[str, Meta] = {}

    def __len__(self) -> int:
        return len(self._by_conn)

    def get(self, conn: str) -> Meta | None:
        return self._by_conn.get(conn)

    def join(self, meta: Meta) -> dict[str, Any] | None:
        diff = _Diff()
        old = self._by_conn.get(meta.conn)
        if old is not None:
            diff.add(diff.leaves, old)
        self._by_conn[meta.conn] = meta
        diff.add(diff.joins, meta)
        return diff.frame()

    def leave(self, conn: str) -> dict[str, Any] | None:
        meta = self._by_conn.pop(conn, None)
        if meta is None:
            return None
        diff = _Diff()
        diff.add(diff.leaves, meta)
        return diff.frame()

    def update(self, conn: str, doc: str | None, typing: bool) -> dict[str, Any] | None:
        old = self._by_conn.get(conn)
        if old is None or (old.doc == doc and old.typing == typing):
            return None
        new = Meta(old.conn, old.node, old.user_id, old.name, old.role, old.online_at, doc, typing)
        return self.join(new)

    def purge_node(self, node: str) -> dict[str, Any] | None:
        diff = _Diff()
        for conn in [c for c, m in self._by_conn.items() if m.node == node]:
            diff.add(diff.leaves, self._by_conn.pop(conn))
        return diff.frame()

    def replace_node(self, node: str, metas: list[Meta]) -> dict[str, Any] | None:
        """Make ``node``'s entries exactly ``metas`` (a node's full state arrived)."""
        diff = _Diff()
        fresh = {m.conn: m for m in metas}
        for conn in [c for c, m in self._by_conn.items() if m.node == node]:
            if conn not in fresh:
                diff.add(diff.leaves, self._by_conn.pop(conn))
        for conn, meta in fresh.items():
            old = self._by_conn.get(conn)
            if old is not None and old.wire() == meta.wire():
                continue
            if old is not None:
                diff.add(diff.leaves, old)
            self._by_conn[conn] = meta
            diff.add(diff.joins, meta)
        return diff.frame()

    def nodes(self) -> set[str]:
        return {m.node for m in self._by_conn.values()}

    def of_node(self, node: str) -> list[Meta]:
        return [m for m in self._by_conn.values() if m.node == node]

    def state(self) -> dict[str, Any]:
        users: dict[str, dict[str, Any]] = {}
        for meta in self._by_conn.values():
            entry = users.setdefault(
                meta.user_id, {"name": meta.name, "role": meta.role, "metas": []}
            )
            entry["metas"].append(meta.wire())
        return {"users": users}
