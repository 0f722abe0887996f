"""The web client (client_demo/) in a real browser: Debian's Chromium driven by Playwright.

One real Atelier server (demo mode, its own data folder, a free port) serves the built
client; tests/browser/suite.mjs runs the scenarios in order in one browser (several
contexts = several people) and records each one; every scenario is one test here:

- two students co-edit the group doc and see each other's text and named caret;
- they chat both ways (markdown rendered, HTML kept as text, edit and delete their own);
- presence shows both, with the doc open, typing, and two tabs as one person;
- the teacher sees the group online on the class page, locks a doc and moderates;
- a parent sees the class doc read-only (banner, editor not editable, no chat);
- an edit made offline stays on screen as "not saved", merges after reconnecting, and
  the indicator comes back to "Enregistré";
- a dropped doc socket comes back through our own jittered retry (not y-websocket's);
- the teacher's class console updates live as two students write a new doc (preview,
  words, each one's share, activity), on a 1024 px wide window;
- "Qui a écrit quoi" shows each student's text attributed to them, and follows the doc;
- the history panel names a version, shows it, compares it with the doc, restores it
  (the other student's editor gets the old text) and keeps the state before as a version;
- the assignment loop: the teacher publishes to each group, two groups write, one hands
  in (with its confirmation), the deadline freezes the other (its editor locked where it
  is, later typing refused), the teacher reads both rendus, returns one with feedback,
  and the student (live bell) and her parent see it; the ENT webhook receiver got each
  notification exactly once;
- axe-core reports no serious or critical violation on any screen; no token is ever
  written to the console.

Chromium is a service: without /usr/bin/chromium (``apt-get install chromium``) these
tests skip on a developer's machine and fail in CI (ATELIER_REQUIRE_SERVICES=1). Node and
client_demo/node_modules are the project's own: without them the tests fail.

Screenshots go to a temporary folder; set ATELIER_SCREENSHOTS=docs/screenshots (as
``make screenshots`` does) to refresh the README's pictures.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.receiver import Receiver
from tests.support.server import make_server
from tests.support.services import service_missing

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "client_demo"
SUITE = Path(__file__).resolve().parent / "suite.mjs"

SCENARIOS = [
    "signin",
    "spaces",
    "coedit",
    "saved_indicator",
    "chat",
    "presence",
    "teacher_class_page",
    "teacher_lock",
    "parent_readonly",
    "offline_merge",
    "doc_reconnect_jitter",
    "english_switch",
    "progress_console",
    "who_wrote_what",
    "history_panel",
    "assignment_story",
    "manage_groups",
    "admin",
    "my_data",
    "pseudonymous_names",
    "no_token_in_console",
]

SUITE_TIMEOUT_S = 420
WEBHOOK_SECRET = "browser-suite-webhook-secret"


def _chromium() -> str:
    for candidate in (
        os.environ.get("ATELIER_CHROMIUM"),
        "/usr/bin/chromium",
        shutil.which("chromium"),
    ):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    service_missing("chromium is not installed (apt-get install chromium)")


def _require_node_modules() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail("the browser tests need Node >= 20 on PATH")
    for package in ("playwright-core", "axe-core", "vite", "yjs", "@tiptap/core"):
        if not (CLIENT / "node_modules" / package / "package.json").is_file():
            pytest.fail(
                f"client_demo/node_modules/{package} is missing: run "
                "`npm ci --prefix client_demo` (`make test` does it)"
            )
    return node


def _newest(paths: list[Path]) -> float:
    newest = 0.0
    for path in paths:
        if path.is_dir():
            newest = max([newest, *(p.stat().st_mtime for p in path.rglob("*") if p.is_file())])
        elif path.exists():
            newest = max(newest, path.stat().st_mtime)
    return newest


def _ensure_built(node: str) -> None:
    """Build client_demo/dist when it is missing or older than its sources."""
    built = CLIENT / "dist" / "index.html"
    sources = [
        CLIENT / "src",
        CLIENT / "public",
        CLIENT / "index.html",
        CLIENT / "vite.config.js",
        CLIENT / "package-lock.json",
    ]
    if built.exists() and built.stat().st_mtime >= _newest(sources):
        return
    vite = CLIENT / "node_modules" / "vite" / "bin" / "vite.js"
    out = subprocess.run(
        [node, str(vite), "build", "--logLevel", "warn"],
        cwd=CLIENT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    if out.returncode != 0:
        pytest.fail(f"the client build failed:\n{out.stdout}\n{out.stderr}")


def run_suite(
    node: str, suite: Path, config: dict[str, Any], timeout_s: float, what: str
) -> dict[str, Any]:
    """Run a Node browser suite with its ``config`` (``results`` names the file it writes)
    and read what it wrote: its results by scenario name, the axe reports, its output."""
    results_file = Path(config["results"])
    try:
        run = subprocess.run(
            [node, str(suite)],
            cwd=ROOT,
            env={**os.environ, "BROWSER_CONFIG": json.dumps(config)},
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
        output = f"{run.stdout}\n{run.stderr}"
    except subprocess.TimeoutExpired as exc:
        output = f"the {what} did not finish within {timeout_s} s\n{exc.stdout!r}"
    data = json.loads(results_file.read_text()) if results_file.exists() else {"results": []}
    return {
        "by_name": {r["name"]: r for r in data["results"]},
        "axe": data.get("axe", []),
        "output": output,
    }


def check_scenario(results: dict[str, Any], scenario: str) -> None:
    """A browser suite's scenario ran and passed; else its error, the suite's output and
    the server's log (``results["server_log"]``) in the failure."""
    result = results["by_name"].get(scenario)
    if result is None:
        pytest.fail(
            f"scenario {scenario} did not run\n{results['output'][-4000:]}\n"
            f"server log (tail):\n{results['server_log'][-3000:]}"
        )
    assert result["ok"], (
        f"{scenario} failed:\n{result['error']}\n"
        f"suite output (tail):\n{results['output'][-2000:]}\n"
        f"server log (tail):\n{results['server_log'][-2000:]}"
    )


