"""The Yjs wire protocol (y-websocket / y-protocols), sans I/O.

Bytes in, decisions out: nothing here imports asyncio, Starlette or Redis, so every path
is testable with plain bytes and fuzzable with hypothesis. See ``session.py`` for the
theory of operation.
"""

from server.sync.messages import (
    AwarenessMessage,
    Message,
    ProtocolError,
    QueryAwareness,
    SyncStep1,
    SyncStep2,
    SyncUpdate,
    decode,
    permission_denied_frame,
)
from server.sync.session import DocSession, Outcome

__all__ = [
    "AwarenessMessage",
    "DocSession",
    "Message",
    "Outcome",
    "ProtocolError",
    "QueryAwareness",
    "SyncStep1",
    "SyncStep2",
    "SyncUpdate",
    "decode",
    "permission_denied_frame",
]
