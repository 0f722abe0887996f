"""A write to a socket its client has reset must fail with EPIPE, never kill the node.

With SIGPIPE's default action such a write kills the whole process (every room on the
node): a storm of reconnecting clients did once, under ``python -m server.cli serve``
(issue 15). The node ignores the signal; the test sends it the signal itself, which is
what the kernel does on that write."""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest

from tests.support.server import AtelierServer

pytestmark = pytest.mark.integration


def test_sigpipe_does_not_kill_the_node(atelier: AtelierServer) -> None:
    assert atelier.proc is not None
    for _ in range(3):
        os.kill(atelier.proc.pid, signal.SIGPIPE)
    time.sleep(0.5)  # a default action would have ended the process by now
    assert atelier.proc.poll() is None, "the node died of SIGPIPE"
    assert httpx.get(f"{atelier.http_url}/healthz").status_code == 200
