"""Real services for the tests: throwaway redis-server processes and PostgreSQL databases.

A missing service is a clear skip on a developer's machine and a failure in CI
(``ATELIER_REQUIRE_SERVICES=1``, set by .ci/run).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

PG_SERVER = os.environ.get("ATELIER_TEST_PG", "postgresql://postgres@127.0.0.1:5432")


def service_missing(reason: str) -> NoReturn:
    """Skip (or, with ATELIER_REQUIRE_SERVICES=1 as .ci/run sets, fail) with ``reason``."""
    if os.environ.get("ATELIER_REQUIRE_SERVICES") == "1":
        pytest.fail(f"required service missing: {reason}", pytrace=False)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisProcess:
    """A redis-server of the test's own on a free loopback port; can be stopped and restarted
    on the same port (that is how a test takes the bus away mid-typing)."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not Path(binary).exists():
            service_missing("redis-server not installed")
        self.binary = binary
        self.port = _free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="atelier-redis-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10) -> None:
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.dir),
                "--logfile",
                str(self.dir / "log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s,
            ):
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@contextlib.contextmanager
def redis_server() -> Iterator[RedisProcess]:
    redis = RedisProcess()
    redis.start()
    try:
        yield redis
    finally:
        redis.stop()
        shutil.rmtree(redis.dir, ignore_errors=True)


@contextlib.contextmanager
def postgres_database(prefix: str = "atelier_t") -> Iterator[str]:
    """A throwaway PostgreSQL database; yields its SQLAlchemy URL (psycopg 3)."""
    import psycopg
    from psycopg import sql

    admin = None
    for dbname in ("postgres", "test"):
        try:
            admin = psycopg.connect(f"{PG_SERVER}/{dbname}", autocommit=True, connect_timeout=3)
            break
        except psycopg.OperationalError:
            continue
    if admin is None:
        service_missing(f"PostgreSQL not reachable at {PG_SERVER} (set ATELIER_TEST_PG)")
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield PG_SERVER.replace("postgresql", "postgresql+psycopg", 1) + f"/{name}"
        finally:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
