"""The peers Atelier is measured against, installed by the bench itself into bench/peers/.

- ``bench/peers/node``: npm ``@hocuspocus/server`` 3.x (+ ``extension-sqlite``,
  ``extension-redis``) and ``y-websocket@1.5.x`` (its ``bin/server.js`` is the reference
  server), from ``bench/peers_src/package.json``;
- ``bench/peers/pycrdt``: a venv with PyPI ``pycrdt-websocket`` + uvicorn, from
  ``bench/peers_src/requirements-pycrdt.txt``.

Both installs are idempotent: a stamp file holds the hash of the manifest they came from.

    python -m bench.peers            # install (or check) and print the versions

Each ``*_target`` context manager starts the server(s) on free ports and yields
``(urls, pids, info)`` like ``bench.run_load``'s targets; ``info["loadgen"]`` holds the
load-generator options that target needs (the Hocuspocus protocol).
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "bench" / "peers_src"
PEERS = ROOT / "bench" / "peers"
NODE_DIR = PEERS / "node"
PY_VENV = PEERS / "pycrdt"
PY_BIN = PY_VENV / "bin" / "python"


def log(msg: str) -> None:
    print(f"[peers] {msg}", file=sys.stderr, flush=True)


def _hash(*paths: Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def install() -> None:
    """Install (or check) every peer; fast when nothing changed."""
    PEERS.mkdir(parents=True, exist_ok=True)
    NODE_DIR.mkdir(exist_ok=True)
    manifest = SRC / "package.json"
    stamp = NODE_DIR / ".installed"
    want = _hash(manifest)
    if not (stamp.exists() and stamp.read_text() == want):
        shutil.copy(manifest, NODE_DIR / "package.json")
        log("npm install in bench/peers/node (Hocuspocus' sqlite3 may build from source: ~3 min)")
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=NODE_DIR,
            check=True,
        )
        stamp.write_text(want)
    reqs = SRC / "requirements-pycrdt.txt"
    stamp = PY_VENV / ".installed"
    want = _hash(reqs)
    if not (stamp.exists() and stamp.read_text() == want):
        log("venv + pip install pycrdt-websocket in bench/peers/pycrdt")
        if not PY_BIN.exists():
            subprocess.run([sys.executable, "-m", "venv", str(PY_VENV)], check=True)
        subprocess.run(
            [str(PY_BIN), "-m", "pip", "install", "--quiet", "-r", str(reqs)], check=True
        )
        stamp.write_text(want)


def versions() -> dict[str, str]:
    out: dict[str, str] = {}
    for pkg in (
        "@hocuspocus/server",
        "@hocuspocus/extension-redis",
        "@hocuspocus/extension-sqlite",
        "y-websocket",
        "yjs",
        "ws",
        "ioredis",
        "sqlite3",
    ):
        with suppress(OSError, ValueError, KeyError):
            meta = json.loads((NODE_DIR / "node_modules" / pkg / "package.json").read_text())
            out[f"peers/{pkg}"] = meta["version"]
    with suppress(Exception):
        text = subprocess.run(
            [str(PY_BIN), "-m", "pip", "list", "--format=json"],
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        for d in json.loads(text):
            if d["name"].lower() in {
                "pycrdt",
                "pycrdt-websocket",
                "uvicorn",
                "websockets",
                "anyio",
            }:
                out[f"peers/py/{d['name'].lower()}"] = d["version"]
    return out


# ------------------------------------------------------------------ process helpers
def raise_nofile() -> None:
    """Soft RLIMIT_NOFILE up to the hard limit (this process; children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"peer exited early with {proc.returncode}")
        with suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"peer did not listen on {port}")


def spawn(cmd: list[str], cwd: Path, env: dict[str, str], log_path: Path) -> subprocess.Popen:
    with open(log_path, "wb") as out:
        return subprocess.Popen(
            cmd,
            cwd=cwd,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=raise_nofile,  # the server side needs the fds too
        )


