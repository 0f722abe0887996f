"""Settings, read from the environment with the prefix ``ATELIER_``.

Every setting says what it does, its default and when to change it.
"""

from __future__ import annotations

import os
import secrets
import socket
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
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
    # --- the ENT's tokens (RS256/ES256 against its JWKS), beside Atelier's own HS256 ---
    jwks_url: str | None = Field(
        default=None,
        description=(
            "The ENT's JWKS URL (https). Set: tokens signed by the ENT (RS256, ES256, "
            "chosen by each key's type) are accepted beside Atelier's own HS256 ones; "
            "JWT_ISSUER and JWT_AUDIENCE are then required. Unset: HS256 only."
        ),
    )
    jwt_issuer: str | None = Field(
        default=None,
        description="The `iss` every ENT token must carry, exactly (required with JWKS_URL).",
    )
    jwt_audience: str | None = Field(
        default=None,
        description=(
            "The audience every ENT token must name in `aud` (alone or in its list): the "
            "id the ENT gave Atelier (required with JWKS_URL)."
        ),
    )
    jwt_leeway_s: float = Field(
        default=30.0,
        ge=0,
        le=300,
        description=(
            "Clock skew allowed between the ENT and this node on `exp`, `nbf` and `iat` "
            "of ENT tokens, seconds (0–300). Atelier's own tokens keep 5 s."
        ),
    )
    jwt_user_claim: str = Field(
        default="sub",
        min_length=1,
        description=(
            "The ENT token claim holding the roster user id (e.g. `uid` when the ENT's "
            "`sub` is an opaque id). Atelier's own tokens always use `sub`."
        ),
    )
    jwks_cache_s: float = Field(
        default=300.0,
        ge=1,
        le=86400,
        description=(
            "Seconds the ENT's keys are kept before a background refresh. While the ENT "
            "is down the keys held keep verifying; a key the ENT removed is refused from "
            "the next good fetch."
        ),
    )
    jwks_refresh_min_s: float = Field(
        default=10.0,
        ge=0.1,
        le=3600,
        description=(
            "A token with an unknown `kid` (a key just rotated in) refetches the JWKS at "
            "most once per this many seconds, shared by every caller: a flood of forged "
            "kids costs the ENT one request per window."
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
        default=1000.0,
        gt=0,
        description=(
            "Sustained frames per second one socket may send (token bucket). Past it the "
            "socket is slowed, not closed: the server stops reading it until tokens "
            "return, so TCP holds the sender back and its frames still arrive, in order. "
            "A fast typist sends ~15 updates/s plus awareness; 1000 lets a pasting script "
            "or a 50,000-edit document through in under a minute, and one socket's "
            "frames cost the node about a tenth of a core to take in."
        ),
    )
    rate_burst: int = Field(
        default=2000,
        ge=1,
        description=(
            "Token bucket size for the above: frames a socket may send at full speed "
            "before it is slowed (a reconnect replaying its queued updates)."
        ),
    )
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

    @model_validator(mode="after")
    def _ent_tokens_are_checked(self) -> Settings:
        if self.jwks_url:
            if not self.jwks_url.startswith(("https://", "http://")):
                raise ValueError("ATELIER_JWKS_URL must be an http(s) URL")
            missing = [
                name
                for name, value in (
                    ("ATELIER_JWT_ISSUER", self.jwt_issuer),
                    ("ATELIER_JWT_AUDIENCE", self.jwt_audience),
                )
                if not value
            ]
            if missing:
                raise ValueError(
                    f"ATELIER_JWKS_URL is set, so {' and '.join(missing)} must be set too: "
                    "the ENT's tokens are checked against both"
                )
        return self

    @model_validator(mode="after")
    def _leases_outlast_the_settle(self) -> Settings:
        # A freeze holds its claim for the settle time plus its writes: a lease shorter
        # than that would let another node take over a live freeze.
        if self.deadline_lease_s <= self.rendu_settle_s + 1:
            raise ValueError(
                "ATELIER_DEADLINE_LEASE_S must exceed ATELIER_RENDU_SETTLE_S by more than 1 s"
            )
        return self

    # --- sign-in through the ENT's OpenID provider (server/sessions/, server/api/auth.py) ---
    oidc_issuer: str | None = Field(
        default=None,
        description=(
            "Issuer URL of the ENT's OpenID Connect provider; its metadata is read from "
            "ISSUER/.well-known/openid-configuration (and the issuer it states must be this "
            "one). Unset: no ENT sign-in (/auth/login answers 404), tokens only."
        ),
    )
    oidc_client_id: str | None = Field(
        default=None,
        description="Atelier's client id at the provider. Required with OIDC_ISSUER.",
    )
    oidc_client_secret: str | None = Field(
        default=None,
        description=(
            "Atelier's client secret at the provider (client_secret_basic). Unset: a public "
            "client (token endpoint auth 'none'), PKCE alone binds the code."
        ),
    )
    oidc_redirect_url: str | None = Field(
        default=None,
        description=(
            "The callback URL registered at the provider, e.g. "
            "https://atelier.example.org/auth/callback. Unset: derived from each request "
            "(scheme and Host, as seen through TRUSTED_PROXIES). Set it in production."
        ),
    )
    oidc_scopes: str = Field(
        default="openid profile",
        description="Scopes asked for (space-separated); `openid` is always needed.",
    )
    oidc_user_claim: str = Field(
        default="sub",
        description=(
            "The ID-token claim whose value is the roster user id (`sub` by default; an "
            "ENT whose `sub` is opaque may expose the school's id in another claim)."
        ),
    )
    oidc_timeout_s: float = Field(
        default=10.0,
        description="Timeout of each call to the provider (discovery, keys, code exchange).",
    )
    session_ttl_s: int = Field(
        default=8 * 3600,
        description=(
            "How long a sign-in lasts: the session cookie and its row expire after this "
            "(a school day). Signing out ends it at once."
        ),
    )
    socket_token_ttl_s: int = Field(
        default=300,
        description=(
            "Lifetime of the tokens POST /auth/socket-token mints for sockets and REST. "
            "Short, because they sit in URLs and page storage; the web client renews them "
            "before they expire. An open socket is not cut when its token expires."
        ),
    )
    session_check_s: float = Field(
        default=1.0,
        description=(
            "A node caches whether a session is still open for this long, so a class "
            "reconnecting at once costs one database read per session. An ended session "
            "is refused at once on the node that ended it, on the others within this "
            "delay (and at once when the bus carries the end). 0 reads every time."
        ),
    )
    trusted_proxies: str | None = Field(
        default=None,
        description=(
            "Comma list of proxy addresses (or `*`) whose X-Forwarded-Proto and "
            "X-Forwarded-For are believed (uvicorn's forwarded_allow_ips). Unset: none, "
            "so a request counts as TLS (Secure cookies) only when it came over TLS "
            "itself. Behind nginx set it to nginx's address."
        ),
    )

    # --- metrics (server/metrics/, docs/operations.md "Metrics") ---
    metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description=(
            "Port of the node's own metrics listener (GET /metrics, Prometheus text "
            "format, no authentication): never the port the load balancer forwards. "
            "Unset: no listener. Several nodes on one machine need one port each."
        ),
    )
    metrics_host: str = Field(
        default="127.0.0.1",
        description=(
            "Address the metrics listener binds: 127.0.0.1 lets only this machine scrape; "
            "in a cluster, the private interface Prometheus reaches (never a public one)."
        ),
    )
    metrics_token: str | None = Field(
        default=None,
        min_length=32,
        description=(
            "When set, /metrics is also served on the serving port to a request bearing "
            "`Authorization: Bearer <this token>` (at least 32 characters). Unset: "
            "/metrics on the serving port answers 404, whoever asks."
        ),
    )

    @field_validator("metrics_token", mode="before")
    @classmethod
    def _empty_token_is_unset(cls, value: object) -> object:
        # `ATELIER_METRICS_TOKEN=` (compose's `${VAR:-}`) means no token, not a short one.
        return None if value == "" else value

    # --- Data protection: export, erasure, retention (server/privacy/) ---
    # Retention in days per data class; 0 keeps forever. The defaults follow a French
    # school year: what a class produced is kept through the year and the next one's
    # start (the "bascule" of the ENT), then goes.
    retention_chat_days: int = Field(
        default=365,
        ge=0,
        description=(
            "Chat messages older than this are deleted (a school year and its summer). "
            "0 keeps them forever."
        ),
    )
    retention_documents_days: int = Field(
        default=730,
        ge=0,
        description=(
            "Docs unchanged for this long are deleted with their history and versions, "
            "and assignments due that long ago with their works: two school years, so a "
            "student finds last year's work. 0 keeps them forever."
        ),
    )
    retention_versions_days: int = Field(
        default=180,
        ge=0,
        description=(
            "Automatic versions (pause, session, interval checkpoints) older than this "
            "are deleted; named versions, restores and rendus live as long as their doc."
        ),
    )
    retention_notifications_days: int = Field(
        default=90,
        ge=0,
        description="Notifications older than this are deleted (a school term).",
    )
    retention_audit_days: int = Field(
        default=365,
        ge=0,
        description=(
            "Audit trail rows older than this are deleted (a year, as the CNIL "
            "recommends for traces of actions). 0 keeps them forever."
        ),
    )
    retention_logs_days: int = Field(
        default=180,
        ge=0,
        description=(
            "Atelier writes its logs to stdout and keeps none: this is the retention the "
            'operator\'s log pipeline must apply (six months), shown in "Mes données" '
            "and /api/admin/settings so that what is declared is what runs."
        ),
    )
    retention_interval_s: float = Field(
        default=6 * 3600,
        ge=0,
        description=(
            "How often a node tries the retention job; across nodes it runs once per "
            "interval (a PostgreSQL advisory lock and the last run's audit row). 0: "
            "never periodic, only `atelier retention run`."
        ),
    )
    privacy_export_max_bytes: int = Field(
        default=200 * 1024 * 1024,
        gt=0,
        description=(
            "Upper bound of one person's export ZIP; past it the export is refused "
            "(413) rather than filling the node's disk. Built in a temporary file, "
            "streamed, then deleted."
        ),
    )
    erasure_settle_s: float = Field(
        default=2.0,
        ge=0,
        description=(
            "After an erasure closed the person's sockets on every node, wait this long "
            "and pseudonymise the doc log again: updates still in a node's write-behind "
            "queue (FLUSH_INTERVAL_MS) land meanwhile."
        ),
    )

    # --- limits that protect the service, and backups (issue 13, parts 5 and 6) ---
    max_doc_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        description=(
            "Largest state one doc may reach (bytes of its Yjs state). An edit that would "
            'take it past this is refused ("permission denied: document too large") and '
            "the doc stays as it was; deleting text is always accepted. 16 MiB is a "
            "very long report with pasted images; lower it to bound a node's memory."
        ),
    )
    max_docs_per_room: int = Field(
        default=2000,
        ge=1,
        description=(
            "Docs one room may hold (stored or loaded) for a socket to open a new one; "
            "past it the socket is closed with 1008. A class room with a doc per student "
            "for each of 60 assignments stays below; it stops a client inventing doc "
            "names to fill the database. Docs the server makes (assignments) are not held back."
        ),
    )
    max_sockets_per_user: int = Field(
        default=64,
        ge=1,
        description=(
            "Sockets one user may hold open on a node (every tab opens one per doc plus "
            "the room channel). Past it a new socket is closed with 1008. A teacher "
            "following five groups in three tabs stays well below."
        ),
    )
    max_sockets_per_node: int = Field(
        default=20000,
        ge=1,
        description=(
            "Sockets this node holds at once, counted from the upgrade (before auth). "
            "Past it a new socket is closed with 1013 (try another node). Size it from "
            "bench/memory.py: about 15 KiB per idle socket (bench/results) plus the docs they hold."
        ),
    )
    preauth_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description=(
            "A connection must send its request headers, and a socket be authorised, "
            "within this many seconds of arriving; else the connection is closed (a "
            "socket with 1013). Stops idle or slow half-open connections piling up."
        ),
    )
    # --- admission control: connection storms (issue 15, server/admission/) ---
    admission_slots: int = Field(
        default=16,
        ge=1,
        description=(
            "Sockets admitted at once: the work from a socket's acceptance to its first "
            "sync sent (token, roster, permission, doc load, sync step 1; a /collab doc's "
            "Auth). More wait in line. Too many and each admission slows (they share one "
            "event loop); too few and the loop idles while admissions wait on the "
            "database. 16 keeps a 2-core node near its best connects/s (bench storm); "
            "raise it with a slow, remote database (each admission waits longer on it)."
        ),
    )
    admission_line: int = Field(
        default=2000,
        ge=0,
        description=(
            "Sockets that may wait for a slot, first come first served. Past it a new "
            "socket is refused before its WebSocket handshake: HTTP 503 with Retry-After. "
            "About ADMISSION_MAX_WAIT_S times the node's connects/s: a longer line only "
            "makes sockets wait to be refused."
        ),
    )
    admission_max_wait_s: float = Field(
        default=8.0,
        gt=0,
        description=(
            "Longest a socket waits in line (before its handshake completes); then it is "
            "accepted and closed 1013 with `retry_after=<seconds>`. Keep it under the "
            "clients' connect timeouts (browsers have none; proxies: nginx's "
            "proxy_read_timeout, 60 s)."
        ),
    )
    admission_retry_min_s: float = Field(
        default=1.0,
        gt=0,
        description="Shortest retry delay a refusal announces (retry_after).",
    )
    admission_retry_max_s: float = Field(
        default=30.0,
        gt=0,
        description=(
            "Longest retry delay a refusal announces. The delay is the line and the "
            "clients already refused, at the measured admission rate, jittered "
            "(× 1–1.3): 10,000 refused at 400/s come back over 25 s."
        ),
    )
    admission_loads: int = Field(
        default=8,
        ge=1,
        description=(
            "Docs loaded from the database at once (a snapshot and its log each); more "
            "wait in order. Below the database pool (PostgreSQL: 10 + 20 overflow) so "
            "that loads leave connections for the writer and the roster. Raise it with a "
            "remote database whose reads are slow rather than busy."
        ),
    )
    memory_budget_mb: int = Field(
        default=0,
        ge=0,
        description=(
            "Resident memory (RSS, MiB) past which the node refuses to load more docs "
            '(1013, "node memory budget reached") and /readyz answers 503, so the load '
            "balancer sends new clients elsewhere; open sockets go on. 0: no budget. "
            "Set it to about 80 % of the memory the node may use."
        ),
    )

    # --- logs, the audit trail, pseudonymous presence (issue 13: server/logs.py, api/audit.py) ---
    log_format: Literal["plain", "json"] = Field(
        default="plain",
        description=(
            "`plain`: one readable line per record. `json`: one JSON object per line (ts, "
            "level, logger, message, node, and request_id, conn_id, user_id, room_id when "
            "known), for a log collector. Never any document or chat content nor a token. "
            "Behind TRUSTED_PROXIES the proxy's X-Request-Id is kept as the request id."
        ),
    )
    audit_page_max: int = Field(
        default=200,
        ge=1,
        le=1000,
        description="Most audit entries GET /api/admin/audit returns in one page.",
    )
    audit_csv_max_rows: int = Field(
        default=100_000,
        ge=1,
        description=(
            "Most rows one GET /api/admin/audit.csv streams; narrow the period (since, "
            "until) for more. Bounds what one export reads."
        ),
    )

    # --- the Hocuspocus endpoint /collab (issue 14: server/api/collab.py) ---
    collab_max_docs: int = Field(
        default=16,
        ge=1,
        description=(
            "Docs one /collab socket may hold open at once (each with its own Auth). A "
            "student has two or three open; past it the doc is refused with "
            "PermissionDenied, the socket and its other docs go on."
        ),
    )
    collab_preauth_frames: int = Field(
        default=128,
        ge=1,
        description=(
            "Frames one /collab socket may send for docs whose Auth has not completed "
            "(a provider flushes its offline queue and sync step 1 right after its token). "
            "They wait and are applied once the doc is authorised; past it the socket is "
            "closed with 1008."
        ),
    )
    collab_preauth_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        description=(
            "Bytes of those waiting frames, per socket (offline edits included); past it "
            "the socket is closed with 1008."
        ),
    )
    collab_auth_timeout_s: float = Field(
        default=15.0,
        gt=0,
        description=(
            "A /collab socket with no authorised doc for this long is closed with 4401 "
            "(a socket that never authenticates holds nothing but memory)."
        ),
    )
    collab_token_refresh_s: float = Field(
        default=60.0,
        ge=0,
        description=(
            "This long before a doc's token expires (at half its life if shorter), the "
            "server asks the provider for a fresh one (Auth Token request; the provider "
            "calls its `token` function); a doc whose token expires unrenewed is closed "
            "with PermissionDenied. 0: tokens are checked at Auth only, as on /yjs."
        ),
    )

    # --- back-pressure on client frames (issue 15, part 1: transport/socket.py frames()) ---
    rate_abuse_after_s: float = Field(
        default=120.0,
        gt=0,
        description=(
            "Seconds a socket may be held back by RATE_FRAMES_PER_SECOND without a pause "
            "(time spent waiting for tokens, counted until it wins back half its burst) "
            "before it is closed with 1008 as abusive. A sender ahead of its rate is held "
            "all the time, so this is a volume: RATE_FRAMES_PER_SECOND times this many "
            "frames beyond the burst, sent without a pause. 120 s at 1000 frames/s is "
            "~120,000 frames, more than twice a 50,000-edit document typed at full speed."
        ),
    )
    ws_ping_interval_s: float = Field(
        default=20.0,
        gt=0,
        description=(
            "Seconds between the keepalive pings the server sends on each socket; one "
            "not answered within as long closes the socket with 1011. A socket the server "
            "is holding back for its frame rate is not closed meanwhile (its pong waits "
            "behind the frames it sent). 20 is uvicorn's default; lower finds dead "
            "connections sooner at the cost of a frame per socket per interval."
        ),
    )

    @model_validator(mode="after")
    def _oidc_complete(self) -> Settings:
        if bool(self.oidc_issuer) != bool(self.oidc_client_id):
            raise ValueError("ATELIER_OIDC_ISSUER and ATELIER_OIDC_CLIENT_ID go together")
        if self.session_ttl_s <= 0 or self.socket_token_ttl_s <= 0:
            raise ValueError("SESSION_TTL_S and SOCKET_TOKEN_TTL_S must be positive")
        return self

    @property
    def oidc_enabled(self) -> bool:
        return bool(self.oidc_issuer and self.oidc_client_id)

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
