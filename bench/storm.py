"""Connection storms (issue 15): many sockets at once, and a node killed behind nginx.

``storm``: on each one-node server of the suite (a fresh one each), ``loadgen/storm.mjs``
opens 10,000 sockets over 500 docs (20 per doc, the docs spread over the demo school's
10 groups, fresh names per run) with 1,000 handshakes in flight from 2 generator
processes. Measured: connects/s (synced sockets ÷ first connect → last synced), time
from socket open to synced (per socket, retries included; and of the last attempt),
failed and retried connects, close codes and HTTP statuses seen, server CPU and RSS
over the storm (``/proc``), generator CPU.

``failover``: two nodes behind nginx with the project's rules (deploy/nginx/atelier.conf,
rendered by tests/support/nginx.py; consistent hash on the room id), 6,000 sockets over
300 docs, all synced; then SIGKILL of the node holding the most sockets. Its clients see
their socket drop and reconnect through nginx to the survivor (a first random wait of
0–1 s, then the generator's retry rules). Measured: sockets dropped, kill → all synced
again, per-socket reconnect time, retried and failed connects, the survivor's CPU and
RSS. Atelier (PostgreSQL + Redis) and Hocuspocus (extension-redis). Skipped, with the
reason in the record, when nginx is not installed.

The generator honours the server's retry signal (close 1013 with ``retry_after=<s>`` in
the reason; HTTP 503 with ``Retry-After``): see storm.mjs. Everything is bounded: the
generator's own deadline (it prints ``{ok: false}``), and the driver's timeouts.

    python -m bench.storm                       # storm on atelier and y-websocket
    python -m bench.storm --servers atelier --sockets 2000
    python -m bench.storm --failover            # the failover part only
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from bench import peers
from bench.run_load import (
    LOADGEN_DIR,
    RAW_DIR,
    REDIS_SERVER,
    ROOT,
    Sampler,
    _descendants,
    atelier_target,
    ensure_loadgen,
    running,
)
from bench.scenarios import GROUPS

#: Beside the servers, the storm runs the trivial relay on Node and on Atelier's Python
#: stack (``bench/relay_py.py``): the least a socket costs on each.
STORM_FLOORS = ["relay", "relay-python"]

#: nginx's connections per worker: each proxied socket holds two (client and upstream).
NGINX_WORKER_CONNECTIONS = 16384


def log(msg: str) -> None:
    print(f"[storm] {msg}", file=sys.stderr, flush=True)


def storm_rooms(n_docs: int, tag: str) -> list[str]:
    """``n_docs`` fresh docs spread over the demo school's 10 groups (as idle_rooms)."""
    return [f"{GROUPS[k % len(GROUPS)][0]}/{tag}-{k // len(GROUPS)}" for k in range(n_docs)]


def group_tokens(sign: Any) -> dict[str, list[str]]:
    """Per group: the class teacher's token, then its six students' (all may read it)."""
    return {g[0]: [sign(g[1])] + [sign(s) for s in g[2]] for g in GROUPS}


