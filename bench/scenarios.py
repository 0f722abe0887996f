"""Load scenarios (issue 6), as data. ``bench.run_load`` turns one into loadgen configs.

A "room" of the load generator is one y-websocket path ``room_id/doc_name``: the demo
school has 10 group rooms, so 20 rooms are the 10 groups × 2 docs, 40 rooms × 4 docs.
Clients: client 0 of each room is the class teacher, the others cycle over the group's
six students (a student may hold several sockets: tabs, devices). Every one of them may
write in that group, so any client can be a writer.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

GROUPS: list[tuple[str, str, list[str]]] = [
    (
        f"{cls}-g{g}",
        teacher,
        [f"s-{first + (g - 1) * 6 + k:02d}" for k in range(6)],
    )
    for cls, teacher, first in (("2nde-a", "t-martin", 1), ("1ere-b", "t-durand", 31))
    for g in range(1, 6)
]


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    rooms: int
    clients_per_room: int
    writers_per_room: int
    rate: float  # updates/s per writer
    warmup_s: float = 3.0
    duration_s: float = 20.0
    drain_s: float = 3.0
    nodes: int = 1
    processes: int = 1  # load generator worker processes
    #: saturation ramp: per-writer rates tried in order, each a short run on the same node(s)
    ramp: tuple[float, ...] = ()
    ramp_p99_ms: float = 50.0
    doc_prefix: str = "bench"
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def clients(self) -> int:
        return self.rooms * self.clients_per_room

    def offered(self, rate: float | None = None) -> float:
        """Updates/s sent by all writers."""
        return self.rooms * self.writers_per_room * (self.rate if rate is None else rate)

    def fanout(self, rate: float | None = None) -> float:
        """Update frames/s the server must deliver (each update to every other client)."""
        return self.offered(rate) * (self.clients_per_room - 1)

    def paths(self) -> list[str]:
        """``room_id/doc_name`` for each load-generator room, spread over the groups."""
        docs_per_group = -(-self.rooms // len(GROUPS))
        out: list[str] = []
        for d in range(docs_per_group):
            for room_id, _, _ in GROUPS:
                out.append(f"{room_id}/{self.doc_prefix}-{d}")
        return out[: self.rooms]


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "classroom",
            "20 rooms × 30 clients, 3 writers per room at 5 updates/s",
            rooms=20,
            clients_per_room=30,
            writers_per_room=3,
            rate=5,
        ),
        Scenario(
            "heavy",
            "40 rooms × 30 clients, 3 writers per room at 8 updates/s (≈ 27,800 frames/s out)",
            rooms=40,
            clients_per_room=30,
            writers_per_room=3,
            rate=8,
        ),
        Scenario(
            "hot-room",
            "1 room × 100 clients, 10 writers at 10 updates/s (≈ 9,900 frames/s out)",
            rooms=1,
            clients_per_room=100,
            writers_per_room=10,
            rate=10,
        ),
        Scenario(
            "saturation",
            "heavy's shape, per-writer rate raised until p99 > 50 ms or an update goes "
            "missing; the highest offered rate held is the score",
            rooms=40,
            clients_per_room=30,
            writers_per_room=3,
            rate=4,
            warmup_s=2.0,
            duration_s=6.0,
            drain_s=2.0,
            ramp=(4, 8, 12, 16, 20, 25, 30, 40),
        ),
        Scenario(
            "cross-node",
            "classroom load over two nodes on one Redis: client i of a room on node i % 2; "
            "latency split same-node / cross-node",
            rooms=20,
            clients_per_room=30,
            writers_per_room=3,
            rate=5,
            nodes=2,
        ),
        Scenario(
            "cross-node-heavy",
            "heavy load over two nodes on one Redis (issue 6 target: p99 ≤ half of two "
            "Hocuspocus nodes')",
            rooms=40,
            clients_per_room=30,
            writers_per_room=3,
            rate=8,
            nodes=2,
        ),
        Scenario(
            "smoke",
            "tiny run to check the pipeline: 2 rooms × 5 clients, 2 writers at 5/s",
            rooms=2,
            clients_per_room=5,
            writers_per_room=2,
            rate=5,
            warmup_s=1.0,
            duration_s=3.0,
            drain_s=1.0,
        ),
    )
}


def get(name: str, **overrides: object) -> Scenario:
    scenario = SCENARIOS[name]
    changes = {k: v for k, v in overrides.items() if v is not None}
    return replace(scenario, **changes) if changes else scenario  # type: ignore[arg-type]


def tokens_per_room(scenario: Scenario, sign) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    """``{room_id: [token per client (cycled)]}``: the teacher first, then the students."""
    used = {p.split("/")[0] for p in scenario.paths()}
    return {
        room_id: [sign(teacher)] + [sign(s) for s in students]
        for room_id, teacher, students in GROUPS
        if room_id in used
    }
