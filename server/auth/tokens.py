"""JWT tokens: who the caller is. Roles come from the roster, never from the token.

Two kinds are accepted:

- **HS256**, signed with Atelier's own secret (``JWT_SECRET``): standalone mode, the
  demo sign-in, ``atelier token``, the tests. ``sub`` is the roster user id, ``exp`` is
  required, 5 s of leeway. Nothing else is checked (Atelier issues them itself).
- **RS256 / ES256**, signed by the ENT, when ``JWKS_URL`` is set: the key is the one of
  the JWKS whose ``kid`` the token names; the algorithm comes from the key (RSA: RS256,
  EC P-256: ES256) and the header's ``alg`` must match it. ``exp``, ``iss`` and ``aud``
  are required and checked (``JWT_ISSUER``, ``JWT_AUDIENCE``), with ``JWT_LEEWAY_S``;
  the user id is the ``JWT_USER_CLAIM`` claim.

An HS256 token is only ever checked against the secret, never a public key, so a token
"signed" with the ENT's public key as an HMAC secret (algorithm confusion) fails; ``none``
and every other algorithm are refused. Every refusal raises :class:`InvalidToken`, whose
message never holds the token (nor any part the caller chose, such as a ``kid``).

The JWKS is fetched with httpx (async: the event loop never blocks on the ENT), kept
``JWKS_CACHE_S`` and refreshed in the background; an unknown ``kid`` triggers a refetch
at most once per ``JWKS_REFRESH_MIN_S`` (concurrent callers share it), so a flood of
forged kids costs the ENT one request per window. When the ENT is down, the keys last
fetched keep verifying.

A token minted for a signed-in browser (``POST /auth/socket-token``) also carries
``sid``, the id of its sign-in session: once that session has ended the token is refused
(server/api/access.py), however long it still has to live. Every token Atelier issues
carries a ``jti``, so that it can be revoked (server/revocation/).

A token verified once is remembered (``Verifier.verified``, bounded): the same token comes
back on each socket a user opens (a tab's docs and room channel) and on every reconnect, and a
storm of reconnects after a node restart would otherwise pay the signature check and the
JSON decoding again for each (a sixth of a connect's CPU under py-spy, issue 15). A
remembered token is still refused once expired (its ``exp``, with the same leeway), and an
ENT token once the JWKS no longer holds the very key that verified it. Revocations and
session ends are checked by the caller on every use (server/api/access.py), never cached.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import math
import time
import uuid
from collections.abc import Mapping
from contextvars import Context
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
from cachetools import TLRUCache
from jwt.exceptions import PyJWKError

from server.config import Settings

log = logging.getLogger(__name__)

ALGORITHM = "HS256"
HS256_LEEWAY_S = 5
#: The ENT's algorithms, by key type. Nothing else is ever accepted from a JWKS.
KEY_ALGORITHMS = {"RSA": "RS256", "EC": "ES256"}
MIN_RSA_BITS = 2048
JWKS_TIMEOUT_S = 5.0
JWKS_MAX_BYTES = 1024 * 1024


class InvalidToken(Exception):
    """Missing, forged, malformed or expired. The message is safe to log (no token)."""


@dataclass(frozen=True, slots=True)
class Claims:
    """What a verified token says: the roster user id, and what a revocation list needs
    (``jti``: this token; ``sid``: the ENT session it belongs to; ``exp``: when it stops
    mattering)."""

    user_id: str
    jti: str | None
    exp: float
    sid: str | None
    #: Signed by Atelier itself (HS256): its ``sid`` is one of Atelier's sign-in
    #: sessions. An ENT token's ``sid`` is the ENT's own session, unknown here.
    own: bool = False


def issue(secret: str, user_id: str, ttl_s: int = 3600, *, sid: str | None = None) -> str:
    """An HS256 token of Atelier's own, with a ``jti`` (so that it can be revoked) and, when
    minted for a sign-in session, its ``sid``."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": user_id,
        "iat": now,
        "exp": now + ttl_s,
        "jti": uuid.uuid4().hex,
    }
    if sid is not None:
        claims["sid"] = sid
    return jwt.encode(claims, secret, ALGORITHM)


