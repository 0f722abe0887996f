"""The node's memory budget: past it, no new doc is loaded and the node is not ready.

The resident set size is read from ``/proc/self/statm`` (Linux: one small read, no
library), at most once per ``interval_s``, so a class joining at once costs one read.
Elsewhere (macOS, for development) the peak RSS from ``getrusage`` stands in: it never
goes down, which errs on the side of refusing.

Only new loads are refused (``RoomRegistry.may_load``) and ``/readyz`` answers 503 with
the reason: the load balancer sends new clients to other nodes while the sockets open
here go on, and the memory comes back as idle docs unload.
"""

from __future__ import annotations

import os
import resource
import sys
import time

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
MIB = 1024 * 1024


def rss_bytes() -> int:
    """This process's resident set size, in bytes."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024  # bytes there, KiB here


class MemoryBudget:
    __slots__ = ("_at", "_rss", "interval_s", "limit")

    def __init__(self, limit_mb: int, interval_s: float = 1.0) -> None:
        #: In bytes; 0: no budget.
        self.limit = limit_mb * MIB
        self.interval_s = interval_s
        self._rss = 0
        self._at = float("-inf")

    def rss(self) -> int:
        now = time.monotonic()
        if now - self._at >= self.interval_s:
            self._rss = rss_bytes()
            self._at = now
        return self._rss

    def over(self) -> str | None:
        """None within the budget; else the reason, as clients and /readyz show it."""
        if not self.limit:
            return None
        rss = self.rss()
        if rss <= self.limit:
            return None
        return f"node memory budget reached ({rss // MIB} MiB of {self.limit // MIB} MiB)"
