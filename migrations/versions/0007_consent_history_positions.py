"""consent history in the event stream's order

Live subscriptions, their replay and pushes judge each event with the consent that
held when it happened (DOMAIN.md §7). Every activation, revocation and processing
agreement is now also written to the event stream (kinds DATA_EXCHANGE_ACTIVATED,
DATA_EXCHANGE_REVOKED, PROCESSING_AGREEMENT_REGISTERED), in commit order with the
chain's events; the consent rows point at those events. Rows from before this
migration keep no event and are placed by their timestamps.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("data_exchange") as batch_op:
        batch_op.add_column(sa.Column("activated_event_id", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("revoked_event_id", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("processing_agreement") as batch_op:
        batch_op.add_column(sa.Column("registered_event_id", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("processing_agreement") as batch_op:
        batch_op.drop_column("registered_event_id")
    with op.batch_alter_table("data_exchange") as batch_op:
        batch_op.drop_column("revoked_event_id")
        batch_op.drop_column("activated_event_id")
