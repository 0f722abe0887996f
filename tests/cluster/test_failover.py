"""Three nodes on one Redis behind nginx: SIGKILL the node of a room while stock
providers type; they reconnect through nginx to the others; nothing typed is lost."""

from __future__ import annotations

import asyncio
import json
import os
import signal

import pytest
import websockets

from tests.support.cluster import Cluster
from tests.support.nginx import Nginx, nginx_binary
from tests.support.node import INTEROP_DIR, require_node_clients
from tests.support.services import service_missing
from tests.support.stored import stored_text
from tests.support.yclient import YClient, eventually

pytestmark = [pytest.mark.integration, pytest.mark.interop]

ROOM = "2nde-a-g1"


async def test_sigkill_the_rooms_node_while_stock_clients_type(three_nodes: Cluster) -> None:
    if nginx_binary() is None:
        service_missing("nginx not installed")
    node_bin = require_node_clients()
    upstreams = [("127.0.0.1", n.port) for n in three_nodes.nodes]
    with Nginx(upstreams=upstreams).start() as lb:
        # Which node does the balancer give this room? (X-Atelier-Node on the handshake.)
        token = three_nodes.token("s-01")
        async with websockets.connect(f"{lb.ws_url}/yjs/{ROOM}/bascule?token={token}") as probe:
            serving = probe.response.headers["x-atelier-node"]
        victim = next(n for n in three_nodes.nodes if n.extra_env["ATELIER_NODE_ID"] == serving)

        config = {
            "url": f"{lb.ws_url}/yjs",
            "room": ROOM,
            "doc": "bascule",
            "tokens": [three_nodes.token(f"s-0{i}") for i in range(1, 5)],
            "typingMs": 6000,
            "everyMs": 40,
        }
        proc = await asyncio.create_subprocess_exec(
            node_bin,
            str(INTEROP_DIR / "keep_typing.mjs"),
            cwd=INTEROP_DIR,
            env={**os.environ, "INTEROP_CONFIG": json.dumps(config)},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stdout is not None and proc.stderr is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert line.strip() == b"TYPING", line
        await asyncio.sleep(1.5)
        victim.stop(signal.SIGKILL)  # mid-typing
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 150)
        if proc.returncode != 0:
            pytest.fail(f"stock providers did not recover:\n{stderr.decode()}")
        report = json.loads(stdout.decode().strip().splitlines()[-1])
        assert report["ok"] is True and report["tokens"] > 200
        assert all(n >= 1 for n in report["reconnects"])  # every provider lost its node

        # The survivors stored it all: read it in the database, then stop them, start
        # one, read the doc back.
        expected = report["textLength"]

        async def all_stored() -> bool:
            text = await stored_text(three_nodes.database_url, ROOM, "bascule")
            return len(text) == expected

        await eventually(all_stored, timeout=10)
        three_nodes.stop_all()
        survivor = next(n for n in three_nodes.nodes if n is not victim)
        survivor.start()
        fresh = await YClient(f"{survivor.ws_url}/yjs/{ROOM}/bascule?token={token}").connect()
        assert len(fresh.content()) == expected
        await fresh.close()
