"""Who wrote what in a doc, read from the Yjs structs themselves — pure, no I/O.

Teachers watching group work see, per student, the characters they typed that are still
in the doc, what they deleted, how often and when they edited. Nothing a client claims is
believed: a character belongs to the user its Yjs *client id* is bound to (the server
binds a client id to the authenticated user of the socket it first came from, ``bind``),
and a deletion to the user whose socket sent the update that deleted it.

Theory of operation
-------------------
A Yjs doc is a set of clock ranges per client id. The ledger keeps, per client, sorted
disjoint ranges (bisect), never per character:

- *claims*: each clock range any update carried, held by the **earliest** update that
  carried it — its key is ``(at, size, crc32, author)``: the time it was stored, the
  clock units it carried (a keystroke beats a sync step 2 that relays it when both were
  stored at the same instant: the store stamps a whole batch with one time), a checksum
  of its bytes, its author. Keys are compared, never arrival order, so the figures of a
  set of updates do not depend on the order of the log (it can be out of causal order:
  several nodes append concurrently) and a duplicate never counts twice;
- *deletions*: each deleted clock range, held by the earliest update whose delete set
  named it, with the same keys (a delete set may arrive before the insert it deletes:
  the deleter is credited when the characters become known);
- *strings*: which ranges are characters (every update that carries them must agree:
  clock ranges are immutable in Yjs), and where the astral code points start, so that a
  range's characters are counted in code points (``"👋"`` is 2 clock units, 1 character).

From these, at any moment:

- ``inserted`` of a user: characters of their client ids not deleted (present now);
- ``deleted``: characters whose earliest deletion came from their updates;
- ``edits``: their updates that were the earliest to carry something — a struct of one
  of their own client ids (or an unbound one), or a deletion. So a duplicate is no edit,
  nor the sync step 2 a client sends on every reconnect (it repeats the doc's whole
  delete set), nor an update that only relays, or forges, another user's client id;
- ``active_minutes``, ``first_edit``, ``last_edit`` and ``activity`` from those edits'
  times (minute = ``int(at // 60)``).

Characters of client ids bound to nobody, and deletions from updates of no known author
(``author=None``: a repair after a node died), are counted under :data:`UNATTRIBUTED`.
Updates of no author count no edits.

Folding the update log into a snapshot keeps attribution: store :meth:`Ledger.summary`
beside the snapshot, and rebuild with ``Ledger.from_summary(summary, snapshot)``: the
snapshot gives the present characters per client (and what was already deleted, which
the tail can no longer claim), the summary the deletions, edits and minutes before the
fold. Applying the tail of the log then gives the figures a replay of the whole log
gives, provided the tail was stored after what the snapshot folded (a later ``at``) and
the snapshot holds the structs its delete set deletes. Rebuilding from a summary also
makes the index compact again: a snapshot's ranges share one key and merge.
"""

from __future__ import annotations

import math
import zlib
from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from server.progress.ranges import NO_CLAIM, Client
from server.sync.structs import Kind, decode_update

#: The key of ``figures()`` and ``activity()`` for characters of unbound client ids and
#: deletions by updates of no author. Never a user id: tokens' ``sub`` is non-empty.
UNATTRIBUTED = ""

SUMMARY_VERSION = 1

# Author codes in the claim arrays: users are numbered from _FIRST_USER in order of
# appearance (a number is never compared: keys compare names).
_PRIOR = 0  # folded into a snapshot: credits nobody, beats everything (at = -inf)
_NOBODY = 1  # UNATTRIBUTED
_FIRST_USER = 2


@dataclass(frozen=True, slots=True)
class Figures:
    inserted: int
    deleted: int
    edits: int
    active_minutes: int
    first_edit: float | None
    last_edit: float | None


