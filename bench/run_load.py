"""Run a load scenario against Atelier (1..N nodes) or the trivial relay, and record it.

    python -m bench.run_load --scenario classroom                 # 1 node, SQLite
    python -m bench.run_load --scenario cross-node                # 2 nodes, Redis + PostgreSQL
    python -m bench.run_load --scenario classroom --nodes 3 --repeat 2
    python -m bench.run_load --scenario heavy --target relay      # the generator's own ceiling
    python -m bench.run_load --scenario saturation                # the ramp

Each run starts fresh server process(es), runs ``bench/loadgen/loadgen.mjs`` with the
scenario, samples the servers' CPU (``/proc/PID/stat``) and RSS while it runs, writes
the whole record to ``bench/results/raw/`` (git-ignored) and prints a summary line.
Multi-node: a throwaway PostgreSQL database (migrated and seeded once) and a Redis
database number; ``ATELIER_TEST_PG`` / ``ATELIER_BENCH_REDIS`` override the servers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, replace
from pathlib import Path

from bench.peers import raise_nofile
from bench.scenarios import SCENARIOS, Scenario, get, tokens_per_room

ROOT = Path(__file__).resolve().parent.parent
LOADGEN_DIR = ROOT / "bench" / "loadgen"
RAW_DIR = ROOT / "bench" / "results" / "raw"
PG_SERVER = os.environ.get("ATELIER_TEST_PG", "postgresql://postgres@127.0.0.1:5432")
REDIS_SERVER = os.environ.get("ATELIER_BENCH_REDIS", "redis://127.0.0.1:6379")
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def log(msg: str) -> None:
    print(f"[run_load] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ /proc sampling
def _descendants(pid: int) -> list[int]:
    out = [pid]
    i = 0
    while i < len(out):
        p = out[i]
        i += 1
        with suppress(OSError):
            for task in os.listdir(f"/proc/{p}/task"):
                with suppress(OSError):
                    kids = Path(f"/proc/{p}/task/{task}/children").read_text().split()
                    out.extend(int(k) for k in kids)
    return out


def running(pid: int) -> bool:
    """The process runs (it exists and is not a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2] != "Z"
    except OSError:
        return False