def _refused(exc: jwt.InvalidTokenError) -> InvalidToken:
    if isinstance(exc, jwt.ExpiredSignatureError):
        return InvalidToken("expired token")
    return InvalidToken(f"invalid token ({type(exc).__name__})")


def _optional_str(claims: Mapping[str, Any], name: str) -> str | None:
    value = claims.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidToken(f"invalid token ({name})")
    return value


def _claims(
    claims: Mapping[str, Any], user_claim: str, label: str = "user claim", *, own: bool = False
) -> Claims:
    user_id = claims.get(user_claim)
    if not isinstance(user_id, str) or not user_id:
        raise InvalidToken(f"invalid token ({label})")
    return Claims(
        user_id=user_id,
        jti=_optional_str(claims, "jti"),
        exp=float(claims["exp"]),
        sid=_optional_str(claims, "sid"),
        own=own,
    )


def verify_hs256(secret: str, token: str | None) -> Claims:
    """An Atelier token (HS256, ``JWT_SECRET``), or raise :class:`InvalidToken`."""
    if not token:
        raise InvalidToken("missing token")
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            options={"require": ["exp", "sub"]},
            leeway=HS256_LEEWAY_S,
        )
    except jwt.InvalidTokenError as exc:
        raise _refused(exc) from None
    return _claims(claims, "sub", "sub", own=True)


def verify(secret: str, token: str | None) -> str:
    """The user id of a valid Atelier (HS256) token, or raise :class:`InvalidToken`.
    The server verifies through :class:`Verifier`, which also knows the ENT's keys."""
    return verify_hs256(secret, token).user_id


#: A verified token, remembered: its claims, when it stops being good (``exp`` plus the
#: leeway, unix time) and, for an ENT token, the (kid, key) that verified it.
Verified = tuple[Claims, float, tuple[str, object] | None]

#: Tokens remembered per node, least recently used out first (a few hundred bytes each:
#: ≈ 10 MB at most, a node's users of a morning).
VERIFIED_KEPT = 16_384


class JwksError(Exception):
    """A JWKS that could not be fetched or holds no usable key."""


def parse_jwks(document: Any) -> dict[str, jwt.PyJWK]:
    """The usable signing keys of a JWKS document, by ``kid``.

    Kept: keys with a ``kid``, ``kty`` RSA (≥ 2048 bits) or EC on P-256, for signatures
    (``use`` absent or ``sig``; ``key_ops``, if any, allowing ``verify``), whose ``alg``,
    if given, is the one their type implies, and without private parts. Others are
    skipped (an ENT may publish encryption keys beside). Raises :class:`JwksError` when
    no key is left.
    """
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise JwksError("not a JWKS (no keys list)")
    keys: dict[str, jwt.PyJWK] = {}
    skipped = 0
    for data in document["keys"]:
        key = _usable_key(data)
        if key is None or key.key_id in keys:
            skipped += 1
            continue
        assert key.key_id is not None
        keys[key.key_id] = key
    if not keys:
        raise JwksError(f"no usable signing key ({skipped} skipped)")
    if skipped:
        log.info(
            "JWKS: %d keys kept, %d skipped (not RS256/ES256 signing keys)", len(keys), skipped
        )
    return keys


