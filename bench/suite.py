"""The whole benchmark set, side by side with the peers: ``python -m bench`` (``make bench``).

Order of work (≤ 15 minutes on 2 cores):
1. install/check the peers (bench/peers/) and the load generator;
2. load scenarios on ONE node of each server, all started at once and measured in turn
   (interleaved, so a noisy minute hits every server alike): classroom and heavy twice
   (medians), hot room once, the saturation ramp twice; the trivial relay once per
   scenario (the generator's own ceiling);
3. idle connections (2,000 / 5,000 / 10,000) and big doc (50,000 edits), a fresh
   server each;
4. cross-node: 2 and 3 Atelier nodes (PostgreSQL + Redis) and 2 Hocuspocus nodes on
   Redis; Redis bytes per update from INFO stats;
5. Atelier only: chat fan-out (1 node) and presence bus traffic (2 nodes);
6. connection storms (bench/storm.py): 10,000 sockets at once on one fresh node of each
   server; then 2 Atelier and 2 Hocuspocus nodes behind nginx, one SIGKILLed;
7. a school day (bench/schoolday.py): Atelier ×2 on Redis + PostgreSQL, Hocuspocus ×2 on
   Redis, y-websocket ×1, the same storm, lessons and breaks.
Every record goes to bench/results/raw/suite-<stamp>.json; bench/report.py writes
bench/results/latest.md and latest.png from it.

    python -m bench                 # the whole set
    python -m bench --quick         # a few seconds per step: checks the pipeline
    python -m bench --only load,idle
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
import uuid
from contextlib import ExitStack, suppress
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench import peers, schoolday
from bench.run_load import (
    LOADGEN_DIR,
    RAW_DIR,
    REDIS_SERVER,
    ROOT,
    _cpu_rss,
    _machine_cpu,
    atelier_target,
    ensure_loadgen,
    loadgen_config,
    relay_target,
    run_loadgen,
    running,
    summary_line,
)
from bench.run_load import versions as loadgen_versions
from bench.scenarios import GROUPS, get, tokens_per_room
from bench.storm import run_failover, run_storm

T0 = time.monotonic()
#: "atelier-hocuspocus": Atelier over its Hocuspocus endpoint (/collab), with the
#: generator speaking Hocuspocus' framing, beside Hocuspocus itself.
SERVERS_1N = ["atelier", "atelier-hocuspocus", "hocuspocus", "y-websocket", "pycrdt-websocket"]
ATELIERS = ("atelier", "atelier-hocuspocus")


def log(msg: str) -> None:
    print(f"[bench {time.monotonic() - T0:6.1f}s] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ plan
def plan(quick: bool) -> dict[str, Any]:
    d = 2.0 if quick else 5.0
    return {
        "classroom": {"warmup_s": 1.5, "duration_s": d, "drain_s": 2.0, "processes": 1},
        "heavy": {
            "warmup_s": 1.5,
            "duration_s": d,
            "drain_s": 2.0,
            "processes": 2,
            "receiverMode": "decode",
        },
        "hot-room": {"warmup_s": 1.5, "duration_s": d, "drain_s": 2.0, "processes": 1},
        "saturation": {
            "shape": "classroom",
            "warmup_s": 1.0,
            "duration_s": 2.0 if quick else 3.0,
            "drain_s": 1.5,
            "processes": 2,
            "receiverMode": "decode",
            "ramp": (5, 10, 20) if quick else (5, 10, 15, 20, 30, 40),
        },
        "repeats": 1 if quick else 2,
        "idle_stages": [200, 500] if quick else [2000, 5000, 10000],
        "idle3_stages": [200] if quick else [1000, 3000],
        "bigdoc_edits": 5000 if quick else 50000,
        "chat_rates": [5] if quick else [10, 40],
        "chat_duration_s": 3.0 if quick else 8.0,
        "cross_duration_s": 2.0 if quick else 4.0,
        # bench/storm.py: sockets = docs × per_doc; deadline_s bounds the generator
        "storm": {
            "docs": 100 if quick else 500,
            "per_doc": 10 if quick else 20,
            "concurrency": 200 if quick else 1000,
            "processes": 2,
            "deadline_s": 30 if quick else 60,
        },
        "failover": {
            "docs": 50 if quick else 300,
            "per_doc": 10 if quick else 20,
            "concurrency": 200 if quick else 1000,
            "processes": 2,
            "deadline_s": 45 if quick else 90,
        },
        "schoolday": schoolday.plan(quick),
    }


# ------------------------------------------------------------------ helpers
def quiesce(pids: dict[str, int], max_s: float = 15.0) -> float:
    """Wait until the servers are idle (a collapsed server may still chew its backlog)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < max_s:
        c0 = sum(_cpu_rss(p)[0] for p in pids.values())
        time.sleep(0.5)
        c1 = sum(_cpu_rss(p)[0] for p in pids.values())
        if (c1 - c0) / 0.5 < 0.10:
            break
    return round(time.monotonic() - t0, 1)


