"""Clock ranges of one Yjs client, sorted and disjoint: the index of the ledger.

Kept per range, never per character, in ``array``s (8 bytes a number, not a Python
object), searched with ``bisect``. Two kinds (see ``attribution``'s theory of operation):

- :class:`Claims`: ranges held by the earliest update that carried them, with its key;
  claiming a range returns what changed hands, so the ledger can move the credit;
- :class:`Client`: a client's struct claims and deletion claims, plus which ranges are
  characters and where astral code points start, to count characters in code points.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right

#: The "previous holder" of a range nobody held.
NO_CLAIM = -1


class Claims:
    """One client's clock ranges, sorted and disjoint, each held by its earliest update."""

    __slots__ = ("at", "by", "crc", "hi", "lo", "size")

    def __init__(self) -> None:
        self.lo = array("q")
        self.hi = array("q")
        self.at = array("d")
        self.size = array("q")
        self.crc = array("I")  # crc32
        self.by = array("i")

    def __len__(self) -> int:
        return len(self.lo)

    def holder(self, unit: int) -> int:
        """The author code of the claim on ``unit``, or NO_CLAIM."""
        i = bisect_right(self.hi, unit)
        if i < len(self.lo) and self.lo[i] <= unit:
            return self.by[i]
        return NO_CLAIM

    def overlapping(self, lo: int, hi: int) -> list[tuple[int, int, int]]:
        """(lo, hi, author code) of the claims within [lo, hi), clipped."""
        L, H, B = self.lo, self.hi, self.by
        out = []
        i = bisect_right(H, lo)
        while i < len(L) and L[i] < hi:
            out.append((max(L[i], lo), min(H[i], hi), B[i]))
            i += 1
        return out

    def claim(
        self, lo: int, hi: int, key: tuple[float, int, int, int], names: list[str]
    ) -> list[tuple[int, int, int]]:
        """Claim [lo, hi) for ``key`` wherever it is earlier than the holder's.

        Returns (lo, hi, previous author code or NO_CLAIM) of what changed hands."""
        L, H, A, S, C, B = self.lo, self.hi, self.at, self.size, self.crc, self.by
        at, size, crc, by = key
        n = len(L)
        if n == 0 or lo >= H[n - 1]:  # past the end: every keystroke of a client
            if n and H[n - 1] == lo and A[n - 1] == at and S[n - 1] == size and C[n - 1] == crc:
                if B[n - 1] == by:
                    H[n - 1] = hi
                    return [(lo, hi, NO_CLAIM)]
            L.append(lo)
            H.append(hi)
            A.append(at)
            S.append(size)
            C.append(crc)
            B.append(by)
            return [(lo, hi, NO_CLAIM)]
        i = bisect_right(H, lo)
        j = i
        segs: list[tuple[int, int, float, int, int, int]] = []
        moved: list[tuple[int, int, int]] = []
        cur = lo
        mine = (at, size, crc)
        while j < n and L[j] < hi:
            start, end, b = L[j], H[j], B[j]
            theirs = (A[j], S[j], C[j])
            if start < cur:  # the part of the first claim before lo stays
                segs.append((start, cur, theirs[0], theirs[1], theirs[2], b))
            elif cur < start:  # a gap: nobody held it
                segs.append((cur, start, at, size, crc, by))
                moved.append((cur, start, NO_CLAIM))
            top = min(end, hi)
            start = max(start, cur)
            if mine < theirs or (mine == theirs and names[by] < names[b]):
                segs.append((start, top, at, size, crc, by))
                moved.append((start, top, b))
            else:
                segs.append((start, top, theirs[0], theirs[1], theirs[2], b))
            if end > hi:
                segs.append((hi, end, theirs[0], theirs[1], theirs[2], b))
            cur = top
            j += 1
        if cur < hi:
            segs.append((cur, hi, at, size, crc, by))
            moved.append((cur, hi, NO_CLAIM))
        if not moved:
            return moved
        # Merge neighbours of one key (the claims of one update, or of a snapshot).
        if i > 0:
            i -= 1
            segs.insert(0, (L[i], H[i], A[i], S[i], C[i], B[i]))
        if j < n:
            segs.append((L[j], H[j], A[j], S[j], C[j], B[j]))
            j += 1
        merged = [segs[0]]
        for s in segs[1:]:
            p = merged[-1]
            if p[1] == s[0] and p[2:] == s[2:]:
                merged[-1] = (p[0], s[1], *p[2:])
            else:
                merged.append(s)
        L[i:j] = array("q", [s[0] for s in merged])
        H[i:j] = array("q", [s[1] for s in merged])
        A[i:j] = array("d", [s[2] for s in merged])
        S[i:j] = array("q", [s[3] for s in merged])
        C[i:j] = array("I", [s[4] for s in merged])
        B[i:j] = array("i", [s[5] for s in merged])
        return moved

    def keys(self) -> set[tuple[int, float, int, int]]:
        """(author code, at, size, crc) of every update holding a claim here."""
        return set(zip(self.by, self.at, self.size, self.crc, strict=True))

    def nbytes(self) -> int:
        arrays = (self.lo, self.hi, self.at, self.size, self.crc, self.by)
        return sum(a.itemsize * len(a) for a in arrays)


class Client:
    __slots__ = ("astral", "deletions", "present", "s_hi", "s_lo", "structs")

    def __init__(self) -> None:
        self.structs = Claims()
        self.deletions = Claims()
        # Known character ranges, merged (no keys: whoever carried them, they are the same).
        self.s_lo: list[int] = []
        self.s_hi: list[int] = []
        # Clocks where an astral code point (two UTF-16 units) starts.
        self.astral = array("q")
        # Code points of known characters not deleted.
        self.present = 0

    def weight(self, lo: int, hi: int) -> int:
        """Code points in [lo, hi) of characters: units, less the second halves of pairs."""
        a = self.astral
        if not a:
            return hi - lo
        return (hi - lo) - (bisect_left(a, hi - 1) - bisect_left(a, lo - 1))

    def string_weight(self, lo: int, hi: int) -> int:
        """Code points of the known characters within [lo, hi)."""
        L, H = self.s_lo, self.s_hi
        i = bisect_right(H, lo)
        total = 0
        while i < len(L) and L[i] < hi:
            total += self.weight(max(L[i], lo), min(H[i], hi))
            i += 1
        return total

    def is_string(self, unit: int) -> bool:
        i = bisect_right(self.s_hi, unit)
        return i < len(self.s_lo) and self.s_lo[i] <= unit

    def string_gaps(self, lo: int, hi: int) -> list[tuple[int, int]]:
        """The parts of [lo, hi) not yet known as characters."""
        L, H = self.s_lo, self.s_hi
        i = bisect_right(H, lo)
        gaps = []
        cur = lo
        while i < len(L) and L[i] < hi:
            if cur < L[i]:
                gaps.append((cur, L[i]))
            cur = max(cur, H[i])
            i += 1
        if cur < hi:
            gaps.append((cur, hi))
        return gaps

    def add_string_range(self, lo: int, hi: int) -> None:
        L, H = self.s_lo, self.s_hi
        i = bisect_left(H, lo)  # first range ending at or after lo: touches or follows
        j = bisect_right(L, hi)  # ranges starting at or before hi touch
        if i < j:
            lo = min(lo, L[i])
            hi = max(hi, H[j - 1])
        L[i:j] = [lo]
        H[i:j] = [hi]
