"""dashboard summaries kept by triggers; indexes for dashboards and school pages

Dashboards aggregate a board's entitlements per status and its activations per day.
At national scale that is a million entitlement rows and two million licences per
large board, too many to group on every request. Four summaries hold the figures:

* `school_summary` per (school, stored status, activation end) and
  `school_day_summary` per (school, day): a board is a few thousand rows;
* `entitlement_summary` per (school, product, shop, status, activation period) and
  `licence_day_summary` per (school, day, product, shop): for the filtered figures.

PostgreSQL: a trigger on every change of an entitlement or licence appends its
difference to `entitlement_delta` / `licence_delta`, in the change's transaction.
Appending locks nothing another transaction waits for, so 08:30 (a whole school
activating at once) does not queue on a summary row. Every 2,000th difference
folds the accumulated ones into the four summaries in one statement
(`dashboard_compact()`, one compaction at a time); readers add the few
differences not folded yet, so every figure is exact and current.

SQLite serialises writers anyway: its triggers update the summaries directly and
the delta tables stay empty.

Revision ID: 0004
Revises: 0001
Create Date: 2026-11-23 10:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNANSWERED = "state IN ('PENDING', 'FAILED') AND role IN ('LICENSOR', 'PORTAL')"
COMPACT_EVERY = 2000

FINE_KEY = "school_id, product_id, seller_id, status, start_date, activation_until_date"
COARSE_KEY = "school_id, status, activation_until_date"
COUNTERS = "entitlements, open_entitlements, quantity, licences_used, licences_used_open"
DAY_FINE_KEY = "school_id, day, product_id, seller_id"
DAY_COARSE_KEY = "school_id, day"


def _add(columns: str, table: str) -> str:
    return ", ".join(
        f"{c} = {table}.{c} + excluded.{c}" for c in (c.strip() for c in columns.split(","))
    )


def _sums(columns: str) -> str:
    return ", ".join(f"sum({c.strip()}) AS {c.strip()}" for c in columns.split(","))


# --- PostgreSQL: differences appended, folded in bulk ---------------------------------------


def _pg_delta(row: str, sign: str) -> str:
    return f"""
        INSERT INTO entitlement_delta (school_id, product_id, delivery_id, status, start_date,
            activation_until_date, {COUNTERS})
        VALUES ({row}.school_id, {row}.product_id, {row}.delivery_id, {row}.status,
            {row}.start_date, {row}.activation_until_date, {sign}1,
            CASE WHEN {row}.quantity IS NULL THEN 0 ELSE {sign}1 END,
            {sign}COALESCE({row}.quantity, 0), {sign}{row}.licences_used,
            CASE WHEN {row}.quantity IS NULL THEN 0 ELSE {sign}{row}.licences_used END)
        RETURNING id INTO delta;"""


PG_ENTITLEMENT_FUNCTION = f"""
CREATE FUNCTION dashboard_entitlement_delta() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    delta bigint := 1;
BEGIN
    IF TG_OP = 'UPDATE'
        AND OLD.school_id IS NOT DISTINCT FROM NEW.school_id
        AND OLD.product_id = NEW.product_id AND OLD.delivery_id = NEW.delivery_id
        AND OLD.status = NEW.status AND OLD.start_date = NEW.start_date
        AND OLD.activation_until_date = NEW.activation_until_date THEN
        -- The common case (an activation, a lower quantity): one row of differences.
        IF NEW.school_id IS NULL THEN
            RETURN NULL;
        END IF;
        INSERT INTO entitlement_delta (school_id, product_id, delivery_id, status, start_date,
            activation_until_date, {COUNTERS})
        VALUES (NEW.school_id, NEW.product_id, NEW.delivery_id, NEW.status, NEW.start_date,
            NEW.activation_until_date, 0, 0,
            COALESCE(NEW.quantity, 0) - COALESCE(OLD.quantity, 0),
            NEW.licences_used - OLD.licences_used,
            CASE WHEN NEW.quantity IS NULL THEN 0 ELSE NEW.licences_used END
                - CASE WHEN OLD.quantity IS NULL THEN 0 ELSE OLD.licences_used END)
        RETURNING id INTO delta;
    ELSE
        IF TG_OP <> 'INSERT' AND OLD.school_id IS NOT NULL THEN {_pg_delta("OLD", "-")}
        END IF;
        IF TG_OP <> 'DELETE' AND NEW.school_id IS NOT NULL THEN {_pg_delta("NEW", "")}
        END IF;
    END IF;
    IF delta % {COMPACT_EVERY} = 0 THEN
        PERFORM dashboard_compact();
    END IF;
    RETURN NULL;
