"""A Tiptap editor in Chromium, on the stock @hocuspocus/provider, against Atelier.

tests/tiptap is a page as an ENT would embed one: @tiptap/core + StarterKit + the
Collaboration extension over HocuspocusProvider, bundled by esbuild (its own
package.json and lock; ``make test`` installs and builds it). tests/tiptap/drive.mjs
opens it in Debian's Chromium for two students and checks that their docs share one
socket, that they co-edit, that a y-websocket client reads the same doc on /yjs, and that
a class doc is read-only for a student.

Chromium is a service: missing, the test skips on a developer's machine and fails in CI
(ATELIER_REQUIRE_SERVICES=1). Node and tests/tiptap/node_modules are the project's own:
without them the test fails.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import threading
import uuid
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.support.services import service_missing

pytestmark = pytest.mark.integration

PAGE = Path(__file__).resolve().parents[1] / "tiptap"


def _chromium() -> str:
    for candidate in (os.environ.get("ATELIER_CHROMIUM"), "/usr/bin/chromium"):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    service_missing("chromium is not installed (apt-get install chromium)")


def _built_page() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail("the Tiptap test needs Node >= 20 on PATH")
    if not (PAGE / "node_modules" / "@tiptap" / "core" / "package.json").is_file():
        pytest.fail("tests/tiptap/node_modules is missing: run `npm ci --prefix tests/tiptap`")
    bundle = PAGE / "dist" / "page.js"
    sources = [PAGE / "page.js", PAGE / "page.html", PAGE / "package-lock.json"]
    if not bundle.exists() or bundle.stat().st_mtime < max(p.stat().st_mtime for p in sources):
        subprocess.run(["npm", "run", "build", "--silent"], cwd=PAGE, check=True, timeout=120)
    return node


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def page_url() -> Iterator[str]:
    """tests/tiptap/dist served on loopback (an http:// page, as an ENT's would be)."""
    handler = functools.partial(_Quiet, directory=str(PAGE / "dist"))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/index.html"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_tiptap_in_chromium_over_hocuspocus(atelier: Any, page_url: str) -> None:
    chromium = _chromium()
    node = _built_page()
    config = {
        "pageUrl": page_url,
        "collabUrl": f"{atelier.ws_url}/collab",
        "yjsUrl": f"{atelier.ws_url}/yjs",
        "chromium": chromium,
        "doc": f"tiptap-{uuid.uuid4().hex[:8]}",
        "tokens": {
            "lea": atelier.token("s-01"),
            "hugo": atelier.token("s-02"),
            "reader": atelier.token("s-03"),
        },
    }
    out = subprocess.run(
        [node, str(PAGE / "drive.mjs")],
        cwd=PAGE,
        env={**os.environ, "TIPTAP_CONFIG": json.dumps(config)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    if out.returncode != 0:
        pytest.fail(f"the Tiptap story failed:\n{out.stderr}\n{atelier.log()[-2000:]}")
    report = json.loads(out.stdout)
    assert report["open"] == {
        "socketsOpened": 1,
        "scopes": ["read-write", "readonly"],
        "editable": [True, False],
    }
    assert report["coedit"]["lea"] == report["coedit"]["hugo"] == "Bonjour de Léa. Et de Hugo."
    assert "Bonjour de Léa. Et de Hugo." in report["yjs"]["fragment"]
    assert "interdit" not in report["readonly"]["text"]
    assert report["readonly"]["contenteditable"] == "false"
    assert report["pageErrors"] == []
