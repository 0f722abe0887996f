"""The ``atelier`` command: serve, migrate, seed-demo, token, roster import / export,
retention run, backup, restore."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import signal
import socket
import sys
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from pydantic import ValidationError

from server.config import Settings, get_settings

if TYPE_CHECKING:
    from server.roster.importer import ImportReport

#: Exit codes of ``atelier roster import`` (2 is argparse's: bad arguments).
EXIT_INVALID_FILE = 1
EXIT_REFUSED = 3
#: Lowered users listed by the command line (the report's JSON has them all).
SHOWN_LOWERED = 50


def _serve(settings: Settings, host: str, port: int, log_level: str) -> int:
    import uvicorn

    from server import heap
    from server.app import create_app
    from server.logs import lean_records, log_config
    from server.transport.protocol import AtelierHttpProtocol, AtelierWebSocketProtocol

    # A server writes to sockets its clients may have reset: that write must fail with
    # EPIPE, never kill the node (``python -m server.cli`` restores SIGPIPE's default for
    # the other commands' pipes; a storm of reconnects killed a node that way).
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    lean_records()  # a line per socket: each costs less
    app = create_app(settings)
    AtelierHttpProtocol.head_timeout_s = settings.preauth_timeout_s

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            # Readiness goes false first, so the load balancer stops sending us sockets
            # while uvicorn closes the open ones with 1012 and the lifespan flushes.
            ctx = getattr(app.state, "ctx", None)
            if ctx is not None:
                ctx.draining = True
            super().handle_exit(sig, frame)

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:  # the application is up: what exists now lives as long
                heap.settle()

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=AtelierHttpProtocol,
        ws=AtelierWebSocketProtocol,
        ws_max_size=settings.max_frame_bytes,
        ws_per_message_deflate=settings.ws_deflate,
        ws_ping_interval=settings.ws_ping_interval_s,
        ws_ping_timeout=settings.ws_ping_interval_s,
        log_config=log_config(log_level, settings.log_format, settings.node_id),
        # X-Forwarded-* are believed only from TRUSTED_PROXIES (none by default): they
        # decide the scheme, hence whether the session cookie is Secure.
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=settings.trusted_proxies or "",
        server_header=False,
        timeout_graceful_shutdown=max(1, round(settings.shutdown_grace_s)),
        lifespan="on",
        # uvloop when installed (a dependency on Linux and macOS), asyncio's own loop else.
        loop="auto",
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


def _read_roster_file(settings: Settings, name: str) -> bytes:
    """The file's bytes (``-``: standard input), at most ``roster_max_bytes`` + 1 read."""
    limit = settings.roster_max_bytes + 1
    if name == "-":
        return sys.stdin.buffer.read(limit)
    with open(name, "rb") as f:
        return f.read(limit)


def describe(report: ImportReport) -> list[str]:
    """The import's report as the command line prints it."""
    lines = [f"{'':14}{'added':>9}{'changed':>9}{'removed':>9}"]
    for kind, counts in report.diff.counts().items():
        lines.append(f"{kind:14}{counts['added']:>9}{counts['changed']:>9}{counts['removed']:>9}")
    if report.diff.restored:
        lines.append(f"users back in the roster: {', '.join(sorted(report.diff.restored))}")
    removed = len(report.diff.users.removed)
    if removed:
        lines.append(
            f"users removed: {removed} of {report.users_before} ({report.removed_share:.1%}; "
            f"limit {report.max_removed_share:.0%})"
        )
    if report.assignments_deleted:
        lines.append(
            f"the classes removed take {report.assignments_deleted} assignments and their "
            "works with them (docs, versions and chat stay)"
        )
    if report.lowered:
        lines.append(f"access lowered or removed: {len(report.lowered)} users")
        for lw in report.lowered[:SHOWN_LOWERED]:
            reasons = ",".join(sorted(r.value for r in lw.reasons))
            lines.append(f"  {lw.user_id} ({reasons}): {' '.join(sorted(lw.rooms)) or '-'}")
        if len(report.lowered) > SHOWN_LOWERED:
            lines.append(f"  ... and {len(report.lowered) - SHOWN_LOWERED} more")
    if report.refused is not None:
        lines.append(f"refused: {report.refused} (--force)")
    elif report.dry_run:
        lines.append("dry run: nothing written" + ("" if report.changed else " (no change)"))
    elif report.changed:
        lines.append(f"imported (audit #{report.audit_id})")
    else:
        lines.append(f"no change: the roster already matches the file (audit #{report.audit_id})")
    return lines


