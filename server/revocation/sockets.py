"""The sockets this node holds, by user and by sign-in session: what a revocation walks.

Every admitted socket (a y-websocket doc or a room channel) is added by the endpoint once
authorised and discarded when it ends. Adding and discarding are O(1); a revocation
touches only the sockets of the users (or the session) it names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from server.types import PeerHandle


@dataclass(eq=False, slots=True)
class Held:
    """One open socket and what it was admitted for."""

    peer: PeerHandle
    user_id: str
    room_id: str
    #: The doc of a y-websocket socket; None for a room channel.
    doc_name: str | None
    session_id: str | None = None
    #: The token's ``jti``: a revoked token closes the sockets it opened.
    token_id: str | None = None
    #: The frame sent before a 4403 (y-protocols' "permission denied"), if the protocol
    #: has one.
    denied: Callable[[str], bytes] | None = field(default=None, repr=False)
    #: The user's role when admitted (what /metrics counts sockets by).
    role: str = ""
    #: The endpoint when it is not told by ``doc_name`` (``collab``: one doc of a
    #: Hocuspocus socket).
    via: str | None = None

    @property
    def endpoint(self) -> str:
        """``yjs`` (a doc), ``live`` (a room channel) or ``collab`` (a doc over /collab)."""
        if self.via is not None:
            return self.via
        return "live" if self.doc_name is None else "yjs"


def _keys(held: Held) -> list[str]:
    keys = []
    if held.session_id is not None:
        keys.append(f"sid:{held.session_id}")
    if held.token_id is not None:
        keys.append(f"jti:{held.token_id}")
    return keys


class SocketIndex:
    def __init__(self) -> None:
        self._by_user: dict[str, set[Held]] = {}
        #: "sid:…" (a sign-in session) and "jti:…" (a token) → the sockets they opened.
        self._by_key: dict[str, set[Held]] = {}

    def add(self, held: Held) -> Held:
        self._by_user.setdefault(held.user_id, set()).add(held)
        for key in _keys(held):
            self._by_key.setdefault(key, set()).add(held)
        return held

    def discard(self, held: Held) -> None:
        _drop(self._by_user, held.user_id, held)
        for key in _keys(held):
            _drop(self._by_key, key, held)

    def of_user(self, user_id: str) -> list[Held]:
        return list(self._by_user.get(user_id, ()))

    def count_of(self, user_id: str) -> int:
        """How many sockets the user holds here (``max_sockets_per_user``), O(1)."""
        return len(self._by_user.get(user_id, ()))

    def of_key(self, key: str) -> list[Held]:
        """The sockets opened under ``sid:…`` or ``jti:…``."""
        return list(self._by_key.get(key, ()))

    def users(self) -> Iterator[str]:
        return iter(list(self._by_user))

    def __len__(self) -> int:
        return sum(len(s) for s in self._by_user.values())

    def counts(self) -> list[tuple[str, str, int]]:
        """(endpoint, role, sockets) for every pair that has any: read at scrape time."""
        tally: dict[tuple[str, str], int] = {}
        for held in (h for found in self._by_user.values() for h in found):
            key = (held.endpoint, held.role)
            tally[key] = tally.get(key, 0) + 1
        return [(endpoint, role, n) for (endpoint, role), n in tally.items()]


def _drop(index: dict[str, set[Held]], key: str, held: Held) -> None:
    found = index.get(key)
    if found is None:
        return
    found.discard(held)
    if not found:
        del index[key]
