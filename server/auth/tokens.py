"""JWT (HS256) tokens: ``sub`` is a roster user id, ``exp`` is required.

The token proves who the user is; what they may do comes from the roster (roles are
never read from the token, so a stale token cannot carry a stale role).

A token minted for a signed-in browser (``POST /auth/socket-token``) also carries
``sid``, the id of its sign-in session, and a ``jti``: once that session has ended the
token is refused (server/api/access.py), however long it still has to live.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

import jwt

ALGORITHM = "HS256"


class InvalidToken(Exception):
    """Missing, forged, malformed or expired. The message is safe to log (no token)."""


@dataclass(frozen=True, slots=True)
class Claims:
    sub: str
    sid: str | None = None


def issue(
    secret: str,
    user_id: str,
    ttl_s: int = 3600,
    *,
    sid: str | None = None,
) -> str:
    """A signed token for ``user_id``. With ``sid``: tied to that sign-in session, and
    given a unique ``jti``."""
    now = int(time.time())
    claims: dict[str, object] = {"sub": user_id, "iat": now, "exp": now + ttl_s}
    if sid is not None:
        claims["sid"] = sid
        claims["jti"] = secrets.token_urlsafe(12)
    return jwt.encode(claims, secret, ALGORITHM)


def decode(secret: str, token: str | None) -> Claims:
    """The claims of a valid token, or raise :class:`InvalidToken`."""
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
    sid = claims.get("sid")
    if sid is not None and (not isinstance(sid, str) or not sid):
        raise InvalidToken("invalid token (sid)")
    return Claims(sub, sid)


def verify(secret: str, token: str | None) -> str:
    """Return the user id of a valid token, or raise :class:`InvalidToken`."""
    return decode(secret, token).sub


def derive_key(secret: str, purpose: str) -> bytes:
    """A key for one purpose (the sign-in state cookie, CSRF tokens), derived from the
    token secret: what is signed for one purpose never verifies as another, nor as a
    token."""
    return hmac.new(secret.encode(), f"atelier:{purpose}".encode(), hashlib.sha256).digest()