def _roster_import(
    settings: Settings, name: str, fmt: str | None, dry_run: bool, force: bool
) -> int:
    from server.persistence.audit import CLI_ACTOR
    from server.persistence.db import create_engine
    from server.roster import formats
    from server.roster.importer import import_roster

    try:
        data = _read_roster_file(settings, name)
    except OSError as exc:
        print(f"{name}: {exc.strerror}", file=sys.stderr)
        return EXIT_INVALID_FILE
    kind = formats.detect(data, name) if fmt is None else fmt
    try:
        snap = formats.parse(
            data,
            "json" if kind == "json" else "csv",
            max_bytes=settings.roster_max_bytes,
            max_rows=settings.roster_max_rows,
        )
    except formats.RosterFileError as exc:
        print(f"{name}: refused, nothing imported", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_INVALID_FILE
    sizes = ", ".join(f"{n} {k}" for k, n in snap.sizes().items())
    print(f"{name} ({kind}): {sizes}")
    detail = {
        "source": "cli",
        "file": Path(name).name,
        "format": kind,
        "sha256": hashlib.sha256(data).hexdigest(),
    }

    async def go() -> ImportReport:
        engine = create_engine(settings.database_url)
        try:
            return await import_roster(
                engine,
                snap,
                actor=CLI_ACTOR,
                node=settings.node_id,
                max_removed_share=settings.roster_max_removed_share,
                dry_run=dry_run,
                force=force,
                detail=detail,
            )
        finally:
            await engine.dispose()

    report = asyncio.run(go())
    for line in describe(report):
        print(line)
    if report.applied and report.changed and settings.redis_url:
        asyncio.run(_announce_roster(settings, [lw.user_id for lw in report.lowered]))
        print("live revocation: sent to every node (Redis)")
    elif report.applied and report.changed:
        print(
            "live revocation: no Redis to reach the running node; its caches expire within "
            f"{settings.roster_cache_s:g} s (import over REST to revoke at once)"
        )
    return EXIT_REFUSED if report.refused is not None else 0


async def _announce_roster(settings: Settings, lowered: list[str]) -> None:
    """Tell the running nodes, over the bus, that the roster changed: they drop their
    caches and check the lowered users' sockets again (server/revocation/)."""
    from server.bus import create_bus
    from server.revocation.service import roster_messages

    bus = create_bus(settings)
    await bus.start()
    try:
        await bus.publish_many(roster_messages(lowered))
    finally:
        await bus.close()


def _roster_export(settings: Settings, name: str, fmt: str | None) -> int:
    from server.persistence.db import create_engine
    from server.roster import formats
    from server.roster.importer import export_roster

    async def go() -> formats.Snapshot:
        engine = create_engine(settings.database_url)
        try:
            return await export_roster(engine)
        finally:
            await engine.dispose()

    snap = asyncio.run(go())
    kind = fmt or ("json" if name.lower().endswith(".json") else "csv")
    text = formats.dump(snap, "json" if kind == "json" else "csv")
    if name == "-":
        sys.stdout.write(text)
    else:
        Path(name).write_text(text, encoding="utf-8")
        sizes = ", ".join(f"{n} {k}" for k, n in snap.sizes().items())
        print(f"{name} ({kind}): {sizes}")
    return 0


def _retention_run(settings: Settings, dry_run: bool) -> int:
    from server.persistence.audit import CLI_ACTOR
    from server.persistence.db import create_engine
    from server.privacy.classes import data_classes
    from server.privacy.retention import Retention

    async def go() -> dict[str, int] | None:
        engine = create_engine(settings.database_url)
        try:
            return await Retention(settings, engine, "cli").run(dry_run=dry_run, actor=CLI_ACTOR)
        finally:
            await engine.dispose()

    removed = asyncio.run(go())
    if removed is None:
        print("retention: another node is running it now; nothing done", file=sys.stderr)
        return 1
    for c in data_classes(settings):
        print(f"{c.key}: kept {c.days} days" if c.days else f"{c.key}: kept forever")
    verb = "would remove" if dry_run else "removed"
    for key, n in removed.items():
        print(f"{verb} {n} {key}")
    if not removed:
        print(f"{verb} nothing (every retention is 0: kept forever)")
    return 0


def _backup(settings: Settings, name: str) -> int:
    from server.persistence.backup import BackupError, backup

    try:
        report = backup(settings.database_url, Path(name))
    except (BackupError, OSError) as exc:
        print(f"atelier backup: {exc}", file=sys.stderr)
        return EXIT_INVALID_FILE
    print(
        f"{report.path}: {report.backend} backup, {report.size} bytes, "
        f"schema {report.revision or 'unknown'}"
    )
    return 0


def _restore(settings: Settings, name: str, force: bool) -> int:
    from server.persistence.backup import BackupError, NotEmpty, restore

    try:
        report = restore(settings.database_url, Path(name), force=force)
    except NotEmpty as exc:
        print(f"atelier restore: refused, nothing written: {exc} (--force)", file=sys.stderr)
        return EXIT_REFUSED
    except (BackupError, OSError) as exc:
        print(f"atelier restore: {exc}", file=sys.stderr)
        return EXIT_INVALID_FILE
    print(
        f"{report.path}: {report.backend} backup restored (schema {report.revision or 'unknown'}"
        ", now migrated to this version's head)"
    )
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
    roster = sub.add_parser("roster", help="the roster from the ENT (docs/roster.md)")
    roster_sub = roster.add_subparsers(dest="roster_command", required=True)
    imp = roster_sub.add_parser(
        "import",
        help="make the roster the file's (CSV or JSON); prints the changes",
        description=(
            "Exit status: 0 imported (or nothing to change, or a dry run), "
            f"{EXIT_INVALID_FILE} the file is refused (its problems are printed), "
            f"{EXIT_REFUSED} the import is refused (it removes too many users)."
        ),
    )
    imp.add_argument("file", help="the roster file; - reads standard input")
    imp.add_argument("--dry-run", action="store_true", help="print the changes, write nothing")
    imp.add_argument(
        "--force", action="store_true", help="import even past ROSTER_MAX_REMOVED_SHARE"
    )
    imp.add_argument("--format", choices=["csv", "json"], help="default: from the file")
    exp = roster_sub.add_parser("export", help="write the roster in the import's format")
    exp.add_argument("file", help="the file to write (.json: JSON, else CSV); - for stdout")
    exp.add_argument("--format", choices=["csv", "json"], help="default: from the name")
    ret = sub.add_parser("retention", help="delete what is past its retention (README)")
    ret_sub = ret.add_subparsers(dest="retention_command", required=True)
    run = ret_sub.add_parser("run", help="apply every RETENTION_*_DAYS now; prints the counts")
    run.add_argument("--dry-run", action="store_true", help="count, delete nothing")
    bak = sub.add_parser(
        "backup",
        help="write a backup of the database (SQLite: online backup; PostgreSQL: pg_dump)",
        description=f"Exit status: 0 written, {EXIT_INVALID_FILE} failed (the reason is printed).",
    )
    bak.add_argument("file", help="the backup file to write (replaced if it exists)")
    res = sub.add_parser(
        "restore",
        help="restore a backup into an empty database, then migrate it",
        description=(
            f"Exit status: 0 restored, {EXIT_INVALID_FILE} failed (the reason is printed), "
            f"{EXIT_REFUSED} refused: the database is not empty (--force). Stop the nodes first."
        ),
    )
    res.add_argument("file", help="a file written by `atelier backup`")
    res.add_argument("--force", action="store_true", help="restore over a database that has tables")
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
    if args.command == "roster" and args.roster_command == "import":
        return _roster_import(settings, args.file, args.format, args.dry_run, args.force)
    if args.command == "roster" and args.roster_command == "export":
        return _roster_export(settings, args.file, args.format)
    if args.command == "retention" and args.retention_command == "run":
        return _retention_run(settings, args.dry_run)
    if args.command == "backup":
        return _backup(settings, args.file)
    if args.command == "restore":
        return _restore(settings, args.file, args.force)
    return 2


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main())
