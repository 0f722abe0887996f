"""Atelier as an OpenID Connect relying party of the ENT: the authorization code flow with
PKCE (S256), through Authlib's Starlette client.

Authlib reads the provider's metadata (discovery), makes the state, the nonce and the
PKCE verifier, exchanges the code and validates the ID token against the provider's JWKS
(signature, ``iss``, ``aud``, ``exp``, ``iat``, ``nonce``; unknown ``kid``: the key set is
fetched again). It keeps the flow's state in ``request.session``: the endpoints
(server/api/auth.py) give it a plain dict that they carry in a signed, short-lived,
HttpOnly cookie, so a login started on one node finishes on any other.

Every way a sign-in fails is one :class:`SignInError` with a ``kind`` the endpoint turns
into a page: ``state`` (no flow in progress in this browser, expired, or another one
started since), ``denied`` (the provider answered with an error, e.g. the user
cancelled), ``exchange`` (the provider refused the code: replayed, expired, or a PKCE
mismatch), ``id_token`` (missing or invalid), ``claim`` (no user id in the claim we
read), ``unavailable`` (the provider cannot be reached or misbehaves).
"""

from __future__ import annotations

import logging
from typing import Any

import httpx2
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.base_client.errors import MismatchingStateError
from authlib.integrations.starlette_client import OAuth
from joserfc.errors import JoseError
from starlette.requests import Request
from starlette.responses import Response

from server.config import Settings

log = logging.getLogger(__name__)

_NAME = "ent"


class SignInError(Exception):
    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


class EntProvider:
    """The ENT's OpenID provider, as configured by the ``OIDC_*`` settings."""

    def __init__(self, settings: Settings) -> None:
        if not settings.oidc_issuer or not settings.oidc_client_id:
            raise ValueError("OIDC_ISSUER and OIDC_CLIENT_ID are required")
        self.issuer = settings.oidc_issuer.rstrip("/")
        self.user_claim = settings.oidc_user_claim
        scopes = settings.oidc_scopes.split()
        if "openid" not in scopes:
            scopes.insert(0, "openid")
        client_kwargs: dict[str, Any] = {
            "scope": " ".join(scopes),
            "code_challenge_method": "S256",
            "timeout": settings.oidc_timeout_s,
        }
        if not settings.oidc_client_secret:
            client_kwargs["token_endpoint_auth_method"] = "none"
        oauth = OAuth()
        oauth.register(
            _NAME,
            client_id=settings.oidc_client_id,
            client_secret=settings.oidc_client_secret,
            server_metadata_url=f"{self.issuer}/.well-known/openid-configuration",
            client_kwargs=client_kwargs,
        )
        self._client = oauth.create_client(_NAME)

    async def _metadata(self) -> dict[str, Any]:
        try:
            metadata: dict[str, Any] = await self._client.load_server_metadata()
        except (httpx2.HTTPError, ValueError) as exc:
            raise SignInError("unavailable", f"discovery failed ({type(exc).__name__})") from exc
        stated = str(metadata.get("issuer", "")).rstrip("/")
        if stated != self.issuer:
            # Mix-up defence: the document must speak for the issuer we were given.
            self._client.server_metadata.pop("_loaded_at", None)
            raise SignInError("unavailable", f"the provider states issuer {stated!r}")
        return metadata

    async def start(self, request: Request, redirect_uri: str) -> Response:
        """The redirect to the provider's authorization endpoint. Authlib writes the
        flow's state into ``request.session`` (the caller keeps it)."""
        await self._metadata()
        try:
            response: Response = await self._client.authorize_redirect(request, redirect_uri)
        except (httpx2.HTTPError, AuthlibBaseError, RuntimeError) as exc:
            raise SignInError("unavailable", type(exc).__name__) from exc
        return response

    async def finish(self, request: Request) -> tuple[str, dict[str, Any]]:
        """Back from the provider: (the roster user id, the ID token's claims)."""
        await self._metadata()
        try:
            token = await self._client.authorize_access_token(request)
        except MismatchingStateError as exc:
            raise SignInError("state", "no sign-in in progress with this state") from exc
        except JoseError as exc:
            raise SignInError(
                "id_token", f"ID token refused ({exc.error or type(exc).__name__})"
            ) from exc
        except AuthlibBaseError as exc:
            if request.query_params.get("error"):
                raise SignInError("denied", str(exc.error)) from exc
            raise SignInError("exchange", f"code refused ({exc.error})") from exc
        except (httpx2.HTTPError, ValueError) as exc:
            raise SignInError("unavailable", f"token endpoint ({type(exc).__name__})") from exc
        claims = token.get("userinfo")
        if not claims:
            raise SignInError("id_token", "no ID token in the provider's answer")
        user_id = claims.get(self.user_claim)
        if not isinstance(user_id, str) or not user_id:
            raise SignInError("claim", f"the ID token has no {self.user_claim!r} claim")
        return user_id, dict(claims)
