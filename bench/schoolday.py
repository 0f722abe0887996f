"""A compressed school day on two Atelier nodes (Redis + PostgreSQL), beside the peers.

    python -m bench.schoolday                 # Atelier ×2, Hocuspocus ×2 on Redis, y-websocket ×1
    python -m bench.schoolday --quick         # the same day, smaller and shorter
    python -m bench.schoolday --servers atelier

The day is scripted in ``bench/loadgen/schoolday.mjs`` (its header says who opens what):
the 08:00 storm (every tab of both demo classes opens its docs and room channels within a
few seconds), lessons (students type in bursts, chat on their group and class channels,
send presence; a teacher console per class watches the progress events), breaks (a share of
the tabs drop and come back with a jittered delay), then everyone leaves. All sockets of a
room go to one node (room k → node k % 2), as nginx's consistent hash on the room would.

At each phase boundary the generator stops and waits while this driver reads every node's
RSS, so the **memory check** compares like with like: each node's RSS at the end of the
last lesson against the end of the lesson before (issue 15: within 10 %). CPU % per node
and phase comes from ``/proc`` samples every 0.5 s.

The peers run the doc part of the same day (same generator, same numbers: they have no
chat, no presence channel, no console): two Hocuspocus nodes on Redis, and one y-websocket
node (it cannot share a room between nodes, so it holds the whole school alone).
The record goes to ``bench/results/raw/schoolday-<stamp>.json`` (git-ignored).
"""

from __future__ import annotations

import argparse
import itertools
import json
import queue
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from bench import peers
from bench.run_load import (
    LOADGEN_DIR,
    RAW_DIR,
    REDIS_SERVER,
    ROOT,
    Sampler,
    _cpu_rss,
    atelier_target,
    ensure_loadgen,
    running,
)
from bench.scenarios import GROUPS

SERVERS = ["atelier", "hocuspocus", "y-websocket"]
#: The memory check of issue 15: RSS at the end of the last lesson within 10 % of the
#: RSS at the end of the lesson before.
MEMORY_TOLERANCE = 0.10


def log(msg: str) -> None:
    print(f"[schoolday] {msg}", file=sys.stderr, flush=True)


def plan(quick: bool) -> dict[str, Any]:
    """The day's shape. Full: ≈ 3,000 sockets, 3 lessons of 20 s, 2 breaks of 10 s."""
    if quick:
        return {
            "docsPerGroup": 4,
            "classDocs": 1,
            "stormWindowMs": 1500,
            "lessons": 2,
            "lessonMs": 6000,
            "breakMs": 4000,
            "drainMs": 2000,
            "chatGroupMs": 4000,
            "chatClassMs": 8000,
            "chatTeacherMs": 4000,
        }
    return {
        "docsPerGroup": 20,
        "classDocs": 2,
        "stormWindowMs": 3000,
        "lessons": 3,
        "lessonMs": 20000,
        "breakMs": 10000,
        "drainMs": 3000,
        "chatGroupMs": 12000,
        "chatClassMs": 30000,
        "chatTeacherMs": 8000,
    }


def school() -> dict:
    """The demo school (``atelier seed-demo``): 2 classes × 5 groups × 6 students, p-01."""
    classes: dict[str, dict] = {}
    for group, teacher, students in GROUPS:
        cls = group.rsplit("-g", 1)[0]
        c = classes.setdefault(
            cls,
            {"id": cls, "teacher": teacher, "parents": ["p-01"] if cls == "2nde-a" else []},
        )
        c.setdefault("groups", []).append({"id": group, "students": students})
    return {"classes": list(classes.values())}


def room_nodes(sch: dict, nodes: int) -> dict[str, int]:
    """Room k → node k % nodes: the group rooms in order, then the class rooms."""
    rooms = [g["id"] for c in sch["classes"] for g in c["groups"]]
    rooms += [c["id"] for c in sch["classes"]]
    return {r: k % nodes for k, r in enumerate(rooms)}


def users(sch: dict) -> list[str]:
    out = []
    for c in sch["classes"]:
        out += [c["teacher"], *c["parents"]]
        for g in c["groups"]:
            out += g["students"]
    return out


