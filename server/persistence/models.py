"""The tables: the roster (schools, classes, groups, users, memberships), the docs and
the chat (messages, the per-room sequencer, mutes), assignments, notifications, the audit
trail.

Room ids *are* class ids and group ids (one namespace, unique across both), so a
``Membership.room_id``, a ``Doc.room_id`` and the chat tables' ``room_id`` carry no
foreign key: they point at either table. Every type is spelled out (lengths,
``LargeBinary``, a non-native enum) so that the hand-written migrations and this metadata
compare equal on SQLite and PostgreSQL; a test holds them to it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, overload

import sqlalchemy as sa
from sqlalchemy.sql.schema import SchemaItem
from sqlmodel import Field, SQLModel

from server.types import Role

# Named constraints, so that later migrations (SQLite batch mode included) can address them.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: Ids are short slugs (``2nde-a-g1``, ``s-01``); names are what people read.
ID_LEN = 64
NAME_LEN = 200


def utcnow() -> datetime:
    return datetime.now(UTC)


@overload
def aware(value: datetime) -> datetime: ...
@overload
def aware(value: None) -> None: ...
def aware(value: datetime | None) -> datetime | None:
    """A stored timestamp with its zone. SQLite hands back the UTC wall clock without
    its zone (naive); PostgreSQL an aware ``timestamptz``."""
    if value is not None and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


def unix(value: datetime) -> float:
    """Unix seconds of a stored timestamp."""
    return aware(value).timestamp()


def _id(*args: SchemaItem, **kw: Any) -> sa.Column[str]:
    """An id column: every id of the schema has the same type, so joins compare alike."""
    return sa.Column(sa.String(ID_LEN), *args, **kw)


class School(SQLModel, table=True):
    __tablename__ = "school"

    id: str = Field(sa_column=_id(primary_key=True))
    name: str = Field(sa_column=sa.Column(sa.String(NAME_LEN), nullable=False))


class SchoolClass(SQLModel, table=True):
    """A class; its id is also the id of its room (``kind=class``)."""

    __tablename__ = "school_class"

    id: str = Field(sa_column=_id(primary_key=True))
    school_id: str = Field(
        sa_column=_id(sa.ForeignKey("school.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    name: str = Field(sa_column=sa.Column(sa.String(NAME_LEN), nullable=False))


class ClassGroup(SQLModel, table=True):
    """A project group inside a class; its id is also its room id (``kind=group``)."""

    __tablename__ = "class_group"

    id: str = Field(sa_column=_id(primary_key=True))
    class_id: str = Field(
        sa_column=_id(
            sa.ForeignKey("school_class.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    name: str = Field(sa_column=sa.Column(sa.String(NAME_LEN), nullable=False))
    #: Archived by a teacher: its students read its docs but write and chat no more.
    archived_at: datetime | None = Field(
        default=None, sa_column=sa.Column(sa.DateTime(timezone=True), nullable=True)
    )


class User(SQLModel, table=True):
    """A person of the roster. ``user`` is reserved in PostgreSQL, hence ``app_user``."""

    __tablename__ = "app_user"

    id: str = Field(sa_column=_id(primary_key=True))
    # Admins of the region belong to no school.
    school_id: str | None = Field(
        default=None,
        sa_column=_id(sa.ForeignKey("school.id", ondelete="SET NULL"), nullable=True, index=True),
    )
    # Stored as the enum's *values* ("student"), in a VARCHAR: a native PostgreSQL enum
    # would make adding a role a migration of its own.
    role: Role = Field(
        sa_column=sa.Column(
            sa.Enum(
                Role,
                name="role",
                native_enum=False,
                length=16,
                values_callable=lambda e: [m.value for m in e],
                create_constraint=True,
            ),
            nullable=False,
        )
    )
    display_name: str = Field(sa_column=sa.Column(sa.String(NAME_LEN), nullable=False))
    #: Set when a roster import dropped the user (server/roster/importer.py). The row
    #: stays, so that chat messages, attribution and versions still name them; a removed
    #: user is unknown at sign-in and has no membership or parent link. A later import
    #: that lists them again clears it.
    removed_at: datetime | None = Field(
        default=None, sa_column=sa.Column(sa.DateTime(timezone=True), nullable=True)
    )


class Membership(SQLModel, table=True):
    """A user in a room (a class or a group). Students hold both; teachers their class."""

    __tablename__ = "membership"

    user_id: str = Field(
        sa_column=_id(sa.ForeignKey("app_user.id", ondelete="CASCADE"), primary_key=True)
    )
    room_id: str = Field(sa_column=_id(primary_key=True, index=True))


class ParentLink(SQLModel, table=True):
    __tablename__ = "parent_link"

    parent_id: str = Field(
        sa_column=_id(sa.ForeignKey("app_user.id", ondelete="CASCADE"), primary_key=True)
    )
    student_id: str = Field(
        sa_column=_id(
            sa.ForeignKey("app_user.id", ondelete="CASCADE"), primary_key=True, index=True
        )
    )


class Doc(SQLModel, table=True):
    """One Yjs doc of a room: its folded snapshot and its lock.

    ``updated_at`` moves when the row itself changes (a fold, a lock), not on every append:
    appends never touch this row, so they never wait on a compaction's row lock.
    """

    __tablename__ = "doc"

    room_id: str = Field(sa_column=_id(primary_key=True))
    name: str = Field(sa_column=_id(primary_key=True))
    snapshot: bytes | None = Field(
        default=None, sa_column=sa.Column(sa.LargeBinary(), nullable=True)
    )
    locked: bool = Field(
        default=False,
        sa_column=sa.Column(sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    #: The attribution of the updates folded into ``snapshot`` (a msgpack ledger summary,
    #: server/progress/attribution.py): folding the log must not lose who wrote what.
    attribution: bytes | None = Field(
        default=None, sa_column=sa.Column(sa.LargeBinary(), nullable=True)
    )
    created_at: datetime = Field(
        default_factory=utcnow,
        sa_column=sa.Column(
            sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    updated_at: datetime = Field(
        default_factory=utcnow,
        sa_column=sa.Column(
            sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )


class DocUpdate(SQLModel, table=True):
    """The append-only log of a doc's updates not yet folded into its snapshot."""

    __tablename__ = "doc_update"
    __table_args__ = (
        sa.ForeignKeyConstraint(
            ["room_id", "doc_name"], ["doc.room_id", "doc.name"], ondelete="CASCADE"
        ),
        sa.Index("ix_doc_update_doc", "room_id", "doc_name", "id"),
        # Ids never reused on SQLite either: the log reads in one order everywhere.
        {"sqlite_autoincrement": True},
    )

    # BIGINT on PostgreSQL; plain INTEGER on SQLite, where only that is a rowid alias
    # (and so autoincrements).
    id: int | None = Field(
        default=None,
        sa_column=sa.Column(
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
    )
    room_id: str = Field(sa_column=_id(nullable=False))
    doc_name: str = Field(sa_column=_id(nullable=False))
    data: bytes = Field(sa_column=sa.Column(sa.LargeBinary(), nullable=False))
    #: The user whose socket sent the update (None: no single author, see 0003).
    author_id: str | None = Field(default=None, sa_column=_id(nullable=True))
    created_at: datetime = Field(
        default_factory=utcnow,
        sa_column=sa.Column(
            sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )


class DocVersion(SQLModel, table=True):
    """A version of a doc: its whole state at one moment (zlib-compressed Yjs update).

    ``kind``: ``pause`` / ``session`` / ``interval`` (automatic checkpoints), ``named``
    (by a writer, with ``name``), ``rendu`` (a work handed in, or frozen at its
    deadline), ``restore`` (taken just before a restore, so that the
    restore can itself be undone).
    """

    __tablename__ = "doc_version"
    __table_args__ = (
        sa.ForeignKeyConstraint(
            ["room_id", "doc_name"], ["doc.room_id", "doc.name"], ondelete="CASCADE"
        ),
        sa.Index("ix_doc_version_doc", "room_id", "doc_name", "id"),
        {"sqlite_autoincrement": True},
    )

    id: int | None = Field(
        default=None,
        sa_column=sa.Column(
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
    )
    room_id: str = Field(sa_column=_id(nullable=False))
    doc_name: str = Field(sa_column=_id(nullable=False))
    kind: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    name: str | None = Field(default=None, sa_column=sa.Column(sa.String(NAME_LEN), nullable=True))
    created_by: str | None = Field(default=None, sa_column=_id(nullable=True))
    created_at: datetime = Field(
        default_factory=utcnow,
        sa_column=sa.Column(
            sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    state: bytes = Field(sa_column=sa.Column(sa.LargeBinary(), nullable=False))
    state_vector: bytes = Field(sa_column=sa.Column(sa.LargeBinary(), nullable=False))
    #: JSON list of the user ids who edited since the previous version.
    contributors: str = Field(
        default="[]", sa_column=sa.Column(sa.Text(), nullable=False, server_default="[]")
    )


class ChatMessageRow(SQLModel, table=True):
    """A chat message of a room. ``seq`` numbers a room's messages 1, 2, 3 … with no gap;
    it comes from :class:`RoomCounter` in the transaction that inserts the message.

    The author's name and role are copied at post time: the message reads the same after
    a rename, and needs no join. A deleted message keeps its row (and its ``seq``) with
    its text erased.
    """

    __tablename__ = "chat_message"
    __table_args__ = (
        # Also the index of every history query (room_id = ? ORDER BY seq).
        sa.UniqueConstraint("room_id", "seq", name="uq_chat_message_room_seq"),
        {"sqlite_autoincrement": True},
    )

    id: int | None = Field(
        default=None,
        sa_column=sa.Column(
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
    )
    room_id: str = Field(sa_column=_id(nullable=False))
    seq: int = Field(sa_column=sa.Column(sa.Integer(), nullable=False))
    author_id: str = Field(sa_column=_id(nullable=False))
    author_name: str = Field(sa_column=sa.Column(sa.String(NAME_LEN), nullable=False))
    author_role: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    text: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    created_at: datetime = Field(
        default_factory=utcnow,
        sa_column=sa.Column(
            sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    edited_at: datetime | None = Field(
        default=None, sa_column=sa.Column(sa.DateTime(timezone=True), nullable=True)
    )
    deleted: bool = Field(
        default=False,
        sa_column=sa.Column(sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    deleted_by: str | None = Field(default=None, sa_column=_id(nullable=True))
    version: int = Field(
        default=1,
        sa_column=sa.Column(sa.Integer(), nullable=False, server_default=sa.text("1")),
    )


class RoomCounter(SQLModel, table=True):
    """The per-room sequencer of chat messages: ``last_seq`` is the newest ``seq``."""

    __tablename__ = "room_counter"

    room_id: str = Field(sa_column=_id(primary_key=True))
    last_seq: int = Field(sa_column=sa.Column(sa.Integer(), nullable=False))


class ChatMute(SQLModel, table=True):
    """A user muted in a room (by a moderator): the row exists while the mute lasts."""

    __tablename__ = "chat_mute"

    room_id: str = Field(sa_column=_id(primary_key=True))
    user_id: str = Field(sa_column=_id(primary_key=True))
    muted_by: str = Field(sa_column=_id(nullable=False))
    created_at: datetime = Field(
        default_factory=utcnow,
        sa_column=sa.Column(
            sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )


def _when(nullable: bool = False) -> sa.Column[datetime]:
    if nullable:
        return sa.Column(sa.DateTime(timezone=True), nullable=True)
    return sa.Column(sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())


def _flag() -> sa.Column[bool]:
    return sa.Column(sa.Boolean(), nullable=False, server_default=sa.false())


class Assignment(SQLModel, table=True):
    """A teacher's assignment (travail) for a class: the consigne, the due date, the
    target, the starter content. Its works (one per group, per student, or one for the
    class) carry the docs and the hand-ins."""

    __tablename__ = "assignment"

    id: str = Field(sa_column=_id(primary_key=True))
    class_id: str = Field(
        sa_column=_id(
            sa.ForeignKey("school_class.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    title: str = Field(sa_column=sa.Column(sa.String(NAME_LEN), nullable=False))
    instructions: str = Field(
        default="", sa_column=sa.Column(sa.Text(), nullable=False, server_default="")
    )
    #: JSON list of {"title", "url"}.
    resources: str = Field(
        default="[]", sa_column=sa.Column(sa.Text(), nullable=False, server_default="[]")
    )
    #: ``class`` (one doc for the class), ``groups`` (one per group), ``students``.
    target: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    doc_name: str = Field(sa_column=_id(nullable=False))
    starter: str | None = Field(default=None, sa_column=sa.Column(sa.Text(), nullable=True))
    due_at: datetime = Field(sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False))
    allow_late: bool = Field(default=False, sa_column=_flag())
    archived: bool = Field(default=False, sa_column=_flag())
    created_by: str = Field(sa_column=_id(nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_when())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_when())


class Work(SQLModel, table=True):
    """One unit of an assignment: a group's (or a student's, or the class's) doc, its
    own due date (an extension moves it) and where its hand-in stands.

    ``status``: ``open``, ``freezing`` (a node claimed it: ``claim``, ``claimed_at``),
    ``handed_in`` (by a student), ``late`` / ``missed`` (frozen at the deadline, late
    work allowed or not). ``version_id`` is the rendu (a ``doc_version`` of kind rendu).
    """

    __tablename__ = "work"
    __table_args__ = (
        sa.UniqueConstraint("room_id", "doc_name", name="uq_work_room_doc"),
        # The deadline clock's one query: open works by due date.
        sa.Index("ix_work_due", "status", "due_at"),
    )

    id: str = Field(sa_column=_id(primary_key=True))
    assignment_id: str = Field(
        sa_column=_id(
            sa.ForeignKey("assignment.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    room_id: str = Field(sa_column=_id(nullable=False))
    doc_name: str = Field(sa_column=_id(nullable=False))
    #: Set for a student's own work (a personal doc in the class room).
    student_id: str | None = Field(default=None, sa_column=_id(nullable=True))
    due_at: datetime = Field(sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False))
    extended: bool = Field(default=False, sa_column=_flag())
    status: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    claim: str | None = Field(default=None, sa_column=_id(nullable=True))
    claimed_at: datetime | None = Field(default=None, sa_column=_when(nullable=True))
    reminded: bool = Field(default=False, sa_column=_flag())
    version_id: int | None = Field(
        default=None, sa_column=sa.Column(sa.BigInteger(), nullable=True)
    )
    submitted_at: datetime | None = Field(default=None, sa_column=_when(nullable=True))
    submitted_by: str | None = Field(default=None, sa_column=_id(nullable=True))
    comment: str | None = Field(default=None, sa_column=sa.Column(sa.Text(), nullable=True))
    appreciation: str | None = Field(
        default=None, sa_column=sa.Column(sa.String(NAME_LEN), nullable=True)
    )
    mark: str | None = Field(default=None, sa_column=sa.Column(sa.String(32), nullable=True))
    feedback_by: str | None = Field(default=None, sa_column=_id(nullable=True))
    returned_at: datetime | None = Field(default=None, sa_column=_when(nullable=True))


class Notification(SQLModel, table=True):
    """One entry of a user's feed. ``child_id``: for a parent, the child it is about."""

    __tablename__ = "notification"
    __table_args__ = (sa.Index("ix_notification_user", "user_id", "created_at"),)

    id: str = Field(sa_column=sa.Column(sa.String(32), primary_key=True))
    user_id: str = Field(sa_column=_id(nullable=False))
    kind: str = Field(sa_column=sa.Column(sa.String(24), nullable=False))
    child_id: str | None = Field(default=None, sa_column=_id(nullable=True))
    assignment_id: str | None = Field(default=None, sa_column=_id(nullable=True))
    work_id: str | None = Field(default=None, sa_column=_id(nullable=True))
    title: str = Field(sa_column=sa.Column(sa.String(NAME_LEN), nullable=False))
    body: str = Field(default="", sa_column=sa.Column(sa.Text(), nullable=False, server_default=""))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_when())
    read_at: datetime | None = Field(default=None, sa_column=_when(nullable=True))


class NotificationDelivery(SQLModel, table=True):
    """The ENT outbox: a notification still to POST (or POSTed: ``delivered_at``).
    Written in the transaction that creates the notification, so none is lost."""

    __tablename__ = "notification_delivery"
    __table_args__ = (sa.Index("ix_notification_delivery_due", "delivered_at", "next_at"),)

    notification_id: str = Field(
        sa_column=sa.Column(
            sa.String(32),
            sa.ForeignKey("notification.id", ondelete="CASCADE"),
            primary_key=True,
        )
    )
    attempts: int = Field(
        default=0, sa_column=sa.Column(sa.Integer(), nullable=False, server_default=sa.text("0"))
    )
    next_at: datetime = Field(default_factory=utcnow, sa_column=_when())
    lease_until: datetime | None = Field(default=None, sa_column=_when(nullable=True))
    delivered_at: datetime | None = Field(default=None, sa_column=_when(nullable=True))
    last_error: str | None = Field(default=None, sa_column=sa.Column(sa.Text(), nullable=True))


class Revoked(SQLModel, table=True):
    """A sign-in session (``sid``) or a token (``jti``) refused until ``until``
    (server/revocation/): kept so that a restart of every node forgets none."""

    __tablename__ = "revoked"

    kind: str = Field(sa_column=sa.Column(sa.String(8), primary_key=True))
    value: str = Field(sa_column=sa.Column(sa.String(128), primary_key=True))
    until: datetime = Field(sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False))


class AuthSession(SQLModel, table=True):
    """A sign-in through the ENT (server/sessions/). The browser holds a random secret in
    an HttpOnly cookie; only its SHA-256 (hex) is stored, and that hash is the session's
    id everywhere else (the ``sid`` of its socket tokens, the end hooks), so nothing the
    page or a log can see lets anyone present the cookie. ``ended_at``: signed out."""

    __tablename__ = "auth_session"
    __table_args__ = (sa.Index("ix_auth_session_expires", "expires_at"),)

    id: str = Field(sa_column=sa.Column(sa.String(64), primary_key=True))
    user_id: str = Field(sa_column=_id(nullable=False, index=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_when())
    expires_at: datetime = Field(sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False))
    ended_at: datetime | None = Field(default=None, sa_column=_when(nullable=True))


class RoomPolicy(SQLModel, table=True):
    """A room's own rules, set by its teachers: ``presence_names`` is how its students'
    names show to the room (``full``, ``initial``: first name and initial, ``pseudonym``:
    a stable per-room pseudonym). A room without a row follows the defaults."""

    __tablename__ = "room_policy"

    room_id: str = Field(sa_column=_id(primary_key=True))
    presence_names: str = Field(
        sa_column=sa.Column(sa.String(16), nullable=False, server_default="full")
    )
    set_by: str = Field(sa_column=_id(nullable=False))
    set_at: datetime = Field(default_factory=utcnow, sa_column=_when())


class Audit(SQLModel, table=True):
    """One row per thing done that someone may have to account for later (a roster
    import, ...): when, by whom (a user id, or ``cli``), on which node, what, on what,
    and the details as JSON. Append-only (migration 0008: the database refuses an
    UPDATE); only the retention job deletes."""

    __tablename__ = "audit"
    __table_args__ = (
        sa.Index("ix_audit_at", "at"),
        sa.Index("ix_audit_action", "action", "at"),
        sa.Index("ix_audit_actor", "actor", "id"),
        sa.Index("ix_audit_target", "target", "id"),
        {"sqlite_autoincrement": True},
    )

    id: int | None = Field(
        default=None,
        sa_column=sa.Column(
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
    )
    at: datetime = Field(default_factory=utcnow, sa_column=_when())
    #: A user id, or ``cli`` for the command line.
    actor: str = Field(sa_column=_id(nullable=False))
    node: str = Field(sa_column=sa.Column(sa.String(NAME_LEN), nullable=False))
    #: Dotted, by concept: ``roster.import``.
    action: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    target: str | None = Field(
        default=None, sa_column=sa.Column(sa.String(NAME_LEN), nullable=True)
    )
    #: JSON object.
    detail: str = Field(
        default="{}", sa_column=sa.Column(sa.Text(), nullable=False, server_default="{}")
    )


metadata = SQLModel.metadata

#: The Core tables, for the query modules (they speak SQL Core: no ORM identity map needed).
school_t = metadata.tables[School.__tablename__]
school_class_t = metadata.tables[SchoolClass.__tablename__]
class_group_t = metadata.tables[ClassGroup.__tablename__]
user_t = metadata.tables[User.__tablename__]
membership_t = metadata.tables[Membership.__tablename__]
parent_link_t = metadata.tables[ParentLink.__tablename__]
doc_t = metadata.tables[Doc.__tablename__]
doc_update_t = metadata.tables[DocUpdate.__tablename__]
doc_version_t = metadata.tables[DocVersion.__tablename__]
chat_message_t = metadata.tables[ChatMessageRow.__tablename__]
room_counter_t = metadata.tables[RoomCounter.__tablename__]
chat_mute_t = metadata.tables[ChatMute.__tablename__]
assignment_t = metadata.tables[Assignment.__tablename__]
work_t = metadata.tables[Work.__tablename__]
notification_t = metadata.tables[Notification.__tablename__]
notification_delivery_t = metadata.tables[NotificationDelivery.__tablename__]
revoked_t = metadata.tables[Revoked.__tablename__]


auth_session_t = metadata.tables[AuthSession.__tablename__]


audit_t = metadata.tables[Audit.__tablename__]
room_policy_t = metadata.tables[RoomPolicy.__tablename__]