class Ledger:
    """The attribution of one doc (see the module's docstring)."""

    def __init__(self) -> None:
        self._owners: dict[int, str] = {}
        self._clients: dict[int, Client] = {}
        self._names: list[str] = ["", UNATTRIBUTED]  # by author code; _PRIOR's is unused
        self._codes: dict[str, int] = {}
        # Code points deleted, by author code (the earliest deleter of each).
        self._deleted: dict[int, int] = {}
        # Counters folded from a summary: user → [deleted, edits, first, last, minutes].
        self._base: dict[str, _Base] = {}
        # user → their edits, kept up to date as updates come in order; recounted from
        # the claims (``_recount``) after an update took a claim from another, or a bind
        # changed whose structs count: either can take an edit back.
        self._edits: dict[str, _Activity] = {}
        self._stale = False

    # --- bindings

    def bind(self, client: int, user: str) -> bool:
        """Bind a client id to a user; the first user wins. False if bound to another."""
        if not user:
            raise ValueError("a user id is not empty")
        owner = self._owners.setdefault(client, user)
        if owner != user:
            return False
        c = self._clients.get(client)
        if c is not None and len(c.structs):
            self._stale = True  # others' structs under this id stop being their edits
        return True

    def owner(self, client: int) -> str | None:
        return self._owners.get(client)

    def owners(self) -> dict[int, str]:
        return dict(self._owners)

    def rename(self, old: str, new: str) -> bool:
        """Give everything of user ``old`` to ``new`` (an erasure's pseudonym, which must
        be new to this ledger): bindings, claims, deletions, edits. False if the ledger
        never named ``old``. Claims keep their order (ties between two updates stored at
        the same instant may break the other way: figures then move by a keystroke)."""
        if not old or not new:
            raise ValueError("a user id is not empty")
        if new in self._codes or new in self._base or new in self._owners.values():
            raise ValueError("the new id is already in this ledger")
        changed = False
        for client, user in self._owners.items():
            if user == old:
                self._owners[client] = new
                changed = True
        code = self._codes.pop(old, None)
        if code is not None:
            self._names[code] = new  # in place: the range arrays hold this very list
            self._codes[new] = code
            changed = True
        if old in self._base:
            self._base[new] = self._base.pop(old)
            changed = True
        if old in self._edits:
            self._edits[new] = self._edits.pop(old)
            changed = True
        return changed

    # --- updates

    def _code(self, author: str | None) -> int:
        if author is None:
            return _NOBODY
        code = self._codes.get(author)
        if code is None:
            code = self._codes[author] = len(self._names)
            self._names.append(author)
        return code

    def _client(self, client: int) -> Client:
        c = self._clients.get(client)
        if c is None:
            c = self._clients[client] = Client()
        return c

    def apply(self, update: bytes, author: str | None, at: float) -> None:
        """Count one stored or received update, sent by ``author`` (None: unknown) at ``at``.

        Raises ``ProtocolError`` if the update is malformed (nothing is counted then)."""
        if not math.isfinite(at):
            raise ValueError("at must be a finite time")
        if author == UNATTRIBUTED:
            raise ValueError("a user id is not empty (no author: None)")
        self._integrate(update, self._code(author), at)

    def _integrate(self, update: bytes, by: int, at: float) -> None:
        u = decode_update(update)
        if not u.structs and not u.deletes:
            return
        # Consecutive structs of a client are contiguous: one claim per run.
        runs: list[tuple[int, int, int]] = []
        strings: list[tuple[int, int, str]] = []
        size = 0
        for s in u.structs:
            if s.kind is Kind.SKIP:
                continue  # a gap in a merged update: carries nothing
            size += s.length
            end = s.clock + s.length
            if runs and runs[-1][0] == s.client and runs[-1][2] == s.clock:
                runs[-1] = (s.client, runs[-1][1], end)
            else:
                runs.append((s.client, s.clock, end))
            if s.kind is Kind.STRING:
                assert s.text is not None
                strings.append((s.client, s.clock, s.text))
        for _client, _clock, length in u.deletes:
            size += length
        key = (-math.inf, 0, 0, _PRIOR) if by == _PRIOR else (at, size, _crc(update), by)
        name = self._names[by]
        edit = False
        for client, lo, hi in runs:
            moved = self._client(client).structs.claim(lo, hi, key, self._names)
            if moved:
                owner = self._owners.get(client)
                edit = edit or owner is None or owner == name
                self._stale = self._stale or any(m[2] != NO_CLAIM for m in moved)
        for client, clock, text in strings:
            self._add_string(self._client(client), clock, text)
        for client, clock, length in u.deletes:
            if length and self._add_deletion(self._client(client), clock, clock + length, key):
                edit = True
        if edit and by >= _FIRST_USER and not self._stale:
            act = self._edits.get(name)
            if act is None:
                act = self._edits[name] = _Activity()
            act.add(at)

    def _credit(self, by: int, n: int) -> None:
        if n:
            self._deleted[by] = self._deleted.get(by, 0) + n

    def _add_string(self, c: Client, clock: int, text: str) -> None:
        end = clock + (len(text) if text.isascii() else len(text.encode("utf-16-le")) >> 1)
        if not text.isascii():
            pos = clock
            for ch in text:
                if ord(ch) > 0xFFFF:
                    self._add_astral(c, pos)
                    pos += 2
                else:
                    pos += 1
        for lo, hi in c.string_gaps(clock, end):
            total = c.weight(lo, hi)
            deleted = 0
            for a, b, by in c.deletions.overlapping(lo, hi):
                w = c.weight(a, b)
                self._credit(by, w)
                deleted += w
            c.present += total - deleted
            c.add_string_range(lo, hi)

    def _add_astral(self, c: Client, s: int) -> None:
        i = bisect_left(c.astral, s)
        if i < len(c.astral) and c.astral[i] == s:
            return
        c.astral.insert(i, s)
        # Unit s + 1 is now the second half of a pair: it no longer counts as a character.
        # (Only if two copies of a range disagree, e.g. a surrogate pair that yjs split
        # into two U+FFFD; counted the same whatever the order they came in.)
        if c.is_string(s + 1):
            holder = c.deletions.holder(s + 1)
            if holder == NO_CLAIM:
                c.present -= 1
            else:
                self._credit(holder, -1)

    def _add_deletion(self, c: Client, lo: int, hi: int, key: tuple[float, int, int, int]) -> bool:
        """Claim a deleted range; True if ``key`` took any of it."""
        by = key[3]
        moved = c.deletions.claim(lo, hi, key, self._names)
        for a, b, previous in moved:
            if previous != NO_CLAIM:
                self._stale = True
            w = c.string_weight(a, b)
            if not w:
                continue
            if previous == NO_CLAIM:
                c.present -= w
            else:
                self._credit(previous, -w)
            self._credit(by, w)
        return bool(moved)

    # --- figures

    def _activity(self) -> dict[str, _Activity]:
        if self._stale:
            self._edits = self._recount()
            self._stale = False
        return self._edits

    def _recount(self) -> dict[str, _Activity]:
        """user → their edits, from the claims: each update holding a claim that counts."""
        edits: dict[int, set[tuple[float, int, int]]] = {}
        for client, c in self._clients.items():
            owner = self._owners.get(client)
            for by, at, size, crc in c.structs.keys():
                # A struct is an edit of its client's user only: relaying, or forging,
                # another user's client id is nobody's edit.
                if by >= _FIRST_USER and (owner is None or owner == self._names[by]):
                    edits.setdefault(by, set()).add((at, size, crc))
            for by, at, size, crc in c.deletions.keys():
                if by >= _FIRST_USER:
                    edits.setdefault(by, set()).add((at, size, crc))
        out: dict[str, _Activity] = {}
        for by, keys in edits.items():
            act = out[self._names[by]] = _Activity()
            for at, _size, _crc in keys:
                act.add(at)
        return out

    def figures(self) -> dict[str, Figures]:
        """user → their figures; :data:`UNATTRIBUTED` only when it has something."""
        inserted: dict[str, int] = {}
        for client, c in self._clients.items():
            user = self._owners.get(client, UNATTRIBUTED)
            inserted[user] = inserted.get(user, 0) + c.present
        deleted: dict[str, int] = {}
        for by, n in self._deleted.items():
            if by != _PRIOR:
                name = self._names[by]
                deleted[name] = deleted.get(name, 0) + n
        activity = self._activity()
        users = set(self._owners.values()) | set(inserted) | set(deleted)
        users |= set(activity) | set(self._base)
        out = {}
        for user in sorted(users):
            base = self._base.get(user, _EMPTY_BASE)
            act = activity.get(user, _EMPTY_ACTIVITY)
            minutes = set(base.minutes) | set(act.minutes)
            f = Figures(
                inserted=inserted.get(user, 0),
                deleted=deleted.get(user, 0) + base.deleted,
                edits=act.edits + base.edits,
                active_minutes=len(minutes),
                first_edit=_min(base.first, act.first),
                last_edit=_max(base.last, act.last),
            )
            if user == UNATTRIBUTED and f == _NOTHING:
                continue
            out[user] = f
        return out

    def activity(self, since_minute: int) -> dict[str, dict[int, int]]:
        """user → minute → edits, for minutes from ``since_minute`` on."""
        out: dict[str, dict[int, int]] = {}
        for source in (self._activity(), self._base):
            for user, rec in source.items():
                for m, n in rec.minutes.items():
                    if m >= since_minute:
                        per = out.setdefault(user, {})
                        per[m] = per.get(m, 0) + n
        return {user: dict(sorted(per.items())) for user, per in sorted(out.items())}

    def index_bytes(self) -> int:
        """Bytes held by the range arrays (a lower bound of the ledger's memory)."""
        return sum(
            c.structs.nbytes() + c.deletions.nbytes() + c.astral.itemsize * len(c.astral)
            for c in self._clients.values()
        )

    # --- snapshots and summaries

    @classmethod
    def from_state(cls, state: bytes, owners: Mapping[int, str]) -> Ledger:
        """A ledger for a doc loaded from its snapshot (a Yjs update of its whole state).

        Present characters are counted for their owners; what the snapshot already
        deleted credits nobody and can no longer be claimed. No edits, no minutes: those
        come from the stored summary (:meth:`from_summary`)."""
        ledger = cls()
        for client, user in owners.items():
            ledger.bind(client, user)
        ledger._integrate(state, _PRIOR, -math.inf)
        return ledger

    def summary(self) -> dict[str, Any]:
        """What ``from_summary`` needs besides the snapshot, as JSON-able data::

        {"v": 1, "bindings": {"<client id>": user},
         "users": {user: {"deleted": n, "edits": n, "first": t | null,
                          "last": t | null, "minutes": {"<minute>": edits}}}}
        """
        figures = self.figures()
        activity = self.activity(-(2**63))
        users = {}
        for user, f in figures.items():
            if not (f.deleted or f.edits):
                continue
            users[user] = {
                "deleted": f.deleted,
                "edits": f.edits,
                "first": f.first_edit,
                "last": f.last_edit,
                "minutes": {str(m): n for m, n in activity.get(user, {}).items()},
            }
        bindings = {str(client): user for client, user in sorted(self._owners.items())}
        return {"v": SUMMARY_VERSION, "bindings": bindings, "users": users}

    @classmethod
    def from_summary(cls, summary: Mapping[str, Any], state: bytes | None = None) -> Ledger:
        """The ledger of a folded doc: its snapshot (if any) plus the stored summary.

        Raises ``ValueError`` on a summary that is not one :meth:`summary` wrote, and
        ``ProtocolError`` on a malformed snapshot."""
        try:
            if summary.get("v") != SUMMARY_VERSION:
                raise ValueError(f"unknown summary version {summary.get('v')!r}")
            owners = {int(client): str(user) for client, user in summary["bindings"].items()}
            base = {
                str(user): _Base(
                    int(rec["deleted"]),
                    int(rec["edits"]),
                    None if rec["first"] is None else float(rec["first"]),
                    None if rec["last"] is None else float(rec["last"]),
                    {int(m): int(n) for m, n in rec["minutes"].items()},
                )
                for user, rec in summary["users"].items()
            }
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed attribution summary: {exc!r}") from None
        if state is None:
            ledger = cls()
            for client, user in owners.items():
                ledger.bind(client, user)
        else:
            ledger = cls.from_state(state, owners)
        ledger._base = base
        return ledger


class _Activity:
    """One user's edits: how many, first and last, per minute."""

    __slots__ = ("edits", "first", "last", "minutes")

    def __init__(self) -> None:
        self.edits = 0
        self.first: float | None = None
        self.last: float | None = None
        self.minutes: dict[int, int] = {}

    def add(self, at: float) -> None:
        self.edits += 1
        self.first = at if self.first is None else min(self.first, at)
        self.last = at if self.last is None else max(self.last, at)
        m = int(at // 60)
        self.minutes[m] = self.minutes.get(m, 0) + 1


@dataclass(frozen=True, slots=True)
class _Base:
    deleted: int
    edits: int
    first: float | None
    last: float | None
    minutes: dict[int, int]


_EMPTY_ACTIVITY = _Activity()
_EMPTY_BASE = _Base(0, 0, None, None, {})
_NOTHING = Figures(0, 0, 0, 0, None, None)


def _crc(update: bytes) -> int:
    return zlib.crc32(update)


def _min(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


def _max(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)