@pytest.fixture(scope="module")
def browser_results(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    chromium = _chromium()
    node = _require_node_modules()
    _ensure_built(node)
    folder = tmp_path_factory.mktemp("browser")
    shots = os.environ.get("ATELIER_SCREENSHOTS")
    screenshots = (ROOT / shots) if shots else folder / "screenshots"
    receiver = Receiver(WEBHOOK_SECRET).start()
    server = make_server(
        folder,
        ATELIER_DEMO="true",
        ATELIER_DEADLINE_POLL_S="1",
        ATELIER_RENDU_SETTLE_S="0.3",
        ATELIER_ENT_WEBHOOK_URL=receiver.url,
        ATELIER_ENT_WEBHOOK_SECRET=WEBHOOK_SECRET,
    )
    server.start()
    results_file = folder / "results.json"
    config = {
        "baseUrl": server.http_url,
        "chromium": chromium,
        "screenshots": str(screenshots),
        "results": str(results_file),
        "timeoutS": SUITE_TIMEOUT_S - 10,
    }
    try:
        yield {
            **run_suite(node, SUITE, config, SUITE_TIMEOUT_S, "browser suite"),
            "server_log": server.log(),
            "server": server,
            "receiver": receiver,
        }
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.stop()
        receiver.stop()


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_browser_scenario(browser_results: dict[str, Any], scenario: str) -> None:
    result = browser_results["by_name"].get(scenario)
    others = [r for name, r in browser_results["by_name"].items() if name not in SCENARIOS]
    if result is None:
        pytest.fail(
            f"scenario {scenario} did not run\n{browser_results['output'][-4000:]}\n"
            f"{json.dumps(others, indent=1)[:4000]}\n"
            f"server log (tail):\n{browser_results['server_log'][-3000:]}"
        )
    assert result["ok"], (
        f"{scenario} failed:\n{result['error']}\n"
        f"suite output (tail):\n{browser_results['output'][-2000:]}\n"
        f"server log (tail):\n{browser_results['server_log'][-2000:]}"
    )


def test_axe_ran_on_every_screen(browser_results: dict[str, Any]) -> None:
    screens = {report["screen"] for report in browser_results["axe"]}
    expected = {
        "signin",
        "spaces",
        "room (student)",
        "room (locked)",
        "room (teacher)",
        "room (parent, read-only)",
        "room (offline)",
        "class page",
        "class console",
        "who wrote what",
        "history panel",
        "history (compare)",
        "history (restored)",
        "assignments (teacher)",
        "todo (student)",
        "hand-in confirmation",
        "room (work frozen)",
        "assignment (teacher, rendu)",
        "notifications",
        "todo (parent)",
        "manage groups",
        "administration",
        "my data (student)",
        "my data (parent)",
        "my data (admin)",
        "my data (erasure report)",
        "class page (names)",
    }
    assert expected <= screens, f"axe did not run on {sorted(expected - screens)}"
    serious = [
        (report["screen"], v["id"])
        for report in browser_results["axe"]
        for v in report["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert serious == []


def test_the_ent_received_each_notification_of_the_story_once(
    browser_results: dict[str, Any],
) -> None:
    """Every notification of the people in the story reached the ENT's receiver, signed,
    exactly once (at least once by contract; once here, where nothing failed)."""
    story = browser_results["by_name"].get("assignment_story", {})
    assert story.get("ok"), "the story did not run to its end: see test_browser_scenario"
    server, receiver = browser_results["server"], browser_results["receiver"]
    people = ["t-martin", "s-01", "s-07", "p-01"]
    expected: dict[str, str] = {}
    for user in people:
        feed = httpx.get(
            f"{server.http_url}/api/me/notifications?limit=100",
            headers={"Authorization": f"Bearer {server.token(user)}"},
            timeout=10,
        ).json()
        for item in feed["items"]:
            expected[item["id"]] = item["kind"]
    kinds = set(expected.values())
    assert {"assigned", "handed_in", "returned"} <= kinds, kinds
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        got = {b["id"] for b in receiver.bodies()}
        if set(expected) <= got:
            break
        time.sleep(0.2)
    assert set(expected) <= {b["id"] for b in receiver.bodies()}
    assert receiver.bad_signatures == 0
    delivered = [a["key"] for a in receiver.attempts if a["key"] in expected]
    repeats = {key for key in delivered if delivered.count(key) > 1}
    assert repeats == set(), f"delivered more than once: {repeats}"
