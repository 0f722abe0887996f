"""The token verifier in-process: the JWKS parser, the settings' checks, and the cache
against a real JWKS server on 127.0.0.1 (tests/support/jwks.py), so the fetch counts,
the refetch window and the ENT going down are the real thing, only faster."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from pydantic import ValidationError

from server.auth.tokens import (
    Claims,
    InvalidToken,
    JwksError,
    JwksKeys,
    Verifier,
    issue,
    parse_jwks,
)
from server.config import Settings
from tests.support.jwks import (
    AUDIENCE,
    ISSUER,
    JwksServer,
    SigningKey,
    ent_claims,
    hs256_signed_with,
)

SECRET = "unit-secret-0123456789-0123456789-0123456789"

# Key generation costs tens of ms (RSA): once per module.
RSA = SigningKey.rsa("rsa-1")
EC = SigningKey.ec("ec-1")


# --- the JWKS document ---


def test_parse_keeps_rsa_and_p256_signing_keys_only() -> None:
    rsa_jwk, ec_jwk = RSA.jwk(), EC.jwk()
    p384 = ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP384R1()).public_key(), as_dict=True)
    private = RSAAlgorithm.to_jwk(RSA.private, as_dict=True)
    doc = {
        "keys": [
            rsa_jwk,
            ec_jwk,
            {**rsa_jwk, "kid": "enc", "use": "enc"},
            {**rsa_jwk, "kid": "rs512", "alg": "RS512"},
            {**rsa_jwk, "kid": "hs", "alg": "HS256"},
            {**rsa_jwk, "kid": "ops", "key_ops": ["encrypt"]},
            {**p384, "kid": "p384"},
            {**private, "kid": "private"},
            {"kty": "oct", "kid": "oct", "k": "c2VjcmV0"},
            {k: v for k, v in rsa_jwk.items() if k != "kid"},
            {**EC.jwk(), "kid": "rsa-1"},  # a duplicate kid: the first one stays
            {"kty": ["RSA"], "kid": "odd"},
            "not a key",
        ]
    }
    keys = parse_jwks(doc)
    assert set(keys) == {"rsa-1", "ec-1"}
    assert keys["rsa-1"].algorithm_name == "RS256"
    assert keys["ec-1"].algorithm_name == "ES256"


def test_parse_refuses_small_rsa_keys_and_empty_sets() -> None:
    small = RSAAlgorithm.to_jwk(
        rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key(), as_dict=True
    )
    with pytest.raises(JwksError, match="no usable"):
        parse_jwks({"keys": [{**small, "kid": "small"}]})
    with pytest.raises(JwksError, match="no usable"):
        parse_jwks({"keys": []})
    with pytest.raises(JwksError):
        parse_jwks({"keyz": []})
    with pytest.raises(JwksError):
        parse_jwks(["keys"])


# --- settings ---


def test_jwks_needs_issuer_and_audience() -> None:
    with pytest.raises(ValidationError) as info:
        Settings(jwks_url="https://ent.example.org/jwks", jwt_issuer=ISSUER)
    message = str(info.value)
    assert "ATELIER_JWT_AUDIENCE must be set" in message and "ATELIER_JWT_ISSUER" not in message
    with pytest.raises(ValidationError, match="ATELIER_JWT_ISSUER and ATELIER_JWT_AUDIENCE"):
        Settings(jwks_url="https://ent.example.org/jwks")
    with pytest.raises(ValidationError, match="http"):
        Settings(jwks_url="ftp://ent.example.org/jwks", jwt_issuer=ISSUER, jwt_audience=AUDIENCE)
    ok = Settings(jwks_url="https://ent.example.org/jwks", jwt_issuer=ISSUER, jwt_audience=AUDIENCE)
    assert (ok.jwt_leeway_s, ok.jwt_user_claim, ok.jwks_cache_s, ok.jwks_refresh_min_s) == (
        30,
        "sub",
        300,
        10,
    )
    assert Settings().jwks_url is None  # HS256 only by default


@pytest.mark.parametrize("leeway", [-1, 301])
def test_leeway_is_bounded(leeway: float) -> None:
    with pytest.raises(ValidationError):
        Settings(jwt_leeway_s=leeway)


def test_verifier_for_jwks_needs_issuer_and_audience() -> None:
    with pytest.raises(ValueError):
        Verifier(SECRET, JwksKeys("http://127.0.0.1:1/jwks"), issuer=ISSUER)


# --- HS256 only (no JWKS configured) ---


async def test_hs256_alone_returns_claims_and_refuses_the_rest() -> None:
    v = Verifier(SECRET)
    claims = await v.verify(issue(SECRET, "s-01", 60))
    assert isinstance(claims, Claims)
    assert (claims.user_id, claims.sid) == ("s-01", None)
    assert claims.jti is not None and len(claims.jti) == 32  # every token can be revoked
    minted = await v.verify(issue(SECRET, "s-01", 60, sid="sess-1"))
    assert minted.sid == "sess-1" and minted.jti not in (None, claims.jti)
    assert abs(claims.exp - (time.time() + 60)) < 5
    exp = int(time.time()) + 60
    with_ids = jwt.encode({"sub": "s-02", "exp": exp, "jti": "j-1", "sid": "x"}, SECRET, "HS256")
    assert await v.verify(with_ids) == Claims("s-02", "j-1", float(exp), "x", own=True)
    for bad, reason in [
        (None, "missing"),
        ("", "missing"),
        ("garbage", "DecodeError"),
        (RSA.sign(ent_claims("s-01")), "algorithm"),  # no JWKS: asymmetric refused
        (jwt.encode({"sub": "s-01", "exp": 4102444800}, None, "none"), "algorithm"),
        (issue(SECRET, "s-01", -60), "expired"),
        (jwt.encode({"sub": "s-01"}, SECRET, "HS256"), "MissingRequiredClaim"),
        (jwt.encode({"sub": 7, "exp": 4102444800}, SECRET, "HS256"), "invalid token"),
        (jwt.encode({"sub": "s", "exp": 4102444800, "jti": 3}, SECRET, "HS256"), "(?i)jti"),
    ]:
        with pytest.raises(InvalidToken, match=reason):
            await v.verify(bad)


# --- against a real JWKS server ---


@pytest.fixture
def ent() -> Iterator[JwksServer]:
    server = JwksServer(RSA, EC).start()
    yield server
    server.stop()


def verifier(ent: JwksServer, **keys: float) -> Verifier:
    jwks = JwksKeys(
        ent.url, cache_s=keys.pop("cache_s", 300), refresh_min_s=keys.pop("refresh_min_s", 10)
    )
    return Verifier(SECRET, jwks, issuer=ISSUER, audience=AUDIENCE, **keys)  # type: ignore[arg-type]


@pytest.fixture
async def v(ent: JwksServer) -> AsyncIterator[Verifier]:
    verifier_ = verifier(ent)
    await verifier_.start()
    yield verifier_
    await verifier_.close()


async def test_rs256_es256_and_hs256_side_by_side(ent: JwksServer, v: Verifier) -> None:
    assert ent.fetches == 1  # the startup fetch
    for key, user in [(RSA, "s-01"), (EC, "t-martin")]:
        claims = await v.verify(key.sign(ent_claims(user, jti="j-42", sid="sess-9")))
        assert (claims.user_id, claims.jti, claims.sid) == (user, "j-42", "sess-9")
    assert (await v.verify(issue(SECRET, "s-03"))).user_id == "s-03"
    assert ent.fetches == 1  # known keys: no fetch


async def test_refusals_each_say_why(ent: JwksServer, v: Verifier) -> None:
    other = SigningKey.ec("ec-1")  # another key claiming a known kid
    now = int(time.time())
    cases = [
        (RSA.sign(ent_claims("s-01", exp=now - 60)), "expired"),
        (RSA.sign(ent_claims("s-01", exp=None)), "MissingRequiredClaim"),
        (RSA.sign(ent_claims("s-01", iss="https://evil.example")), "InvalidIssuer"),
        (RSA.sign(ent_claims("s-01", iss=None)), "MissingRequiredClaim"),
        (RSA.sign(ent_claims("s-01", aud="another-app")), "InvalidAudience"),
        (RSA.sign(ent_claims("s-01", aud=None)), "MissingRequiredClaim"),
        (RSA.sign(ent_claims("s-01", sub=None)), "user claim"),
        (RSA.sign(ent_claims("s-01", sub="")), "user claim"),
        (RSA.sign(ent_claims("s-01"), kid=""), "no kid"),
        (other.sign(ent_claims("s-01")), "InvalidSignature"),
        (EC.sign(ent_claims("s-01"), kid="rsa-1"), "does not match"),
        (jwt.encode(ent_claims("s-01"), None, "none", headers={"kid": "rsa-1"}), "algorithm"),
        (hs256_signed_with(RSA.public_pem(), ent_claims("s-01"), kid="rsa-1"), "Signature"),
        (RSA.sign(ent_claims("s-01"), kid="nope"), "unknown kid"),
    ]
    for token, reason in cases:
        with pytest.raises(InvalidToken, match=reason) as info:
            await v.verify(token)
        assert token not in str(info.value)


async def test_leeway_applies_to_exp(ent: JwksServer) -> None:
    v = verifier(ent, leeway_s=30)
    await v.start()
    try:
        now = int(time.time())
        assert (await v.verify(RSA.sign(ent_claims("s-01", exp=now - 10)))).user_id == "s-01"
        with pytest.raises(InvalidToken, match="expired"):
            await v.verify(RSA.sign(ent_claims("s-01", exp=now - 60)))
    finally:
        await v.close()


async def test_user_claim_mapping(ent: JwksServer) -> None:
    v = verifier(ent, user_claim="uid")  # type: ignore[arg-type]
    await v.start()
    try:
        claims = await v.verify(RSA.sign(ent_claims("opaque-123", uid="s-05")))
        assert claims.user_id == "s-05"
        with pytest.raises(InvalidToken, match="user claim"):
            await v.verify(RSA.sign(ent_claims("s-05")))
        assert (await v.verify(issue(SECRET, "s-06"))).user_id == "s-06"  # ours: sub
    finally:
        await v.close()


async def test_a_flood_of_forged_kids_costs_one_fetch_per_window(
    ent: JwksServer, v: Verifier
) -> None:
    assert ent.fetches == 1  # the startup fetch; its window (10 s) is still open
    forged = [RSA.sign(ent_claims("s-01"), kid=f"forged-{i}") for i in range(50)]
    results = await asyncio.gather(*(v.verify(t) for t in forged), return_exceptions=True)
    assert all(isinstance(r, InvalidToken) for r in results)
    assert ent.fetches == 1  # within the window of the startup fetch: none at all


async def test_concurrent_unknown_kids_share_one_fetch(ent: JwksServer) -> None:
    v = verifier(ent, refresh_min_s=0.2)
    await v.start()
    try:
        fresh = ent.add(SigningKey.rsa("rsa-2"))
        await asyncio.sleep(0.25)
        tokens = [fresh.sign(ent_claims(f"s-{i:02}")) for i in range(1, 21)]
        forged = [RSA.sign(ent_claims("s-01"), kid=f"forged-{i}") for i in range(20)]
        results = await asyncio.gather(
            *(v.verify(t) for t in tokens + forged), return_exceptions=True
        )
        assert [r.user_id for r in results[:20] if isinstance(r, Claims)] == [
            f"s-{i:02}" for i in range(1, 21)
        ]
        assert all(isinstance(r, InvalidToken) for r in results[20:])
        assert ent.fetches == 2  # startup + one shared refetch
        for t in forged:  # right after: inside the window, no fetch
            with pytest.raises(InvalidToken, match="unknown kid"):
                await v.verify(t)
        assert ent.fetches == 2
        await asyncio.sleep(0.25)
        with pytest.raises(InvalidToken, match="unknown kid"):
            await v.verify(forged[0])
        assert ent.fetches == 3  # the window passed: one more
    finally:
        await v.close()


async def test_ent_down_keeps_cached_keys(ent: JwksServer) -> None:
    v = verifier(ent, refresh_min_s=0.1)
    await v.start()
    try:
        ent.down()
        await asyncio.sleep(0.15)
        assert (await v.verify(RSA.sign(ent_claims("s-01")))).user_id == "s-01"
        assert (await v.verify(EC.sign(ent_claims("s-02")))).user_id == "s-02"
        with pytest.raises(InvalidToken, match="unknown kid"):  # refetch failed: refused
            await v.verify(RSA.sign(ent_claims("s-01"), kid="rsa-9"))
        assert v.jwks is not None and v.jwks.kids == {"rsa-1", "ec-1"}
        assert (await v.verify(RSA.sign(ent_claims("s-01")))).user_id == "s-01"
    finally:
        ent.up()
        await v.close()


async def test_ent_down_at_startup_then_up(ent: JwksServer) -> None:
    ent.down()
    v = verifier(ent, refresh_min_s=0.1)
    await v.start()  # not fatal
    try:
        assert (await v.verify(issue(SECRET, "s-01"))).user_id == "s-01"
        with pytest.raises(InvalidToken, match="unknown kid"):
            await v.verify(RSA.sign(ent_claims("s-01")))
        ent.up()
        await asyncio.sleep(0.15)
        assert (await v.verify(RSA.sign(ent_claims("s-01")))).user_id == "s-01"
    finally:
        await v.close()


async def test_background_refresh_drops_a_removed_key(ent: JwksServer) -> None:
    v = verifier(ent, cache_s=1)
    await v.start()
    try:
        assert (await v.verify(EC.sign(ent_claims("s-01")))).user_id == "s-01"
        ent.remove("ec-1")
        ent.add(SigningKey.ec("ec-2"))
        await rotated(v, {"rsa-1", "ec-2"})
        assert ent.fetches == 2
        with pytest.raises(InvalidToken, match="unknown kid"):
            await v.verify(EC.sign(ent_claims("s-01")))
    finally:
        await v.close()


# --- tokens already verified ---


async def rotated(v: Verifier, kids: set[str]) -> None:
    """Wait (bounded) until the background refresh has brought the JWKS's ``kids``."""
    deadline = time.monotonic() + 5
    assert v.jwks is not None
    while v.jwks.kids != kids:
        assert time.monotonic() < deadline, "no background refresh"
        await asyncio.sleep(0.05)


