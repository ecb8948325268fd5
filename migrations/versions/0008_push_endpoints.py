"""push to suppliers' endpoints: endpoint registry, per-event answers, seed requests

`push_endpoint` holds a supplier's events endpoint (URL, authentication with the
secret encrypted, event kinds, batch size), its position in the event stream, the
retry state and the lease that lets one gateway process deliver to it at a time.
`push_answer` keeps the receiver's answer to each event; `push_seed` the requests
to push a school's current state. `event.occurred_at` gets an index for the
catch-up read (`GET /events?createdAfter=`).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 10:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "push_endpoint",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("supplier_id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("auth", sa.String(length=6), nullable=False),
        sa.Column("token_url", sa.String(length=2000), nullable=True),
        sa.Column("client_id", sa.String(length=200), nullable=True),
        sa.Column("scope", sa.String(length=500), nullable=True),
        sa.Column("secret_cipher", sa.Text(), nullable=False),
        sa.Column("kinds", sa.JSON(), nullable=True),
        sa.Column("batch_size", sa.Integer(), server_default="100", nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default="1", nullable=False),
        sa.Column("config_version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("cursor_tx", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("cursor_id", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("failures", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("paused_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("pending_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_events", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("refused_events", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("failed_attempts", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.CheckConstraint("auth IN ('OAUTH2', 'SIGNED')", name=op.f("ck_push_endpoint_auth")),
        sa.CheckConstraint(
            "batch_size BETWEEN 1 AND 500", name=op.f("ck_push_endpoint_batch_size")
        ),
        sa.ForeignKeyConstraint(
            ["supplier_id"],
            ["supplier.id"],
            name=op.f("fk_push_endpoint_supplier_id_supplier"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_push_endpoint")),
    )
    with op.batch_alter_table("push_endpoint", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_push_endpoint_supplier_id"), ["supplier_id"], unique=False
        )

    op.create_table(
        "push_answer",
        sa.Column("endpoint_id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("message_id", sa.String(length=36), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("status_message", sa.String(length=500), nullable=True),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["push_endpoint.id"],
            name=op.f("fk_push_answer_endpoint_id_push_endpoint"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("endpoint_id", "event_id", name=op.f("pk_push_answer")),
    )

    op.create_table(
        "push_seed",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("endpoint_id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("requested_by", sa.String(length=200), nullable=True),
        sa.Column(
            "requested_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent", sa.Integer(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["push_endpoint.id"],
            name=op.f("fk_push_seed_endpoint_id_push_endpoint"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["school_id"], ["organisation.id"], name=op.f("fk_push_seed_school_id_organisation")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_push_seed")),
    )
    with op.batch_alter_table("push_seed", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_push_seed_endpoint_id"), ["endpoint_id"], unique=False)

    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.create_index("ix_event_occurred_at", ["occurred_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.drop_index("ix_event_occurred_at")
    with op.batch_alter_table("push_seed", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_push_seed_endpoint_id"))
    op.drop_table("push_seed")
    op.drop_table("push_answer")
    with op.batch_alter_table("push_endpoint", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_push_endpoint_supplier_id"))
    op.drop_table("push_endpoint")
