"""latest.md sections of the connection-storm parts (bench/storm.py): storm and failover."""

from __future__ import annotations

from typing import Any

from bench.report import ORDER, f

RETRY_RULES = (
    "The generator honours the server's retry signal (close 1013 whose reason carries "
    "`retry_after=<s>`, or HTTP 503 with `Retry-After`: that wait plus 0–20 % jitter); "
    "on any other failure it backs off exponentially (250 ms doubling to 5 s, uniform in "
    "[d/2, d]); at most 5 tries a socket, none after the deadline."
)


def _codes(x: dict | None) -> str:
    return ", ".join(f"{k}×{v}" for k, v in sorted((x or {}).items())) or "–"


def _ms(s: dict | None) -> str:
    s = s or {}
    return " / ".join(f(s.get(k)) for k in ("p50", "p95", "p99", "max"))


def _notes(r: dict) -> str:
    notes = []
    if r.get("skipped"):
        notes.append(f"skipped: {r['skipped']}")
    if r.get("error"):
        notes.append(str(r["error"])[:160])
    if r.get("errors"):
        notes.append(f"errors {_codes(r['errors'])}")
    if r.get("leadersFirst"):
        notes.append("first socket of each doc synced before the others")
    if r.get("closedAfterSync"):
        notes.append(f"{r['closedAfterSync']} closed after sync")
    if r.get("server_alive_after") is False or r.get("survivor_alive_after") is False:
        notes.append("**server died**")
    if r.get("server_log_problems"):
        notes.append(f"server log: {len(r['server_log_problems'])} error lines")
    return "; ".join(notes)


