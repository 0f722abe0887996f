"""Initial schema: the roster and the docs (snapshot + update log).

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.String(length=64)
NAME = sa.String(length=200)


def _timestamp(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False)


def upgrade() -> None:
    op.create_table(
        "school",
        sa.Column("id", ID, nullable=False),
        sa.Column("name", NAME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_school")),
    )
    op.create_table(
        "app_user",
        sa.Column("id", ID, nullable=False),
        sa.Column("school_id", ID, nullable=True),
        sa.Column(
            "role",
            sa.Enum(
                "student",
                "teacher",
                "parent",
                "admin",
                name="role",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("display_name", NAME, nullable=False),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["school.id"],
            name=op.f("fk_app_user_school_id_school"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_app_user")),
    )
    op.create_index(op.f("ix_app_user_school_id"), "app_user", ["school_id"])
    op.create_table(
        "school_class",
        sa.Column("id", ID, nullable=False),
        sa.Column("school_id", ID, nullable=False),
        sa.Column("name", NAME, nullable=False),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["school.id"],
            name=op.f("fk_school_class_school_id_school"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_school_class")),
    )
    op.create_index(op.f("ix_school_class_school_id"), "school_class", ["school_id"])
    op.create_table(
        "class_group",
        sa.Column("id", ID, nullable=False),
        sa.Column("class_id", ID, nullable=False),
        sa.Column("name", NAME, nullable=False),
        sa.ForeignKeyConstraint(
            ["class_id"],
            ["school_class.id"],
            name=op.f("fk_class_group_class_id_school_class"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_class_group")),
    )
    op.create_index(op.f("ix_class_group_class_id"), "class_group", ["class_id"])
    op.create_table(
        "membership",
        sa.Column("user_id", ID, nullable=False),
        sa.Column("room_id", ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["app_user.id"],
            name=op.f("fk_membership_user_id_app_user"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "room_id", name=op.f("pk_membership")),
    )
    op.create_index(op.f("ix_membership_room_id"), "membership", ["room_id"])
    op.create_table(
        "parent_link",
        sa.Column("parent_id", ID, nullable=False),
        sa.Column("student_id", ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["app_user.id"],
            name=op.f("fk_parent_link_parent_id_app_user"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["student_id"],
            ["app_user.id"],
            name=op.f("fk_parent_link_student_id_app_user"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("parent_id", "student_id", name=op.f("pk_parent_link")),
    )
    op.create_index(op.f("ix_parent_link_student_id"), "parent_link", ["student_id"])
    op.create_table(
        "doc",
        sa.Column("room_id", ID, nullable=False),
        sa.Column("name", ID, nullable=False),
        sa.Column("snapshot", sa.LargeBinary(), nullable=True),
        sa.Column("locked", sa.Boolean(), server_default=sa.false(), nullable=False),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint("room_id", "name", name=op.f("pk_doc")),
    )
    op.create_table(
        "doc_update",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("room_id", ID, nullable=False),
        sa.Column("doc_name", ID, nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        _timestamp("created_at"),
        sa.ForeignKeyConstraint(
            ["room_id", "doc_name"],
            ["doc.room_id", "doc.name"],
            name=op.f("fk_doc_update_room_id_doc"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_doc_update")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_doc_update_doc", "doc_update", ["room_id", "doc_name", "id"])


def downgrade() -> None:
    for table in (
        "doc_update",
        "doc",
        "parent_link",
        "membership",
        "class_group",
        "school_class",
        "app_user",
        "school",
    ):
        op.drop_table(table)
