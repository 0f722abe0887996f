"""Token buckets: a sustained rate plus a burst (a reconnect replays a lot).

``TokenBucket`` answers yes or no (the chat gate refuses a post with an error).
``FramePacer`` is the per-socket frame limit of ``transport/socket.py frames()``: it
never refuses a frame, it says how long to wait before reading the next one, and it
keeps the one figure that tells a burst from abuse (issue 15).

Theory of operation. While the bucket has a token, a frame is read at once. When it is
empty, the reader waits until one returns (``delay``): it stops reading that socket, so
uvicorn keeps the socket's transport paused, the kernel buffers fill and the sender's
writes block. Its frames still come, in order, at the rate. The time spent waiting adds
up in ``held_s``, which starts again from zero once the sender has stayed under its
rate long enough to win back half its burst. Only ``held_s`` past ``abuse_after_s`` is
abuse (1008).

What that threshold means: a paced socket is read at the rate, so how much faster it
would send cannot be seen from here (the excess waits in kernel buffers and in the
client); what is seen is how long it stays ahead. A sender ahead of its rate keeps the
reader waiting all the time, so ``held_s`` is the time it has been ahead, and a finite
burst of F frames, sent at any speed, is held about (F - burst) / rate seconds. The
threshold is therefore a volume: ``rate × abuse_after_s`` frames beyond the burst, sent
without a pause. With the rate far above any person's (a typist sends ~15 frames/s),
only a script that never stops reaches it.
"""

from __future__ import annotations


class TokenBucket:
    __slots__ = ("_at", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._at = now

    def take(self, now: float, cost: float = 1.0) -> bool:
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= cost:
            self._tokens -= cost
            return True
        return False


class FramePacer:
    """Per-socket frame pacing: ``delay`` before each read, ``abusive`` after a wait."""

    __slots__ = ("_at", "_tokens", "abuse_after_s", "burst", "held_s", "min_wait_s", "rate")

    def __init__(self, rate: float, burst: float, abuse_after_s: float, now: float) -> None:
        self.rate = rate
        self.burst = max(1.0, burst)
        self.abuse_after_s = abuse_after_s
        #: The shortest wait: a few frames' worth, so a paced socket costs one timer per
        #: few frames rather than one per frame; never more than 20 ms.
        self.min_wait_s = min(0.02, 4.0 / rate) if rate > 0 else 0.02
        self.held_s = 0.0
        self._tokens = self.burst
        self._at = now

    def delay(self, now: float) -> float:
        """Take a token for the next frame: 0.0 if one is there, else seconds to wait first.

        After a wait the token is owed: the caller sleeps, then reads the frame without
        asking again (``_tokens`` goes below zero and is paid back by the refill).
        """
        tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if tokens >= self.burst / 2:
            self.held_s = 0.0  # under the rate long enough: a new burst, not the same one
        tokens -= 1.0
        self._tokens = tokens
        if tokens >= 0.0:
            return 0.0
        wait = max(-tokens / self.rate, self.min_wait_s) if self.rate > 0 else self.min_wait_s
        self.held_s += wait
        return wait

    @property
    def abusive(self) -> bool:
        """Held back past ``abuse_after_s`` without winning back half the burst."""
        return self.held_s > self.abuse_after_s