def _usable_key(data: Any) -> jwt.PyJWK | None:
    if not isinstance(data, dict):
        return None
    kid, kty = data.get("kid"), data.get("kty")
    algorithm = KEY_ALGORITHMS.get(kty) if isinstance(kty, str) else None
    if not isinstance(kid, str) or not kid or algorithm is None:
        return None
    if data.get("use", "sig") != "sig" or data.get("alg", algorithm) != algorithm:
        return None
    ops = data.get("key_ops")
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        return None
    if "d" in data or (kty == "EC" and data.get("crv") != "P-256"):
        return None
    try:
        key = jwt.PyJWK(data, algorithm=algorithm)
    except (PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
        return None
    if kty == "RSA" and getattr(key.key, "key_size", 0) < MIN_RSA_BITS:
        return None
    return key


class JwksKeys:
    """The ENT's public keys: fetched from ``url``, cached, refreshed.

    ``start()`` fetches once (a failure is logged, not fatal: HS256 keeps working and
    the next unknown ``kid`` or the background refresh retries) and starts the refresh
    loop: every ``cache_s`` after the last good fetch, retrying with a backoff from
    ``refresh_min_s`` up to ``cache_s`` while the ENT is down. A failed fetch never drops
    the keys held; a good one replaces them all (a key the ENT removed is refused).
    """

    def __init__(
        self,
        url: str,
        *,
        cache_s: float = 300.0,
        refresh_min_s: float = 10.0,
        timeout_s: float = JWKS_TIMEOUT_S,
    ) -> None:
        self.url = url
        self.cache_s = cache_s
        self.refresh_min_s = refresh_min_s
        self.timeout_s = timeout_s
        self.fetches = 0  # attempts, good or not
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = -math.inf  # monotonic time of the last good fetch
        self._attempted_at = -math.inf  # and of the last attempt
        self._inflight: asyncio.Task[bool] | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None

    @property
    def kids(self) -> frozenset[str]:
        return frozenset(self._keys)

    def held(self, kid: str) -> jwt.PyJWK | None:
        """The key named ``kid`` if held now; never fetches."""
        return self._keys.get(kid)

    async def start(self) -> None:
        self._client = httpx.AsyncClient(
            timeout=self.timeout_s,
            follow_redirects=True,
            headers={"Accept": "application/jwk-set+json, application/json"},
        )
        ok = await self.refresh("startup")
        self._loop_task = asyncio.get_running_loop().create_task(
            self._refresh_loop(0 if ok else 1), name="jwks-refresh"
        )

    async def close(self) -> None:
        for task in (self._loop_task, self._inflight):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._loop_task = self._inflight = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def key(self, kid: str) -> jwt.PyJWK | None:
        """The key named ``kid``; an unknown one refetches the JWKS first, unless the
        last attempt is younger than ``refresh_min_s`` (then None at once)."""
        key = self._keys.get(kid)
        if key is not None:
            return key
        busy = self._inflight is not None
        if not busy and time.monotonic() - self._attempted_at < self.refresh_min_s:
            return None
        await self.refresh("unknown kid")
        return self._keys.get(kid)

    async def refresh(self, reason: str) -> bool:
        """Fetch the JWKS, or join the fetch in flight. True when it succeeded."""
        task = self._inflight
        if task is None:
            # A fresh context: the fetch serves every caller, not the one that started it.
            loop = asyncio.get_running_loop()
            task = loop.create_task(self._fetch(reason), name="jwks-fetch", context=Context())
            self._inflight = task
            task.add_done_callback(self._fetched)
        # shield: a caller that goes away (its socket closed) leaves the fetch to the others
        return await asyncio.shield(task)

    def _fetched(self, task: asyncio.Task[bool]) -> None:
        if self._inflight is task:
            self._inflight = None

    async def _fetch(self, reason: str) -> bool:
        self._attempted_at = time.monotonic()
        self.fetches += 1
        try:
            keys = parse_jwks(json.loads(await self._download()))
        except (httpx.HTTPError, JwksError, ValueError) as exc:
            log.warning(
                "JWKS fetch failed (%s): %s: %s; keeping the %d keys held",
                reason,
                type(exc).__name__,
                exc,
                len(self._keys),
            )
            return False
        added, removed = keys.keys() - self._keys.keys(), self._keys.keys() - keys.keys()
        self._keys = keys
        self._fetched_at = time.monotonic()
        log.info(
            "JWKS fetched (%s): %d keys, %d new, %d removed",
            reason,
            len(keys),
            len(added),
            len(removed),
        )
        return True

    async def _download(self) -> bytes:
        if self._client is None:
            raise JwksError("not started")
        async with self._client.stream("GET", self.url) as response:
            if response.status_code != 200:
                raise JwksError(f"HTTP {response.status_code}")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > JWKS_MAX_BYTES:
                    raise JwksError("JWKS larger than 1 MiB")
            return bytes(body)

    async def _refresh_loop(self, failures: int) -> None:
        while True:
            if failures:
                await asyncio.sleep(min(self.cache_s, self.refresh_min_s * 2 ** min(failures, 16)))
            else:
                wait = self._fetched_at + self.cache_s - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                    continue  # an unknown kid may have refreshed the keys meanwhile
            failures = 0 if await self.refresh("scheduled") else failures + 1


class Verifier:
    """Checks every token the endpoints receive (built once, on the AppContext)."""

    def __init__(
        self,
        secret: str,
        jwks: JwksKeys | None = None,
        *,
        issuer: str | None = None,
        audience: str | None = None,
        leeway_s: float = 30.0,
        user_claim: str = "sub",
    ) -> None:
        if jwks is not None and (not issuer or not audience):
            raise ValueError("the ENT's tokens need an issuer and an audience to check")
        self.secret = secret
        self.jwks = jwks
        #: Keyed by the whole token (signature included): a token that differs by one
        #: character is verified afresh. Gone once past its ``exp`` (with the leeway).
        self.verified: TLRUCache[str, Verified] = TLRUCache(
            VERIFIED_KEPT, ttu=lambda _token, seen, _now: seen[1], timer=time.time
        )
        self.issuer = issuer
        self.audience = audience
        self.leeway_s = leeway_s
        self.user_claim = user_claim

    @classmethod
    def from_settings(cls, settings: Settings, secret: str) -> Verifier:
        jwks = None
        if settings.jwks_url:
            jwks = JwksKeys(
                settings.jwks_url,
                cache_s=settings.jwks_cache_s,
                refresh_min_s=settings.jwks_refresh_min_s,
            )
        return cls(
            secret,
            jwks,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            leeway_s=settings.jwt_leeway_s,
            user_claim=settings.jwt_user_claim,
        )

    async def start(self) -> None:
        if self.jwks is not None:
            await self.jwks.start()

    async def close(self) -> None:
        if self.jwks is not None:
            await self.jwks.close()

    async def verify(self, token: str | None) -> Claims:
        """The claims of a valid token, or raise :class:`InvalidToken`."""
        if not token:
            raise InvalidToken("missing token")
        seen = self.verified.get(token)
        if seen is not None:
            claims, _, key = seen
            if key is None:  # HS256: the secret does not change while the node runs
                return claims
            kid, jwk = key
            if self.jwks is not None and self.jwks.held(kid) is jwk:
                return claims
        return await self._verify(token)

    async def _verify(self, token: str) -> Claims:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise _refused(exc) from None
        alg = header.get("alg")
        if alg == ALGORITHM:
            own = verify_hs256(self.secret, token)
            self.verified[token] = (own, own.exp + HS256_LEEWAY_S, None)
            return own
        if self.jwks is None or alg not in KEY_ALGORITHMS.values():
            raise InvalidToken("invalid token (algorithm)")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("invalid token (no kid)")
        key = await self.jwks.key(kid)
        if key is None:
            raise InvalidToken("invalid token (unknown kid)")
        if key.algorithm_name != alg:
            raise InvalidToken("invalid token (algorithm does not match the key)")
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[key.algorithm_name],
                issuer=self.issuer,
                audience=self.audience,
                leeway=self.leeway_s,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.InvalidTokenError as exc:
            raise _refused(exc) from None
        verified = _claims(claims, self.user_claim)
        self.verified[token] = (verified, verified.exp + self.leeway_s, (kid, key))
        return verified


def derive_key(secret: str, purpose: str) -> bytes:
    """A key for one purpose (the sign-in state cookie, CSRF tokens), derived from the
    token secret: what is signed for one purpose never verifies as another, nor as a
    token."""
    return hmac.new(secret.encode(), f"atelier:{purpose}".encode(), hashlib.sha256).digest()
