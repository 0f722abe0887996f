"""WebSocket close codes: the contract's refusals (docs/DESIGN.md, Endpoints).

One enum, so that a code is a name at every call site and the set of codes a client
can see is this list. 1008–1013 are RFC 6455's; 44xx mirror the HTTP statuses.
"""

from __future__ import annotations

import enum


class Close(enum.IntEnum):
    #: Flooding (over the per-socket rate for longer than the burst allows), too many
    #: sockets of one user, a new doc past the room's limit (docs/operations.md).
    POLICY = 1008
    #: A frame over ``max_frame_bytes`` (uvicorn closes these itself; listed for clients).
    TOO_BIG = 1009
    #: An endpoint failed unexpectedly; the client should reconnect.
    INTERNAL = 1011
    #: The node is restarting (SIGTERM); reconnect, possibly to another node.
    RESTART = 1012
    #: Too slow to keep up, a doc/room that cannot be loaded now, the node at its socket
    #: or memory limit, an authorisation that took too long: retry later.
    TRY_LATER = 1013
    #: A malformed frame, or bad room/doc names.
    BAD_FRAME = 4400
    #: A missing, invalid or expired token.
    UNAUTHENTICATED = 4401
    #: No access to the room (or an Origin we do not serve).
    FORBIDDEN = 4403


#: Closes after which what is still queued for the client is dropped, not sent: the
#: client is too slow or abusive, and the queue would only delay the close.
DISCARD_QUEUE = frozenset({Close.TRY_LATER, Close.TOO_BIG, Close.POLICY})
