"""Chat fan-out and presence bus traffic on the room channel ``/rooms/{room}/live`` (Atelier only).

Chat fan-out: 30 members of the class room ``2nde-a`` (the teacher and 29 students, one
socket each) on one node; 5 students post at ``rate`` messages/s each. Every message
carries its send time in its text; each member (the sender too) records the latency on
arrival. Reports messages delivered per second, p50/p99/max latency, missing deliveries,
errors. The per-user chat rate limit is raised (ATELIER_CHAT_MESSAGES_PER_MINUTE,
ATELIER_CHAT_BURST) by the caller so that it is not what is measured.

Presence bus traffic: 2 nodes on one Redis, the 30 members join (alternating nodes),
toggle typing on and off, and leave; Redis ``INFO stats`` total_net_input/output_bytes
deltas, minus the idle background rate (heartbeats) measured just before, per event.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import msgpack
import websockets

MEMBERS = ["t-martin"] + [f"s-{n:02d}" for n in range(1, 30)]
POSTERS = [f"s-{n:02d}" for n in range(1, 6)]


def _pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    return round(v[min(len(v) - 1, max(0, round(p / 100 * len(v) + 0.5) - 1))], 2)


class Member:
    def __init__(self, user: str, url: str) -> None:
        self.user = user
        self.url = url
        self.ws: Any = None
        self.lat: list[float] = []
        self.received = 0
        self.errors: dict[str, int] = {}
        self.hello = asyncio.Event()
        self.task: asyncio.Task | None = None

    async def connect(self) -> None:
        self.ws = await websockets.connect(self.url, max_size=None, ping_interval=None)
        self.task = asyncio.create_task(self.reader())
        await asyncio.wait_for(self.hello.wait(), 20)

    async def reader(self) -> None:
        try:
            async for raw in self.ws:
                t = time.time()
                f = msgpack.unpackb(raw, raw=False)
                kind = f.get("t")
                if kind == "hello":
                    self.hello.set()
                elif kind == "message":
                    text = f["message"]["text"]
                    if text.startswith("bench "):
                        self.received += 1
                        self.lat.append((t - float(text.split()[3])) * 1000)
                elif kind == "error":
                    key = f.get("code", "?")
                    self.errors[key] = self.errors.get(key, 0) + 1
        except websockets.ConnectionClosed as exc:
            self.errors[f"closed {exc.code}"] = 1

    async def send(self, frame: dict) -> None:
        await self.ws.send(msgpack.packb(frame))

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.task is not None:
            self.task.cancel()


async def chat_fanout(
    ws_urls: list[str], token, rate: float, duration: float, room: str = "2nde-a"
) -> dict:  # type: ignore[no-untyped-def]
    members = [
        Member(u, f"{ws_urls[i % len(ws_urls)]}/rooms/{room}/live?token={token(u)}")
        for i, u in enumerate(MEMBERS)
    ]
    t_conn = time.perf_counter()
    await asyncio.gather(*(m.connect() for m in members))
    connect_s = time.perf_counter() - t_conn
    posters = [m for m in members if m.user in POSTERS]
    sent = 0
    start = time.perf_counter()
    interval = 1 / rate

    async def post_loop(k: int, m: Member) -> None:
        nonlocal sent
        nxt = start + (k + 0.5) / len(posters) * interval  # staggered, open loop
        seq = 0
        while nxt < start + duration:
            await asyncio.sleep(max(0.0, nxt - time.perf_counter()))
            seq += 1
            await m.send({"t": "post", "text": f"bench {m.user} {seq} {time.time():.6f}"})
            sent += 1
            nxt += interval

    await asyncio.gather(*(post_loop(k, m) for k, m in enumerate(posters)))
    send_s = time.perf_counter() - start
    expected = sent * len(members)
    deadline = time.perf_counter() + 10
    while sum(m.received for m in members) < expected and time.perf_counter() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    lat = [x for m in members for x in m.lat]
    received = sum(m.received for m in members)
    errors: dict[str, int] = {}
    for m in members:
        for k, v in m.errors.items():
            errors[k] = errors.get(k, 0) + v
    await asyncio.gather(*(m.close() for m in members))
    return {
        "members": len(members),
        "posters": len(posters),
        "rate_per_poster": rate,
        "posted": sent,
        "posted_per_s": round(sent / send_s, 1),
        "expected_deliveries": expected,
        "delivered": received,
        "missing": expected - received,
        "delivered_per_s": round(received / send_s, 1),
        "latency_ms": {
            "p50": _pct(lat, 50),
            "p99": _pct(lat, 99),
            "max": round(max(lat), 2) if lat else None,
            "mean": round(statistics.fmean(lat), 2) if lat else None,
        },
        "connect_s": round(connect_s, 2),
        "errors": errors,
    }


def _redis_bytes(client) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    s = client.info("stats")
    return int(s["total_net_input_bytes"]), int(s["total_net_output_bytes"])


async def presence_traffic(ws_urls: list[str], token, redis_client, room: str = "2nde-a") -> dict:  # type: ignore[no-untyped-def]
    """Redis bytes per join, typing toggle and leave, background subtracted."""

    def snap() -> tuple[float, int, int]:
        i, o = _redis_bytes(redis_client)
        return time.monotonic(), i, o

    # background (node heartbeats, other tenants of this Redis) over 3 s
    a = snap()
    await asyncio.sleep(3)
    b = snap()
    bg_in = (b[1] - a[1]) / (b[0] - a[0])
    bg_out = (b[2] - a[2]) / (b[0] - a[0])

    def delta(x: tuple[float, int, int], y: tuple[float, int, int], n: int) -> dict:
        dt = y[0] - x[0]
        return {
            "events": n,
            "in_bytes_per_event": round(((y[1] - x[1]) - bg_in * dt) / n),
            "out_bytes_per_event": round(((y[2] - x[2]) - bg_out * dt) / n),
        }

    members = [
        Member(u, f"{ws_urls[i % len(ws_urls)]}/rooms/{room}/live?token={token(u)}")
        for i, u in enumerate(MEMBERS)
    ]
    out: dict = {"members": len(members), "nodes": len(ws_urls)}
    out["background_bytes_per_s"] = {"in": round(bg_in), "out": round(bg_out)}
    s0 = snap()
    for m in members:  # one by one: each join is one event, as a class trickles in
        await m.connect()
    await asyncio.sleep(1.5)
    s1 = snap()
    out["join"] = delta(s0, s1, len(members))
    for typing in (True, False):
        for m in members:
            await m.send({"t": "presence", "typing": typing})
        await asyncio.sleep(0.3)
    await asyncio.sleep(1.5)
    s2 = snap()
    out["typing_toggle"] = delta(s1, s2, 2 * len(members))
    for m in members:
        await m.close()
    await asyncio.sleep(2)
    s3 = snap()
    out["leave"] = delta(s2, s3, len(members))
    errors: dict[str, int] = {}
    for m in members:
        for k, v in m.errors.items():
            errors[k] = errors.get(k, 0) + v
    out["errors"] = errors
    return out
