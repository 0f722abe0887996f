"""Sign-in through the ENT (OpenID Connect) and the browser's session: ``/auth/*``.

- ``GET /auth/login[?next=/path]``: to the provider (authorization code + PKCE S256).
  The flow's state (state, nonce, PKCE verifier, where to go next) travels in
  ``atelier_signin``: a cookie signed with a key derived from JWT_SECRET, HttpOnly,
  SameSite=Lax, Path=/auth, valid 10 minutes. Any node can finish the flow.
- ``GET /auth/callback``: the code exchanged, the ID token validated
  (server/sessions/oidc.py), the user looked up in the roster; then a session opens and
  ``atelier_session`` (HttpOnly, SameSite=Lax, Path=/, Secure over TLS) holds its
  secret. Every refusal is a French page, and no session.
- ``GET /auth/session``: who is signed in, the page's CSRF token, whether ENT sign-in is
  configured.
- ``POST /auth/socket-token``: a short-lived token (``sub``, ``exp``, ``jti``, ``sid``)
  for the WebSocket URLs and REST's Bearer header.
- ``POST /auth/logout``: ends the session (its tokens are refused from then on).

The two POSTs change state with the cookie alone as credential, so they require the
``X-Atelier-CSRF`` header (the per-session token /auth/session gives the page: a page of
another site can neither read it nor send a custom header without a CORS preflight we
never grant) and, when the browser sends one, an Origin of this site.

"TLS" is the request's scheme: https only over TLS itself, or when a proxy of
``TRUSTED_PROXIES`` says so in X-Forwarded-Proto (uvicorn applies it, server/cli.py).
"""

from __future__ import annotations

import hashlib
import hmac
import html
import logging
import time
from typing import Any
from urllib.parse import urlsplit

import jwt
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from server.api.rest import error
from server.auth import tokens
from server.context import AppContext
from server.persistence.models import unix
from server.persistence.sessions import SessionRow
from server.sessions.oidc import SignInError

log = logging.getLogger(__name__)

SESSION_COOKIE = "atelier_session"
STATE_COOKIE = "atelier_signin"
STATE_TTL_S = 600
CSRF_HEADER = "X-Atelier-CSRF"
_NO_STORE = {"Cache-Control": "no-store"}


def is_tls(request: Request) -> bool:
    return request.url.scheme == "https"


def _set_cookie(
    response: Response, request: Request, name: str, value: str, max_age: int, path: str
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=path,
        httponly=True,
        samesite="lax",
        secure=is_tls(request),
    )


def _drop_cookie(response: Response, request: Request, name: str, path: str) -> None:
    response.delete_cookie(name, path=path, httponly=True, samesite="lax", secure=is_tls(request))


def csrf_token(ctx: AppContext, session_id: str) -> str:
    """The page's CSRF token for a session: derived, never stored."""
    key = tokens.derive_key(ctx.jwt_secret, "csrf")
    return hmac.new(key, session_id.encode(), hashlib.sha256).hexdigest()


# ------------------------------------------------------------------ the sign-in state


def _load_state(ctx: AppContext, request: Request) -> dict[str, Any]:
    raw = request.cookies.get(STATE_COOKIE)
    if not raw:
        return {}
    try:
        claims = jwt.decode(
            raw,
            tokens.derive_key(ctx.jwt_secret, "oidc-state"),
            algorithms=[tokens.ALGORITHM],
            options={"require": ["exp"]},
        )
    except jwt.InvalidTokenError:
        return {}
    state = claims.get("s")
    return state if isinstance(state, dict) else {}


def _dump_state(ctx: AppContext, state: dict[str, Any]) -> str:
    claims = {"s": state, "exp": int(time.time()) + STATE_TTL_S}
    return jwt.encode(claims, tokens.derive_key(ctx.jwt_secret, "oidc-state"), tokens.ALGORITHM)


def _next_path(value: str | None) -> str:
    """Where to land after signing in: a path of this site only (no open redirect)."""
    if (
        not value
        or len(value) > 512
        or not value.startswith("/")
        or value.startswith("//")
        or "\\" in value
        or any(ord(c) < 0x20 for c in value)
    ):
        return "/"
    return value


def _redirect_uri(ctx: AppContext, request: Request) -> str:
    return ctx.settings.oidc_redirect_url or str(request.url_for("auth_callback"))


# ------------------------------------------------------------------ pages

