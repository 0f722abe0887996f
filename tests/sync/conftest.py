"""Fixtures shared by the server/sync/ tests."""

from __future__ import annotations

import pytest

from server.sync.awareness import AwarenessTable


@pytest.fixture
def table() -> AwarenessTable:
    return AwarenessTable()