@contextmanager
def day_target(
    server: str, keep: bool = False
) -> Iterator[tuple[list[str], dict[str, int], dict, Any]]:
    """(urls, pids, info, sign) of a fresh target: 2 Atelier nodes, 2 Hocuspocus, 1 y-websocket."""
    prefix = f"bench-day-{uuid.uuid4().hex[:8]}"
    if server == "atelier":
        env = {"ATELIER_REDIS_PREFIX": f"{prefix}:", "_REDIS_DB": "9"}
        with atelier_target(2, env, keep=keep) as (urls, pids, info):
            servers = info.pop("_servers")
            info["protocol"] = "atelier"
            try:
                yield urls, pids, info, servers[0].token
            finally:
                # a node that died on its own: its exit status (-9 killed, -11 segfault, …)
                info["exit_codes"] = {f"node{i}": s.proc.poll() for i, s in enumerate(servers)}
                info["tracebacks"] = tracebacks("\n".join(s.all_logs() for s in servers))
    elif server == "hocuspocus":
        with peers.hocuspocus_target(2, sqlite=False, redis_url=REDIS_SERVER, prefix=prefix) as (
            urls,
            pids,
            info,
        ):
            info["protocol"] = "hocuspocus"
            yield urls, pids, info, lambda user: ""
    elif server == "y-websocket":
        with peers.ywebsocket_target() as (urls, pids, info):
            info["protocol"] = "y-websocket"
            info["note"] = "one node: y-websocket cannot share a room between nodes"
            yield urls, pids, info, lambda user: ""
    else:
        raise ValueError(server)


def tracebacks(text: str, most: int = 3) -> list[str]:
    """The first few error records of the servers' logs, each with its whole traceback."""
    out: list[str] = []
    block: list[str] | None = None
    for ln in text.splitlines():
        if " ERROR " in ln or " CRITICAL " in ln:
            if block:
                out.append("\n".join(block))
            block = [ln]
        elif block is not None and (ln.startswith((" ", "Traceback")) or not ln[:4].isdigit()):
            block.append(ln)
        elif block is not None:
            out.append("\n".join(block))
            block = None
        if len(out) >= most:
            break
    if block and len(out) < most:
        out.append("\n".join(block))
    return [b[:4000] for b in out]


def _reader(proc: subprocess.Popen, q: queue.Queue) -> None:
    for line in proc.stdout:  # type: ignore[union-attr]
        q.put(line)
    q.put(None)


def run_day(server: str, P: dict, keep: bool = False) -> dict:
    sch = school()
    record: dict[str, Any] = {"server": server, "plan": P}
    with day_target(server, keep) as (urls, pids, info, sign):
        cfg = {
            **P,
            "label": f"schoolday {server}",
            "urls": urls,
            "roomNode": room_nodes(sch, len(urls)),
            "school": sch,
            "tokens": {u: sign(u) for u in users(sch)},
            "protocol": info["protocol"],
        }
        time.sleep(1.0)
        sampler = Sampler(pids)
        sampler.start()
        # the config holds tokens: a file readable by us alone, not the command line (ps)
        cfg_file = tempfile.NamedTemporaryFile("w", suffix=".json", prefix="schoolday-")
        cfg_file.write(json.dumps(cfg))
        cfg_file.flush()
        proc = subprocess.Popen(
            ["node", "schoolday.mjs", cfg_file.name],
            cwd=LOADGEN_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=peers.raise_nofile,
        )
        lines: queue.Queue = queue.Queue()
        reader = threading.Thread(target=_reader, args=(proc, lines), daemon=True)
        reader.start()
        points: list[dict] = []
        result: dict | None = None
        # the generator's own deadline is shorter; this one only guards a hung generator
        deadline = time.monotonic() + (600 if P["lessons"] > 2 else 240)
        try:
            while result is None:
                try:
                    line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
                except queue.Empty:
                    record["error"] = "driver timeout"
                    break
                if line is None:
                    record["error"] = f"generator exited ({proc.poll()}) without a result"
                    break
                msg = json.loads(line)
                if "point" in msg:
                    msg["rss_mib"] = {
                        name: round(_cpu_rss(pid)[1] / 2**20, 1) for name, pid in pids.items()
                    }
                    msg["t_driver"] = time.time()
                    points.append(msg)
                    log(f"{server} at {msg['point']}: {msg['open']} open, RSS {msg['rss_mib']}")
                    dead = [name for name, pid in pids.items() if not running(pid)]
                    if dead:
                        record["error"] = f"node(s) {dead} died before {msg['point']}"
                        log(f"!!! {record['error']}: stopping the day")
                        proc.stdin.write("stop\n")  # type: ignore[union-attr]
                        proc.stdin.flush()  # type: ignore[union-attr]
                        continue
                    proc.stdin.write("go\n")  # type: ignore[union-attr]
                    proc.stdin.flush()  # type: ignore[union-attr]
                else:
                    result = msg.get("result")
        finally:
            with suppress(Exception):
                proc.stdin.close()  # type: ignore[union-attr]
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
            reader.join(5)
            cfg_file.close()
            with suppress(Exception):
                proc.stdout.close()  # type: ignore[union-attr]
            sampler.stop()
        record["result"] = result
        record["points"] = points
        record["per_phase"] = per_phase(sampler, points)
        record["memory_check"] = memory_check(points, P["lessons"])
        record["target"] = {k: v for k, v in info.items() if not k.startswith("_")}
    record["server_log_problems"] = info.get("server_log_problems", [])
    record["server_tracebacks"] = info.get("tracebacks", [])
    record["server_exit_codes"] = info.get("exit_codes", {})
    return record


