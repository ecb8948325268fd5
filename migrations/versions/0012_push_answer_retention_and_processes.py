"""push answers: indexes for their retention and for the latest refusals; the
delivering processes, for balancing the leases

`push_answer` rows older than `KETENPOORT_PUSH_ANSWER_RETENTION_DAYS` are deleted,
oldest first, by the index on `answered_at`; the status's latest refusals of an
endpoint (status other than 0, a few among many answers) come from a partial index.
`push_process` holds each delivering gateway process and until when it is seen, so
each takes its share of the endpoints.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "push_process",
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("seen_until", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("owner", name=op.f("pk_push_process")),
    )
    with op.batch_alter_table("push_answer", schema=None) as batch_op:
        batch_op.create_index("ix_push_answer_answered_at", ["answered_at"], unique=False)
        batch_op.create_index(
            "ix_push_answer_refused",
            ["endpoint_id", "event_id"],
            unique=False,
            postgresql_where=sa.text("status <> 0"),
            sqlite_where=sa.text("status <> 0"),
        )


def downgrade() -> None:
    with op.batch_alter_table("push_answer", schema=None) as batch_op:
        batch_op.drop_index("ix_push_answer_refused")
        batch_op.drop_index("ix_push_answer_answered_at")
    op.drop_table("push_process")