async def test_a_token_is_verified_once_then_remembered_until_it_expires() -> None:
    v = Verifier(SECRET)
    token = issue(SECRET, "s-01", ttl_s=-4)  # 1 s left of the 5 s leeway
    first = await v.verify(token)
    assert token in v.verified
    assert await v.verify(token) is first  # the same claims: not decoded again
    with pytest.raises(InvalidToken, match="invalid token"):
        await v.verify(token[:-2] + ("AA" if token[-2:] != "AA" else "BB"))  # not the same token
    await asyncio.sleep(1.2)
    with pytest.raises(InvalidToken, match="expired"):
        await v.verify(token)
    assert token not in v.verified


async def test_a_remembered_ent_token_goes_with_its_key(ent: JwksServer) -> None:
    v = verifier(ent, cache_s=1)
    await v.start()
    try:
        token = EC.sign(ent_claims("s-01"))
        first = await v.verify(token)
        assert first.user_id == "s-01" and await v.verify(token) is first
        ent.remove("ec-1")
        ent.add(SigningKey.ec("ec-2"))
        await rotated(v, {"rsa-1", "ec-2"})
        with pytest.raises(InvalidToken, match="unknown kid"):
            await v.verify(token)
    finally:
        await v.close()


def test_remembered_tokens_are_bounded() -> None:
    from server.auth.tokens import VERIFIED_KEPT

    v = Verifier(SECRET)
    assert v.verified.maxsize == VERIFIED_KEPT  # least recently used out past it
