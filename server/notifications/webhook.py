"""The ENT webhook: every notification POSTed as signed JSON to ``ENT_WEBHOOK_URL``, so
that the ENT's mobile app or e-mail can relay it — theory of operation.

- **Never lost.** The outbox row is written with the notification (one transaction,
  persistence/notifications.py). A row leaves the outbox only when the receiver answered
  2xx. A node that dies with rows leased to it delays them by the lease, nothing more.
- **At least once, idempotent.** A POST whose answer was lost is sent again; every POST
  carries ``Idempotency-Key`` (the notification's id, also ``id`` in the body), which the
  receiver uses to drop repeats. The body of a notification is the same on every try.
- **Signed.** ``X-Atelier-Signature: sha256=<hex>`` is HMAC-SHA256 over
  ``"{X-Atelier-Timestamp}.{body}"`` with ``ENT_WEBHOOK_SECRET``: the receiver checks it and
  the timestamp's age (replays).
- **Backoff.** A failure (no answer, a timeout, any non-2xx) is retried after 1, 2, 4 …
  seconds, jittered, up to ``webhook_max_backoff_s``; every node drains the one outbox,
  each taking a batch under a lease.

httpx (async, HTTP/1.1 keep-alive pool, timeouts per request) does the POSTs.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from server import metrics
from server.config import Settings
from server.persistence.notifications import NotificationRow, NotificationStore

log = logging.getLogger(__name__)

POLL_S = 1.0


def signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def body_of(n: NotificationRow, user_id: str) -> bytes:
    """The JSON a notification is POSTed as (the same bytes on every try)."""
    doc: dict[str, Any] = {
        "id": n.id,
        "user_id": user_id,
        "kind": n.kind,
        "title": n.title,
        "body": n.body,
        "child_id": n.child_id,
        "assignment_id": n.assignment_id,
        "work_id": n.work_id,
        "created_at": datetime.fromtimestamp(n.created_at, UTC).isoformat(),
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


def backoff_s(attempts: int, cap_s: float) -> float:
    """The wait before try ``attempts + 2``: 1, 2, 4 … s, capped, jittered (×0.5–1)."""
    return min(cap_s, 2.0 ** min(attempts, 30)) * random.uniform(0.5, 1.0)


class Webhook:
    def __init__(self, settings: Settings, store: NotificationStore) -> None:
        if not settings.ent_webhook_url or not settings.ent_webhook_secret:
            raise ValueError("ENT_WEBHOOK_URL needs ENT_WEBHOOK_SECRET")
        self.settings = settings
        self.store = store
        self.url = settings.ent_webhook_url
        self.secret = settings.ent_webhook_secret
        self.lease_s = settings.webhook_timeout_s * 2 + 5
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="ent-webhook")

    def wake(self) -> None:
        self._wake.set()

    async def close(self) -> None:
        """Stop taking batches; let the POSTs in flight finish (bounded by their timeout:
        a POST cut in the middle reaches the receiver as a truncated request)."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception, TimeoutError):
                await asyncio.wait_for(
                    asyncio.shield(self._task), self.settings.webhook_timeout_s + 1
                )
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _loop(self) -> None:
        limit = max(1, self.settings.webhook_concurrency) * 4
        timeout = httpx.Timeout(self.settings.webhook_timeout_s)
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
            gate = asyncio.Semaphore(max(1, self.settings.webhook_concurrency))
            while not self._stopping:
                try:
                    taken = await self.store.take_due(datetime.now(UTC), self.lease_s, limit)
                except Exception:
                    log.exception("ENT outbox: could not read the outbox; retrying")
                    taken = []
                if not taken:
                    if self._stopping:
                        break
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), POLL_S)
                    continue
                done = await asyncio.gather(*(self._deliver(client, gate, item) for item in taken))
                # One transaction for the batch's deliveries, not one per POST (until it is
                # written, a crash only re-sends: the receiver drops repeats by id).
                taken_ids = [i for i in done if i is not None]
                if taken_ids:
                    try:
                        await self.store.delivered(taken_ids)
                    except Exception:
                        log.exception("ENT outbox: could not record deliveries (leases expire)")

    async def _deliver(
        self, client: httpx.AsyncClient, gate: asyncio.Semaphore, item: dict[str, Any]
    ) -> str | None:
        """POST one notification; its id when the ENT took it, None otherwise (then its
        retry is scheduled here)."""
        n: NotificationRow = item["row"]
        body = body_of(n, item["user_id"])
        stamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": n.id,
            "X-Atelier-Timestamp": stamp,
            "X-Atelier-Signature": signature(self.secret, stamp, body),
            "X-Atelier-Attempt": str(item["attempts"] + 1),
        }
        async with gate:
            try:
                response = await client.post(self.url, content=body, headers=headers)
                ok = 200 <= response.status_code < 300
                error = "" if ok else f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                ok, error = False, f"{type(exc).__name__}: {exc}"
        if ok:
            metrics.WEBHOOK_SENT.inc()
            return n.id
        metrics.WEBHOOK_FAILED.inc()  # one failed try; the row is retried later
        try:
            wait = backoff_s(item["attempts"], self.settings.webhook_max_backoff_s)
            log.warning(
                "ENT webhook: notification %s not taken (%s); try %d in %.0f s",
                n.id,
                error,
                item["attempts"] + 2,
                wait,
            )
            await self.store.retry_later(n.id, datetime.now(UTC) + timedelta(seconds=wait), error)
        except Exception:
            log.exception("ENT outbox: could not record a retry (the lease will expire)")
        return None
