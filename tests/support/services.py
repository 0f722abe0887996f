"""Missing services: a clear skip on a developer's machine, a failure in CI."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def service_missing(reason: str) -> NoReturn:
    """Skip (or, with ATELIER_REQUIRE_SERVICES=1 as .ci/run sets, fail) with ``reason``."""
    if os.environ.get("ATELIER_REQUIRE_SERVICES") == "1":
        pytest.fail(f"required service missing: {reason}", pytrace=False)
    pytest.skip(reason)
