"""dashboard summaries kept by triggers, unanswered recipients index

Dashboards aggregate a board's entitlements per status and its activations per day.
At national scale that is a million entitlement rows and two million licences per
large board, too many to group on every request. The two summary tables hold the
same figures per (school, product, shop, status, activation period) and per
(school, day, product, shop); triggers keep them in the transaction of every
change, so they are exactly as current as the rows they summarise and no code path
can forget them.

PostgreSQL: the triggers are constraint triggers DEFERRED to commit, so the summary
row an activation increments is locked only for the commit itself, not for the rest
of the activation's transaction (a whole class activating at 08:30 would otherwise
queue on it). SQLite serialises writers anyway: plain row triggers.

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

SUMMARY_KEY = "school_id, product_id, seller_id, status, start_date, activation_until_date"
SUMMARY_ADD = """
    entitlements = {t}.entitlements + excluded.entitlements,
    open_entitlements = {t}.open_entitlements + excluded.open_entitlements,
    quantity = {t}.quantity + excluded.quantity,
    licences_used = {t}.licences_used + excluded.licences_used,
    licences_used_open = {t}.licences_used_open + excluded.licences_used_open"""
DAY_KEY = "school_id, day, product_id, seller_id"
DAY_ADD = """
    activations = {t}.activations + excluded.activations,
    activations_open = {t}.activations_open + excluded.activations_open"""

# --- PostgreSQL --------------------------------------------------------------------------

PG_ENTITLEMENT_FUNCTION = f"""
CREATE FUNCTION dashboard_entitlement_summary() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    seller integer;
    same_key boolean;
BEGIN
    same_key := TG_OP = 'UPDATE'
        AND OLD.school_id IS NOT DISTINCT FROM NEW.school_id
        AND OLD.product_id = NEW.product_id AND OLD.delivery_id = NEW.delivery_id
        AND OLD.status = NEW.status AND OLD.start_date = NEW.start_date
        AND OLD.activation_until_date = NEW.activation_until_date;
    IF same_key THEN
        IF NEW.school_id IS NULL THEN
            RETURN NULL;
        END IF;
        -- The common case (an activation, a lower quantity): one row, the differences.
        SELECT d.seller_id INTO seller FROM delivery d WHERE d.id = NEW.delivery_id;
        UPDATE entitlement_summary SET
            quantity = quantity + COALESCE(NEW.quantity, 0) - COALESCE(OLD.quantity, 0),
            licences_used = licences_used + NEW.licences_used - OLD.licences_used,
            licences_used_open = licences_used_open
                + CASE WHEN NEW.quantity IS NULL THEN 0 ELSE NEW.licences_used END
                - CASE WHEN OLD.quantity IS NULL THEN 0 ELSE OLD.licences_used END
        WHERE school_id = NEW.school_id AND product_id = NEW.product_id
            AND seller_id = seller AND status = NEW.status
            AND start_date = NEW.start_date AND activation_until_date = NEW.activation_until_date;
        RETURN NULL;
    END IF;
    IF TG_OP <> 'INSERT' AND OLD.school_id IS NOT NULL THEN
        SELECT d.seller_id INTO seller FROM delivery d WHERE d.id = OLD.delivery_id;
        IF FOUND THEN
            INSERT INTO entitlement_summary AS s ({SUMMARY_KEY}, entitlements,
                open_entitlements, quantity, licences_used, licences_used_open)
            VALUES (OLD.school_id, OLD.product_id, seller, OLD.status, OLD.start_date,
                OLD.activation_until_date, -1,
                CASE WHEN OLD.quantity IS NULL THEN 0 ELSE -1 END,
                -COALESCE(OLD.quantity, 0), -OLD.licences_used,
                CASE WHEN OLD.quantity IS NULL THEN 0 ELSE -OLD.licences_used END)
            ON CONFLICT ({SUMMARY_KEY}) DO UPDATE SET {SUMMARY_ADD.format(t="s")};
        END IF;
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.school_id IS NOT NULL THEN
        SELECT d.seller_id INTO seller FROM delivery d WHERE d.id = NEW.delivery_id;
        IF NOT FOUND THEN
            RETURN NULL;
        END IF;
        INSERT INTO entitlement_summary AS s ({SUMMARY_KEY}, entitlements,
            open_entitlements, quantity, licences_used, licences_used_open)
        VALUES (NEW.school_id, NEW.product_id, seller, NEW.status, NEW.start_date,
            NEW.activation_until_date, 1,
            CASE WHEN NEW.quantity IS NULL THEN 0 ELSE 1 END,
            COALESCE(NEW.quantity, 0), NEW.licences_used,
            CASE WHEN NEW.quantity IS NULL THEN 0 ELSE NEW.licences_used END)
        ON CONFLICT ({SUMMARY_KEY}) DO UPDATE SET {SUMMARY_ADD.format(t="s")};
    END IF;
    RETURN NULL;
