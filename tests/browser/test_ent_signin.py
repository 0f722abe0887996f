"""Sign-in through the ENT in real Chromium (tests/browser/ent_signin.mjs).

A real OpenID provider (the npm ``oidc-provider``, tests/support/oidc.py) and one Atelier
server with ``ATELIER_OIDC_*`` set and demo mode off. Two students sign in on the
provider's own login page and co-edit their group's doc; the page renews its socket
token by itself (``SOCKET_TOKEN_TTL_S=30`` here); one signs out and the token she had is
refused (4401). Same Chromium, Node and client build as test_client.py.
"""

from __future__ import annotations

import json
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
    run_suite,
)
from tests.support.oidc import OidcProvider
from tests.support.server import make_server

pytestmark = pytest.mark.integration

SUITE = Path(__file__).resolve().parent / "ent_signin.mjs"
SCENARIOS = ["ent_signin", "ent_coedit", "ent_token_renewal", "ent_signout", "no_token_in_console"]
SUITE_TIMEOUT_S = 180


@pytest.fixture(scope="module")
def ent_results(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    chromium = _chromium()
    node = _require_node_modules()
    _ensure_built(node)
    folder = tmp_path_factory.mktemp("ent-browser")
    shots = os.environ.get("ATELIER_SCREENSHOTS")
    server = make_server(folder)
    provider = OidcProvider([f"{server.http_url}/auth/callback"]).start()
    server.extra_env.update(provider.atelier_env(ATELIER_SOCKET_TOKEN_TTL_S="30"))
    results_file = folder / "results.json"
    try:
        server.start()
        config = {
            "baseUrl": server.http_url,
            "issuer": provider.issuer,
            "chromium": chromium,
            "screenshots": str(ROOT / shots) if shots else str(folder / "screenshots"),
            "results": str(results_file),
            "timeoutS": SUITE_TIMEOUT_S - 10,
        }
        yield {
            **run_suite(node, SUITE, config, SUITE_TIMEOUT_S, "ENT suite"),
            "server_log": server.log(),
            "provider_log": provider.log(),
        }
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.stop()
        provider.stop()


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_ent_scenario(ent_results: dict[str, Any], scenario: str) -> None:
    result = ent_results["by_name"].get(scenario)
    if result is None:
        pytest.fail(
            f"scenario {scenario} did not run\n{ent_results['output'][-4000:]}\n"
            f"{json.dumps(ent_results['by_name'], indent=1)[:3000]}\n"
            f"server log (tail):\n{ent_results['server_log'][-3000:]}\n"
            f"provider log (tail):\n{ent_results['provider_log'][-2000:]}"
        )
    assert result["ok"], (
        f"{scenario} failed:\n{result['error']}\n"
        f"suite output (tail):\n{ent_results['output'][-2000:]}\n"
        f"server log (tail):\n{ent_results['server_log'][-2000:]}"
    )


def test_axe_on_the_ent_screens(ent_results: dict[str, Any]) -> None:
    screens = {report["screen"] for report in ent_results["axe"]}
    assert {"signin (ENT)", "room (ENT)"} <= screens
    serious = [
        (report["screen"], v["id"])
        for report in ent_results["axe"]
        for v in report["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert serious == []
