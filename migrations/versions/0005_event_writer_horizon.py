"""event stream horizon that waits only for event writers

The live stream reads events in an order no late commit can fall behind. Until now
the reader waited for the oldest transaction with an id anywhere on the PostgreSQL
server (its snapshot's xmin): a bulk load or an idle session in another database
held every event back. Now event writers say so and the reader waits only for them.

* `event_position()`, called by every statement that inserts events (db/outbox.py):
  gives the transaction its id, then takes a shared transaction-level advisory lock
  (the event-writer lock), then returns the greater of its id and the xmax of a
  snapshot taken after the lock. Holding the lock until the transaction ends marks
  it as a writer that can still add events.
* `event_horizon()`, called by readers: the xmax of a snapshot taken first, lowered
  to the oldest transaction id among the current holders of the event-writer lock.
  Every event with a position below it has committed (and is visible to a later
  statement) or never will: a holder's events are at or above its id; a transaction
  that takes the lock later writes at or above the xmax of a snapshot taken after
  that, so at or above this one; and a writer that released the lock has committed
  or rolled back before it did (PostgreSQL releases locks after the commit is
  visible).

Positions keep their meaning (transaction id or later xmax), so events and cursors
written before this migration stay valid. SQLite serialises writers and needs none
of this.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 09:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The event-writer lock: pg_advisory_xact_lock_shared(WRITER_KEY_1, WRITER_KEY_2), the
# two-int form (objsubid 2 in pg_locks). db/events.py uses the same numbers.
WRITER_KEY_1 = 1802528118  # 'kpev'
WRITER_KEY_2 = 1

EVENT_POSITION = f"""
CREATE OR REPLACE FUNCTION event_position() RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    own bigint;
    later bigint;
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'events are written in READ COMMITTED transactions only';
    END IF;
    -- The id first, so that a holder of the lock always shows it in pg_locks.
    own := pg_current_xact_id()::text::bigint;
    PERFORM pg_advisory_xact_lock_shared({WRITER_KEY_1}, {WRITER_KEY_2});
    -- A statement of its own: its snapshot is taken after the lock was granted.
    SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint INTO later;
    RETURN GREATEST(own, later);
END
$$
"""

EVENT_HORIZON = f"""
CREATE OR REPLACE FUNCTION event_horizon() RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    next_xid bigint;
    oldest bigint;
BEGIN
    -- Before the lock table is read: a writer that takes the lock after that writes
    -- at or above this.
    SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint INTO next_xid;
    -- One read of the lock table (pg_locks is a function: a self-join would read it
    -- twice). pg_locks shows 32-bit ids; each is widened to the 64-bit id nearest
    -- next_xid, as PostgreSQL itself does.
    WITH locks AS MATERIALIZED (
        SELECT locktype, database, classid, objid, objsubid, granted, mode,
               virtualtransaction, transactionid
        FROM pg_locks
    ), writers AS (
        SELECT virtualtransaction FROM locks
        WHERE locktype = 'advisory' AND granted AND objsubid = 2
          AND classid = {WRITER_KEY_1}::oid AND objid = {WRITER_KEY_2}::oid
          AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
    ), ids AS (
        SELECT ((l.transactionid::text::bigint - next_xid % 4294967296 + 8589934592)
                % 4294967296) AS ahead
        FROM locks l JOIN writers w USING (virtualtransaction)
        WHERE l.locktype = 'transactionid' AND l.mode = 'ExclusiveLock' AND l.granted
    )
    SELECT min(next_xid + CASE WHEN ahead >= 2147483648 THEN ahead - 4294967296 ELSE ahead END)
    INTO oldest FROM ids;
    RETURN LEAST(next_xid, oldest);
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(EVENT_POSITION)
        op.execute(EVENT_HORIZON)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS event_horizon()")
        op.execute("DROP FUNCTION IF EXISTS event_position()")
