"""dashboard summaries kept once per statement; reference data changes announced

PostgreSQL only (SQLite keeps its row triggers from 0004):

* The dashboard differences (`entitlement_delta`, `licence_delta`, folded by
  `dashboard_compact()` as in 0004) are appended by statement-level triggers that
  read the statement's transition tables: a batch of activations (one counter
  update for several entitlements, one insert of several licences) appends one
  difference row per summary key, not one per row, and pays one trigger call per
  statement. An update whose rows did not change any summarised column appends
  nothing.
* `ketenpoort_reference` is notified when organisations, their identifiers and
  relations, products or product components change (db/reference_cache.py: every
  gateway process forgets the login schools and products it cached).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 11:00:00
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COMPACT_EVERY = 2000
KEY = "school_id, product_id, delivery_id, status, start_date, activation_until_date"
COUNTERS = "entitlements, open_entitlements, quantity, licences_used, licences_used_open"


def _signed(table: str, sign: str) -> str:
    """One table's rows as signed counter contributions."""
    return f"""SELECT {KEY}, {sign}1 AS entitlements,
            CASE WHEN quantity IS NULL THEN 0 ELSE {sign}1 END AS open_entitlements,
            {sign}COALESCE(quantity, 0)::bigint AS quantity,
            {sign}licences_used::bigint AS licences_used,
            CASE WHEN quantity IS NULL THEN 0 ELSE {sign}licences_used END::bigint
                AS licences_used_open
        FROM {table} WHERE school_id IS NOT NULL"""


def _compact_when_crossed(table: str) -> str:
    return f"""
    IF added > 0 AND top / {COMPACT_EVERY} > (top - added) / {COMPACT_EVERY} THEN
        PERFORM dashboard_compact();
    END IF;"""


def _entitlement_function(name: str, rows: str) -> str:
    return f"""
CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    top bigint;
    added bigint;
BEGIN
    WITH d AS (
        INSERT INTO entitlement_delta ({KEY}, {COUNTERS})
        SELECT {KEY}, sum(entitlements), sum(open_entitlements), sum(quantity),
               sum(licences_used), sum(licences_used_open)
        FROM ({rows}) x
        GROUP BY {KEY}
        HAVING sum(entitlements) <> 0 OR sum(open_entitlements) <> 0 OR sum(quantity) <> 0
            OR sum(licences_used) <> 0 OR sum(licences_used_open) <> 0
        RETURNING id
    )
    SELECT max(id), count(*) INTO top, added FROM d;{_compact_when_crossed("entitlement_delta")}
    RETURN NULL;
END $$
"""


ENTITLEMENT_INSERT = _entitlement_function(
    "dashboard_entitlements_inserted", _signed("new_rows", "")
)
ENTITLEMENT_DELETE = _entitlement_function(
    "dashboard_entitlements_deleted", _signed("old_rows", "-")
)
ENTITLEMENT_UPDATE = _entitlement_function(
    "dashboard_entitlements_updated",
    _signed("new_rows", "") + " UNION ALL " + _signed("old_rows", "-"),
)


def _licence_function(name: str, table: str, sign: str) -> str:
    return f"""
CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    top bigint;
    added bigint;
BEGIN
    WITH d AS (
        INSERT INTO licence_delta (school_id, day, product_id, entitlement_id, activations)
        SELECT school_id, (activated_at AT TIME ZONE 'Europe/Amsterdam')::date, product_id,
               entitlement_id, {sign}count(*)
        FROM {table} WHERE school_id IS NOT NULL
        GROUP BY 1, 2, 3, 4
        RETURNING id
    )
    SELECT max(id), count(*) INTO top, added FROM d;{_compact_when_crossed("licence_delta")}
    RETURN NULL;
END $$
"""


LICENCE_INSERT = _licence_function("dashboard_licences_inserted", "new_rows", "")
LICENCE_DELETE = _licence_function("dashboard_licences_deleted", "old_rows", "-")

TRIGGERS = [
    "CREATE TRIGGER dashboard_entitlements_inserted AFTER INSERT ON entitlement "
    "REFERENCING NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION dashboard_entitlements_inserted()",
    "CREATE TRIGGER dashboard_entitlements_deleted AFTER DELETE ON entitlement "
    "REFERENCING OLD TABLE AS old_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION dashboard_entitlements_deleted()",
    "CREATE TRIGGER dashboard_entitlements_updated AFTER UPDATE ON entitlement "
    "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION dashboard_entitlements_updated()",
    "CREATE TRIGGER dashboard_licences_inserted AFTER INSERT ON licence "
    "REFERENCING NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION dashboard_licences_inserted()",
    "CREATE TRIGGER dashboard_licences_deleted AFTER DELETE ON licence "
    "REFERENCING OLD TABLE AS old_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION dashboard_licences_deleted()",
]
FUNCTIONS = [
    "dashboard_entitlements_inserted",
    "dashboard_entitlements_deleted",
    "dashboard_entitlements_updated",
    "dashboard_licences_inserted",
    "dashboard_licences_deleted",
]
TRIGGER_TABLES = {
    "dashboard_entitlements_inserted": "entitlement",
    "dashboard_entitlements_deleted": "entitlement",
    "dashboard_entitlements_updated": "entitlement",
    "dashboard_licences_inserted": "licence",
    "dashboard_licences_deleted": "licence",
}

REFERENCE_TABLES = (
    "organisation",
    "organisation_identifier",
    "organisation_relation",
    "product",
    "product_component",
)
REFERENCE_FUNCTION = """
CREATE FUNCTION reference_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('ketenpoort_reference', TG_TABLE_NAME);
    RETURN NULL;
END $$
"""


def _row_level() -> object:
    """Migration 0004 (its row-level functions and triggers), for the downgrade."""
    path = Path(__file__).with_name("0004_dashboard_summaries.py")
    spec = importlib.util.spec_from_file_location("migration_0004", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER dashboard_entitlement_insert_delete ON entitlement")
    op.execute("DROP TRIGGER dashboard_entitlement_update ON entitlement")
    op.execute("DROP TRIGGER dashboard_licence_insert_delete ON licence")
    op.execute("DROP FUNCTION dashboard_entitlement_delta()")
    op.execute("DROP FUNCTION dashboard_licence_delta()")
    for function in (
        ENTITLEMENT_INSERT,
        ENTITLEMENT_DELETE,
        ENTITLEMENT_UPDATE,
        LICENCE_INSERT,
        LICENCE_DELETE,
    ):
        op.execute(function)
    for trigger in TRIGGERS:
        op.execute(trigger)
    op.execute(REFERENCE_FUNCTION)
    for table in REFERENCE_TABLES:
        op.execute(
            f"CREATE TRIGGER reference_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE "
            f"ON {table} FOR EACH STATEMENT EXECUTE FUNCTION reference_changed()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in REFERENCE_TABLES:
        op.execute(f"DROP TRIGGER reference_changed ON {table}")
    op.execute("DROP FUNCTION reference_changed()")
    for trigger, table in TRIGGER_TABLES.items():
        op.execute(f"DROP TRIGGER {trigger} ON {table}")
    for function in FUNCTIONS:
        op.execute(f"DROP FUNCTION {function}()")
    old = _row_level()
    op.execute(old.PG_ENTITLEMENT_FUNCTION)  # type: ignore[attr-defined]
    op.execute(old.PG_LICENCE_FUNCTION)  # type: ignore[attr-defined]
    for statement in old.PG_TRIGGERS:  # type: ignore[attr-defined]
        op.execute(statement)