def per_phase(sampler: Sampler, points: list[dict]) -> dict[str, dict]:
    """CPU % and RSS of each node between two sync points, named by the later point."""
    out: dict[str, dict] = {}
    for a, b in itertools.pairwise(points):
        start, end = a["t_driver"], b["t_driver"]
        out[b["point"]] = {name: sampler.window(name, start, end) for name in sampler.pids} | {
            "machine_busy_pct": sampler.machine_busy_pct(start, end)
        }  # type: ignore[dict-item]
    return out


def memory_check(points: list[dict], lessons: int) -> dict | None:
    """RSS of each node at the end of the last lesson / at the end of the lesson before."""
    at = {p["point"]: p["rss_mib"] for p in points}
    last, before = f"lesson{lessons}", f"lesson{lessons - 1}"
    if lessons < 2 or last not in at or before not in at:
        return None
    ratios = {n: round(at[last][n] / at[before][n], 3) for n in at[last] if at[before].get(n)}
    return {
        "compared": [before, last],
        "rss_mib": {before: at[before], last: at[last]},
        "ratio": ratios,
        "held": all(abs(r - 1) <= MEMORY_TOLERANCE for r in ratios.values()),
        "tolerance": MEMORY_TOLERANCE,
    }


# ------------------------------------------------------------------ printing
def _p(h: dict | None) -> str:
    if not h or not h.get("n"):
        return "–"
    return f"{h['p50']}/{h['p99']}"


def summary(rec: dict) -> str:
    r = rec.get("result") or {}
    ph = r.get("phases") or {}
    lay = r.get("layout") or {}
    out = [
        f"== {rec['server']} ({lay.get('nodes')} node(s), {lay.get('sockets')} sockets, "
        f"{lay.get('docs')} docs): ok={r.get('ok')} {rec.get('error') or r.get('error') or ''}"
    ]
    for name, p in ph.items():
        if name == "storm" or name.startswith("break"):
            out.append(
                f"  {name}: {p.get('synced')}/{p.get('sockets')} synced, {p.get('perSecond')}/s, "
                f"time to synced p50/p99 {_p(p.get('timeToSyncedMs'))} ms, "
                f"retries {p.get('retries')}, failed {p.get('failed')}"
            )
        elif name.startswith("lesson"):
            d = p["doc"]
            line = (
                f"  {name}: doc p50/p99 {_p(d['latencyMs'])} ms, {d['sent']} sent, "
                f"{d['deliveredInPhase']} delivered, missing {d['missing']}"
            )
            if "chat" in p:
                c = p["chat"]
                line += (
                    f" | chat p50/p99 {_p(c['latencyMs'])} ms, {c['acked']} posts, "
                    f"{c['delivered']} delivered, missing {c['missing']}, refused {c['refused']}"
                    f" | progress {p['console']['progressFrames']} frames "
                    f"({p['console']['docsCovered']}/{p['console']['docsTyped']} docs)"
                )
            out.append(line)
    for name, cpu in (rec.get("per_phase") or {}).items():
        nodes = ", ".join(
            f"{n} {v.get('cpu_pct')}% {v.get('rss_mib_end')} MiB"
            for n, v in cpu.items()
            if isinstance(v, dict)
        )
        out.append(f"  cpu/rss {name}: {nodes}")
    mc = rec.get("memory_check")
    if mc:
        out.append(f"  memory check {mc['compared']}: ratio {mc['ratio']} held={mc['held']}")
    miss = r.get("missing") or {}
    if miss.get("doc") or miss.get("chat"):
        out.append(f"  !!! MISSING: {miss}")
    out.append(f"  errors {r.get('errors')} closes {r.get('closes')}")
    return "\n".join(out)


