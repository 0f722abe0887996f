"""Running the stock npm Yjs clients of tests/interop under Node."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

INTEROP_DIR = Path(__file__).resolve().parents[1] / "interop"


def require_node_clients() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail("the interop tests need Node >= 20 on PATH")
    if not (INTEROP_DIR / "node_modules" / "y-websocket" / "package.json").is_file():
        pytest.fail(
            "tests/interop/node_modules is missing: run `npm ci --prefix tests/interop` "
            "(`make test` does it)"
        )
    return node


async def run_node(script: str, config: dict[str, Any], timeout: float) -> tuple[int, str, str]:
    """Run a tests/interop script with its config in INTEROP_CONFIG (tokens stay off argv)."""
    node = require_node_clients()
    process = await asyncio.create_subprocess_exec(
        node,
        str(INTEROP_DIR / script),
        cwd=INTEROP_DIR,
        env={**os.environ, "INTEROP_CONFIG": json.dumps(config)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.communicate()
        pytest.fail(f"{script} did not finish within {timeout} s")
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


def node_json(script: str, config: dict[str, Any], timeout: float = 60) -> Any:
    """Run a tests/interop script that prints JSON and return what it printed (sync: for
    the tests that only need Node to make real Yjs bytes, no server)."""
    node = require_node_clients()
    done = subprocess.run(
        [node, str(INTEROP_DIR / script)],
        cwd=INTEROP_DIR,
        env={**os.environ, "INTEROP_CONFIG": json.dumps(config)},
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"{script} failed (exit {done.returncode}):\n{done.stderr.decode()}")
    return json.loads(done.stdout)
