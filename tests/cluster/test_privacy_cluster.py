"""An erasure on one node reaches the others (Redis, PostgreSQL): the student's sockets
on a second node close, that node's loaded ledger of the doc she typed in names her no
more (the doc keeps her text), and its open room channel shows her message emptied."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.support.cluster import cluster
from tests.support.liveclient import LiveClient
from tests.support.yclient import YClient, eventually

pytestmark = pytest.mark.integration

GROUP = "2nde-a-g1"


async def test_an_erasure_reaches_the_ledgers_and_sockets_of_every_node(tmp_path: Path) -> None:
    with cluster(tmp_path, 2, ATELIER_ERASURE_SETTLE_S="0.5") as c:
        b = c.nodes[1]
        url = f"{b.ws_url}/yjs/{GROUP}/journal?token="
        chloe = await YClient(url + c.token("s-03")).connect()
        lucas = await YClient(url + c.token("s-04")).connect()
        await chloe.type("Texte de Chloé. ")
        await eventually(lambda: "Chloé" in lucas.content())
        await lucas.type("Texte de Lucas.")
        await eventually(lambda: "Lucas" in chloe.content())
        live = f"{b.ws_url}/rooms/{GROUP}/live?token="
        her_chat = await LiveClient(live + c.token("s-03")).connect()
        his_chat = await LiveClient(live + c.token("s-04")).connect()
        assert (await her_chat.request({"t": "post", "text": "Chloé dit bonjour"}))["t"] == "ok"
        await eventually(lambda: "Chloé dit bonjour" in his_chat.texts())

        async def users_on_b() -> list[dict]:
            async with httpx.AsyncClient(
                base_url=b.http_url, headers={"Authorization": f"Bearer {c.token('t-martin')}"}
            ) as http:
                r = await http.get(f"/api/rooms/{GROUP}/docs/journal/contributions")
            assert r.status_code == 200, r.text
            return r.json()["users"]

        assert "s-03" in json.dumps(await users_on_b())
        async with httpx.AsyncClient(
            base_url=c.nodes[0].http_url,
            headers={"Authorization": f"Bearer {c.token('a-admin')}"},
            timeout=30,
        ) as http:
            r = await http.post("/api/admin/privacy/erase/s-03", json={"confirm": "s-03"})
        assert r.status_code == 200, r.text
        assert await chloe.wait_closed() == 4403
        assert await her_chat.wait_closed() == 4403
        await eventually(lambda: "Chloé dit bonjour" not in his_chat.texts())
        await his_chat.close()
        users = await users_on_b()
        assert "s-03" not in json.dumps(users) and "Chloé" not in json.dumps(users)
        present = {u["id"]: u["inserted"] for u in users}
        anon = [u for u in present if u.startswith("anon-")]
        assert len(anon) == 1 and present[anon[0]] == len("Texte de Chloé. ")
        assert "Texte de Chloé." in lucas.content()
        await lucas.close()
