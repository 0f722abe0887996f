"""What a log line knows of where it was written: request, connection, user, room.

Context variables, set where each thing becomes known — the edge (the request id of an
HTTP request, the connection id of a socket), admission and the REST helpers (the user,
the room) — and read by the JSON formatter (server/logs.py). Nothing threads them as
arguments. uvicorn runs each request and each socket in its own task, and a task starts
with a copy of its parent's context, so a value set for one socket never leaks into
another's lines.
"""

from __future__ import annotations

import random
import re
import secrets
from contextvars import ContextVar

request_id: ContextVar[str | None] = ContextVar("atelier_request_id", default=None)
conn_id: ContextVar[str | None] = ContextVar("atelier_conn_id", default=None)
user_id: ContextVar[str | None] = ContextVar("atelier_user_id", default=None)
room_id: ContextVar[str | None] = ContextVar("atelier_room_id", default=None)

#: An X-Request-Id taken from a trusted proxy: short, and nothing a log reader could
#: mistake for structure (no spaces, quotes or control characters).
REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,64}")


#: Ids name log lines, they guard nothing: a generator seeded from the system's, not a
#: system call per id (two per socket; 2 % of a connection storm's loop under py-spy).
_ids = random.Random(secrets.randbits(128))


def new_id() -> str:
    """16 hex digits: 64 random bits, unique enough across a region's nodes and days."""
    return f"{_ids.getrandbits(64):016x}"


def fields() -> dict[str, str]:
    """The known ones, for a log line."""
    out: dict[str, str] = {}
    for name, var in (
        ("request_id", request_id),
        ("conn_id", conn_id),
        ("user_id", user_id),
        ("room_id", room_id),
    ):
        value = var.get()
        if value is not None:
            out[name] = value
    return out