def redis_client():  # type: ignore[no-untyped-def]
    import redis

    return redis.Redis.from_url(REDIS_SERVER)


class RedisSampler(threading.Thread):
    """total_net_input/output_bytes of Redis every 0.5 s (INFO stats)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.r = redis_client()
        self.samples: list[tuple[float, int, int]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            with suppress(Exception):
                s = self.r.info("stats")
                self.samples.append(
                    (time.time(), int(s["total_net_input_bytes"]), int(s["total_net_output_bytes"]))
                )
            self._halt.wait(0.5)

    def stop(self) -> None:
        self._halt.set()
        self.join()

    def window(self, start: float, end: float) -> dict | None:
        inside = [x for x in self.samples if start <= x[0] <= end]
        if len(inside) < 2:
            return None
        (t0, i0, o0), (t1, i1, o1) = inside[0], inside[-1]
        return {"seconds": round(t1 - t0, 2), "in_bytes": i1 - i0, "out_bytes": o1 - o0}


def loadgen(
    name: str,
    shape: str,
    server: str,
    urls: list[str],
    pids: dict[str, int],
    tokens: dict,
    knobs: dict,
    rate: float | None = None,
    doc_prefix: str = "bench",
    extra: dict | None = None,
    redis_sampler: bool = False,
    quiet_pids: dict[str, int] | None = None,
) -> dict:
    sc = get(
        shape,
        warmup_s=knobs["warmup_s"],
        duration_s=knobs["duration_s"],
        drain_s=knobs["drain_s"],
        processes=knobs["processes"],
    )
    sc = replace(sc, doc_prefix=doc_prefix, nodes=len(urls))
    r_rate = sc.rate if rate is None else rate
    cfg = loadgen_config(sc, urls, tokens, r_rate, f"{name}/{server}@{r_rate}")
    if "receiverMode" in knobs:
        cfg["receiverMode"] = knobs["receiverMode"]
    cfg.update(extra or {})
    waited = quiesce(quiet_pids or pids)
    rs = RedisSampler() if redis_sampler else None
    if rs:
        rs.start()
    try:
        r = run_loadgen(cfg, pids)
    except Exception as exc:  # a crashed or wedged run is a result too
        r = {"ok": False, "error": str(exc)}
    finally:
        if rs:
            rs.stop()
    r.update(
        scenario=name,
        shape=shape,
        server=server,
        rate=r_rate,
        offered=sc.offered(r_rate),
        quiesce_s=waited,
        clients=sc.clients,
    )
    if rs and r.get("window"):
        w = rs.window(r["window"]["warmupEnd"] / 1000, r["window"]["sendEnd"] / 1000)
        if w:
            updates = sc.offered(r_rate) * w["seconds"]
            w["updates"] = round(updates)
            w["in_bytes_per_update"] = round(w["in_bytes"] / updates, 1) if updates else None
            w["out_bytes_per_update"] = round(w["out_bytes"] / updates, 1) if updates else None
            r["redis"] = w
    log(summary_line(f"{name}@{r_rate}", server, r) if r.get("latencyMs") else f"{name} {r}")
    return r


def atelier_tokens(servers: list, shape_sc) -> dict:  # type: ignore[no-untyped-def]
    return tokens_per_room(shape_sc, servers[0].token) if servers else {}


# ------------------------------------------------------------------ load (1 node each)
def run_load_set(P: dict, out: dict) -> None:
    out["load"] = runs = []
    out["saturation"] = sat = []
    with ExitStack() as stack:
        targets: dict[str, tuple[list[str], dict[str, int], dict, Any]] = {}
        stacks: dict[str, _target] = {}
        restarts: dict[str, int] = {}
        u, p, i = stack.enter_context(relay_target(1))
        targets["relay"] = (u, p, i, lambda user: "")
        for server in SERVERS_1N:
            stacks[server] = t = _target(server)
            targets[server] = t.__enter__()
            stack.callback(lambda t=t: t.__exit__(None, None, None))

        def alive(server: str) -> tuple[list[str], dict[str, int], dict, Any]:
            """The target, restarted if it died (a collapsed peer must not sink the rest)."""
            nonlocal every
            if server == "relay" or all(running(x) for x in targets[server][1].values()):
                return targets[server]
            log(f"{server} died: restarting it")
            restarts[server] = restarts.get(server, 0) + 1
            old = stacks[server]
            with suppress(Exception):
                old.__exit__(None, None, None)
            out.setdefault("server_log_problems_dead", {}).setdefault(server, []).extend(
                old.info.get("server_log_problems", [])
            )
            stacks[server] = t = _target(server)
            targets[server] = t.__enter__()
            stack.callback(lambda t=t: t.__exit__(None, None, None))
            every = {f"{k}/{n}": pid for k, v in targets.items() for n, pid in v[1].items()}
            return targets[server]

        out["restarts_1n"] = restarts
        out["targets_1n"] = {k: v[2] for k, v in targets.items()}
        every = {f"{k}/{n}": pid for k, v in targets.items() for n, pid in v[1].items()}
        n = 0
        for rep in range(P["repeats"]):
            for name in ("classroom", "heavy") + (("hot-room",) if rep == 0 else ()):
                for server in (["relay"] if rep == 0 else []) + SERVERS_1N:
                    urls, pids, info, sign = alive(server)
                    n += 1
                    sc = get(name)
                    r = loadgen(
                        name,
                        name,
                        server,
                        urls,
                        pids,
                        tokens_per_room(sc, sign),
                        P[name],
                        doc_prefix=f"r{n}",
                        extra=info.get("loadgen"),
                        quiet_pids=every,
                    )
                    r["repeat"] = rep
                    runs.append(r)
        # saturation ramp: per-writer rate raised until p99 > 50 ms or an update is missing
        S = P["saturation"]
        for rep in range(P["repeats"]):
            for server in (["relay"] if rep == 0 else []) + SERVERS_1N:
                if (
                    rep
                    and server == "pycrdt-websocket"
                    and not any(x["score_updates_per_s"] for x in sat if x["server"] == server)
                ):
                    continue  # it held no step the first time: one ramp says it
                sc = get(S["shape"])
                steps = []
                for rate in S["ramp"]:
                    urls, pids, info, sign = alive(server)
                    n += 1
                    r = loadgen(
                        "saturation",
                        S["shape"],
                        server,
                        urls,
                        pids,
                        tokens_per_room(sc, sign),
                        S,
                        rate=rate,
                        doc_prefix=f"r{n}",
                        extra=info.get("loadgen"),
                        quiet_pids=every,
                    )
                    steps.append(r)
                    p99 = (r.get("latencyMs") or {}).get("p99")
                    if not r.get("ok") or r.get("missing") or p99 is None or p99 > 50:
                        break
                held = [
                    s
                    for s in steps
                    if s.get("ok") and not s.get("missing") and s["latencyMs"]["p99"] <= 50
                ]
                best = max(held, key=lambda s: s["offered"], default=None)
                sat.append(
                    {
                        "server": server,
                        "repeat": rep,
                        "score_updates_per_s": best["offered"] if best else 0,
                        "score_frames_per_s": best["updateFramesPerSec"] if best else 0,
                        "best": best,
                        "steps": steps,
                    }
                )
                log(f"saturation {server} r{rep}: {sat[-1]['score_updates_per_s']} updates/s held")
    out["server_log_problems_1n"] = {
        k: v[2].get("server_log_problems", []) for k, v in targets.items()
    }


# ------------------------------------------------------------------ idle connections
def idle_rooms(n_rooms: int) -> list[str]:
    return [f"{GROUPS[k % len(GROUPS)][0]}/idle-{k // len(GROUPS)}" for k in range(n_rooms)]


#: Users with three docs open (issue 14): three y-websocket sockets on Atelier, one
#: multiplexed socket on Atelier's /collab and on Hocuspocus itself.
SERVERS_IDLE3 = ["atelier", "atelier-hocuspocus", "hocuspocus"]


def run_idle3(P: dict, out: dict) -> None:
    run_idle(P, out, docs_per_user=3)


def run_idle(P: dict, out: dict, docs_per_user: int = 1) -> None:
    key = "idle" if docs_per_user == 1 else f"idle{docs_per_user}"
    out[key] = res = []
    stages = P["idle_stages"] if docs_per_user == 1 else P["idle3_stages"]
    per_room = 50
    rooms = idle_rooms(-(-stages[-1] // per_room))
    for server in SERVERS_1N if docs_per_user == 1 else SERVERS_IDLE3:
        with _target(server) as (urls, pids, info, sign):
            pid = next(iter(pids.values()))
            tokens = (
                {g[0]: [sign(g[1])] + [sign(s) for s in g[2]] for g in GROUPS}
                if server in ATELIERS
                else {}
            )
            cfg = {
                "url": urls[0],
                "rooms": rooms,
                "perRoom": per_room,
                "stages": stages,
                "tokens": tokens,
                "connectConcurrency": 100,
                "connectTimeoutMs": 15000,
                "docsPerUser": docs_per_user,
                **(info.get("loadgen") or {}),
            }
            time.sleep(1.0)
            base = _cpu_rss(pid)[1]
            cpu_base = _cpu_rss(pid)[0]
            proc = subprocess.Popen(
                ["node", "idle.mjs", json.dumps(cfg)],
                cwd=LOADGEN_DIR,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                preexec_fn=peers.raise_nofile,
            )
            record: dict = {"server": server, "rss_base_mib": round(base / 2**20, 1), "stages": []}
            deadline = time.monotonic() + 150
            users = 0  # synced so far (docs_per_user > 1: a stage counts users)
            try:
                for _ in stages:
                    line = _readline(proc, deadline - time.monotonic())
                    if line is None:
                        record["error"] = "timeout"
                        break
                    st = json.loads(line)
                    time.sleep(1.5)
                    cpu, rss = _cpu_rss(pid)
                    st["server_rss_mib"] = round(rss / 2**20, 1)
                    st["server_alive"] = running(pid)
                    st["kib_per_connection"] = (
                        round((rss - base) / 1024 / st["alive"], 1) if st["alive"] else None
                    )
                    users += st["synced"]
                    st["kib_per_user"] = round((rss - base) / 1024 / users, 1) if users else None
                    st["server_cpu_s_so_far"] = round(cpu - cpu_base, 1)
                    record["stages"].append(st)
                    log(f"{key} {server} {st}")
                    failed = st["newSockets"] - st["synced"]
                    go_on = failed <= 0.05 * st["newSockets"] and st["server_alive"]
                    proc.stdin.write("next\n" if go_on else "stop\n")  # type: ignore[union-attr]
                    proc.stdin.flush()  # type: ignore[union-attr]
                    if not go_on:
                        record["stopped_after"] = st["stage"]
                        break
            finally:
                with suppress(Exception):
                    proc.stdin.close()  # type: ignore[union-attr]
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
            res.append(record)


def _readline(proc: subprocess.Popen, timeout: float) -> str | None:
    box: list[str] = []
    t = threading.Thread(target=lambda: box.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    t.start()
    t.join(max(0.1, timeout))
    if not box or not box[0].strip():
        proc.kill()
        return None
    return box[0]


class _target:
    """A fresh single-node server by name; yields (urls, pids, info, sign)."""

    def __init__(self, server: str, env: dict[str, str] | None = None) -> None:
        self.server = server
        self.env = env or {}
        self.stack = ExitStack()

    def __enter__(self):  # type: ignore[no-untyped-def]
        s = self.server
        if s in ATELIERS:
            u, p, i = self.stack.enter_context(atelier_target(1, dict(self.env), keep=False))
            sign = i.pop("_servers")[0].token
            if s == "atelier-hocuspocus":
                i["loadgen"] = {"protocol": "hocuspocus", "hocusPath": "/collab"}
        elif s == "hocuspocus":
            u, p, i = self.stack.enter_context(peers.hocuspocus_target(1, sqlite=True))
            sign = lambda user: ""  # noqa: E731
        elif s == "y-websocket":
            u, p, i = self.stack.enter_context(peers.ywebsocket_target())
            sign = lambda user: ""  # noqa: E731
        elif s in ("relay", "relay-python"):
            u, p, i = self.stack.enter_context(relay_target(1, python=s == "relay-python"))
            sign = lambda user: ""  # noqa: E731
        else:
            u, p, i = self.stack.enter_context(peers.pycrdt_target())
            sign = lambda user: ""  # noqa: E731
        self.info = i
        return u, p, i, sign

    def __exit__(self, *exc: object) -> None:
        self.stack.close()


# ------------------------------------------------------------------ big doc
#: Atelier runs this scenario with its default settings: since issue 15 a socket over its
#: frame rate is slowed (paced at RATE_FRAMES_PER_SECOND), not closed, so the 50,000
#: edits go through at that pace. Set variables here only to measure something else.
BIGDOC_ENV: dict[str, str] = {}


def run_bigdoc(P: dict, out: dict) -> None:
    out["bigdoc"] = res = []
    for server in SERVERS_1N:
        env = BIGDOC_ENV if server in ATELIERS else {}
        with _target(server, env) as (urls, pids, info, sign):
            pid = next(iter(pids.values()))
            cfg = {
                "url": urls[0],
                "room": "2nde-a-g1/bigdoc",
                "token": sign("s-01"),
                "edits": P["bigdoc_edits"],
                "window": 500,
                "newcomers": 3,
                **(info.get("loadgen") or {}),
            }
            time.sleep(0.5)
            cpu0, rss0 = _cpu_rss(pid)
            proc = subprocess.Popen(
                ["node", "bigdoc.mjs", json.dumps(cfg)],
                cwd=LOADGEN_DIR,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            record: dict = {"server": server, "rss_base_mib": round(rss0 / 2**20, 1)}
            if env:
                record["server_env"] = env
            deadline = time.monotonic() + 120
            try:
                line = _readline(proc, deadline - time.monotonic())
                if line is None:
                    record["error"] = "timeout during ingest"
                else:
                    record.update(json.loads(line))
                    cpu1, rss1 = _cpu_rss(pid)
                    record["server_cpu_s_ingest"] = round(cpu1 - cpu0, 1)
                    record["rss_after_ingest_mib"] = round(rss1 / 2**20, 1)
                    proc.stdin.write("go\n")  # type: ignore[union-attr]
                    proc.stdin.flush()  # type: ignore[union-attr]
                    line = _readline(proc, deadline - time.monotonic())
                    if line is None:
                        record["error"] = "timeout during newcomer sync"
                    else:
                        record.update(json.loads(line))
                        record["rss_end_mib"] = round(_cpu_rss(pid)[1] / 2**20, 1)
            finally:
                with suppress(Exception):
                    proc.kill()
                    proc.wait(5)
            log(f"bigdoc {server}: {record}")
            res.append(record)


# ------------------------------------------------------------------ cross-node
def run_cross(P: dict, out: dict) -> None:
    out["cross"] = res = []
    base = P["classroom"]
    knobs_c = {**base, "duration_s": P["cross_duration_s"]}
    knobs_h = {**P["heavy"], "duration_s": P["cross_duration_s"]}
    cases = [
        ("atelier", 2, "classroom", knobs_c),
        ("atelier", 3, "classroom", knobs_c),
        ("hocuspocus", 2, "classroom", knobs_c),
        ("atelier", 2, "heavy", knobs_h),
        ("hocuspocus", 2, "heavy", knobs_h),
    ]
    for server, nodes, shape, knobs in cases:
        prefix = f"bench-{uuid.uuid4().hex[:8]}:"
        if server == "atelier":
            ctx = atelier_target(nodes, {"ATELIER_REDIS_PREFIX": prefix, "_REDIS_DB": "9"}, False)
        else:
            ctx = peers.hocuspocus_target(
                nodes, sqlite=False, redis_url=REDIS_SERVER, prefix=prefix.rstrip(":")
            )
        with ctx as (urls, pids, info):
            servers = info.pop("_servers", None)
            sign = servers[0].token if servers else (lambda user: "")
            r = loadgen(
                f"cross-{shape}",
                shape,
                f"{server} ×{nodes}",
                urls,
                pids,
                tokens_per_room(get(shape), sign),
                knobs,
                doc_prefix="x",
                extra=info.get("loadgen"),
                redis_sampler=True,
            )
            r["nodes"] = nodes
            r["redis_prefix"] = prefix
            res.append(r)
        r["server_log_problems"] = info.get("server_log_problems", [])


# ------------------------------------------------------------------ chat + presence
CHAT_ENV = {"ATELIER_CHAT_MESSAGES_PER_MINUTE": "1000000", "ATELIER_CHAT_BURST": "100000"}


def run_chat(P: dict, out: dict) -> None:
    from bench.chat import chat_fanout, presence_traffic

    out["chat"] = chat = {"server_env": CHAT_ENV, "runs": []}
    with atelier_target(1, dict(CHAT_ENV), keep=False) as (urls, pids, info):
        sign = info.pop("_servers")[0].token
        pid = next(iter(pids.values()))
        for rate in P["chat_rates"]:
            c0 = _cpu_rss(pid)[0]
            m0 = _machine_cpu()
            t0 = time.monotonic()
            r = asyncio.run(chat_fanout(urls, sign, rate, P["chat_duration_s"]))
            dt = time.monotonic() - t0
            m1 = _machine_cpu()
            r["server_cpu_pct"] = round(100 * (_cpu_rss(pid)[0] - c0) / dt, 1)
            r["machine_busy_pct"] = round(100 * (m1[0] - m0[0]) / max(1.0, m1[1] - m0[1]), 1)
            log(f"chat fan-out @{rate}/s per poster: {r}")
            chat["runs"].append(r)
    chat["server_log_problems"] = info.get("server_log_problems", [])
    prefix = f"bench-{uuid.uuid4().hex[:8]}:"
    with atelier_target(2, {"ATELIER_REDIS_PREFIX": prefix, "_REDIS_DB": "9"}, False) as (
        urls,
        pids,
        info,
    ):
        sign = info.pop("_servers")[0].token
        pr = asyncio.run(presence_traffic(urls, sign, redis_client()))
        pr["redis_prefix"] = prefix
        log(f"presence traffic: {pr}")
        out["presence"] = pr
    out["presence"]["server_log_problems"] = info.get("server_log_problems", [])


# ------------------------------------------------------------------ a school day
def run_schoolday(P: dict, out: dict) -> None:
    out["schoolday"] = schoolday.run_all(P["schoolday"], schoolday.SERVERS)


# ------------------------------------------------------------------ machine + versions
def machine() -> dict:
    m: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }
    with suppress(Exception):
        m["cpu_model"] = next(
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        )
    with suppress(Exception):
        kb = int(Path("/proc/meminfo").read_text().split("\n")[0].split()[1])
        m["memory_gib"] = round(kb / 2**20, 1)
    m["loadavg_start"] = os.getloadavg()
    return m


def all_versions() -> dict[str, str]:
    from importlib.metadata import version

    v = {f"loadgen/{k}": x for k, x in loadgen_versions().items() if k in {"yjs", "ws"}}
    with suppress(Exception):
        v["node"] = subprocess.run(
            ["node", "--version"], capture_output=True, text=True
        ).stdout.strip()
    v["python"] = platform.python_version()
    for pkg in (
        "atelier",
        "pycrdt",
        "uvicorn",
        "websockets",
        "starlette",
        "redis",
        "hiredis",
        "sqlalchemy",
        "aiosqlite",
        "psycopg",
        "msgpack",
    ):
        with suppress(Exception):
            v[f"atelier/{pkg}"] = version(pkg)
    with suppress(Exception):
        v["atelier/git"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    with suppress(Exception):
        v["redis-server"] = redis_client().info("server")["redis_version"]
    with suppress(Exception):
        v["postgresql"] = subprocess.run(
            ["psql", "--version"], capture_output=True, text=True
        ).stdout.split()[2]
    v.update(peers.versions())
    return v


# ------------------------------------------------------------------ main
PARTS = {
    "load": run_load_set,
    "idle": run_idle,
    "idle3": run_idle3,
    "bigdoc": run_bigdoc,
    "cross": run_cross,
    "chat": run_chat,
    "storm": run_storm,
    "failover": run_failover,
    "schoolday": run_schoolday,
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="short steps: checks the pipeline")
    ap.add_argument("--only", help=f"comma list of parts: {','.join(PARTS)}")
    ap.add_argument("--no-report", action="store_true")
    args = ap.parse_args(argv)
    peers.raise_nofile()
    peers.install()
    ensure_loadgen()
    RAW_DIR.mkdir(parents=True, exist_ok=True)
    P = plan(args.quick)
    out: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "quick": args.quick,
        "plan": P,
        "machine": machine(),
        "versions": all_versions(),
        "timings_s": {},
    }
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = RAW_DIR / f"suite-{stamp}{'-quick' if args.quick else ''}.json"
    parts = args.only.split(",") if args.only else list(PARTS)
    for part in parts:
        t = time.monotonic()
        log(f"=== {part}")
        try:
            PARTS[part](P, out)
        except Exception as exc:  # one broken part must not lose the others
            import traceback

            traceback.print_exc()
            out.setdefault("part_errors", {})[part] = repr(exc)
        out["timings_s"][part] = round(time.monotonic() - t, 1)
        path.write_text(json.dumps(out, indent=1, default=str))
    out["timings_s"]["total"] = round(time.monotonic() - T0, 1)
    out["machine"]["loadavg_end"] = os.getloadavg()
    path.write_text(json.dumps(out, indent=1, default=str))
    log(f"wrote {path.relative_to(ROOT)} in {out['timings_s']['total']} s")
    if not args.no_report:
        from bench.report import write_report

        write_report(path)
    return 0


def medians(values: list[float | None]) -> float | None:
    v = [x for x in values if x is not None]
    return statistics.median(v) if v else None
