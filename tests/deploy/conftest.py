"""Fixtures for the deployment tests: real Atelier nodes behind a real nginx.

Each node has its own SQLite database and in-process bus (no Redis here): what these
tests check is the load balancer in front of them, not the bus between them. All
nodes share the test JWT secret (tests.support.server sets it), so one token works on
every node, as in a cluster.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.nginx import Nginx, nginx_binary
from tests.support.server import AtelierServer, make_server
from tests.support.services import service_missing


@dataclass
class NginxCluster:
    nodes: dict[str, AtelierServer]  # by ATELIER_NODE_ID
    nginx: Nginx

    def token(self, user_id: str) -> str:
        return next(iter(self.nodes.values())).token(user_id)

    def stop(self) -> None:
        self.nginx.stop()
        for node in self.nodes.values():
            if node.proc is not None and node.proc.poll() is None:
                with contextlib.suppress(Exception):
                    node.stop()


def start_cluster(folder: Path, node_ids: list[str]) -> NginxCluster:
    if nginx_binary() is None:
        service_missing("nginx not installed")
    nodes: dict[str, AtelierServer] = {}
    cluster = NginxCluster(nodes=nodes, nginx=Nginx(upstreams=[], prefix=folder / "nginx"))
    try:
        for node_id in node_ids:
            (folder / node_id).mkdir()
            node = make_server(folder / node_id, ATELIER_NODE_ID=node_id)
            node.start()
            nodes[node_id] = node
        cluster.nginx.upstreams = [("127.0.0.1", n.port) for n in nodes.values()]
        cluster.nginx.start()
    except BaseException:
        cluster.stop()
        raise
    return cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NginxCluster]:
    """Three nodes behind nginx, shared by a module's tests (they do not stop nodes)."""
    c = start_cluster(tmp_path_factory.mktemp("cluster"), ["node-a", "node-b", "node-c"])
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture
def fresh_cluster(tmp_path: Path) -> Iterator[NginxCluster]:
    """Two nodes behind nginx of this test's own, for tests that kill a node."""
    c = start_cluster(tmp_path, ["node-a", "node-b"])
    try:
        yield c
    finally:
        c.stop()
