"""The limits in the web client, in real Chromium (tests/browser/limits.mjs).

One Atelier server in demo mode with a 64 KiB document size and two documents per
room: a paste past the size is refused, said in French, and the doc reloaded as the
server has it (the pupil goes on writing); a third doc in a room is refused for good,
with its banner. Same Chromium, Node and client build as test_client.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.test_client import (
    ROOT,
    _chromium,
    _ensure_built,
    _require_node_modules,
    check_scenario,
    run_suite,
)
from tests.support.server import make_server

pytestmark = pytest.mark.integration

SUITE = Path(__file__).resolve().parent / "limits.mjs"
SCENARIOS = ["doc_too_large", "room_full", "no_token_in_console"]
SUITE_TIMEOUT_S = 150


@pytest.fixture(scope="module")
def limits_results(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    chromium = _chromium()
    node = _require_node_modules()
    _ensure_built(node)
    folder = tmp_path_factory.mktemp("limits-browser")
    shots = os.environ.get("ATELIER_SCREENSHOTS")
    server = make_server(
        folder,
        ATELIER_DEMO="true",
        ATELIER_MAX_DOC_BYTES=str(64 * 1024),
        ATELIER_MAX_DOCS_PER_ROOM="2",
    )
    results_file = folder / "results.json"
    try:
        server.start()
        config = {
            "baseUrl": server.http_url,
            "chromium": chromium,
            "screenshots": str(ROOT / shots) if shots else str(folder / "screenshots"),
            "results": str(results_file),
            "timeoutS": SUITE_TIMEOUT_S - 10,
        }
        yield {
            **run_suite(node, SUITE, config, SUITE_TIMEOUT_S, "limits suite"),
            "server_log": server.log(),
        }
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.stop()


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_limits_scenario(limits_results: dict[str, Any], scenario: str) -> None:
    check_scenario(limits_results, scenario)


def test_axe_on_the_limit_screens(limits_results: dict[str, Any]) -> None:
    screens = {report["screen"] for report in limits_results["axe"]}
    assert {"room (document too large)", "room (room full)"} <= screens
    serious = [
        (report["screen"], v["id"])
        for report in limits_results["axe"]
        for v in report["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert serious == []
