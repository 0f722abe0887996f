"""The limits the registry enforces, in one process: what each refusal leaves behind
(the doc, the other node's replica, the database) and that each is counted once in the
node's metrics (``atelier_limit_refusals``)."""

from __future__ import annotations

from server.metrics import REGISTRY
from server.transport.codes import Close
from tests.rooms.conftest import ROOM, Cluster, content_of, text_of
from tests.support.inproc import until


def refusals(limit: str) -> float:
    return REGISTRY.get_sample_value("atelier_limit_refusals_total", {"limit": limit}) or 0.0


async def test_a_refused_edit_reaches_neither_the_bus_nor_the_database(cluster: Cluster) -> None:
    a = await cluster.node("A", max_doc_bytes=2048)
    b = await cluster.node("B", max_doc_bytes=2048)
    on_a = a.socket(await a.open())
    on_b = b.socket(await b.open(), "s-02")
    on_a.type("début ")
    await until(lambda: on_b.content == "début ", "the edit reaches B")
    before = refusals("doc_bytes")
    on_a.type("x" * 3000)
    assert on_a.denied and on_a.denied[0].startswith("document too large")
    assert refusals("doc_bytes") == before + 1
    on_b.type("suite")
    await until(lambda: "suite" in on_a.content, "B's edit reaches A")  # A goes on reading
    await a.flush()
    await b.flush()
    assert on_b.content == "début suite"  # nothing of the refused edit reached B
    assert text_of(a.registry.docs.values()[0]) == "début suite"
    assert content_of((await cluster.stored()).as_update()) == "début suite"


async def test_loads_past_the_room_or_memory_limits_are_refused_and_counted(
    cluster: Cluster,
) -> None:
    a = await cluster.node("A", max_docs_per_room=1)
    on_a = a.socket(await a.open("un"))
    on_a.type("premier")
    before = refusals("docs_per_room")
    assert await a.registry.may_load(ROOM, "un") is None  # loaded: always served
    refused = await a.registry.may_load(ROOM, "deux")
    assert refused is not None and refused[0] is Close.POLICY
    assert refusals("docs_per_room") == before + 1
    assert await a.registry.may_load("2nde-a-g2", "deux") is None  # another room
    tight = await cluster.node("B", memory_budget_mb=1)  # any process is past 1 MiB
    before = refusals("memory_budget")
    refused = await tight.registry.may_load(ROOM, "un")
    assert refused is not None and refused[0] is Close.TRY_LATER
    assert refused[1].startswith("node memory budget reached")
    assert refusals("memory_budget") == before + 1
