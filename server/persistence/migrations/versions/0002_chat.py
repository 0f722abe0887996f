"""Chat: messages (numbered per room), the per-room sequencer, mutes.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.String(length=64)
NAME = sa.String(length=200)


def _timestamp(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False)


def upgrade() -> None:
    op.create_table(
        "chat_message",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("room_id", ID, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("author_id", ID, nullable=False),
        sa.Column("author_name", NAME, nullable=False),
        sa.Column("author_role", sa.String(length=16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        _timestamp("created_at"),
        sa.Column("edited_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("deleted_by", ID, nullable=True),
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_message")),
        sa.UniqueConstraint("room_id", "seq", name="uq_chat_message_room_seq"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "room_counter",
        sa.Column("room_id", ID, nullable=False),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("room_id", name=op.f("pk_room_counter")),
    )
    op.create_table(
        "chat_mute",
        sa.Column("room_id", ID, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("muted_by", ID, nullable=False),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("room_id", "user_id", name=op.f("pk_chat_mute")),
    )


def downgrade() -> None:
    for table in ("chat_mute", "room_counter", "chat_message"):
        op.drop_table(table)
