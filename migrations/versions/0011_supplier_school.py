"""school accounts tied to the schools they may speak for

`supplier_school` lists, per supplier with the school role, the schools
(providers) its administrators may act for. A token with the school scope must
name one of them in its `school` claim; before this table any school account could
name any school. The NOTIFY trigger of migration 0010 is added to this table, so a
change of the registry empties every process's supplier cache at once.

Existing school accounts get no schools: the operator registers them
(`ketenpoort school-account`, README "Tokens"), until then their tokens are refused.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 13:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "supplier_school",
        sa.Column("supplier_id", sa.Integer(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisation.id"],
            name=op.f("fk_supplier_school_organisation_id_organisation"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["supplier_id"],
            ["supplier.id"],
            name=op.f("fk_supplier_school_supplier_id_supplier"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("supplier_id", "organisation_id", name=op.f("pk_supplier_school")),
    )
    op.create_index(
        "ix_supplier_school_organisation_id", "supplier_school", ["organisation_id"], unique=False
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE TRIGGER supplier_school_changed AFTER INSERT OR UPDATE OR DELETE OR "
            "TRUNCATE ON supplier_school FOR EACH STATEMENT "
            "EXECUTE FUNCTION ketenpoort_supplier_changed()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS supplier_school_changed ON supplier_school")
    op.drop_index("ix_supplier_school_organisation_id", table_name="supplier_school")
    op.drop_table("supplier_school")