def _cpu_rss(pid: int) -> tuple[float, int]:
    """(user+system CPU seconds, RSS bytes) of pid and its descendants."""
    cpu = 0.0
    rss = 0
    for p in _descendants(pid):
        with suppress(OSError, ValueError, IndexError):
            stat = Path(f"/proc/{p}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            cpu += (int(fields[11]) + int(fields[12])) / CLK_TCK
            rss += int(fields[21]) * PAGE
    return cpu, rss


def _machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    vals = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
    return float(sum(vals) - idle), float(sum(vals))


class Sampler(threading.Thread):
    """Samples (epoch s, cpu s, rss bytes) for each pid every ``period`` seconds."""

    def __init__(self, pids: dict[str, int], period: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.pids = pids
        self.period = period
        self.samples: dict[str, list[tuple[float, float, int]]] = {k: [] for k in pids}
        self.machine: list[tuple[float, float, float]] = []
        self._halt = threading.Event()

    def sample(self) -> None:
        t = time.time()
        self.machine.append((t, *_machine_cpu()))
        for name, pid in self.pids.items():
            cpu, rss = _cpu_rss(pid)
            self.samples[name].append((t, cpu, rss))

    def run(self) -> None:
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(self.period)

    def stop(self) -> None:
        self._halt.set()
        self.join()
        self.sample()

    def machine_busy_pct(self, start: float, end: float) -> float | None:
        """Whole-machine CPU busy % (100 = every core busy) between two epoch seconds."""
        inside = [x for x in self.machine if start <= x[0] <= end]
        if len(inside) < 2:
            return None
        (_, b0, t0), (_, b1, t1) = inside[0], inside[-1]
        return round(100 * (b1 - b0) / max(1.0, t1 - t0), 1)

    def window(self, name: str, start: float, end: float) -> dict[str, float | None]:
        """CPU % (of one core) and RSS between two epoch seconds, from the nearest samples."""
        s = self.samples[name]
        inside = [x for x in s if start <= x[0] <= end]
        if len(inside) < 2:
            return {"cpu_pct": None, "rss_mib_max": None, "rss_mib_end": None}
        (t0, c0, _), (t1, c1, _) = inside[0], inside[-1]
        return {
            "cpu_pct": round(100 * (c1 - c0) / (t1 - t0), 1),
            "rss_mib_max": round(max(x[2] for x in inside) / 2**20, 1),
            "rss_mib_end": round(inside[-1][2] / 2**20, 1),
        }


# ------------------------------------------------------------------ targets
def ensure_loadgen() -> None:
    modules = LOADGEN_DIR / "node_modules"
    # every package of package.json: a node_modules from before a new one was added is redone
    if all((modules / pkg).exists() for pkg in ("yjs", "ws", "@msgpack/msgpack")):
        return
    log("npm ci in bench/loadgen")
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=LOADGEN_DIR, check=True)


@contextmanager
def relay_target(
    nodes: int, python: bool = False
) -> Iterator[tuple[list[str], dict[str, int], dict]]:
    """The trivial relay: Node's (``loadgen/relay.mjs``), or the same on Atelier's Python
    stack (``bench/relay_py.py``)."""
    procs = []
    urls = []
    if python:
        command, cwd = [sys.executable, "-m", "bench.relay_py", "--port", "0"], ROOT
    else:
        command, cwd = ["node", "relay.mjs", "--port", "0"], LOADGEN_DIR
    try:
        for _ in range(nodes):
            p = subprocess.Popen(
                command,
                cwd=cwd,
                stdout=subprocess.PIPE,
                text=True,
                preexec_fn=raise_nofile,  # thousands of sockets in a storm
            )
            procs.append(p)
            line = p.stdout.readline()  # type: ignore[union-attr]
            if not line.startswith("listening"):
                raise RuntimeError(f"relay did not start: {line!r}")
            urls.append(f"ws://127.0.0.1:{int(line.split()[1])}")
        yield urls, {f"relay{i}": p.pid for i, p in enumerate(procs)}, {"kind": "relay"}
    finally:
        for p in procs:
            p.terminate()
            with suppress(subprocess.TimeoutExpired):
                p.wait(5)
            if p.stdout is not None:
                p.stdout.close()


def _pg_admin():  # type: ignore[no-untyped-def]
    import psycopg

    last: Exception | None = None
    for dbname in ("postgres", "test"):
        try:
            return psycopg.connect(f"{PG_SERVER}/{dbname}", autocommit=True, connect_timeout=3)
        except psycopg.OperationalError as exc:
            last = exc
    raise last  # type: ignore[misc]


#: What every Atelier node of the bench runs with. The load generator opens thousands of
#: sockets under the demo school's few roster ids (60 students), so the per-user socket
#: limit (64 by default, a real pupil's ceiling) would refuse most of them: it is lifted
#: here, and only here. Every other limit keeps its default.
BENCH_ENV = {"ATELIER_MAX_SOCKETS_PER_USER": "1000000"}


@contextmanager
def atelier_target(
    nodes: int, env: dict[str, str], keep: bool
) -> Iterator[tuple[list[str], dict[str, int], dict]]:
    from tests.support.server import AtelierServer, make_server

    env = {**BENCH_ENV, **env}

    folder = Path(tempfile.mkdtemp(prefix="atelier-bench-"))
    servers: list[AtelierServer] = []
    pg_name: str | None = None
    info: dict = {"kind": "atelier", "nodes": nodes, "data_dir": str(folder)}
    try:
        if nodes == 1:
            servers.append(make_server(folder, **env))
            info["database"] = "sqlite"
        else:
            from psycopg import sql

            pg_name = f"atelier_bench_{uuid.uuid4().hex[:10]}"
            with _pg_admin() as admin:
                admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(pg_name)))
            db_url = PG_SERVER.replace("postgresql", "postgresql+psycopg", 1) + f"/{pg_name}"
            redis_db = int(env.pop("_REDIS_DB", "9"))
            redis_url = f"{REDIS_SERVER}/{redis_db}"
            info.update(database="postgresql", redis=redis_url)
            for i in range(nodes):
                node_dir = folder / f"node{i}"
                node_dir.mkdir()
                s = AtelierServer(
                    data_dir=node_dir,
                    database_url=db_url,
                    extra_env={
                        "ATELIER_REDIS_URL": redis_url,
                        "ATELIER_NODE_ID": f"bench-n{i}",
                        **env,
                    },
                )
                if i == 0:
                    s.prepare()  # migrate + seed once, shared by every node
                servers.append(s)
        for s in servers:
            s.start()
        info["_servers"] = servers  # popped by the caller; the same dict gets the log check
        yield (
            [s.ws_url for s in servers],
            {f"node{i}": s.proc.pid for i, s in enumerate(servers)},  # type: ignore[union-attr]
            info,
        )
    finally:
        for s in servers:
            if s.proc is not None:
                with suppress(Exception):
                    s.stop(timeout=20)
        problems = []
        for s in servers:
            text = s.all_logs() if s.data_dir.exists() else ""
            bad = [ln for ln in text.splitlines() if "Traceback" in ln or " ERROR " in ln]
            problems.extend(bad[:5])
        info["server_log_problems"] = problems
        if pg_name:
            from psycopg import sql

            with suppress(Exception), _pg_admin() as admin:
                admin.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(pg_name)
                    )
                )
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)


