"""nginx in front of several Atelier nodes, from deploy/nginx/atelier.conf (the file
compose.yaml mounts): real nginx, real node processes, real sockets on loopback."""

from __future__ import annotations

import re
import signal

import httpx
import pytest
import websockets

from tests.deploy.conftest import NginxCluster
from tests.support.nginx import SITE
from tests.support.yclient import YClient, eventually

pytestmark = pytest.mark.integration

NODE_HEADER = "X-Atelier-Node"
# The demo school's rooms (atelier seed-demo), with a teacher who may enter each.
ROOMS = {
    **{room: "t-martin" for room in ["2nde-a", *(f"2nde-a-g{i}" for i in range(1, 6))]},
    **{room: "t-durand" for room in ["1ere-b", *(f"1ere-b-g{i}" for i in range(1, 6))]},
}


def yjs_url(cluster: NginxCluster, room: str, doc: str, user: str) -> str:
    return f"{cluster.nginx.ws_url}/yjs/{room}/{doc}?token={cluster.token(user)}"


async def handshake_node(url: str) -> str:
    """The node that answered the WebSocket handshake of ``url`` through nginx."""
    async with websockets.connect(url, open_timeout=10) as ws:
        return ws.response.headers[NODE_HEADER]


async def wait_for_log(cluster: NginxCluster, needle: str, timeout: float = 10) -> None:
    # A WebSocket's access line is written when the socket closes.
    await eventually(lambda: needle in cluster.nginx.access_log(), timeout)


def test_site_never_logs_the_query_string() -> None:
    site = SITE.read_text()
    formats = re.findall(r"log_format\s+\w+[^;]*;", site, re.DOTALL)
    assert formats, "the site defines its own log_format"
    for fmt in formats:
        for leaky in ("$request ", "$request'", "$request_uri", "$args", "$query_string"):
            assert leaky not in fmt, f"{leaky.strip()} would log ?token=..."
        assert "$uri" in fmt
    for line in re.findall(r"^\s*access_log\s+[^;]+;", site, re.MULTILINE):
        assert line.split()[-1].rstrip(";") == "atelier", f"access log without our format: {line}"


def test_healthz_through_nginx_spreads_over_nodes(cluster: NginxCluster) -> None:
    seen = set()
    with httpx.Client(base_url=cluster.nginx.http_url, timeout=5) as http:
        for _ in range(30):
            r = http.get("/healthz")
            assert r.status_code == 200
            assert r.json() == {"status": "ok"}
            seen.add(r.headers[NODE_HEADER])
    assert seen <= set(cluster.nodes)
    assert len(seen) > 1, "requests outside a room are not pinned to one node"


async def test_y_websocket_through_nginx(cluster: NginxCluster) -> None:
    a = await YClient(yjs_url(cluster, "2nde-a-g1", "somedoc", "s-01")).connect()
    b = await YClient(yjs_url(cluster, "2nde-a-g1", "somedoc", "s-02")).connect()
    try:
        assert a.synced.is_set() and b.synced.is_set()
        # Each node has its own in-process bus: the two only meet because nginx sends
        # both sockets of the room to the same node.
        assert a.ws.response.headers[NODE_HEADER] == b.ws.response.headers[NODE_HEADER]
        await a.type("Bonjour ")
        await b.type("à tous")
        await eventually(lambda: a.content() == b.content() and len(a.content()) == 14)
    finally:
        await a.close()
        await b.close()


async def test_a_room_sticks_to_one_node(cluster: NginxCluster) -> None:
    room = "1ere-b-g3"
    users = ["t-durand", *(f"s-{n}" for n in range(43, 49))]  # g3 = s-43..s-48
    nodes = set()
    for i in range(12):
        nodes.add(await handshake_node(yjs_url(cluster, room, f"doc-{i}", users[i % len(users)])))
    assert len(nodes) == 1, f"one room, several nodes: {nodes}"
    (node,) = nodes
    # The room channel and the room's REST routes hash on the same key. (Whatever these
    # routes answer, every response carries the node header.)
    async with httpx.AsyncClient(base_url=cluster.nginx.http_url, timeout=5) as http:
        for path in (f"/rooms/{room}/live", f"/api/rooms/{room}", f"/api/rooms/{room}/docs/x/lock"):
            assert (await http.get(path)).headers[NODE_HEADER] == node, path


async def test_rooms_spread_over_nodes(cluster: NginxCluster) -> None:
    placement = {}
    for room, user in ROOMS.items():
        placement[room] = await handshake_node(yjs_url(cluster, room, "spread", user))
        again = await handshake_node(yjs_url(cluster, room, "spread-again", user))
        assert again == placement[room], room
    assert len(set(placement.values())) > 1, f"all rooms on one node: {placement}"


async def test_failover_when_a_node_dies(fresh_cluster: NginxCluster) -> None:
    cluster = fresh_cluster
    room, user = "2nde-a-g2", "s-07"
    token = cluster.token(user)
    first = await YClient(yjs_url(cluster, room, "carnet", user)).connect()
    dead = first.ws.response.headers[NODE_HEADER]
    await first.type("avant la panne")

    cluster.nodes[dead].stop(signal.SIGKILL)
    assert await first.wait_closed() != 1000  # nginx drops the client with its node

    # The client reconnects through nginx: the room's node refuses the connect, nginx
    # passes the handshake on to the next node on the ring, in the same request.
    again = await YClient(yjs_url(cluster, room, "carnet", user)).connect()
    try:
        assert again.synced.is_set()
        survivor = again.ws.response.headers[NODE_HEADER]
        assert survivor != dead and survivor in cluster.nodes
        await again.type("après")  # the doc lives on (the client repairs it on resync)
        # And the room stays there while the dead node is out (max_fails/fail_timeout).
        for i in range(5):
            assert await handshake_node(yjs_url(cluster, room, f"d{i}", user)) == survivor
    finally:
        await again.close()
        await first.close()

    dead_addr = f"127.0.0.1:{cluster.nodes[dead].port}"
    await wait_for_log(cluster, f"/yjs/{room}/d4")
    log = cluster.nginx.access_log()
    assert re.search(rf'upstream="{re.escape(dead_addr)}, 127\.0\.0\.1:\d+" ', log), log
    cluster.nginx.stop()
    for name, text in (("access", log), ("error", cluster.nginx.error_log())):
        assert token not in text, f"token in nginx's {name} log"
        assert "token=" not in text, f"query string in nginx's {name} log"


async def test_token_never_in_access_log(cluster: NginxCluster) -> None:
    token = cluster.token("s-31")
    url = f"{cluster.nginx.ws_url}/yjs/1ere-b/tokencheck?token={token}"
    client = await YClient(url).connect()
    await client.close()
    refused = YClient(f"{cluster.nginx.ws_url}/yjs/1ere-b/tokencheck?token=bad.{token}")
    await refused.connect()
    assert await refused.wait_closed() == 4401
    await refused.close()
    async with httpx.AsyncClient(base_url=cluster.nginx.http_url, timeout=5) as http:
        await http.get(f"/api/me?token={token}", headers={"Authorization": f"Bearer {token}"})
    # Every request above is logged (a socket's line when it closes), so the absence
    # checks below read all of it.
    await wait_for_log(cluster, "/api/me")
    await eventually(lambda: cluster.nginx.access_log().count("/yjs/1ere-b/tokencheck") >= 2)
    log = cluster.nginx.access_log()
    assert token not in log
    assert "token=" not in log
    assert token not in cluster.nginx.error_log()
