"""The school day of the bench (bench/schoolday.py), shrunk: two real Atelier nodes on Redis and
PostgreSQL, the real Node generator. No figure is asserted (speed is measured in bench/ only):
what must hold is that every socket synced, nothing typed or posted went missing, the teacher
consoles saw every group doc typed in, and the driver read each node's RSS at every point."""

from __future__ import annotations

from bench import schoolday
from bench.run_load import ensure_loadgen

TINY = {
    "docsPerGroup": 2,
    "classDocs": 1,
    "tabs": [1, 2],
    "parentTabs": 1,
    "stormWindowMs": 500,
    "lessons": 2,
    "lessonMs": 3000,
    "breakMs": 2000,
    "breakShare": 0.5,
    "drainMs": 2000,
    "chatGroupMs": 1500,
    "chatClassMs": 3000,
    "chatTeacherMs": 1500,
}


def test_rooms_are_spread_over_the_nodes_and_each_room_stays_on_one() -> None:
    sch = schoolday.school()
    nodes = schoolday.room_nodes(sch, 2)
    assert len(nodes) == 12  # 10 group rooms and 2 class rooms
    assert sorted(set(nodes.values())) == [0, 1]
    assert nodes["2nde-a"] != nodes["1ere-b"]
    assert "p-01" in schoolday.users(sch) and "t-durand" in schoolday.users(sch)


def test_a_tiny_day_on_two_nodes_loses_nothing() -> None:
    ensure_loadgen()
    rec = schoolday.run_day("atelier", TINY)
    r = rec["result"]
    assert r is not None, rec.get("error")
    assert rec["server_tracebacks"] == []
    phases = r["phases"]
    assert list(phases) == ["storm", "lesson1", "break1", "lesson2", "end"]
    storm = phases["storm"]
    assert storm["synced"] == storm["sockets"] == r["layout"]["sockets"]
    assert phases["break1"]["synced"] == phases["break1"]["socketsDropped"] > 0
    for name in ("lesson1", "lesson2"):
        ph = phases[name]
        assert ph["doc"]["sent"] > 0 and ph["doc"]["missing"] == 0
        chat = ph["chat"]
        assert chat["acked"] > 0 and chat["refused"] == chat["unacknowledged"] == 0
        assert chat["delivered"] == chat["expected"] and chat["missing"] == 0
        assert ph["presence"]["framesIn"] > 0
        console = ph["console"]
        assert console["docsCovered"] == console["docsTyped"] > 0
    assert r["chatLeaksToParents"] == 0
    assert r["failedConnects"] == 0 and r["ok"] is True
    assert [p["point"] for p in rec["points"]] == [
        "start",
        "storm",
        "lesson1",
        "break1",
        "lesson2",
        "end",
    ]
    assert all(v > 0 for p in rec["points"] for v in p["rss_mib"].values())
    assert rec["memory_check"]["compared"] == ["lesson1", "lesson2"]
