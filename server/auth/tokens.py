"""JWT (HS256) tokens: ``sub`` is a roster user id, ``exp`` is required.

The token proves who the user is; what they may do comes from the roster (roles are
never read from the token, so a stale token cannot carry a stale role).
"""

from __future__ import annotations

import time

import jwt

ALGORITHM = "HS256"


class InvalidToken(Exception):
    """Missing, forged, malformed or expired. The message is safe to log (no token)."""


def issue(secret: str, user_id: str, ttl_s: int = 3600) -> str:
    now = int(time.time())
    return jwt.encode({"sub": user_id, "iat": now, "exp": now + ttl_s}, secret, ALGORITHM)


def verify(secret: str, token: str | None) -> str:
    """Return the user id of a valid token, or raise :class:`InvalidToken`."""
    if not token:
        raise InvalidToken("missing token")
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            options={"require": ["exp", "sub"]},
            leeway=5,
        )
    except jwt.ExpiredSignatureError:
        raise InvalidToken("expired token") from None
    except jwt.InvalidTokenError as exc:
        raise InvalidToken(f"invalid token ({type(exc).__name__})") from None
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise InvalidToken("invalid token (sub)")
    return sub
