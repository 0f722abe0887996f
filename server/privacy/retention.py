"""Retention: each data class deleted past its RETENTION_*_DAYS, once across nodes.

Every node runs :meth:`Retention.loop`; a minute after its start, then each
RETENTION_INTERVAL_S, it tries a run. A run
is claimed in two steps, so that it happens once per interval whatever the number of
nodes:

- on PostgreSQL a session advisory lock (``pg_try_advisory_lock``) held for the whole
  run: a node that does not get it skips (another is running);
- then the newest ``retention.run`` audit row: if one is younger than the interval,
  another node has run already, and this one skips.

SQLite serves one node (its file is local), so only the second step applies. A run
writes its own ``retention.run`` audit row with what it removed. ``atelier retention
run`` takes the same path (``force``: it runs even if a node ran recently), and
``--dry-run`` counts without deleting nor writing the row.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from server.config import Settings
from server.persistence import audit
from server.persistence import retention as purge
from server.persistence.db import is_postgres, writer
from server.persistence.models import audit_t, aware, utcnow

log = logging.getLogger(__name__)

ACTION = "retention.run"
#: The actor of the periodic runs (no one asked).
SYSTEM_ACTOR = "system"
#: A node's first try, after its start.
FIRST_RUN_S = 60.0
#: pg_try_advisory_lock key of retention runs ("RETAIN" in ASCII).
_PG_LOCK = 0x524554414E


class Retention:
    def __init__(self, settings: Settings, engine: AsyncEngine, node_id: str) -> None:
        self.settings = settings
        self.engine = engine
        self.node_id = node_id
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.settings.retention_interval_s > 0:
            self._task = asyncio.get_running_loop().create_task(self.loop(), name="retention")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def loop(self) -> None:
        interval = self.settings.retention_interval_s
        # Not in the start-up burst (a rolling restart of every node): a minute later.
        await asyncio.sleep(min(FIRST_RUN_S, interval))
        while True:
            try:
                report = await self.run(dry_run=False, actor=SYSTEM_ACTOR, force=False)
                if report is not None:
                    log.info("retention removed %s", report)
            except Exception:
                log.exception("retention run failed (tried again next interval)")
            await asyncio.sleep(interval)

    @contextlib.asynccontextmanager
    async def _claimed(self) -> AsyncIterator[bool]:
        if not is_postgres(self.engine):
            yield True
            return
        async with self.engine.connect() as conn:
            got = bool(await conn.scalar(sa.select(sa.func.pg_try_advisory_lock(_PG_LOCK))))
            await conn.commit()
            try:
                yield got
            finally:
                if got:
                    await conn.scalar(sa.select(sa.func.pg_advisory_unlock(_PG_LOCK)))
                    await conn.commit()

    async def _ran_recently(self) -> bool:
        query = sa.select(sa.func.max(audit_t.c.at)).where(audit_t.c.action == ACTION)
        async with self.engine.connect() as conn:
            last = await conn.scalar(query)
        if last is None:
            return False
        age = (utcnow() - aware(last)).total_seconds()
        return age < self.settings.retention_interval_s * 0.9

    def cutoffs(self, now: datetime) -> dict[str, datetime | None]:
        s = self.settings

        def before(days: int) -> datetime | None:
            return now - timedelta(days=days) if days > 0 else None

        return {
            "chat": before(s.retention_chat_days),
            "documents": before(s.retention_documents_days),
            "versions": before(s.retention_versions_days),
            "notifications": before(s.retention_notifications_days),
            "audit": before(s.retention_audit_days),
        }

    async def run(self, *, dry_run: bool, actor: str, force: bool = True) -> dict[str, int] | None:
        """Rows removed (or, dry, that would be) per class; None when another node has
        the run (or had it within the interval)."""
        async with self._claimed() as mine:
            if not mine or (not force and not dry_run and await self._ran_recently()):
                return None
            started = time.perf_counter()
            cut = self.cutoffs(utcnow())
            out: dict[str, int] = {}
            if (c := cut["chat"]) is not None:
                out["chat"] = await purge.chat(self.engine, c, dry_run)
            if (c := cut["documents"]) is not None:
                out.update(await purge.documents(self.engine, c, dry_run))
            if (c := cut["versions"]) is not None:
                out["versions"] = await purge.versions(self.engine, c, dry_run)
            if (c := cut["notifications"]) is not None:
                out["notifications"] = await purge.notifications(self.engine, c, dry_run)
            if (c := cut["audit"]) is not None:
                out["audit"] = await purge.audit(self.engine, c, dry_run)
            if not dry_run:
                async with writer(self.engine).begin() as conn:
                    await audit.record(
                        conn,
                        actor=actor,
                        node=self.node_id,
                        action=ACTION,
                        detail={
                            "removed": out,
                            "seconds": round(time.perf_counter() - started, 3),
                        },
                    )
            return out