def run_all(P: dict, servers: list[str], keep: bool = False) -> list[dict]:
    out = []
    for server in servers:
        log(f"=== {server}")
        rec = run_day(server, P, keep)
        print(summary(rec), flush=True)
        out.append(rec)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="a smaller, shorter day")
    ap.add_argument("--servers", default=",".join(SERVERS), help="comma list")
    ap.add_argument("--keep", action="store_true", help="keep Atelier's data folder (logs)")
    args = ap.parse_args(argv)
    peers.raise_nofile()
    servers = args.servers.split(",")
    if any(s != "atelier" for s in servers):
        peers.install()
    ensure_loadgen()
    RAW_DIR.mkdir(parents=True, exist_ok=True)
    P = plan(args.quick)
    records = run_all(P, servers, args.keep)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = RAW_DIR / f"schoolday-{stamp}{'-quick' if args.quick else ''}.json"
    path.write_text(json.dumps({"quick": args.quick, "runs": records}, indent=1, default=str))
    log(f"wrote {path.relative_to(ROOT)}")
    return 0 if all((r.get("result") or {}).get("ok") for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())


# ------------------------------------------------------------------ latest.md section
def _pair(h: dict | None) -> str:
    if not h or not h.get("n"):
        return "–"
    return f"{h['p50']:,.1f} / {h['p99']:,.1f}"


