"""Fixtures shared by the whole suite."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import AtelierServer, make_server


@pytest.fixture(scope="module")
def atelier(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AtelierServer]:
    """A running Atelier node (SQLite, in-process bus) with the demo school seeded.

    Shared by the tests of a module; each test works on its own doc (``doc`` fixture).
    """
    server = make_server(tmp_path_factory.mktemp("atelier"))
    server.start()
    try:
        yield server
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.stop()


@pytest.fixture
def fresh_atelier(tmp_path: Path) -> Iterator[AtelierServer]:
    """A node of this test's own, for tests that stop, restart or reconfigure it."""
    server = make_server(tmp_path)
    server.start()
    try:
        yield server
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.stop()


@pytest.fixture
def doc(request: pytest.FixtureRequest) -> str:
    """A doc name of this test's own, so tests sharing a server never meet."""
    return "t-" + hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:16]
