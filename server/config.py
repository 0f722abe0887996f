"""Settings, read from the environment with the prefix ``ATELIER_``.

Every setting says what it does, its default and when to change it.
"""

from __future__ import annotations

import os
import secrets
import socket
from functools import cached_property
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ATELIER_", extra="ignore")

    data_dir: Path = Field(
        default=Path("data"),
        description="Folder for the SQLite database and the generated JWT secret.",
    )
    database_url: str = Field(
        default="sqlite+aiosqlite:///data/atelier.db",
        description=(
            "SQLAlchemy async URL. SQLite (aiosqlite, WAL) for one node; "
            "`postgresql+psycopg://` when several nodes share the data."
        ),
    )
    redis_url: str | None = Field(
        default=None,
        description="Unset: in-process bus, one node. Set: nodes share rooms over Redis pub/sub.",
    )
    redis_prefix: str = Field(
        default="atelier:",
        description=(
            "Prefix of every Redis key and channel. Pub/sub channels ignore the database "
            "number, so two clusters (or a test and a benchmark) sharing one Redis need "
            "different prefixes."
        ),
    )
    jwt_secret: str | None = Field(
        default=None,
        description=(
            "HS256 key for tokens. Unset: generated once and kept in DATA_DIR/jwt_secret "
            "(mode 600). Set it to the same value on every node of a cluster."
        ),
    )
    node_id: str = Field(
        default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}",
        description="This process's name on the bus; unique per node. Default: host-pid.",
    )
    allowed_origins: str | None = Field(
        default=None,
        description=(
            "Comma list of Origins allowed to open a WebSocket or call the API from a "
            "browser. Unset: same origin and localhost only."
        ),
    )
    client_dir: Path | None = Field(
        default=None,
        description=(
            "Folder of the built web client served at /. Unset: client_demo/dist beside "
            "the code (`make client` builds it). The Docker image sets it."
        ),
    )
    demo: bool = Field(
        default=False,
        description="Demo mode (the client's demo sign-in). `make run` turns it on.",
    )

    # --- limits: each one protects the node from one client ---
    ws_deflate: bool = Field(
        default=False,
        description=(
            "Offer permessage-deflate on WebSockets. Off: it costs ~40 KiB of zlib state "
            "per socket and CPU per frame, while keystroke updates (tens of bytes) barely "
            "shrink; only a newcomer's first sync of a long doc gains (see bench/deflate.py "
            "and the issue notes). Turn on for schools on very slow links with long docs."
        ),
    )
    max_frame_bytes: int = Field(
        default=2 * 1024 * 1024,
        description=(
            "Largest WebSocket message accepted; larger closes the socket with 1009. "
            "2 MiB holds a long report with its history; raise it for docs with big "
            "embedded media, lower it to cap memory per socket."
        ),
    )
    rate_frames_per_second: float = Field(
        default=200.0,
        description=(
            "Sustained frames per second one socket may send (token bucket). A fast "
            "typist sends ~15 updates/s plus awareness; 200 leaves room for bursts "
            "after a reconnect. Past it the socket is closed with 1008."
        ),
    )
    rate_burst: int = Field(default=1000, description="Token bucket size for the above.")
    send_queue_frames: int = Field(
        default=2048,
        description=(
            "Frames queued towards one socket before it counts as too slow and is closed "
            "with 1013 (it resyncs on reconnect). Protects the room from a stalled laptop."
        ),
    )

    # --- persistence: write-behind with group commit ---
    flush_interval_ms: int = Field(
        default=50,
        description=(
            "Group-commit window: updates are appended to the database at most this long "
            "after they arrive, many per transaction. Lower: less at risk on SIGKILL "
            "(clients resend on reconnect anyway); higher: fewer transactions."
        ),
    )
    flush_max_batch: int = Field(default=1000, description="Most updates in one transaction.")
    compact_after_updates: int = Field(
        default=500,
        description=(
            "Fold a doc's update log into its snapshot once it holds this many updates, "
            "and on unload. Keeps loads fast; the fold runs under a lock."
        ),
    )
    doc_unload_delay_s: float = Field(
        default=5.0,
        description=(
            "Seconds a doc stays loaded after its last client leaves, so a page reload or a "
            "flaky Wi-Fi reconnect does not reload it from the database."
        ),
    )
    shutdown_grace_s: float = Field(
        default=10.0, description="Seconds allowed for flushing on SIGTERM before exit."
    )
    # --- progress: versions and the class console (server/progress/) ---
    version_pause_s: float = Field(
        default=120.0,
        description=(
            "Take an automatic version of a doc after this many seconds without an edit "
            "(a pause in the group's work). Lower it for finer history, at the cost of "
            "one whole compressed state per version."
        ),
    )
    version_interval_s: float = Field(
        default=600.0,
        description=(
            "During continuous editing, take an automatic version at most this often "
            "(seconds since the first edit after the previous version)."
        ),
    )
    progress_event_s: float = Field(
        default=1.0,
        description=(
            "Coalescing window of the teacher console's progress events: at most one per "
            "doc per window. 1 s is live enough for a console and bounds the traffic."
        ),
    )

    awareness_timeout_s: float = Field(
        default=30.0,
        description="Awareness states not renewed for this long are dropped (y-protocols: 30 s).",
    )

    roster_cache_s: float = Field(
        default=30.0,
        description=(
            "Seconds a user's roster entry and room access stay cached on a node. A class "
            "reconnecting at once after a Wi-Fi glitch then costs no database round trip; "
            "a roster change (a student moved to another group) applies within this delay. "
            "0 disables the cache."
        ),
    )

    roster_max_removed_share: float = Field(
        default=0.1,
        ge=0.0,
        le=1.0,
        description=(
            "A roster import that would remove more than this share of the current users "
            "(0.1: one in ten) is refused unless forced (`atelier roster import --force`, "
            "`?force=1`): a truncated ENT export must not sign a school out. Removed users "
            "keep their history and come back when a later import lists them."
        ),
    )
    roster_max_bytes: int = Field(
        default=64 * 1024 * 1024,
        gt=0,
        description=(
            "Largest roster file an import reads (CSV or JSON). 64 MiB holds a region of "
            "~400,000 users with their memberships; larger files are refused before parsing."
        ),
    )
    roster_max_rows: int = Field(
        default=2_000_000,
        gt=0,
        description=(
            "Most rows (CSV lines or JSON objects, all kinds together) in one roster file. "
            "Bounds the memory and the time of one import."
        ),
    )

    chat_messages_per_minute: float = Field(
        default=20.0,
        description=(
            "Chat messages one user may post per minute in one room (token bucket, per "
            "node). 20 lets a class discuss; it stops a child holding Enter down."
        ),
    )
    chat_burst: int = Field(default=5, description="Messages a user may post back to back.")

    node_heartbeat_s: float = Field(
        default=5.0,
        description="How often a node renews its liveness key in Redis.",
    )
    node_ttl_s: float = Field(
        default=15.0,
        description=(
            "A node whose liveness key has not been renewed for this long is dead: the "
            "others drop its clients' cursors. With the 5 s check this bounds ghosts to "
            "~20 s. Must exceed the heartbeat by a safe margin (GC pauses, a busy loop)."
        ),
    )
    antientropy_interval_s: float = Field(
        default=60.0,
        description=(
            "Besides on load and after every bus reconnect, each loaded doc exchanges "
            "state vectors with its peers this often: a safety net for any lost pub/sub "
            "message. 0 disables the periodic round."
        ),
    )

    timezone: str = Field(
        default="Europe/Paris",
        description=(
            "The school's time zone: a due date given without an offset is read in it, and "
            "notifications and exports write dates in it."
        ),
    )
    rendu_settle_s: float = Field(
        default=1.0,
        description=(
            "When a work is handed in or frozen at its deadline, its doc is locked first and "
            "its state taken this long after, so that edits accepted on other nodes before "
            "the lock reached them (bus latency, write-behind) are in the rendu."
        ),
    )
    deadline_lease_s: float = Field(
        default=60.0,
        description=(
            "A node that claimed a work's freeze has this long to finish it; after that "
            "(it died) another node claims it again. No work is frozen twice."
        ),
    )
    deadline_poll_s: float = Field(
        default=5.0,
        description=(
            "How often each node reads the agenda of upcoming deadlines (it also wakes at "
            "each deadline it knows, and when an assignment changes anywhere)."
        ),
    )
    reminder_before_s: float = Field(
        default=86400.0,
        description='The "due tomorrow" reminder goes this long before a work is due.',
    )
    ent_webhook_url: str | None = Field(
        default=None,
        description=(
            "Where every notification is POSTed as signed JSON for the ENT to relay (its "
            "mobile app, e-mail). Unset: notifications stay in Atelier's feed."
        ),
    )
    ent_webhook_secret: str | None = Field(
        default=None,
        description=(
            "HMAC-SHA256 key of the webhook's X-Atelier-Signature header. Required when "
            "ENT_WEBHOOK_URL is set."
        ),
    )
    webhook_timeout_s: float = Field(default=5.0, description="Timeout of one webhook POST.")
    webhook_concurrency: int = Field(
        default=8, description="Webhook POSTs one node has in flight at once."
    )
    webhook_max_backoff_s: float = Field(
        default=3600.0,
        description=(
            "Retries back off exponentially (1 s, 2 s, 4 s … with jitter) up to this; a "
            "notification is retried until the ENT takes it."
        ),
    )

    @cached_property
    def origins(self) -> list[str] | None:
        if not self.allowed_origins:
            return None
        return [o.strip() for o in self.allowed_origins.split(",") if o.strip()]

    def resolved_jwt_secret(self) -> str:
        """The configured secret, or the one generated once in the data folder."""
        if self.jwt_secret:
            return self.jwt_secret
        path = self.data_dir / "jwt_secret"
        if path.exists():
            return path.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        value = secrets.token_urlsafe(48)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process (a second node, the CLI) won the race
            return path.read_text().strip()
        with os.fdopen(fd, "w") as f:
            f.write(value)
        return value


def get_settings() -> Settings:
    return Settings()
