"""scrub BSNs and onderwijsnummers from text stored before the rule for free text

Until the gateway refused a pgn inside free text (`domain/privacy.py`), a failure
message such as "leerling bsn 123456782 onbekend" was stored and shown to the shop,
the school and the other recipients, in the entitlement, its history and live
events. This data migration replaces every pgn in the caller-written text the
gateway keeps for others to read with "[pgn redacted]", by the same rule that now
refuses such input: failure messages (and the message in their events), order
numbers, group and subject names, processing agreement references, and the texts
in audit details (a delivery's referenceId, an erasure's reason, an agreement's
reference). Keys that callers match on (reference ids, codes, activation codes,
identifiers) are left as they are; a whole pgn was refused in those already.

Only rows that can hold nine digits are read (a regular expression on PostgreSQL;
SQLite reads the few candidate columns whole). Not reversible: downgrade does
nothing.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24 09:00:00
"""

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from domain.privacy import redact, redact_pgns

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: (table, key columns, text column) of caller-written display text.
TEXTS = [
    ("entitlement_recipient", ("entitlement_id", "supplier_id", "role"), "failure_message"),
    ("delivery", ("id",), "order_number"),
    ("teaching_group", ("id",), "name"),
    ("school_subject", ("id",), "name"),
    ("processing_agreement", ("id",), "reference"),
]
#: (table, JSON column, condition) of stored details holding caller-written text.
DETAILS = [
    ("event", "payload", "kind = 'ENTITLEMENT_FAILED'"),
    (
        "audit_log",
        "detail",
        "action IN ('deliverySubmit', 'personErase', 'processingAgreement.register')",
    ),
]
# Nine digits, possibly with separators between them: every pgn matches, most
# rows do not (the rule itself runs in Python on the few that do).
NINE_DIGITS = r"[0-9]([ .\-]*[0-9]){8}"
BATCH = 1000


def _rows(table: str, keys: tuple[str, ...], column: str, where: str) -> Any:
    """Batches of (keys..., value) of the rows that may hold a pgn."""
    bind = op.get_bind()
    candidates = f"{column} IS NOT NULL"
    if bind.dialect.name == "postgresql":
        candidates += f" AND {column}::text ~ '{NINE_DIGITS}'"
    select = f"SELECT {', '.join(keys)}, {column} FROM {table} WHERE {where} AND {candidates}"
    if keys != ("id",):
        # Few rows (failures only); no single key to page by.
        yield bind.execute(sa.text(select)).all()
        return
    last = 0
    while rows := bind.execute(
        sa.text(f"{select} AND id > :last ORDER BY id LIMIT {BATCH}"), {"last": last}
    ).all():
        yield rows
        last = rows[-1][0]


def _update(table: str, keys: tuple[str, ...], column: str, row: Any, value: Any) -> None:
    bind = op.get_bind()
    target = (
        "CAST(:value AS json)"
        if not isinstance(value, str) and bind.dialect.name == "postgresql"
        else ":value"
    )
    stored = value if isinstance(value, str) else json.dumps(value)
    bind.execute(
        sa.text(
            f"UPDATE {table} SET {column} = {target} WHERE "
            + " AND ".join(f"{key} = :k{i}" for i, key in enumerate(keys))
        ),
        {"value": stored, **{f"k{i}": row[i] for i in range(len(keys))}},
    )


def upgrade() -> None:
    for table, keys, column in TEXTS:
        for rows in _rows(table, keys, column, "TRUE"):
            for row in rows:
                cleaned = redact_pgns(row[-1])
                if cleaned != row[-1]:
                    _update(table, keys, column, row, cleaned)
    for table, column, condition in DETAILS:
        for rows in _rows(table, ("id",), column, condition):
            for row in rows:
                stored = json.loads(row[-1]) if isinstance(row[-1], str) else row[-1]
                cleaned = redact(stored)
                if cleaned != stored:
                    _update(table, ("id",), column, row, cleaned)


def downgrade() -> None:
    """Nothing to restore: the numbers were never meant to be stored."""
