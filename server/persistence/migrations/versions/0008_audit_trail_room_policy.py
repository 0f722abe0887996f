"""The audit trail is append-only (the database refuses an UPDATE of a row, except an
erasure's replacing a person's id by its pseudonym ``anon-…``; deleting old rows stays
possible, for the retention job), indexed for its readers (by actor, by
target); and rooms get their own policy (``room_policy``: how names show).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger AS $$
BEGIN
    -- The one change allowed: an erasure replacing the person's id by its pseudonym
    -- (privacy/erasure.py); what was done, when and where stays as written.
    IF NEW.id = OLD.id AND NEW.at = OLD.at AND NEW.node = OLD.node
       AND NEW.action = OLD.action AND NEW.detail = OLD.detail
       AND (NEW.actor = OLD.actor OR NEW.actor LIKE 'anon-%')
       AND (NEW.target IS NOT DISTINCT FROM OLD.target OR NEW.target LIKE 'anon-%') THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'the audit trail is append-only';
END;
$$ LANGUAGE plpgsql
"""
_PG_TRIGGER = """
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
FOR EACH ROW EXECUTE FUNCTION audit_append_only()
"""
_SQLITE_TRIGGER = """
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
WHEN NOT (
    NEW.id = OLD.id AND NEW.at = OLD.at AND NEW.node = OLD.node
    AND NEW.action = OLD.action AND NEW.detail = OLD.detail
    AND (NEW.actor = OLD.actor OR NEW.actor LIKE 'anon-%')
    AND (NEW.target IS OLD.target OR NEW.target LIKE 'anon-%')
)
BEGIN
    SELECT RAISE(ABORT, 'the audit trail is append-only');
END
"""


# A later migration that rebuilds ``audit`` on SQLite (a batch "move and copy") drops its
# triggers with the old table: it must create ``_SQLITE_TRIGGER`` again.


def upgrade() -> None:
    op.create_table(
        "room_policy",
        sa.Column("room_id", sa.String(length=64), nullable=False),
        sa.Column("presence_names", sa.String(length=16), server_default="full", nullable=False),
        sa.Column("set_by", sa.String(length=64), nullable=False),
        sa.Column(
            "set_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("room_id", name=op.f("pk_room_policy")),
    )
    with op.batch_alter_table("audit", schema=None) as batch_op:
        batch_op.create_index("ix_audit_actor", ["actor", "id"], unique=False)
        batch_op.create_index("ix_audit_target", ["target", "id"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION)
        op.execute(_PG_TRIGGER)
    else:
        op.execute(_SQLITE_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_no_update ON audit")
        op.execute("DROP FUNCTION IF EXISTS audit_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_no_update")
    with op.batch_alter_table("audit", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_target")
        batch_op.drop_index("ix_audit_actor")
    op.drop_table("room_policy")
