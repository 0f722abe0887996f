"""When a doc's automatic versions are taken — pure: times in, decisions out.

A checkpoint is due, for a doc this node has seen edited by its own clients:
- after a pause: nothing new for ``pause_s`` since the last edit (the group stopped to
  talk, the lesson moved on);
- during long activity: ``interval_s`` since the first edit after the last checkpoint
  (a group typing for an hour still gets a version every few minutes);
- at the end of an editing session: the doc's last socket left (``session``, decided
  by the caller when the doc settles before unloading).

Only the node whose own clients edited takes the checkpoint, so that with the balancer's
room affinity a doc gets one version per moment, not one per node; the contributors of
a version are the users who edited since the previous one.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class CheckpointClock:
    pause_s: float
    interval_s: float
    #: First and last edit since the last checkpoint (None: nothing to keep).
    first_edit: float | None = None
    last_edit: float | None = None
    contributors: set[str] = field(default_factory=set)

    @property
    def dirty(self) -> bool:
        return self.first_edit is not None

    def edited(self, now: float, author: str | None) -> None:
        if self.first_edit is None:
            self.first_edit = now
        self.last_edit = now
        if author is not None:
            self.contributors.add(author)

    def due(self, now: float) -> str | None:
        """``"pause"``, ``"interval"`` or None."""
        if self.first_edit is None or self.last_edit is None:
            return None
        if now - self.last_edit >= self.pause_s:
            return "pause"
        if now - self.first_edit >= self.interval_s:
            return "interval"
        return None

    def taken(self) -> list[str]:
        """A checkpoint was stored: start over; returns its contributors."""
        contributors = sorted(self.contributors)
        self.first_edit = None
        self.last_edit = None
        self.contributors = set()
        return contributors
