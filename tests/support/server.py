"""A real Atelier server process on a free port, with its own data folder."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from server.auth.tokens import issue

SECRET = "test-secret-not-for-production-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class AtelierServer:
    data_dir: Path
    database_url: str
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            ATELIER_DATA_DIR=str(self.data_dir),
            ATELIER_DATABASE_URL=self.database_url,
            ATELIER_JWT_SECRET=SECRET,
            ATELIER_DOC_UNLOAD_DELAY_S="0.2",
            PYTHONUNBUFFERED="1",
        )
        env.update(self.extra_env)
        return env

    def cli(self, *args: str) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "server.cli", *args],
            env=self.env(),
            capture_output=True,
            check=True,
            timeout=120,
        )
        return out.stdout.decode()

    def prepare(self) -> None:
        self.cli("migrate")
        self.cli("seed-demo")

    def start(self, timeout: float = 30) -> None:
        assert self.proc is None or self.proc.poll() is not None
        self.log_path = self.data_dir / f"server-{self.port}-{time.monotonic_ns()}.log"
        with open(self.log_path, "wb") as log:  # the child keeps its own copy of the fd
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "server.cli", "serve", "--port", str(self.port)],
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            try:
                if httpx.get(f"{self.http_url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not start:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise

    def log(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def all_logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.data_dir.glob("server-*.log"))

    def token(self, user_id: str, ttl: int = 3600) -> str:
        return issue(SECRET, user_id, ttl)


def make_server(folder: Path, **env: str) -> AtelierServer:
    """A migrated, seeded (not yet started) node whose data lives in ``folder``."""
    server = AtelierServer(
        data_dir=folder,
        database_url=f"sqlite+aiosqlite:///{folder}/atelier.db",
        extra_env=dict(env),
    )
    server.prepare()
    return server