def run_generator(cfg: dict, pids: dict[str, int]) -> dict:
    """storm.mjs in storm mode; the servers' CPU/RSS over [first connect, last synced]."""
    sampler = Sampler(pids, period=0.25)
    sampler.start()
    t0 = time.time()
    try:
        proc = subprocess.run(
            ["node", "storm.mjs", json.dumps(cfg)],
            cwd=LOADGEN_DIR,
            capture_output=True,
            text=True,
            timeout=cfg["deadlineMs"] / 1000 + 15,
            preexec_fn=peers.raise_nofile,
        )
        out, err = proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        out, err = "", f"driver timeout: {exc}"
    finally:
        sampler.stop()
    if err:
        sys.stderr.write(err if err.endswith("\n") else err + "\n")
    try:
        r: dict = json.loads(out.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        r = {"ok": False, "error": f"generator printed no result: {err.strip()[-300:]}"}
    if r.get("firstStart") and r.get("lastSynced"):
        start, end = r["firstStart"] / 1000, r["lastSynced"] / 1000
        r["servers"] = {n: sampler.window(n, start, end) for n in pids}
        # CPU per synced socket: steadier than connects/s on a shared, noisy machine
        for v in r["servers"].values():
            if v.get("cpu_pct") is not None and r.get("synced"):
                v["cpu_ms_per_connect"] = round(
                    v["cpu_pct"] / 100 * (end - start) * 1000 / r["synced"], 3
                )
        r["machine_busy_pct"] = busy = sampler.machine_busy_pct(start, end)
        # CPU (% of one core) of everything else: a noisy neighbour slows every handshake
        if busy is not None:
            ours = sum(v["cpu_pct"] or 0 for v in r["servers"].values())
            ours += (r.get("generator") or {}).get("cpuPct") or 0
            r["other_cpu_pct"] = round(busy * (os.cpu_count() or 1) - ours, 1)
    for n in pids:
        peak = max((x[2] for x in sampler.samples[n]), default=0)
        r.setdefault("servers", {}).setdefault(n, {})["rss_mib_peak_run"] = round(peak / 2**20, 1)
    r["wall_s"] = round(time.time() - t0, 1)
    return r


# ------------------------------------------------------------------ storm (1 node each)
def run_storm(P: dict, out: dict, servers: list[str] | None = None) -> None:
    from bench.suite import SERVERS_1N, _target

    out["storm"] = res = []
    S = P["storm"]
    for server in servers or [*SERVERS_1N, *STORM_FLOORS]:
        tag = f"st{uuid.uuid4().hex[:6]}"
        with _target(server) as (urls, pids, info, sign):
            cfg = {
                "url": urls[0],
                "rooms": storm_rooms(S["docs"], tag),
                "perRoom": S["per_doc"],
                "tokens": group_tokens(sign) if server in ("atelier", "atelier-hocuspocus") else {},
                "mode": "storm",
                "concurrency": S["concurrency"],
                "processes": S["processes"],
                "deadlineMs": S["deadline_s"] * 1000,
                # pycrdt-websocket 0.16 loses handshakes when many create one room at once
                "leadersFirst": server == "pycrdt-websocket",
                **(info.get("loadgen") or {}),
            }
            time.sleep(0.5)
            r = run_generator(cfg, pids)
            r["server"] = server
            r["leadersFirst"] = cfg["leadersFirst"]
            r["server_alive_after"] = all(running(p) for p in pids.values())
            res.append(r)
            log(f"storm {server}: {summary(r)}")
        r["server_log_problems"] = info.get("server_log_problems", [])


def summary(r: dict) -> str:
    s = r.get("syncMs") or {}
    srv = next(iter((r.get("servers") or {}).values()), {})
    return (
        f"ok={r.get('ok')} {r.get('synced')}/{r.get('total')} synced, "
        f"{r.get('connectsPerSec')} connects/s, synced p50/p95/p99/max "
        f"{s.get('p50')}/{s.get('p95')}/{s.get('p99')}/{s.get('max')} ms, failed "
        f"{r.get('failed')}, retries {r.get('retries')} ({r.get('retriedSockets')} sockets), "
        f"closes {r.get('closes')}, statuses {r.get('statuses')}, errors {r.get('errors')}, "
        f"server CPU {srv.get('cpu_pct')}% ({srv.get('cpu_ms_per_connect')} ms/connect) "
        f"RSS {srv.get('rss_mib_max')} MiB, "
        f"gen CPU {(r.get('generator') or {}).get('cpuPct')}% {r.get('error') or ''}"
    )


# ------------------------------------------------------------------ nginx in front
@contextmanager
def nginx_front(ports: list[int]) -> Iterator[str]:
    """nginx with the project's rules in front of loopback ``ports``; yields its ws:// URL.

    tests/support/nginx.py renders the configuration (the site file untouched); only the
    main file's ``worker_connections`` is raised (thousands of sockets, two connections
    each) and ``worker_rlimit_nofile`` set to match.
    """
    import shutil
    import socket
    import tempfile

    from tests.support.nginx import nginx_binary, render, upstream_lines
    from tests.support.server import free_port

    binary = nginx_binary()
    assert binary is not None
    prefix = Path(tempfile.mkdtemp(prefix="atelier-bench-nginx-"))
    port = free_port()
    main = render(
        prefix,
        upstream=upstream_lines(("127.0.0.1", p) for p in ports),
        listen=f"127.0.0.1:{port}",
    )
    text = main.read_text()
    assert "worker_connections 1024;" in text
    main.write_text(
        text.replace(
            "worker_connections 1024;", f"worker_connections {NGINX_WORKER_CONNECTIONS};"
        ).replace(
            "worker_processes 1;\n",
            f"worker_processes 1;\nworker_rlimit_nofile {NGINX_WORKER_CONNECTIONS + 1024};\n",
        )
    )
    with open(prefix / "access.log", "ab") as o, open(prefix / "error.log", "ab") as e:
        proc = subprocess.Popen(
            [binary, "-e", "stderr", "-p", f"{prefix}/", "-c", str(main)],
            stdout=o,
            stderr=e,
            stdin=subprocess.DEVNULL,
            preexec_fn=peers.raise_nofile,
        )
    try:
        deadline = time.monotonic() + 10
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"nginx exited: {(prefix / 'error.log').read_text()[-500:]}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("nginx did not start") from None
                time.sleep(0.05)
        yield f"ws://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        shutil.rmtree(prefix, ignore_errors=True)


def socket_fds(pid: int) -> int:
    """Open sockets of a process and its children (/proc/PID/fd → socket:[…])."""
    n = 0
    for p in _descendants(pid):
        with suppress(OSError):
            for fd in os.listdir(f"/proc/{p}/fd"):
                with suppress(OSError):
                    if os.readlink(f"/proc/{p}/fd/{fd}").startswith("socket:"):
                        n += 1
    return n


def _readline(proc: subprocess.Popen, timeout: float) -> str | None:
    from bench.suite import _readline as readline

    return readline(proc, timeout)


def failover_once(
    server: str, urls: list[str], pids: dict[str, int], sign: Any, S: dict, loadgen: dict
) -> dict:
    """Storm through nginx, SIGKILL the busiest node, wait for its clients to come back."""
    ports = [int(u.rsplit(":", 1)[1]) for u in urls]
    record: dict[str, Any] = {"server": server, "nodes": len(urls)}
    with nginx_front(ports) as lb:
        cfg = {
            "url": lb,
            "rooms": storm_rooms(S["docs"], f"fo{uuid.uuid4().hex[:6]}"),
            "perRoom": S["per_doc"],
            "tokens": group_tokens(sign) if server == "atelier" else {},
            "mode": "failover",
            "concurrency": S["concurrency"],
            "processes": S["processes"],
            "initialJitterMs": 1000,
            "deadlineMs": S["deadline_s"] * 1000,
            **loadgen,
        }
        base = {n: socket_fds(pid) for n, pid in pids.items()}  # listeners, DB, Redis
        sampler = Sampler(pids, period=0.25)
        sampler.start()
        proc = subprocess.Popen(
            ["node", "storm.mjs", json.dumps(cfg)],
            cwd=LOADGEN_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=peers.raise_nofile,
        )
        t_end = time.monotonic() + S["deadline_s"] + 15
        try:
            line = _readline(proc, t_end - time.monotonic())
            first = json.loads(line) if line else {"ok": False, "error": "no synced line"}
            record["storm"] = first.get("storm", first)
            if first.get("phase") != "synced" or not first.get("ok"):
                record.update(ok=False, error=first.get("error") or "not all synced")
                return record
            time.sleep(1.0)  # settle: the last syncs' frames, nginx's logs
            held = {n: socket_fds(pid) - base[n] for n, pid in pids.items()}
            victim = max(held, key=lambda n: held[n])
            record["sockets_per_node_before"] = held
            record["victim"] = victim
            survivors = {n: pid for n, pid in pids.items() if n != victim}
            kill_at = time.time()
            for p in reversed(_descendants(pids[victim])):
                with suppress(ProcessLookupError):
                    os.kill(p, signal.SIGKILL)
            proc.stdin.write(f"killed {kill_at * 1000:.1f}\n")  # type: ignore[union-attr]
            proc.stdin.flush()  # type: ignore[union-attr]
            line = _readline(proc, t_end - time.monotonic())
            r = json.loads(line) if line else {"ok": False, "error": "no result (timeout)"}
            storm = record.pop("storm")
            record.update(r)
            record["storm"] = storm
            end = (r.get("lastResync") or time.time() * 1000) / 1000
            record["survivors"] = {n: sampler.window(n, kill_at, end) for n in survivors}
            busy = sampler.machine_busy_pct(kill_at, end)
            if busy is not None:
                ours = sum(v["cpu_pct"] or 0 for v in record["survivors"].values())
                ours += (r.get("generator") or {}).get("cpuPct") or 0
                record["other_cpu_pct"] = round(busy * (os.cpu_count() or 1) - ours, 1)
            record["survivors_after"] = {
                n: socket_fds(pid) - base[n] for n, pid in survivors.items()
            }
            record["survivor_alive_after"] = all(running(p) for p in survivors.values())
        finally:
            sampler.stop()
            with suppress(Exception):
                proc.kill()
                proc.wait(5)
    for n in pids:
        peak = max((x[2] for x in sampler.samples[n]), default=0)
        record.setdefault("rss_mib_peak_run", {})[n] = round(peak / 2**20, 1)
    return record


def run_failover(P: dict, out: dict) -> None:
    from tests.support.nginx import nginx_binary

    out["failover"] = res = []
    S = P["failover"]
    if nginx_binary() is None:
        res.append({"server": "all", "skipped": "nginx is not installed (command -v nginx)"})
        log("failover skipped: nginx is not installed")
        return
    for server in ("atelier", "hocuspocus"):
        prefix = f"bench-{uuid.uuid4().hex[:8]}:"
        info: dict = {}
        try:
            if server == "atelier":
                ctx = atelier_target(2, {"ATELIER_REDIS_PREFIX": prefix, "_REDIS_DB": "9"}, False)
            else:
                ctx = peers.hocuspocus_target(
                    2, sqlite=False, redis_url=REDIS_SERVER, prefix=prefix.rstrip(":")
                )
            with ctx as (urls, pids, info):
                servers = info.pop("_servers", None)
                sign = servers[0].token if servers else (lambda user: "")
                r = failover_once(server, urls, pids, sign, S, info.get("loadgen") or {})
        except Exception as exc:  # one broken server must not lose the other
            r = {"server": server, "ok": False, "error": repr(exc)}
        r["server_log_problems"] = info.get("server_log_problems", [])
        log(f"failover {server}: {failover_summary(r)}")
        res.append(r)


def failover_summary(r: dict) -> str:
    rc = r.get("reconnectMs") or {}
    srv = next(iter((r.get("survivors") or {}).values()), {})
    return (
        f"ok={r.get('ok')} before {r.get('sockets_per_node_before')}, killed {r.get('victim')}: "
        f"{r.get('drops')} dropped, {r.get('resynced')} back, kill → all synced "
        f"{r.get('killToAllSyncedMs')} ms, reconnect p50/p99 {rc.get('p50')}/{rc.get('p99')} ms, "
        f"retries {r.get('retries')} ({r.get('retriedSockets')} sockets), failed "
        f"{r.get('failed')}, survivor CPU {srv.get('cpu_pct')}% RSS {srv.get('rss_mib_max')} MiB"
        f"{' ' + str(r.get('error')) if r.get('error') else ''}"
    )


# ------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--servers", default="atelier,y-websocket", help="storm: comma list")
    ap.add_argument("--sockets", type=int, default=10000)
    ap.add_argument("--per-doc", type=int, default=20)
    ap.add_argument("--concurrency", type=int, default=1000)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--failover", action="store_true", help="run the failover part instead")
    args = ap.parse_args(argv)
    from bench.suite import plan

    peers.raise_nofile()
    ensure_loadgen()
    P = plan(False)
    P["storm"].update(
        docs=-(-args.sockets // args.per_doc),
        per_doc=args.per_doc,
        concurrency=args.concurrency,
        processes=args.processes,
    )
    out: dict[str, Any] = {"started": time.strftime("%Y-%m-%dT%H:%M:%S"), "plan": P}
    if args.failover:
        run_failover(P, out)
    else:
        run_storm(P, out, args.servers.split(","))
    RAW_DIR.mkdir(parents=True, exist_ok=True)
    path = RAW_DIR / f"storm-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(out, indent=1, default=str))
    log(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