def report_lines(runs: list[dict], quick: bool = False) -> list[str]:
    """The "school day" section of bench/results/latest.md (bench/report.py calls it)."""
    if not runs:
        return []
    first = (runs[0].get("result") or {}).get("layout") or {}
    P = runs[0].get("plan") or {}
    L = [
        "## A school day (issue 15, part 4)",
        "",
        f"`bench/schoolday.py` + `bench/loadgen/schoolday.mjs`{' (QUICK: a smaller day)' if quick else ''}: "  # noqa: E501
        f"both demo classes, {first.get('tabs')} browser tabs, **{first.get('sockets'):,} sockets** on "  # noqa: E501
        f"{first.get('docs')} docs ({P.get('docsPerGroup')} per group, {P.get('classDocs')} per class) "  # noqa: E501
        "and the room channels; all sockets of a room on one node (room k → node k % 2). "
        f"08:00 storm within {P.get('stormWindowMs', 0) / 1000:g} s; {P.get('lessons')} lessons "
        f"of {P.get('lessonMs', 0) / 1000:g} s (students type ≈ 3 updates/s each in bursts at 8/s, "
        "chat on the group and class channels inside the chat limit, presence typing on/off, a "
        "teacher console per class: the class channel's progress events plus a socket on every "
        f"group doc); breaks of {P.get('breakMs', 0) / 1000:g} s where 30 % of the tabs drop "
        "and come back after a jittered delay; then everyone leaves. Atelier: 2 nodes, Redis + "
        "PostgreSQL. The peers run the doc part only (no chat, presence or console): Hocuspocus "
        "×2 on Redis; **y-websocket ×1: it cannot share a room between nodes**, so one node holds "
        "the whole school. Missing must be 0 (doc: per writer seq, cumulative; chat: every "
        "accepted message id at every member socket). Connects/s of a break is the jittered "
        "arrival rate; its time to synced is the figure.",
        "",
        "| server | phase | doc p50 / p99 ms | doc updates sent → delivered | doc missing | "
        "chat p50 / p99 ms | chat delivered | chat missing | synced / sockets | connects/s | "
        "time to synced p50 / p99 ms | retries / failed | CPU % per node | RSS MiB per node |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for rec in runs:
        r = rec.get("result") or {}
        server = rec["server"]
        nodes = (r.get("layout") or {}).get("nodes")
        rss_at = {p["point"]: p.get("rss_mib") or {} for p in rec.get("points") or []}
        for name, p in (r.get("phases") or {}).items():
            cpu = (rec.get("per_phase") or {}).get(name) or {}
            cpus = " / ".join(
                "–" if v.get("cpu_pct") is None else f"{v['cpu_pct']:.0f}"
                for v in cpu.values()
                if isinstance(v, dict)
            )
            rss = " / ".join(f"{v:.0f}" for v in rss_at.get(name, {}).values())
            cells = ["–"] * 10
            if "doc" in p:
                d = p["doc"]
                cells[0] = _pair(d["latencyMs"])
                cells[1] = f"{d['sent']:,} → {d['deliveredInPhase']:,}"
                cells[2] = f"**{d['missing']:,}**" if d["missing"] else "0"
                if "chat" in p:
                    c = p["chat"]
                    cells[3] = _pair(c["latencyMs"])
                    cells[4] = f"{c['delivered']:,} of {c['expected']:,}"
                    lost = c["missing"] + c["unacknowledged"]
                    cells[5] = f"**{lost:,}**" if lost else "0"
            if "synced" in p:
                cells[6] = f"{p['synced']:,} / {p['sockets']:,}"
                cells[7] = f"{p['perSecond']:,}" if p.get("perSecond") is not None else "–"
                cells[8] = _pair(p["timeToSyncedMs"])
                cells[9] = f"{p['retries']} / {p['failed']}"
            label = f"{server} ×{nodes}" if name == "storm" else ""
            w = "| " + " | ".join([label, name, *cells, cpus, rss]) + " |"
            L.append(w)
    L.append("")
    L.append(
        "**Memory check** (RSS of each node at the end of the last lesson against the end of "
        "the lesson before; issue 15 asks for 10 %):"
    )
    L.append("")
    L.append("| server | node | RSS before, MiB | RSS after, MiB | ratio | held |")
    L.append("|---|---|---:|---:|---:|---|")
    for rec in runs:
        mc = rec.get("memory_check")
        if not mc:
            L.append(f"| {rec['server']} | – | – | – | – | no figure |")
            continue
        before, after = mc["compared"]
        for node, ratio in mc["ratio"].items():
            ok = abs(ratio - 1) <= mc["tolerance"]
            L.append(
                f"| {rec['server']} | {node} | {mc['rss_mib'][before][node]:.1f} | "
                f"{mc['rss_mib'][after][node]:.1f} | {ratio:.3f} | {'yes' if ok else '**NO**'} |"
            )
    L.append("")
    for rec in runs:
        r = rec.get("result") or {}
        notes = []
        if not r.get("ok"):
            notes.append(f"**not ok** ({rec.get('error') or r.get('error') or 'see the table'})")
        for name, p in (r.get("phases") or {}).items():
            if "console" in p:
                c = p["console"]
                notes.append(
                    f"{name}: teacher consoles got {c['progressFrames']} progress events on "
                    f"{c['progressDocs']} docs, covering {c['docsCovered']} of the "
                    f"{c['docsTyped']} group docs typed in; presence "
                    f"{p['presence']['framesOut']} frames out, {p['presence']['framesIn']} in"
                )
        if r.get("chatLeaksToParents"):
            notes.append(f"**{r['chatLeaksToParents']} chat messages reached a parent**")
        notes.append(f"close codes {r.get('closes')}; errors {r.get('errors') or 'none'}")
        gen = r.get("generator") or {}
        notes.append(
            f"generator {gen.get('cpuS')} CPU s, loop delay p99 {gen.get('loopDelayP99Ms')} ms"
        )
        if rec.get("server_tracebacks"):
            notes.append(f"server tracebacks: {len(rec['server_tracebacks'])} (in the raw record)")
        L.append(f"- **{rec['server']}**: " + "; ".join(notes) + ".")
    L.append("")
    return L