END $$
"""

PG_LICENCE_FUNCTION = f"""
CREATE FUNCTION dashboard_licence_day_summary() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    seller integer;
    is_open integer;
    sign integer;
    changed licence;
BEGIN
    IF TG_OP = 'DELETE' THEN
        changed := OLD;
        sign := -1;
    ELSE
        changed := NEW;
        sign := 1;
    END IF;
    IF changed.school_id IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT d.seller_id, CASE WHEN e.quantity IS NULL THEN 0 ELSE 1 END
        INTO seller, is_open
        FROM entitlement e JOIN delivery d ON d.id = e.delivery_id
        WHERE e.id = changed.entitlement_id;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    INSERT INTO licence_day_summary AS s ({DAY_KEY}, activations, activations_open)
    VALUES (changed.school_id, (changed.activated_at AT TIME ZONE 'Europe/Amsterdam')::date,
        changed.product_id, seller, sign, sign * is_open)
    ON CONFLICT ({DAY_KEY}) DO UPDATE SET {DAY_ADD.format(t="s")};
    RETURN NULL;
END $$
"""

PG_TRIGGERS = [
    "CREATE CONSTRAINT TRIGGER entitlement_summary_insert_delete "
    "AFTER INSERT OR DELETE ON entitlement DEFERRABLE INITIALLY DEFERRED "
    "FOR EACH ROW EXECUTE FUNCTION dashboard_entitlement_summary()",
    "CREATE CONSTRAINT TRIGGER entitlement_summary_update "
    "AFTER UPDATE OF school_id, product_id, delivery_id, status, start_date, "
    "activation_until_date, quantity, licences_used ON entitlement "
    "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW "
    "WHEN (OLD.status IS DISTINCT FROM NEW.status "
    "OR OLD.quantity IS DISTINCT FROM NEW.quantity "
    "OR OLD.licences_used IS DISTINCT FROM NEW.licences_used "
    "OR OLD.school_id IS DISTINCT FROM NEW.school_id "
    "OR OLD.product_id IS DISTINCT FROM NEW.product_id "
    "OR OLD.delivery_id IS DISTINCT FROM NEW.delivery_id "
    "OR OLD.start_date IS DISTINCT FROM NEW.start_date "
    "OR OLD.activation_until_date IS DISTINCT FROM NEW.activation_until_date) "
    "EXECUTE FUNCTION dashboard_entitlement_summary()",
    "CREATE CONSTRAINT TRIGGER licence_day_summary_insert_delete "
    "AFTER INSERT OR DELETE ON licence DEFERRABLE INITIALLY DEFERRED "
    "FOR EACH ROW EXECUTE FUNCTION dashboard_licence_day_summary()",
]

# --- SQLite ------------------------------------------------------------------------------


def _sqlite_entitlement_row(row: str, sign: str) -> str:
    return f"""
    INSERT INTO entitlement_summary ({SUMMARY_KEY}, entitlements, open_entitlements, quantity,
        licences_used, licences_used_open)
    SELECT {row}.school_id, {row}.product_id, d.seller_id, {row}.status, {row}.start_date,
        {row}.activation_until_date, {sign}1,
        CASE WHEN {row}.quantity IS NULL THEN 0 ELSE {sign}1 END,
        {sign}COALESCE({row}.quantity, 0), {sign}{row}.licences_used,
        CASE WHEN {row}.quantity IS NULL THEN 0 ELSE {sign}{row}.licences_used END
    FROM delivery d WHERE d.id = {row}.delivery_id AND {row}.school_id IS NOT NULL
    ON CONFLICT ({SUMMARY_KEY}) DO UPDATE SET {SUMMARY_ADD.format(t="entitlement_summary")};"""


def _sqlite_licence_row(row: str, sign: str) -> str:
    return f"""
    INSERT INTO licence_day_summary ({DAY_KEY}, activations, activations_open)
    SELECT {row}.school_id, date({row}.activated_at), {row}.product_id, d.seller_id, {sign}1,
        CASE WHEN e.quantity IS NULL THEN 0 ELSE {sign}1 END
    FROM entitlement e JOIN delivery d ON d.id = e.delivery_id
    WHERE e.id = {row}.entitlement_id AND {row}.school_id IS NOT NULL
    ON CONFLICT ({DAY_KEY}) DO UPDATE SET {DAY_ADD.format(t="licence_day_summary")};"""


SQLITE_TRIGGERS = [
    "CREATE TRIGGER entitlement_summary_insert AFTER INSERT ON entitlement BEGIN"
    + _sqlite_entitlement_row("NEW", "")
    + " END",
    "CREATE TRIGGER entitlement_summary_delete AFTER DELETE ON entitlement BEGIN"
    + _sqlite_entitlement_row("OLD", "-")
    + " END",
    "CREATE TRIGGER entitlement_summary_update AFTER UPDATE OF school_id, product_id, "
    "delivery_id, status, start_date, activation_until_date, quantity, licences_used "
    "ON entitlement BEGIN"
    + _sqlite_entitlement_row("OLD", "-")
    + _sqlite_entitlement_row("NEW", "")
    + " END",
    "CREATE TRIGGER licence_day_summary_insert AFTER INSERT ON licence BEGIN"
    + _sqlite_licence_row("NEW", "")
    + " END",
    "CREATE TRIGGER licence_day_summary_delete AFTER DELETE ON licence BEGIN"
    + _sqlite_licence_row("OLD", "-")
    + " END",
]


def _rebuild(day: str) -> list[str]:
    """Fill the summaries from the rows already there (an existing database)."""
    return [
        f"""INSERT INTO entitlement_summary ({SUMMARY_KEY}, entitlements, open_entitlements,
            quantity, licences_used, licences_used_open)
        SELECT e.school_id, e.product_id, d.seller_id, e.status, e.start_date,
            e.activation_until_date, count(*),
            sum(CASE WHEN e.quantity IS NULL THEN 0 ELSE 1 END), sum(COALESCE(e.quantity, 0)),
            sum(e.licences_used),
            sum(CASE WHEN e.quantity IS NULL THEN 0 ELSE e.licences_used END)
        FROM entitlement e JOIN delivery d ON d.id = e.delivery_id
        WHERE e.school_id IS NOT NULL
        GROUP BY e.school_id, e.product_id, d.seller_id, e.status, e.start_date,
            e.activation_until_date""",
        f"""INSERT INTO licence_day_summary ({DAY_KEY}, activations, activations_open)
        SELECT l.school_id, {day}, l.product_id, d.seller_id, count(*),
            sum(CASE WHEN e.quantity IS NULL THEN 0 ELSE 1 END)
        FROM licence l JOIN entitlement e ON e.id = l.entitlement_id
        JOIN delivery d ON d.id = e.delivery_id
        WHERE l.school_id IS NOT NULL
        GROUP BY l.school_id, {day}, l.product_id, d.seller_id""",
    ]


def upgrade() -> None:
    op.create_table(
        "entitlement_summary",
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("seller_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("activation_until_date", sa.Date(), nullable=False),
        sa.Column("entitlements", sa.Integer(), server_default="0", nullable=False),
        sa.Column("open_entitlements", sa.Integer(), server_default="0", nullable=False),
        sa.Column("quantity", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("licences_used", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("licences_used_open", sa.BigInteger(), server_default="0", nullable=False),
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
        "licence_day_summary",
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("seller_id", sa.Integer(), nullable=False),
        sa.Column("activations", sa.Integer(), server_default="0", nullable=False),
        sa.Column("activations_open", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint(
            "school_id", "day", "product_id", "seller_id", name=op.f("pk_licence_day_summary")
        ),
    )
    with op.batch_alter_table("entitlement_recipient", schema=None) as batch_op:
        batch_op.create_index(
            "ix_entitlement_recipient_unanswered",
            ["state", "updated_at"],
            unique=False,
            postgresql_where=sa.text(UNANSWERED),
            sqlite_where=sa.text(UNANSWERED),
        )

    if op.get_bind().dialect.name == "postgresql":
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
        op.execute("DROP TRIGGER IF EXISTS entitlement_summary_insert_delete ON entitlement")
        op.execute("DROP TRIGGER IF EXISTS entitlement_summary_update ON entitlement")
        op.execute("DROP TRIGGER IF EXISTS licence_day_summary_insert_delete ON licence")
        op.execute("DROP FUNCTION IF EXISTS dashboard_entitlement_summary()")
        op.execute("DROP FUNCTION IF EXISTS dashboard_licence_day_summary()")
    else:
        for name in (
            "entitlement_summary_insert",
            "entitlement_summary_delete",
            "entitlement_summary_update",
            "licence_day_summary_insert",
            "licence_day_summary_delete",
        ):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    with op.batch_alter_table("entitlement_recipient", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_entitlement_recipient_unanswered",
            postgresql_where=sa.text(UNANSWERED),
            sqlite_where=sa.text(UNANSWERED),
        )
    op.drop_table("licence_day_summary")
    with op.batch_alter_table("entitlement_summary", schema=None) as batch_op:
        batch_op.drop_index("ix_entitlement_summary_seller_id")
        batch_op.drop_index("ix_entitlement_summary_product_id")
    op.drop_table("entitlement_summary")
