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
    #: The frame sent before a 4403 (y-protocols' "permission denied"), if the protocol
    #: has one.
    denied: Callable[[str], bytes] | None = field(default=None, repr=False)


class SocketIndex:
    def __init__(self) -> None:
        self._by_user: dict[str, set[Held]] = {}
        self._by_session: dict[str, set[Held]] = {}

    def add(self, held: Held) -> Held:
        self._by_user.setdefault(held.user_id, set()).add(held)
        if held.session_id is not None:
            self._by_session.setdefault(held.session_id, set()).add(held)
        return held

    def discard(self, held: Held) -> None:
        _drop(self._by_user, held.user_id, held)
        if held.session_id is not None:
            _drop(self._by_session, held.session_id, held)

    def of_user(self, user_id: str) -> list[Held]:
        return list(self._by_user.get(user_id, ()))

    def of_session(self, session_id: str) -> list[Held]:
        return list(self._by_session.get(session_id, ()))

    def users(self) -> Iterator[str]:
        return iter(list(self._by_user))

    def __len__(self) -> int:
        return sum(len(s) for s in self._by_user.values())


def _drop(index: dict[str, set[Held]], key: str, held: Held) -> None:
    found = index.get(key)
    if found is None:
        return
    found.discard(held)
    if not found:
        del index[key]
