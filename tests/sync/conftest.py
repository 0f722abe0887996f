"""Registers the ``bug`` marker: tests that document a defect of server/sync/."""

from __future__ import annotations

import pytest

from server.sync.awareness import AwarenessTable


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "bug: documents a defect of server/sync/ found by these tests (fails until fixed)",
    )


@pytest.fixture
def table() -> AwarenessTable:
    return AwarenessTable()