def stop_all(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


def log_problems(folder: Path) -> list[str]:
    """Distinct error lines of the peers' logs (exception names and messages)."""
    out: list[str] = []
    for f in sorted(folder.glob("*.log")):
        for ln in f.read_text(errors="replace").splitlines():
            text = ln.strip(" |+")
            if "Traceback" in text or not ("Error" in text or "Exception" in text):
                continue
            item = f"{f.name}: {text[:200]}"
            if item not in out:
                out.append(item)
    return out[:12]


# ------------------------------------------------------------------ targets
@contextmanager
def hocuspocus_target(
    nodes: int = 1, sqlite: bool = True, redis_url: str | None = None, prefix: str = ""
) -> Iterator[tuple[list[str], dict[str, int], dict]]:
    """1 node with SQLite persistence, or N nodes on Redis (no persistence)."""
    folder = Path(tempfile.mkdtemp(prefix="bench-hocuspocus-"))
    procs: list[subprocess.Popen] = []
    urls = []
    info: dict = {
        "kind": "hocuspocus",
        "nodes": nodes,
        "persistence": "sqlite (extension-sqlite)" if sqlite and nodes == 1 else "none",
        "loadgen": {"protocol": "hocuspocus"},
    }
    try:
        for i in range(nodes):
            port = free_port()
            env = {"PORT": str(port), "PEERS_NODE_DIR": str(NODE_DIR)}
            if sqlite and nodes == 1:
                env["SQLITE_PATH"] = str(folder / "hocuspocus.sqlite")
            if nodes > 1:
                assert redis_url
                env.update(REDIS_URL=redis_url, REDIS_PREFIX=prefix, NODE_ID=f"hp{i}")
                info.update(redis=redis_url, redis_prefix=prefix)
            p = spawn(["node", str(SRC / "hocuspocus.mjs")], NODE_DIR, env, folder / f"hp{i}.log")
            procs.append(p)
            wait_port(port, p)
            urls.append(f"ws://127.0.0.1:{port}")
        yield urls, {f"hp{i}": p.pid for i, p in enumerate(procs)}, info
    finally:
        stop_all(procs)
        info["server_log_problems"] = log_problems(folder)
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def ywebsocket_target() -> Iterator[tuple[list[str], dict[str, int], dict]]:
    """y-websocket 1.5.x ``bin/server.js``, as documented (HOST/PORT; no persistence)."""
    folder = Path(tempfile.mkdtemp(prefix="bench-yws-"))
    port = free_port()
    p = spawn(
        ["node", str(NODE_DIR / "node_modules" / "y-websocket" / "bin" / "server.js")],
        NODE_DIR,
        {"HOST": "127.0.0.1", "PORT": str(port)},
        folder / "yws.log",
    )
    info: dict = {"kind": "y-websocket", "nodes": 1, "persistence": "none (in memory)"}
    try:
        wait_port(port, p)
        yield [f"ws://127.0.0.1:{port}"], {"yws": p.pid}, info
    finally:
        stop_all([p])
        info["server_log_problems"] = log_problems(folder)
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def pycrdt_target() -> Iterator[tuple[list[str], dict[str, int], dict]]:
    """pycrdt-websocket's ASGIServer under uvicorn (no YStore: in memory)."""
    folder = Path(tempfile.mkdtemp(prefix="bench-pycrdt-"))
    port = free_port()
    p = spawn(
        [str(PY_BIN), str(SRC / "pycrdt_ws.py")],
        folder,
        {"HOST": "127.0.0.1", "PORT": str(port)},
        folder / "pycrdt.log",
    )
    info: dict = {"kind": "pycrdt-websocket", "nodes": 1, "persistence": "none (in memory)"}
    try:
        wait_port(port, p)
        yield [f"ws://127.0.0.1:{port}"], {"pycrdt": p.pid}, info
    finally:
        stop_all([p])
        info["server_log_problems"] = log_problems(folder)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    install()
    print(json.dumps(versions(), indent=1))
