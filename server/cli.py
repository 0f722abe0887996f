"""The ``atelier`` command: serve, migrate, seed-demo, token."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from types import FrameType

from pydantic import ValidationError

from server.config import Settings, get_settings


def _serve(settings: Settings, host: str, port: int, log_level: str) -> int:
    import uvicorn

    from server.app import create_app
    from server.logs import log_config
    from server.transport.protocol import AtelierWebSocketProtocol

    app = create_app(settings)

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            # Readiness goes false first, so the load balancer stops sending us sockets
            # while uvicorn closes the open ones with 1012 and the lifespan flushes.
            ctx = getattr(app.state, "ctx", None)
            if ctx is not None:
                ctx.draining = True
            super().handle_exit(sig, frame)

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        ws=AtelierWebSocketProtocol,
        ws_max_size=settings.max_frame_bytes,
        ws_per_message_deflate=settings.ws_deflate,
        log_config=log_config(log_level),
        # X-Forwarded-* are believed only from TRUSTED_PROXIES (none by default): they
        # decide the scheme, hence whether the session cookie is Secure.
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=settings.trusted_proxies or "",
        server_header=False,
        timeout_graceful_shutdown=max(1, round(settings.shutdown_grace_s)),
        lifespan="on",
    )
    server = Server(config)
    server.run()
    return 0


def _migrate(settings: Settings) -> int:
    from server.persistence.db import run_migrations

    run_migrations(settings.database_url)
    print("database migrated")
    return 0


def _seed(settings: Settings, only_if_empty: bool) -> int:
    from server.persistence.db import create_engine
    from server.persistence.seed import is_empty, seed_demo

    async def go() -> bool:
        engine = create_engine(settings.database_url)
        try:
            if only_if_empty and not await is_empty(engine):
                return False
            return await seed_demo(engine)
        finally:
            await engine.dispose()

    changed = asyncio.run(go())
    print("demo school seeded" if changed else "demo school already present")
    return 0


def _token(settings: Settings, user_id: str, ttl: int) -> int:
    from server.auth.tokens import issue

    print(issue(settings.resolved_jwt_secret(), user_id, ttl))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="atelier", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve HTTP and WebSockets")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--log-level", default="info")
    sub.add_parser("migrate", help="apply database migrations")
    seed = sub.add_parser("seed-demo", help="create the demo school (same ids every time)")
    seed.add_argument("--if-empty", action="store_true", help="only into an empty database")
    tok = sub.add_parser("token", help="print a signed token (development and tests)")
    tok.add_argument("user_id")
    tok.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds")
    args = parser.parse_args(argv)
    try:
        settings = get_settings()
    except ValidationError as exc:
        # Only the messages: pydantic's own text quotes the input, secrets included.
        for error in exc.errors(include_input=False, include_url=False):
            where = ".".join(str(part) for part in error["loc"])
            print(
                f"atelier: configuration: {where + ': ' if where else ''}{error['msg']}",
                file=sys.stderr,
            )
        return 2
    if args.command == "serve":
        return _serve(settings, args.host, args.port, args.log_level)
    if args.command == "migrate":
        return _migrate(settings)
    if args.command == "seed-demo":
        return _seed(settings, args.if_empty)
    if args.command == "token":
        return _token(settings, args.user_id, args.ttl)
    return 2


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main())