def storm_section(runs: list[dict], plan: dict) -> list[str]:
    if not runs:
        return []
    n = (plan.get("docs") or 0) * (plan.get("per_doc") or 0)
    L = [
        "## Connection storm",
        "",
        f"{f(n)} sockets over {f(plan.get('docs'))} fresh docs ({f(plan.get('per_doc'))} per "
        f"doc, the docs spread over the demo school's 10 groups) opened at once on one fresh "
        f"server, {f(plan.get('concurrency'))} handshakes in flight from "
        f"{f(plan.get('processes'))} generator processes (`bench/loadgen/storm.mjs`). Each "
        "socket does the real handshake and counts as synced when the server's sync step 2 "
        "arrives. connects/s = synced sockets ÷ (last synced − first connect); time to synced "
        "per socket from its first open (backoff and retries included); last attempt: the "
        "successful handshake alone. " + RETRY_RULES + " Server CPU (% of one core) and RSS "
        "over the storm, from `/proc`, and server CPU per synced socket (CPU time ÷ synced: "
        "steadier than connects/s when the machine is shared); generator CPU summed over its "
        "processes; other CPU: everything else on the machine meanwhile (a shared machine: "
        "read it first). `relay` and `relay-python` are floors, not servers: the trivial "
        "relay (no document, no token) on Node and on Atelier's own Python stack, the least "
        "a socket costs on each (bench/README.md).",
        "",
        "| server | synced | connects/s | to synced p50 / p95 / p99 / max ms | last attempt "
        "p99 ms | failed | retries (sockets) | retry signals honoured | closes | HTTP statuses "
        "| server CPU % | CPU ms per connect | server RSS MiB | generator CPU % | other CPU % "
        "| notes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in sorted(runs, key=lambda x: _order(x.get("server"))):
        srv: dict[str, Any] = next(iter((r.get("servers") or {}).values()), {})
        ra = r.get("retryAfterHonoured") or {}
        flag = "" if r.get("ok") else " ⚠"
        L.append(
            f"| {r.get('server')}{flag} | {f(r.get('synced'))} / {f(r.get('total'))} | "
            f"{f(r.get('connectsPerSec'))} | {_ms(r.get('syncMs'))} | "
            f"{f((r.get('attemptMs') or {}).get('p99'))} | {f(r.get('failed'))} | "
            f"{f(r.get('retries'))} ({f(r.get('retriedSockets'))}) | "
            f"{f(ra.get('close1013'))} × 1013, {f(ra.get('http503'))} × 503 | "
            f"{_codes(r.get('closes'))} | {_codes(r.get('statuses'))} | "
            f"{f(srv.get('cpu_pct'))} | {f(srv.get('cpu_ms_per_connect'), 2)} | "
            f"{f(srv.get('rss_mib_max'))} | "
            f"{f((r.get('generator') or {}).get('cpuPct'))} | {f(r.get('other_cpu_pct'))} | "
            f"{_notes(r)} |"
        )
    L.append("")
    return L


def failover_section(runs: list[dict], plan: dict) -> list[str]:
    if not runs:
        return []
    n = (plan.get("docs") or 0) * (plan.get("per_doc") or 0)
    L = [
        "## Failover: a node of two killed behind nginx",
        "",
        f"Two nodes behind nginx with the project's rules (`deploy/nginx/atelier.conf`: "
        f"consistent hash on the room id, so a room's sockets share a node; a refused connect "
        f"goes to the next node). {f(n)} sockets over {f(plan.get('docs'))} docs of the 10 "
        "groups, all synced; then SIGKILL of the node holding the most sockets (its open "
        "sockets, from `/proc/PID/fd`, minus those it had before the storm). Its clients "
        "see their socket drop and reconnect through "
        "nginx: a first random wait of 0–1 s (a browser's backoff), then the same retry rules. "
        + RETRY_RULES
        + " Kill → all synced: until the last dropped socket is synced again; reconnect: "
        "drop → synced, per socket. Atelier: PostgreSQL + Redis; Hocuspocus: "
        "`@hocuspocus/extension-redis`, no persistence. Survivor CPU (% of one core) and RSS "
        "from the kill to the last resync.",
        "",
        "| servers | sockets per node before | dropped | back | kill → all synced ms | "
        "reconnect p50 / p99 ms | retries (sockets) | failed | closes while reconnecting | "
        "survivor CPU % | survivor RSS MiB | other CPU % | notes |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---|",
    ]
    for r in runs:
        srv: dict[str, Any] = next(iter((r.get("survivors") or {}).values()), {})
        rc = r.get("reconnectMs") or {}
        before = r.get("sockets_per_node_before") or {}
        held = ", ".join(
            f"{k}{' (killed)' if k == r.get('victim') else ''}: {f(v)}" for k, v in before.items()
        )
        flag = "" if r.get("ok") or r.get("skipped") else " ⚠"
        nodes = f" ×{r['nodes']}" if r.get("nodes") else ""
        L.append(
            f"| {r.get('server')}{nodes}{flag} | {held or '–'} | {f(r.get('drops'))} | "
            f"{f(r.get('resynced'))} | {f(r.get('killToAllSyncedMs'))} | "
            f"{f(rc.get('p50'))} / {f(rc.get('p99'))} | {f(r.get('retries'))} "
            f"({f(r.get('retriedSockets'))}) | {f(r.get('failed'))} | "
            f"{_codes(r.get('closes'))} | {f(srv.get('cpu_pct'))} | "
            f"{f(srv.get('rss_mib_max'))} | {f(r.get('other_cpu_pct'))} | {_notes(r)} |"
        )
    L.append("")
    storms = [(r.get("server"), r.get("storm") or {}) for r in runs if r.get("storm")]
    if storms:
        L.append(
            "Before the kill, through nginx: "
            + "; ".join(
                f"{s}: {f(x.get('synced'))} / {f(x.get('total'))} synced at "
                f"{f(x.get('connectsPerSec'))} connects/s (p99 {f((x.get('syncMs') or {}).get('p99'))} ms, "  # noqa: E501
                f"{f(x.get('retries'))} retries, closes {_codes(x.get('closes'))})"
                for s, x in storms
            )
            + "."
        )
        L.append("")
    return L


def _order(server: str | None) -> int:
    return ORDER.index(server) if server in ORDER else len(ORDER)
