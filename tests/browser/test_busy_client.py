"""A busy node in the web client, in real Chromium (tests/browser/busy.mjs): a socket
closed 1013 with ``retry_after`` waits what the node said, then gets in by itself.

One Atelier server in demo mode that admits one socket at a time, whose ENT keys come
from a JWKS server of this test: its first answer (the node's start) is immediate, the
next ones come after ``HOLD_S``. A socket with an ENT token naming an unknown key makes
the node refetch, and holds the only admission slot meanwhile. Same Chromium, Node and
client build as test_client.py.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.browser.test_client import (
    _chromium,
    _ensure_built,
    _require_node_modules,
    check_scenario,
    run_suite,
)
from tests.support.jwks import AUDIENCE, ISSUER, SigningKey
from tests.support.server import make_server

pytestmark = pytest.mark.integration

SUITE = Path(__file__).resolve().parent / "busy.mjs"
SCENARIOS = ["busy_node_retry_after", "no_token_in_console"]
SUITE_TIMEOUT_S = 120
HOLD_S = 4.0


class SlowJwks:
    """A JWKS endpoint whose first answer is immediate and the later ones ``HOLD_S`` late."""

    def __init__(self) -> None:
        document = json.dumps({"keys": [SigningKey.rsa("rsa-1").jwk()]}).encode()
        served = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                served.append(time.monotonic())
                if len(served) > 1:
                    time.sleep(HOLD_S)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(document)))
                self.end_headers()
                self.wfile.write(document)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.served = served
        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http.server_address[1]}/jwks"

    def stop(self) -> None:
        self.http.shutdown()
        self.http.server_close()


def _unknown_key_token() -> str:
    """An ENT-shaped token naming a key the JWKS does not hold (never verified: refused
    4401 once the refetch ends)."""

    def b64(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    claims = {"sub": "s-01", "exp": int(time.time()) + 300, "iss": ISSUER, "aud": AUDIENCE}
    return f"{b64({'alg': 'RS256', 'kid': 'not-yet-published', 'typ': 'JWT'})}.{b64(claims)}.AAAA"


@pytest.fixture(scope="module")
def busy_results(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    chromium = _chromium()
    node = _require_node_modules()
    _ensure_built(node)
    folder = tmp_path_factory.mktemp("busy-browser")
    jwks = SlowJwks()
    server = make_server(
        folder,
        ATELIER_DEMO="true",
        ATELIER_JWKS_URL=jwks.url,
        ATELIER_JWT_ISSUER=ISSUER,
        ATELIER_JWT_AUDIENCE=AUDIENCE,
        ATELIER_JWKS_REFRESH_MIN_S="0.1",
        ATELIER_ADMISSION_SLOTS="1",
        ATELIER_ADMISSION_MAX_WAIT_S="0.5",
        ATELIER_ADMISSION_RETRY_MIN_S="1",
        ATELIER_ADMISSION_RETRY_MAX_S="2",
    )
    results_file = folder / "results.json"
    try:
        server.start()
        config = {
            "baseUrl": server.http_url,
            "chromium": chromium,
            "screenshots": None,
            "results": str(results_file),
            "timeoutS": SUITE_TIMEOUT_S - 10,
            "holdToken": _unknown_key_token(),
        }
        yield {
            **run_suite(node, SUITE, config, SUITE_TIMEOUT_S, "busy suite"),
            "server_log": server.log(),
            "jwks_requests": len(jwks.served),
        }
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.stop()
        jwks.stop()


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_busy_scenario(busy_results: dict[str, Any], scenario: str) -> None:
    check_scenario(busy_results, scenario)
    if scenario == "busy_node_retry_after":
        assert busy_results["jwks_requests"] >= 2  # the start, then the held refetch
        assert "waited its maximum in the admission line" in busy_results["server_log"]
