"""Several Atelier nodes on one Redis and one PostgreSQL database: a cluster on loopback."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.server import AtelierServer
from tests.support.services import RedisProcess, postgres_database, redis_server


@dataclass
class Cluster:
    folder: Path
    redis: RedisProcess
    database_url: str
    nodes: list[AtelierServer] = field(default_factory=list)

    def add_node(self, name: str, **env: str) -> AtelierServer:
        node = AtelierServer(
            data_dir=self.folder / name,
            database_url=self.database_url,
            extra_env={"ATELIER_REDIS_URL": self.redis.url, "ATELIER_NODE_ID": name, **env},
        )
        node.data_dir.mkdir(parents=True, exist_ok=True)
        self.nodes.append(node)
        return node

    def token(self, user: str) -> str:
        return self.nodes[0].token(user)

    def stop_all(self) -> None:
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None:
                with contextlib.suppress(Exception):
                    node.stop(signal.SIGTERM)


@contextlib.contextmanager
def cluster(folder: Path, n: int = 3, **env: str) -> Iterator[Cluster]:
    """``n`` running nodes sharing a throwaway Redis and a throwaway PostgreSQL database."""
    with redis_server() as redis, postgres_database("atelier_c") as db_url:
        c = Cluster(folder, redis, db_url)
        for i in range(n):
            c.add_node(f"node-{i + 1}", **env)
        c.nodes[0].prepare()  # migrate and seed once: the database is shared
        try:
            for node in c.nodes:
                node.start()
            yield c
        finally:
            c.stop_all()