_PAGES: dict[str, tuple[int, str, str]] = {
    "disabled": (
        404,
        "Connexion par l'ENT indisponible",
        "La connexion par l'ENT n'est pas configurée sur ce serveur Atelier.",
    ),
    "state": (
        400,
        "La connexion n'a pas abouti",
        "Cette connexion a expiré, ou une autre a été commencée depuis dans ce navigateur. "
        "Recommencez la connexion.",
    ),
    "denied": (
        403,
        "Connexion annulée",
        "L'ENT n'a pas autorisé la connexion à Atelier.",
    ),
    "exchange": (
        400,
        "La connexion n'a pas abouti",
        "L'ENT a refusé de confirmer cette connexion (lien déjà utilisé ou expiré). "
        "Recommencez la connexion.",
    ),
    "id_token": (
        502,
        "Identité non vérifiée",
        "L'ENT a répondu avec une identité qu'Atelier ne peut pas vérifier. Réessayez ; "
        "si cela se reproduit, prévenez l'administrateur de l'établissement.",
    ),
    "claim": (
        502,
        "Identité incomplète",
        "L'ENT n'a pas transmis votre identifiant. Prévenez l'administrateur de l'établissement.",
    ),
    "unavailable": (
        503,
        "L'ENT ne répond pas",
        "Atelier n'arrive pas à joindre l'ENT pour vous connecter. Réessayez dans quelques "
        "instants.",
    ),
    "unknown_user": (
        403,
        "Compte inconnu d'Atelier",
        "Vous êtes bien connecté à l'ENT, mais votre compte ({user}) n'est inscrit dans "
        "aucune classe d'Atelier. Demandez à l'administrateur de votre établissement de "
        "vous ajouter.",
    ),
}


def page(kind: str, **values: str) -> HTMLResponse:
    status, title, text = _PAGES[kind]
    text = html.escape(text.format(**values) if values else text)
    body = (
        "<!doctype html><html lang=fr><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)} — Atelier</title>"
        f'<main data-error="{kind}"><h1>{html.escape(title)}</h1><p>{text}</p>'
        '<p><a href="/auth/login">Se connecter avec l\'ENT</a> · '
        "<a href=\"/\">Revenir à l'accueil d'Atelier</a></p></main></html>"
    )
    return HTMLResponse(body, status_code=status, headers=_NO_STORE)


# ------------------------------------------------------------------ the session


async def _session(ctx: AppContext, request: Request) -> SessionRow | None:
    return await ctx.sessions.from_cookie(request.cookies.get(SESSION_COOKIE))


def _same_site(ctx: AppContext, request: Request) -> bool:
    """The Origin, when the browser sends one, is this site (or listed in ALLOWED_ORIGINS).
    Compared by host and port: behind a TLS proxy the scheme we see may be http."""
    origin = request.headers.get("origin")
    if origin is None:
        return True  # not a browser; the CSRF header is still required
    allowed = ctx.settings.origins or []
    if origin in allowed:
        return True
    return urlsplit(origin).netloc == request.headers.get("host", "")


async def _checked(request: Request) -> SessionRow | JSONResponse:
    """The session of a state-changing request, or its refusal (401, 403)."""
    ctx: AppContext = request.app.state.ctx
    row = await _session(ctx, request)
    if row is None:
        return error(401, "unauthenticated", "not signed in")
    if not _same_site(ctx, request):
        return error(403, "forbidden", "cross-site request refused")
    sent = request.headers.get(CSRF_HEADER, "")
    if not hmac.compare_digest(sent.encode(), csrf_token(ctx, row.id).encode()):
        return error(403, "csrf", f"missing or wrong {CSRF_HEADER} header")
    return row


# ------------------------------------------------------------------ endpoints


async def login(request: Request) -> Response:
    """
    ---
    summary: Sign in through the ENT - redirects to its OpenID provider.
    description: >-
      Authorization code flow with PKCE (S256). next - a path of this site to land on
      afterwards (default /).
    security: []
    parameters:
      - {name: next, in: query, required: false, schema: {type: string}}
    responses:
      302:
        description: To the provider's authorization endpoint.
      404:
        description: ENT sign-in is not configured (HTML page).
      503:
        description: The provider cannot be reached (HTML page).
    """
    ctx: AppContext = request.app.state.ctx
    if ctx.ent is None:
        return page("disabled")
    state: dict[str, Any] = {"next": _next_path(request.query_params.get("next"))}
    request.scope["session"] = state  # Authlib keeps the flow's state in request.session
    try:
        response = await ctx.ent.start(request, _redirect_uri(ctx, request))
    except SignInError as exc:
        log.warning("sign-in could not start: %s", exc)
        return page(exc.kind)
    response.headers.update(_NO_STORE)
    _set_cookie(response, request, STATE_COOKIE, _dump_state(ctx, state), STATE_TTL_S, "/auth")
    return response


