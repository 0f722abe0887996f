"""The JavaScript room-channel client (client_demo/src/live.js) against a real Atelier server.

The story is told in tests/interop/live_story.mjs: two students of group 2nde-a-g1 and their
teacher chat, see each other (two tabs, typing), edit, delete, mute; a parent opens the
class room without chat or presence; refusals are final; a cut socket reconnects with
backoff and without duplicating history; a burst of posts meets the rate limit.
markdown_test.mjs checks the message renderer, work_test.mjs the assignment screens' date and
resource helpers (no server needed).

Needs Node >= 20, `npm ci --prefix tests/interop` (ws) and `npm ci --prefix client_demo`
(@msgpack/msgpack): without them these tests fail, they do not skip.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.support.node import INTEROP_DIR, require_node_clients, run_node

pytestmark = pytest.mark.interop

CLIENT_DIR = Path(__file__).resolve().parents[2] / "client_demo"

PHASES = [
    "connect",
    "presence",
    "chat",
    "editDelete",
    "mute",
    "parent",
    "refusals",
    "reconnect",
    "backoff",
    "rateLimit",
    "close",
]


def require_client_demo() -> str:
    node = require_node_clients()
    if not (CLIENT_DIR / "node_modules" / "@msgpack" / "msgpack" / "package.json").is_file():
        pytest.fail(
            "client_demo/node_modules is missing: run `npm ci --prefix client_demo` "
            "(the room-channel client needs @msgpack/msgpack)"
        )
    return node


async def test_room_channel_story_against_a_real_server(atelier: Any) -> None:
    require_client_demo()
    config = {
        "url": atelier.ws_url,
        "room": "2nde-a-g1",
        "classRoom": "2nde-a",
        "otherRoom": "2nde-a-g2",
        "tokens": {
            "student1": atelier.token("s-01"),
            "student2": atelier.token("s-02"),
            "teacher": atelier.token("t-martin"),
            "parent": atelier.token("p-01"),
        },
        "timeoutMs": 10_000,
    }

    code, stdout, stderr = await run_node("live_story.mjs", config, timeout=150)

    if code != 0:
        pytest.fail(f"the room-channel story failed (exit {code}):\n{stderr}\n{stdout}")
    print(stdout)  # the report, timings included: shown with -s or on failure
    report = json.loads(stdout)
    assert report["ok"] is True
    phases = report["phases"]
    assert list(phases) == PHASES
    assert all(p["ok"] for p in phases.values()), phases

    assert phases["connect"]["users"] == ["s-01", "s-02", "t-martin"]
    assert phases["presence"]["twoTabsMetas"] == 2
    assert phases["presence"]["burstFramesSent"] <= 2
    assert phases["chat"]["messages"] == 5
    seqs = phases["chat"]["seqs"]
    assert seqs == list(range(seqs[0], seqs[0] + 5))
    assert phases["parent"]["chat"] is False
    assert phases["parent"]["presenceFramesToParent"] == 0
    refusals = phases["refusals"]
    assert refusals["badToken"] == {"code": 4401, "connects": 1}
    assert refusals["tokenFunction"] == {"code": 4401, "tokenCalls": 2}
    assert refusals["otherRoom"] == {"code": 4403, "connects": 1}
    assert phases["reconnect"]["reconnects"] == 1
    assert 0 <= phases["reconnect"]["retryDelayMs"] <= 500
    assert phases["backoff"]["afterStableDelayMs"] <= 200
    assert phases["rateLimit"]["retryAfter"] > 0


@pytest.mark.parametrize("suite", ["markdown_test.mjs", "work_test.mjs", "retry_test.mjs"])
async def test_client_helpers(suite: str) -> None:
    """The message renderer, the retry delay a 1013 carries (retry.js), and the assignment
    screens' date and resource helpers (the latter in Paris and in another zone: a due
    date typed there is the same instant)."""
    node = require_client_demo()
    await _node_test(node, suite, {})
    if suite == "work_test.mjs":
        await _node_test(node, suite, {"TZ": "America/Cayenne"})


async def _node_test(node: str, suite: str, env: dict[str, str]) -> None:
    process = await asyncio.create_subprocess_exec(
        node,
        "--test",
        str(INTEROP_DIR / suite),
        env={**os.environ, **env},
        cwd=INTEROP_DIR,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), 60)
    except TimeoutError:
        process.kill()
        await process.communicate()
        pytest.fail(f"{suite} did not finish within 60 s")
    if process.returncode != 0:
        pytest.fail(f"{suite} failed ({env}):\n{out.decode()}")


def test_client_demo_lockfile_pins_msgpack() -> None:
    package = json.loads((CLIENT_DIR / "package.json").read_text())
    lock = json.loads((CLIENT_DIR / "package-lock.json").read_text())
    pinned = package["dependencies"]["@msgpack/msgpack"]
    assert pinned[0].isdigit(), "pin @msgpack/msgpack to an exact version"
    assert lock["packages"]["node_modules/@msgpack/msgpack"]["version"] == pinned
    assert package["type"] == "module" and package["private"] is True