END $$
"""

PG_LICENCE_FUNCTION = f"""
CREATE FUNCTION dashboard_licence_delta() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    delta bigint;
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.school_id IS NULL THEN
            RETURN NULL;
        END IF;
        INSERT INTO licence_delta (school_id, day, product_id, entitlement_id, activations)
        VALUES (OLD.school_id, (OLD.activated_at AT TIME ZONE 'Europe/Amsterdam')::date,
            OLD.product_id, OLD.entitlement_id, -1)
        RETURNING id INTO delta;
    ELSE
        IF NEW.school_id IS NULL THEN
            RETURN NULL;
        END IF;
        INSERT INTO licence_delta (school_id, day, product_id, entitlement_id, activations)
        VALUES (NEW.school_id, (NEW.activated_at AT TIME ZONE 'Europe/Amsterdam')::date,
            NEW.product_id, NEW.entitlement_id, 1)
        RETURNING id INTO delta;
    END IF;
    IF delta % {COMPACT_EVERY} = 0 THEN
        PERFORM dashboard_compact();
    END IF;
    RETURN NULL;
END $$
"""

PG_COMPACT_FUNCTION = f"""
CREATE FUNCTION dashboard_compact() RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    folded integer;
    folded_days integer;
BEGIN
    -- One compaction at a time; a writer that finds one running leaves it its work.
    IF NOT pg_try_advisory_xact_lock(727004) THEN
        RETURN 0;
    END IF;
    WITH gone AS (
        DELETE FROM entitlement_delta RETURNING *
    ), keyed AS (
        SELECT g.school_id, g.product_id, d.seller_id, g.status, g.start_date,
            g.activation_until_date, {_sums(COUNTERS)}
        FROM gone g JOIN delivery d ON d.id = g.delivery_id
        GROUP BY g.school_id, g.product_id, d.seller_id, g.status, g.start_date,
            g.activation_until_date
    ), fine AS (
        INSERT INTO entitlement_summary AS s ({FINE_KEY}, {COUNTERS})
        SELECT * FROM keyed
        ON CONFLICT ({FINE_KEY}) DO UPDATE SET {_add(COUNTERS, "s")}
    ), coarse AS (
        INSERT INTO school_summary AS s ({COARSE_KEY}, {COUNTERS})
        SELECT school_id, status, activation_until_date, {_sums(COUNTERS)}
        FROM keyed GROUP BY school_id, status, activation_until_date
        ON CONFLICT ({COARSE_KEY}) DO UPDATE SET {_add(COUNTERS, "s")}
    )
    SELECT count(*) INTO folded FROM gone;
    WITH gone AS (
        DELETE FROM licence_delta RETURNING *
    ), keyed AS (
        SELECT g.school_id, g.day, g.product_id, d.seller_id, sum(g.activations) AS activations,
            sum(CASE WHEN e.quantity IS NULL THEN 0 ELSE g.activations END) AS activations_open
        FROM gone g JOIN entitlement e ON e.id = g.entitlement_id
        JOIN delivery d ON d.id = e.delivery_id
        GROUP BY g.school_id, g.day, g.product_id, d.seller_id
    ), fine AS (
        INSERT INTO licence_day_summary AS s ({DAY_FINE_KEY}, activations, activations_open)
        SELECT * FROM keyed
        ON CONFLICT ({DAY_FINE_KEY}) DO UPDATE SET {_add("activations, activations_open", "s")}
    ), coarse AS (
        INSERT INTO school_day_summary AS s ({DAY_COARSE_KEY}, activations, activations_open)
        SELECT school_id, day, sum(activations), sum(activations_open)
        FROM keyed GROUP BY school_id, day
        ON CONFLICT ({DAY_COARSE_KEY}) DO UPDATE SET {_add("activations, activations_open", "s")}
    )
    SELECT count(*) INTO folded_days FROM gone;
    RETURN folded + folded_days;
