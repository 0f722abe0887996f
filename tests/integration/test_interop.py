"""Stock npm Yjs clients against a real Atelier server.

The clients are the ones any web app would use: `yjs` + `y-websocket`'s WebsocketProvider,
run under Node by the scripts of tests/interop (pinned by its package-lock.json). The story
is told in tests/interop/coedit.mjs: six students of group 2nde-a-g1 co-edit a report, see
each other, one goes offline and comes back, two leave, a seventh copy joins late and gets
everything, and a lone idle client keeps its connection. refused.mjs shows how a stock
client experiences a refusal.

Needs Node >= 20 and `npm ci --prefix tests/interop` (the Makefile does it): without them
these tests fail, they do not skip.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.node import run_node as _run_node

pytestmark = pytest.mark.interop

ROOM = "2nde-a-g1"
GROUP_1 = [f"s-{n:02d}" for n in range(1, 7)]  # the six members of 2nde-a-g1, read-write

# Must match coedit.mjs: every typed token is 9 characters wide, e.g. "<c3.b.07>".
TOKEN_WIDTH = 9
INSERTS = 20  # tokens typed by each of the six clients in the co-editing phase
OFFLINE_INSERTS = 5  # typed offline by the traveller, and concurrently by each of the five others
IDLE_MS = 36_000  # y-websocket drops a socket on which nothing arrived for 30 s
PHASES = ["connect", "coedit", "awareness", "offline", "leave", "lateJoiner", "idle"]


async def test_six_stock_clients_coedit_converge_and_see_each_other(atelier: Any) -> None:
    doc = f"interop-{uuid.uuid4().hex[:8]}"  # a fresh doc: the text length is exact
    config = {
        "url": f"{atelier.ws_url}/yjs",
        "room": ROOM,
        "doc": doc,
        "tokens": [atelier.token(user) for user in GROUP_1],
        "inserts": INSERTS,
        "offlineInserts": OFFLINE_INSERTS,
        "timeoutMs": 20_000,
        "idleMs": IDLE_MS,
    }

    code, stdout, stderr = await _run_node("coedit.mjs", config, timeout=240)

    if code != 0:
        pytest.fail(f"the stock clients' story failed (exit {code}):\n{stderr}")
    print(stdout)  # the report, timings included: shown with -s or on failure
    report = json.loads(stdout)
    assert report["ok"] is True
    assert list(report["phases"]) == PHASES
    assert all(phase["ok"] for phase in report["phases"].values()), report["phases"]
    assert report["clients"] == 7  # six co-editors and the late joiner

    typed_together = 6 * INSERTS
    assert report["phases"]["coedit"]["inserts"] == typed_together
    assert report["phases"]["coedit"]["textLength"] == typed_together * TOKEN_WIDTH

    assert report["phases"]["awareness"]["statesPerClient"] == 6

    offline = report["phases"]["offline"]
    assert offline["offlineInserts"] == OFFLINE_INSERTS
    assert offline["concurrentInserts"] == 5 * OFFLINE_INSERTS

    leave = report["phases"]["leave"]
    assert leave["destroyedGoneMs"] < 10_000
    assert leave["socketCutGoneMs"] < 10_000  # the server cleaned up, not the 30 s expiry

    expected_tokens = typed_together + OFFLINE_INSERTS + 5 * OFFLINE_INSERTS
    assert report["final"]["tokens"] == expected_tokens
    assert report["final"]["textLength"] == expected_tokens * TOKEN_WIDTH
    assert report["final"]["mapEntries"] == 6 + 1  # one per client + the offline entry
    assert report["phases"]["lateJoiner"]["textLength"] == report["final"]["textLength"]

    assert report["phases"]["idle"]["connectionCloses"] == 0


REFUSALS: list[tuple[str, Callable[[Any], str], int]] = [
    ("garbage token", lambda atelier: "not-a-jwt", 4401),
    ("no token", lambda atelier: "", 4401),
    ("student of another group", lambda atelier: atelier.token("s-07"), 4403),
    ("parent, group room", lambda atelier: atelier.token("p-01"), 4403),
]


@pytest.mark.parametrize(
    ("who", "make_token", "expected_code"), REFUSALS, ids=[who for who, _, _ in REFUSALS]
)
async def test_stock_client_is_refused_with_the_contract_code_and_gives_up(
    atelier: Any, who: str, make_token: Callable[[Any], str], expected_code: int
) -> None:
    config = {
        "url": f"{atelier.ws_url}/yjs",
        "room": ROOM,
        "doc": "rapport",
        "token": make_token(atelier),
        "observeMs": 1_500,
        "timeoutMs": 10_000,
        "expectCode": expected_code,
    }

    code, stdout, stderr = await _run_node("refused.mjs", config, timeout=60)

    if code != 0:
        pytest.fail(f"{who}: {stderr}\n{stdout}")
    report = json.loads(stdout)
    raw, provider = report["raw"], report["provider"]
    assert raw["opened"] is True  # refused by a close code, not at the HTTP upgrade
    assert raw["closeCode"] == expected_code
    assert "sync-step2" not in raw["messages"]  # not a byte of the doc before the refusal
    if expected_code == 4403:
        assert raw["messages"][-1] == "auth-permission-denied"
        assert raw["authDenied"], "the permission-denied message must carry a reason"
        assert provider["permissionDenied"] == raw["authDenied"]
    # y-websocket >= 3.1 treats 4400-4499 as final: one attempt, no reconnect storm.
    assert provider["closeCodes"] == [expected_code]
    assert provider["attempts"] == 1
    assert provider["stoppedReconnecting"] is True
    assert provider["everSynced"] is False
