"""Authorship and version history: who sent each stored update, the attribution kept
when the log is folded, and the versions of a doc.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.String(length=64)
NAME = sa.String(length=200)


def upgrade() -> None:
    # Nullable: updates stored before this revision, and a replica's whole state secured
    # after a peer node died (several authors), have no single author.
    op.add_column("doc_update", sa.Column("author_id", ID, nullable=True))
    op.add_column("doc", sa.Column("attribution", sa.LargeBinary(), nullable=True))
    op.create_table(
        "doc_version",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("room_id", ID, nullable=False),
        sa.Column("doc_name", ID, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", NAME, nullable=True),
        sa.Column("created_by", ID, nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("state", sa.LargeBinary(), nullable=False),
        sa.Column("state_vector", sa.LargeBinary(), nullable=False),
        sa.Column("contributors", sa.Text(), server_default="[]", nullable=False),
        sa.ForeignKeyConstraint(
            ["room_id", "doc_name"],
            ["doc.room_id", "doc.name"],
            name=op.f("fk_doc_version_room_id_doc"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_doc_version")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_doc_version_doc", "doc_version", ["room_id", "doc_name", "id"])


def downgrade() -> None:
    op.drop_table("doc_version")
    with op.batch_alter_table("doc") as batch:
        batch.drop_column("attribution")
    with op.batch_alter_table("doc_update") as batch:
        batch.drop_column("author_id")