END $$
"""

PG_TRIGGERS = [
    "CREATE TRIGGER dashboard_entitlement_insert_delete AFTER INSERT OR DELETE ON entitlement "
    "FOR EACH ROW EXECUTE FUNCTION dashboard_entitlement_delta()",
    "CREATE TRIGGER dashboard_entitlement_update "
    "AFTER UPDATE OF school_id, product_id, delivery_id, status, start_date, "
    "activation_until_date, quantity, licences_used ON entitlement FOR EACH ROW "
    "WHEN (OLD.status IS DISTINCT FROM NEW.status "
    "OR OLD.quantity IS DISTINCT FROM NEW.quantity "
    "OR OLD.licences_used IS DISTINCT FROM NEW.licences_used "
    "OR OLD.school_id IS DISTINCT FROM NEW.school_id "
    "OR OLD.product_id IS DISTINCT FROM NEW.product_id "
    "OR OLD.delivery_id IS DISTINCT FROM NEW.delivery_id "
    "OR OLD.start_date IS DISTINCT FROM NEW.start_date "
    "OR OLD.activation_until_date IS DISTINCT FROM NEW.activation_until_date) "
    "EXECUTE FUNCTION dashboard_entitlement_delta()",
    "CREATE TRIGGER dashboard_licence_insert_delete AFTER INSERT OR DELETE ON licence "
    "FOR EACH ROW EXECUTE FUNCTION dashboard_licence_delta()",
]

# --- SQLite: the summaries directly ------------------------------------------------------------


def _sqlite_entitlement_row(row: str, sign: str) -> str:
    values = f"""{sign}1, CASE WHEN {row}.quantity IS NULL THEN 0 ELSE {sign}1 END,
        {sign}COALESCE({row}.quantity, 0), {sign}{row}.licences_used,
        CASE WHEN {row}.quantity IS NULL THEN 0 ELSE {sign}{row}.licences_used END"""
    return f"""
    INSERT INTO entitlement_summary ({FINE_KEY}, {COUNTERS})
    SELECT {row}.school_id, {row}.product_id, d.seller_id, {row}.status, {row}.start_date,
        {row}.activation_until_date, {values}
    FROM delivery d WHERE d.id = {row}.delivery_id AND {row}.school_id IS NOT NULL
    ON CONFLICT ({FINE_KEY}) DO UPDATE SET {_add(COUNTERS, "entitlement_summary")};
    INSERT INTO school_summary ({COARSE_KEY}, {COUNTERS})
    SELECT {row}.school_id, {row}.status, {row}.activation_until_date, {values}
    WHERE {row}.school_id IS NOT NULL
    ON CONFLICT ({COARSE_KEY}) DO UPDATE SET {_add(COUNTERS, "school_summary")};"""


def _sqlite_licence_row(row: str, sign: str) -> str:
    return f"""
    INSERT INTO licence_day_summary ({DAY_FINE_KEY}, activations, activations_open)
    SELECT {row}.school_id, date({row}.activated_at), {row}.product_id, d.seller_id, {sign}1,
        CASE WHEN e.quantity IS NULL THEN 0 ELSE {sign}1 END
    FROM entitlement e JOIN delivery d ON d.id = e.delivery_id
    WHERE e.id = {row}.entitlement_id AND {row}.school_id IS NOT NULL
    ON CONFLICT ({DAY_FINE_KEY}) DO UPDATE SET
        {_add("activations, activations_open", "licence_day_summary")};
    INSERT INTO school_day_summary ({DAY_COARSE_KEY}, activations, activations_open)
    SELECT {row}.school_id, date({row}.activated_at), {sign}1,
        CASE WHEN e.quantity IS NULL THEN 0 ELSE {sign}1 END
    FROM entitlement e WHERE e.id = {row}.entitlement_id AND {row}.school_id IS NOT NULL
    ON CONFLICT ({DAY_COARSE_KEY}) DO UPDATE SET
        {_add("activations, activations_open", "school_day_summary")};"""


SQLITE_TRIGGERS = [
    "CREATE TRIGGER dashboard_entitlement_insert AFTER INSERT ON entitlement BEGIN"
    + _sqlite_entitlement_row("NEW", "")
    + " END",
    "CREATE TRIGGER dashboard_entitlement_delete AFTER DELETE ON entitlement BEGIN"
    + _sqlite_entitlement_row("OLD", "-")
    + " END",
    "CREATE TRIGGER dashboard_entitlement_update AFTER UPDATE OF school_id, product_id, "
    "delivery_id, status, start_date, activation_until_date, quantity, licences_used "
    "ON entitlement BEGIN"
    + _sqlite_entitlement_row("OLD", "-")
    + _sqlite_entitlement_row("NEW", "")
    + " END",
    "CREATE TRIGGER dashboard_licence_insert AFTER INSERT ON licence BEGIN"
    + _sqlite_licence_row("NEW", "")
    + " END",
    "CREATE TRIGGER dashboard_licence_delete AFTER DELETE ON licence BEGIN"
    + _sqlite_licence_row("OLD", "-")
    + " END",
]
SQLITE_TRIGGER_NAMES = [
    "dashboard_entitlement_insert",
    "dashboard_entitlement_delete",
    "dashboard_entitlement_update",
    "dashboard_licence_insert",
    "dashboard_licence_delete",
]


def _rebuild(day: str) -> list[str]:
    """Fill the summaries from the rows already there (an existing database)."""
    is_open = "CASE WHEN e.quantity IS NULL THEN 0 ELSE 1 END"
    return [
        f"""INSERT INTO entitlement_summary ({FINE_KEY}, {COUNTERS})
        SELECT e.school_id, e.product_id, d.seller_id, e.status, e.start_date,
            e.activation_until_date, count(*), sum({is_open}), sum(COALESCE(e.quantity, 0)),
            sum(e.licences_used),
            sum(CASE WHEN e.quantity IS NULL THEN 0 ELSE e.licences_used END)
        FROM entitlement e JOIN delivery d ON d.id = e.delivery_id
        WHERE e.school_id IS NOT NULL
        GROUP BY e.school_id, e.product_id, d.seller_id, e.status, e.start_date,
            e.activation_until_date""",
        f"""INSERT INTO school_summary ({COARSE_KEY}, {COUNTERS})
        SELECT school_id, status, activation_until_date, {_sums(COUNTERS)}
        FROM entitlement_summary GROUP BY school_id, status, activation_until_date""",
        f"""INSERT INTO licence_day_summary ({DAY_FINE_KEY}, activations, activations_open)
        SELECT l.school_id, {day}, l.product_id, d.seller_id, count(*), sum({is_open})
        FROM licence l JOIN entitlement e ON e.id = l.entitlement_id
        JOIN delivery d ON d.id = e.delivery_id
        WHERE l.school_id IS NOT NULL
        GROUP BY l.school_id, {day}, l.product_id, d.seller_id""",
        f"""INSERT INTO school_day_summary ({DAY_COARSE_KEY}, activations, activations_open)
        SELECT school_id, day, sum(activations), sum(activations_open)
        FROM licence_day_summary GROUP BY school_id, day""",
    ]


def _counter(name: str, type_: sa.types.TypeEngine) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, type_, server_default="0", nullable=False)


def _entitlement_counters() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        _counter("entitlements", sa.Integer()),
        _counter("open_entitlements", sa.Integer()),
        _counter("quantity", sa.BigInteger()),
        _counter("licences_used", sa.BigInteger()),
        _counter("licences_used_open", sa.BigInteger()),
    ]


def upgrade() -> None:
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "entitlement_summary",
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("seller_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("activation_until_date", sa.Date(), nullable=False),
        *_entitlement_counters(),
        sa.PrimaryKeyConstraint(
            "school_id",
            "product_id",
            "seller_id",
            "status",
            "start_date",
            "activation_until_date",
            name=op.f("pk_entitlement_summary"),
        ),
    )
    with op.batch_alter_table("entitlement_summary", schema=None) as batch_op:
        batch_op.create_index("ix_entitlement_summary_product_id", ["product_id"], unique=False)
        batch_op.create_index("ix_entitlement_summary_seller_id", ["seller_id"], unique=False)
    op.create_table(
        "school_summary",
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("activation_until_date", sa.Date(), nullable=False),
        *_entitlement_counters(),
        sa.PrimaryKeyConstraint(
            "school_id", "status", "activation_until_date", name=op.f("pk_school_summary")
        ),
    )
    op.create_table(
        "entitlement_delta",
        sa.Column("id", big_id, nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("delivery_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("activation_until_date", sa.Date(), nullable=False),
        *_entitlement_counters(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_entitlement_delta")),
    )
    with op.batch_alter_table("entitlement_delta", schema=None) as batch_op:
        batch_op.create_index("ix_entitlement_delta_school_id", ["school_id"], unique=False)
    op.create_table(
        "licence_day_summary",
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("seller_id", sa.Integer(), nullable=False),
        _counter("activations", sa.Integer()),
        _counter("activations_open", sa.Integer()),
        sa.PrimaryKeyConstraint(
            "school_id", "day", "product_id", "seller_id", name=op.f("pk_licence_day_summary")
        ),
    )
    with op.batch_alter_table("licence_day_summary", schema=None) as batch_op:
        batch_op.create_index("ix_licence_day_summary_product_id", ["product_id"], unique=False)
    op.create_table(
        "school_day_summary",
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        _counter("activations", sa.Integer()),
        _counter("activations_open", sa.Integer()),
        sa.PrimaryKeyConstraint("school_id", "day", name=op.f("pk_school_day_summary")),
    )
    op.create_table(
        "licence_delta",
        sa.Column("id", big_id, nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("entitlement_id", sa.BigInteger(), nullable=False),
        _counter("activations", sa.Integer()),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_licence_delta")),
    )
    with op.batch_alter_table("licence_delta", schema=None) as batch_op:
        batch_op.create_index("ix_licence_delta_school_id_day", ["school_id", "day"], unique=False)
    with op.batch_alter_table("entitlement", schema=None) as batch_op:
        batch_op.create_index("ix_entitlement_school_id_id", ["school_id", "id"], unique=False)
    with op.batch_alter_table("entitlement_recipient", schema=None) as batch_op:
        batch_op.create_index(
            "ix_entitlement_recipient_unanswered",
            ["state", "updated_at"],
            unique=False,
            postgresql_where=sa.text(UNANSWERED),
            sqlite_where=sa.text(UNANSWERED),
        )

    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_COMPACT_FUNCTION)
        op.execute(PG_ENTITLEMENT_FUNCTION)
        op.execute(PG_LICENCE_FUNCTION)
        for statement in PG_TRIGGERS:
            op.execute(statement)
        day = "(l.activated_at AT TIME ZONE 'Europe/Amsterdam')::date"
    else:
        for statement in SQLITE_TRIGGERS:
            op.execute(statement)
        day = "date(l.activated_at)"
    for statement in _rebuild(day):
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS dashboard_entitlement_insert_delete ON entitlement")
        op.execute("DROP TRIGGER IF EXISTS dashboard_entitlement_update ON entitlement")
        op.execute("DROP TRIGGER IF EXISTS dashboard_licence_insert_delete ON licence")
        op.execute("DROP FUNCTION IF EXISTS dashboard_entitlement_delta()")
        op.execute("DROP FUNCTION IF EXISTS dashboard_licence_delta()")
        op.execute("DROP FUNCTION IF EXISTS dashboard_compact()")
    else:
        for name in SQLITE_TRIGGER_NAMES:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    with op.batch_alter_table("entitlement_recipient", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_entitlement_recipient_unanswered",
            postgresql_where=sa.text(UNANSWERED),
            sqlite_where=sa.text(UNANSWERED),
        )
    with op.batch_alter_table("entitlement", schema=None) as batch_op:
        batch_op.drop_index("ix_entitlement_school_id_id")
    with op.batch_alter_table("licence_delta", schema=None) as batch_op:
        batch_op.drop_index("ix_licence_delta_school_id_day")
    op.drop_table("licence_delta")
    op.drop_table("school_day_summary")
    with op.batch_alter_table("licence_day_summary", schema=None) as batch_op:
        batch_op.drop_index("ix_licence_day_summary_product_id")
    op.drop_table("licence_day_summary")
    with op.batch_alter_table("entitlement_delta", schema=None) as batch_op:
        batch_op.drop_index("ix_entitlement_delta_school_id")
    op.drop_table("entitlement_delta")
    op.drop_table("school_summary")
    with op.batch_alter_table("entitlement_summary", schema=None) as batch_op:
        batch_op.drop_index("ix_entitlement_summary_seller_id")
        batch_op.drop_index("ix_entitlement_summary_product_id")
    op.drop_table("entitlement_summary")