# ------------------------------------------------------------------ one loadgen run
def loadgen_config(
    sc: Scenario, urls: list[str], tokens: dict[str, list[str]], rate: float, label: str
) -> dict:
    return {
        "label": label,
        "urls": urls,
        "rooms": sc.paths(),
        "clientsPerRoom": sc.clients_per_room,
        "writersPerRoom": sc.writers_per_room,
        "rate": rate,
        "warmupMs": int(sc.warmup_s * 1000),
        "durationMs": int(sc.duration_s * 1000),
        "drainMs": int(sc.drain_s * 1000),
        "connectTimeoutMs": 20000,
        "processes": sc.processes,
        "tokens": tokens,
        **sc.extra,
    }


def start_py_spy(pids: dict[str, int], seconds: float, tag: str) -> list[subprocess.Popen]:
    """py-spy record (raw folded stacks) of each Atelier node for ``seconds``."""
    exe = Path(sys.executable).with_name("py-spy")
    procs = []
    for name, pid in pids.items():
        out = RAW_DIR / f"pyspy-{tag}-{name}.txt"
        procs.append(
            subprocess.Popen(
                [
                    str(exe),
                    "record",
                    "-p",
                    str(pid),
                    "-o",
                    str(out),
                    "-f",
                    "raw",
                    "-d",
                    str(int(seconds)),
                    "-r",
                    "50",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        log(f"py-spy → {out.relative_to(ROOT)}")
    return procs


def run_loadgen(cfg: dict, pids: dict[str, int], py_spy: float = 0) -> dict:
    timeout = (
        cfg["connectTimeoutMs"] + cfg["warmupMs"] + cfg["durationMs"] + cfg["drainMs"]
    ) / 1000 + 30
    sampler = Sampler(pids)
    sampler.start()
    t_start = time.time()
    spies = start_py_spy(pids, py_spy, cfg["label"].replace("/", "_")) if py_spy else []
    load0 = os.getloadavg()
    try:
        proc = subprocess.run(
            ["node", "loadgen.mjs", json.dumps(cfg)],
            cwd=LOADGEN_DIR,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    finally:
        sampler.stop()
        for sp in spies:
            with suppress(subprocess.TimeoutExpired):
                sp.wait(30)
    if proc.stderr:
        sys.stderr.write(proc.stderr)
    try:
        result = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        raise RuntimeError(f"loadgen printed no result (rc {proc.returncode})") from None
    win = result.get("window")
    servers = {}
    if win:
        start, end = win["warmupEnd"] / 1000, win["sendEnd"] / 1000
        servers = {name: sampler.window(name, start, end) for name in pids}
        result["machine_busy_pct"] = busy = sampler.machine_busy_pct(start, end)
        # CPU (% of one core) used by everything else on the machine during the window:
        # a noisy neighbour explains a latency tail that neither side's CPU does
        if busy is not None:
            ours = sum(v["cpu_pct"] or 0 for v in servers.values())
            ours += (result.get("generator") or {}).get("cpuWindowPct") or 0
            result["other_cpu_pct"] = round(busy * (os.cpu_count() or 1) - ours, 1)
    for name in pids:
        samples = sampler.samples[name]
        peak = max((x[2] for x in samples), default=0)
        servers.setdefault(name, {})["rss_mib_peak_run"] = round(peak / 2**20, 1)
    result["servers"] = servers
    result["server_cpu_pct_total"] = (
        round(sum(v["cpu_pct"] or 0 for v in servers.values()), 1) if servers else None
    )
    result["loadavg_before"] = load0
    result["wall_s"] = round(time.time() - t_start, 1)
    return result


def summary_line(name: str, target: str, r: dict) -> str:
    lat = r.get("latencyMs") or {}
    gen = r.get("generator") or {}
    extra = ""
    if "latencyCrossNodeMs" in r:
        x = r["latencyCrossNodeMs"]
        extra = f" cross p50/p99 {x['p50']}/{x['p99']} ms"
    return (
        f"{name} [{target}] ok={r.get('ok')} p50 {lat.get('p50')} p95 {lat.get('p95')} "
        f"p99 {lat.get('p99')} max {lat.get('max')} ms{extra} | "
        f"{r.get('framesPerSec')} frames/s ({r.get('updateFramesPerSec')} updates) | "
        f"missing {r.get('missing')} | connect {r.get('connect', {}).get('perSecond')}/s | "
        f"server CPU {r.get('server_cpu_pct_total')}% | gen CPU {gen.get('cpuWindowPct')}% "
        f"(loop p99 {gen.get('loopDelayP99Ms')} ms) | machine busy {r.get('machine_busy_pct')}% "
        f"of {os.cpu_count()} cores, others {r.get('other_cpu_pct')}% | errors {r.get('errors')} "
        f"closes {r.get('closes')}"
    )


def versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "machine": platform.machine()}
    with suppress(Exception):
        out["node"] = subprocess.run(
            ["node", "--version"], capture_output=True, text=True
        ).stdout.strip()
    with suppress(Exception):
        out["cpus"] = str(os.cpu_count())
        out["cpu_model"] = next(
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        )
    with suppress(Exception):
        lock = json.loads((LOADGEN_DIR / "package-lock.json").read_text())
        for dep in ("yjs", "ws"):
            out[dep] = lock["packages"][f"node_modules/{dep}"]["version"]
    return out


def run_scenario(
    sc: Scenario, target: str, keep: bool, env: dict[str, str], py_spy: float = 0
) -> dict:
    ctx = relay_target(sc.nodes) if target == "relay" else atelier_target(sc.nodes, env, keep)
    record: dict = {
        "scenario": asdict(sc),
        "target": target,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "versions": versions(),
    }
    with ctx as (urls, pids, info):
        servers = info.pop("_servers", [])
        if target == "relay":
            sign = lambda user: ""  # noqa: E731
        else:
            sign = servers[0].token
        tokens = tokens_per_room(sc, sign)
        rates = sc.ramp or (sc.rate,)
        steps = []
        for rate in rates:
            label = f"{sc.name}@{rate}/s"
            log(
                f"{label}: {sc.clients} clients, offered {sc.offered(rate):.0f} updates/s, "
                f"fan-out {sc.fanout(rate):.0f} frames/s, {len(urls)} {target} node(s)"
            )
            r = run_loadgen(
                loadgen_config(sc, urls, tokens, rate, label),
                pids,
                py_spy if target == "atelier" else 0,
            )
            r["rate"] = rate
            r["offered"] = sc.offered(rate)
            steps.append(r)
            print(summary_line(label, target, r), flush=True)
            if sc.ramp:
                p99 = (r.get("latencyMs") or {}).get("p99")
                if r.get("missing") or p99 is None or p99 > sc.ramp_p99_ms or not r.get("ok"):
                    break
        record["target_info"] = info
    record["steps"] = steps
    if sc.ramp:
        held = [
            s
            for s in steps
            if s.get("ok") and (s.get("latencyMs") or {}).get("p99", 1e9) <= sc.ramp_p99_ms
        ]
        record["saturation"] = {
            "score_updates_per_s": max((s["offered"] for s in held), default=0),
            "score_frames_per_s": max((s["framesPerSec"] for s in held), default=0),
            "p99_limit_ms": sc.ramp_p99_ms,
        }
        print(f"{sc.name} [{target}] score: {record['saturation']}", flush=True)
    if info.get("server_log_problems"):
        log(f"server log problems: {info['server_log_problems']}")
    return record


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--scenario", required=True, choices=sorted(SCENARIOS))
    ap.add_argument("--target", choices=["atelier", "relay"], default="atelier")
    ap.add_argument("--nodes", type=int, help="override the scenario's node count")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--processes", type=int, help="load generator worker processes")
    ap.add_argument("--duration", type=float, help="measured seconds (after warm-up)")
    ap.add_argument("--rate", type=float, help="override updates/s per writer")
    ap.add_argument(
        "--receiver-mode",
        choices=["apply", "decode"],
        help="apply: every client keeps a Y.Doc (default); decode: readers only decode (cheaper)",
    )
    ap.add_argument("--redis-db", type=int, default=9, help="Redis db number (multi-node)")
    ap.add_argument(
        "--py-spy",
        type=float,
        default=0,
        metavar="SECONDS",
        help="py-spy record each node for SECONDS from the start of each run (raw folded)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the servers' data folder")
    ap.add_argument(
        "--env", action="append", default=[], metavar="K=V", help="extra server env (repeatable)"
    )
    args = ap.parse_args(argv)
    sc = get(
        args.scenario,
        nodes=args.nodes,
        processes=args.processes,
        duration_s=args.duration,
        rate=args.rate,
    )
    if args.receiver_mode:
        sc = replace(sc, extra={**sc.extra, "receiverMode": args.receiver_mode})
    env = dict(kv.split("=", 1) for kv in args.env)
    env["_REDIS_DB"] = str(args.redis_db)
    if sc.nodes == 1 or args.target == "relay":
        env.pop("_REDIS_DB")
    ensure_loadgen()
    RAW_DIR.mkdir(parents=True, exist_ok=True)
    records = []
    for rep in range(args.repeat):
        rec = run_scenario(sc, args.target, args.keep, dict(env), args.py_spy)
        rec["repeat"] = rep
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = RAW_DIR / f"{sc.name}-{args.target}-{sc.nodes}n-{stamp}-r{rep}.json"
        path.write_text(json.dumps(rec, indent=1))
        log(f"wrote {path.relative_to(ROOT)}")
        records.append(rec)
    if args.repeat > 1 and not sc.ramp:
        p99s = [r["steps"][0]["latencyMs"]["p99"] for r in records]
        p99s = [p for p in p99s if p is not None]
        fps = [r["steps"][0]["framesPerSec"] for r in records]
        missing = [r["steps"][0]["missing"] for r in records]
        med_p99 = statistics.median(p99s) if p99s else None
        print(
            f"{sc.name} [{args.target}] median of {args.repeat}: p99 {med_p99} ms, "
            f"{statistics.median(fps)} frames/s, missing {missing}",
            flush=True,
        )
    return 0 if all(s.get("ok") for r in records for s in r["steps"][:1]) else 1


if __name__ == "__main__":
    sys.exit(main())