async def callback(request: Request) -> Response:
    """
    ---
    summary: The provider's redirect back - opens a session.
    security: []
    responses:
      303:
        description: Signed in - the session cookie is set; to the page asked for.
      400:
        description: No sign-in in progress (state), or the code was refused (HTML page).
      403:
        description: Cancelled at the provider, or not a user of Atelier's roster (HTML).
      502:
        description: The ID token is invalid or lacks the user id (HTML page).
    """
    ctx: AppContext = request.app.state.ctx
    if ctx.ent is None:
        return page("disabled")
    state = _load_state(ctx, request)
    request.scope["session"] = state
    try:
        user_id, _claims = await ctx.ent.finish(request)
    except SignInError as exc:
        log.info("sign-in refused: %s", exc)
        return _without_state(page(exc.kind), request)
    user = await ctx.roster.get_user(user_id)
    if user is None:
        log.info("sign-in refused: %r is not in the roster", user_id)
        return _without_state(page("unknown_user", user=user_id), request)
    previous = await _session(ctx, request)
    if previous is not None:  # never keep a session across a new sign-in
        await ctx.sessions.end(previous.id)
    secret, _row = await ctx.sessions.open(user.id)
    log.info("%s signed in through the ENT", user.id)
    response = RedirectResponse(_next_path(state.get("next")), status_code=303, headers=_NO_STORE)
    _set_cookie(response, request, SESSION_COOKIE, secret, ctx.settings.session_ttl_s, "/")
    return _without_state(response, request)


def _without_state(response: Response, request: Request) -> Response:
    _drop_cookie(response, request, STATE_COOKIE, "/auth")
    return response


async def session(request: Request) -> Response:
    """
    ---
    summary: Who is signed in (session cookie), and whether ENT sign-in is offered.
    security: []
    responses:
      200:
        description: >-
          {"oidc": bool, "demo": bool, "user": {id, role, display_name} | null, and when
          signed in "csrf": str (the X-Atelier-CSRF header's value), "expires_at": unix,
          "socket_token_ttl_s": int}
    """
    ctx: AppContext = request.app.state.ctx
    body: dict[str, Any] = {"oidc": ctx.ent is not None, "demo": ctx.settings.demo, "user": None}
    row = await _session(ctx, request)
    user = await ctx.roster.get_user(row.user_id) if row is not None else None
    if row is not None and user is not None:
        body.update(
            user={"id": user.id, "role": str(user.role), "display_name": user.display_name},
            csrf=csrf_token(ctx, row.id),
            expires_at=unix(row.expires_at),
            socket_token_ttl_s=ctx.settings.socket_token_ttl_s,
        )
    return JSONResponse(body, headers=_NO_STORE)


async def socket_token(request: Request) -> Response:
    """
    ---
    summary: A short-lived token of the signed-in user, for sockets and REST.
    description: >-
      Session cookie, X-Atelier-CSRF header and (from a browser) this site's Origin
      required. The token carries sub, exp, jti and sid (the session): it is refused
      once the session has ended.
    security: []
    responses:
      200:
        description: '{"token": str, "expires_in": int, "expires_at": int}'
      401:
        description: Not signed in (no session, or it ended or expired).
      403:
        description: Missing or wrong CSRF header, or another site's Origin.
    """
    ctx: AppContext = request.app.state.ctx
    row = await _checked(request)
    if isinstance(row, JSONResponse):
        return row
    remaining = int(unix(row.expires_at) - time.time())
    ttl = max(1, min(ctx.settings.socket_token_ttl_s, remaining))
    token = tokens.issue(ctx.jwt_secret, row.user_id, ttl, sid=row.id)
    return JSONResponse(
        {"token": token, "expires_in": ttl, "expires_at": int(time.time()) + ttl},
        headers=_NO_STORE,
    )


async def logout(request: Request) -> Response:
    """
    ---
    summary: Sign out - ends the session; its tokens are refused from then on.
    description: Session cookie, X-Atelier-CSRF header and this site's Origin required.
    security: []
    responses:
      200:
        description: '{"signed_out": true}; the session cookie is cleared.'
      401:
        description: Not signed in.
      403:
        description: Missing or wrong CSRF header, or another site's Origin.
    """
    ctx: AppContext = request.app.state.ctx
    row = await _checked(request)
    if isinstance(row, JSONResponse):
        return row
    await ctx.sessions.end(row.id)
    log.info("%s signed out", row.user_id)
    response = JSONResponse({"signed_out": True}, headers=_NO_STORE)
    _drop_cookie(response, request, SESSION_COOKIE, "/")
    return response


routes = [
    Route("/auth/login", login, methods=["GET"]),
    Route("/auth/callback", callback, methods=["GET"], name="auth_callback"),
    Route("/auth/session", session, methods=["GET"]),
    Route("/auth/socket-token", socket_token, methods=["POST"]),
    Route("/auth/logout", logout, methods=["POST"]),
]
