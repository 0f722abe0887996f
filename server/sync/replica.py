"""The server's replica of one doc, and a guard against a pycrdt bug on pending updates.

An update whose dependencies have not arrived yet is "pending": Yjs keeps it aside and
integrates it when they do. pycrdt 0.14 (yrs 0.28) keeps only part of that: applying
the updates of "a, b, c at 0, d at 2" in the order 0, 2, 3, 1 gives "cab" instead of
"cadb" (tests/persistence and tests/sync show it). Out-of-order updates are rare on one
node but normal across nodes and in a log several nodes wrote.

So every update goes through :meth:`Replica.apply`: after applying it, the part the doc
still lacks (``get_update(update, state vector)``: structs left un-integrated) is kept
here, and re-applied, merged, after every later update until it integrates. The cost in
the normal, in-order case is one state-vector diff per update.

The replica also keeps an estimate of its state's size for ``max_doc_bytes``: the
encoded state at the first measure, plus the length of every update applied since (an
update adds at most about its own length; a deletion shrinks the state). Encoding the
whole state per update would cost O(doc) per keystroke (56 ms for a 16 MB doc), so
:meth:`Replica.fits` measures exactly only when the estimate says "too big", something
changed since the last measure, and the last measure is ``MEASURE_EVERY_S`` old: a
socket alternating deletions and insertions at the limit cannot make the node encode
the doc at its frame rate. Within that second the estimate decides (an insertion right
after a deletion at the limit may be refused; deleting never is).
"""

from __future__ import annotations

import logging

from pycrdt import Doc, get_update, merge_updates

from server.sync.messages import ProtocolError

log = logging.getLogger(__name__)

#: Un-integrated bytes kept at most; past this (a client sending updates whose
#: dependencies never come) the oldest are dropped — they are in the database log anyway.
MAX_PENDING_BYTES = 4 * 1024 * 1024
#: The state of a doc near its size limit is measured at most this often (seconds).
MEASURE_EVERY_S = 1.0


def _apply(doc: Doc, update: bytes) -> None:
    """Apply, turning any refusal by pycrdt into a ProtocolError.

    yrs may panic on crafted input; pyo3 raises that as ``PanicException``, which derives
    from BaseException, so a plain ``except Exception`` would let it kill the node.
    """
    try:
        doc.apply_update(update)
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as exc:
        raise ProtocolError(f"update refused: {type(exc).__name__}") from None


def _leftover(doc: Doc, update: bytes) -> bytes | None:
    """The structs of ``update`` the doc has not integrated, or None."""
    missing = get_update(update, doc.get_state())
    return missing if missing[:1] != b"\x00" else None


class Replica:
    __slots__ = ("_measured", "_measured_at", "doc", "max_bytes", "pending", "size")

    def __init__(self, doc: Doc | None = None, *, max_bytes: int | None = None) -> None:
        self.doc: Doc = doc if doc is not None else Doc()
        self.pending: bytes | None = None
        #: The limit on the state's size (None: none); see :meth:`fits`.
        self.max_bytes = max_bytes
        #: An upper estimate of the encoded state's size, in bytes.
        self.size = len(self.doc.get_update()) if doc is not None else 0
        #: True while ``size`` is exact (nothing applied since it was measured).
        self._measured = True
        self._measured_at = float("-inf")

    def measure(self, now: float | None = None) -> int:
        """The exact size of the encoded state (O(doc): not for every update)."""
        self.size = len(self.doc.get_update())
        self._measured = True
        if now is not None:
            self._measured_at = now
        return self.size

    def fits(self, update: bytes, now: float = 0.0) -> bool:
        """May ``update`` be applied without taking the state past ``max_bytes``?

        An update that adds no structs (a deletion, or what the doc already has) always
        fits: it never grows the state, and deleting is how a full doc gets room back.
        ``now``: a monotonic clock (seconds), for the pace of exact measures.
        """
        limit = self.max_bytes
        if limit is None or self.size + len(update) <= limit:
            return True
        try:
            news = get_update(update, self.doc.get_state())
        except (KeyboardInterrupt, SystemExit, GeneratorExit):
            raise
        except BaseException:
            return True  # undecodable: apply() refuses it with a clear ProtocolError
        if news[:1] == b"\x00":
            return True
        size = self.size
        if not self._measured and now - self._measured_at >= MEASURE_EVERY_S:
            size = self.measure(now)
        return size + len(news) <= limit

    def apply(self, update: bytes) -> None:
        """Apply an update (raises ProtocolError if pycrdt refuses it)."""
        doc = self.doc
        _apply(doc, update)
        self.size += len(update)
        self._measured = False
        if update[:1] == b"\x00":
            return  # a delete set alone: no structs to wait for
        left = _leftover(doc, update)
        if left is not None:
            merged = left if self.pending is None else merge_updates(self.pending, left)
            if len(merged) > MAX_PENDING_BYTES:
                log.warning("dropping %d bytes of never-integrated updates", len(merged))
                merged = left
            self.pending = merged
        elif self.pending is not None:
            # Something new integrated: what waited on it may integrate now.
            waiting = self.pending
            _apply(doc, waiting)
            self.pending = _leftover(doc, waiting)
