"""supplier registry changes announced with NOTIFY

Every gateway process caches a supplier's registered roles for a few seconds.
On PostgreSQL, a statement-level trigger on `supplier` and `supplier_role` sends
`NOTIFY ketenpoort_supplier` at the commit of any change, however it was made
(the gateway, a migration, an operator's psql); each process listens and empties
its cache (gateway/shared.py). SQLite serves one process: nothing to announce.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 10:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("supplier", "supplier_role")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        """
        CREATE FUNCTION ketenpoort_supplier_changed() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('ketenpoort_supplier', TG_TABLE_NAME);
            RETURN NULL;
        END $$
        """
    )
    for table in TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE "
            f"ON {table} FOR EACH STATEMENT EXECUTE FUNCTION ketenpoort_supplier_changed()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_changed ON {table}")
    op.execute("DROP FUNCTION IF EXISTS ketenpoort_supplier_changed()")
