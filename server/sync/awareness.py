"""The awareness table of one doc: who is there, where their cursor is.

The y-protocols rules, server side: a state replaces the one held when its clock is
higher; an equal clock with a null state removes it; states not renewed within the
timeout are dropped (clients renew every 15 s). The server has no state of its own.

Why not pycrdt's ``Awareness``: it parses each state's JSON a second time (we already
decoded the frame to validate it), re-serialises states on every encode, and gives the
server a local state of its own that y-websocket clients would then show. Here each
state keeps the JSON text it arrived with, so encoding the full table for a newcomer is
string concatenation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pycrdt import write_var_uint

from server.sync.messages import AwarenessEntry


@dataclass(slots=True)
class _Held:
    clock: int
    json: str  # "null" when removed
    seen: float


def _encode(items: list[tuple[int, int, str]]) -> bytes:
    parts = [write_var_uint(len(items))]
    for client_id, clock, text in items:
        raw = text.encode("utf-8")
        parts += (write_var_uint(client_id), write_var_uint(clock), write_var_uint(len(raw)), raw)
    return b"".join(parts)


class AwarenessTable:
    __slots__ = ("_held",)

    def __init__(self) -> None:
        self._held: dict[int, _Held] = {}

    def __len__(self) -> int:
        return sum(1 for h in self._held.values() if h.json != "null")

    def state(self, client_id: int) -> dict[str, object] | None:
        held = self._held.get(client_id)
        if held is None or held.json == "null":
            return None
        value = json.loads(held.json)
        return value if isinstance(value, dict) else None

    def apply(self, entries: tuple[AwarenessEntry, ...], now: float) -> list[AwarenessEntry]:
        """Apply decoded entries in order; return the entries that were accepted."""
        accepted = []
        for e in entries:
            held = self._held.get(e.client_id)
            present = held is not None and held.json != "null"
            if (
                held is None
                or e.clock > held.clock
                or (e.clock == held.clock and e.state is None and present)
            ):
                self._held[e.client_id] = _Held(e.clock, e.raw, now)
                accepted.append(e)
            elif e.clock == held.clock:
                held.seen = now  # a renewal that repeats the clock still proves liveness
        return accepted

    def remove(self, client_ids: list[int] | set[int]) -> bytes | None:
        """Remove these clients; return the awareness update telling everyone, if any."""
        gone = []
        for cid in client_ids:
            held = self._held.get(cid)
            if held is not None and held.json != "null":
                held.json = "null"
                gone.append((cid, held.clock, "null"))
        self._forget_removed()
        return _encode(gone) if gone else None

    def expire(self, now: float, timeout: float) -> bytes | None:
        """Drop the states not renewed within ``timeout`` seconds."""
        stale = [
            cid for cid, h in self._held.items() if h.json != "null" and now - h.seen > timeout
        ]
        return self.remove(stale) if stale else None

    def client_ids(self) -> list[int]:
        """The clients with a state now."""
        return [cid for cid, h in self._held.items() if h.json != "null"]

    def update_for(self, client_ids: list[int]) -> bytes | None:
        """An awareness update carrying these clients' current states."""
        items = []
        for cid in client_ids:
            held = self._held.get(cid)
            if held is not None and held.json != "null":
                items.append((cid, held.clock, held.json))
        return _encode(items) if items else None

    def full_update(self) -> bytes | None:
        items = [(cid, h.clock, h.json) for cid, h in self._held.items() if h.json != "null"]
        return _encode(items) if items else None

    def _forget_removed(self) -> None:
        # Keep removed clients' clocks only while the table is small: a removed client that
        # comes back reuses a higher clock anyway, and an unbounded table is a leak.
        if len(self._held) > 4096:
            for cid in [c for c, h in self._held.items() if h.json == "null"]:
                del self._held[cid]
