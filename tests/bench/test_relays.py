"""The two trivial relays of the storm's floors behave alike, on real processes.

``loadgen/relay.mjs`` (Node) and ``bench/relay_py.py`` (Atelier's Python stack) are
compared in the connection storm as the least a socket can cost on each runtime: that
comparison only holds if they do the same work. Two stock ``websockets`` clients on one
path: each gets an empty sync step 1 on connect, its step 1 is answered with an empty
step 2, a step 2 is dropped, any other frame goes to the other socket and only there.
"""

from __future__ import annotations

import asyncio
import shutil

import pytest
import websockets

from bench.relay_py import STEP1_EMPTY, STEP2_EMPTY
from bench.run_load import ensure_loadgen, relay_target

pytestmark = pytest.mark.interop

WAIT_S = 5.0
AWARENESS = bytes([1, 3, 1, 0, 0])  # any frame that is not a sync step: relayed as is


@pytest.mark.parametrize("python", [True, False], ids=["relay-python", "relay-node"])
async def test_the_relay_answers_and_relays(python: bool) -> None:
    if not python:
        if shutil.which("node") is None:  # README: Node >= 20 is a requirement of make test
            pytest.fail("the Node relay needs Node >= 20 on PATH")
        ensure_loadgen()
    with relay_target(1, python=python) as (urls, _pids, _info):
        path = f"{urls[0]}/room/doc"
        async with asyncio.timeout(WAIT_S):
            async with websockets.connect(path) as a, websockets.connect(path) as b:
                assert await a.recv() == STEP1_EMPTY
                assert await b.recv() == STEP1_EMPTY
                await a.send(bytes([0, 0, 1, 0]))  # a's step 1
                assert await a.recv() == STEP2_EMPTY
                await a.send(bytes([0, 1, 2, 0, 0]))  # a's step 2: dropped
                await a.send(AWARENESS)
                assert await b.recv() == AWARENESS  # relayed, and the step 2 was not
                await b.send(AWARENESS + b"\x07")
                assert await a.recv() == AWARENESS + b"\x07"
                # Nothing came back to the sender of a relayed frame.
                with pytest.raises(TimeoutError):
                    async with asyncio.timeout(0.3):
                        await b.recv()
            async with websockets.connect(f"{urls[0]}/other") as c:
                assert await c.recv() == STEP1_EMPTY  # another path: another set
