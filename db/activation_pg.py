"""The activation store on PostgreSQL: a batch of clicks in a handful of statements,
each written here once (the module is those statements, hence its size).

* `FACTS`: every fact the decision tree needs, for every click of the batch, in one
  statement (person, memberships today, licences on the product, candidate
  entitlements, the code's existence, and per school who watches its activations:
  that part is `db.consent.receivers_statement` compiled in, one source for the rule).
* `LOCK`: the candidate entitlements, locked in id order, then one transaction-level
  advisory lock per (person, product) of the clicks, in key order (every batch takes
  them in that order, so two batches never wait on each other in a circle); `CURRENT`
  then reads the persons' licences on a snapshot taken after the locks, so a licence
  committed meanwhile by another process is seen, also one registered on another
  entitlement (the same pupil logging in through two schools in two processes).
* `REGISTER`: seats (one counter update per entitlement per batch), activation codes,
  licences, their events and audit rows, in one statement; the events' `tx_id` is
  `db.outbox.PG_EVENT_POSITION` (it also marks the transaction as an event writer for
  the live stream's horizon); statement-level triggers keep the dashboard summaries
  once per batch.
* `STORED`, `CLAIM`, `REMEMBER`: idempotency records for clicks with a referenceId.

The statements run on plain asyncpg (the gateway's pool, prepared once per
connection) or, inside a caller's transaction, on a SQLAlchemy connection (the same
text through `exec_driver_sql`). Arrays go in as parameters; JSON comes back as text.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import date, datetime
from typing import Any, Protocol

from sqlalchemy import literal_column
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from db.activation import (
    OPEN_VARIANTS,
    WATCHING_ROLES,
    ActivationRequest,
    Gathered,
    HeldLicence,
    Registration,
    SeatState,
    assemble,
    candidate,
    held_licence,
)
from db.consent import receivers_statement
from db.outbox import PG_EVENT_POSITION, events_committed, events_written
from domain.entitlements import EntitlementStatus
from domain.identifiers import is_school_scoped
from domain.persons import PersonKind
from domain.roles import DataType

ReferenceKey = tuple[int, str, str]


def _watchers_fragment() -> str:
    statement = receivers_statement(
        literal_column("s.school_id"),
        DataType.ACTIVATIONS,
        list(WATCHING_ROLES),
        literal_column("$8::date"),
    )
    compiled = statement.compile(
        dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}
    )
    return str(compiled)


_OPEN = ", ".join(f"'{variant}'" for variant in OPEN_VARIANTS)
_CURRENT_PERIOD = "sp.start_date <= $8 AND sp.end_date >= $8"

# $1 login school, $2 product ids ('{id,...}'), $3 activation code: one per click;
# $4..$7 the person keys (click number, scheme, scope, value) in order of preference;
# $8 today.
FACTS = f"""
WITH click AS MATERIALIZED (
    SELECT c.n, c.school_id, c.products::integer[] AS product_ids, c.code
    FROM unnest($1::integer[], $2::text[], $3::varchar[])
         WITH ORDINALITY AS c(school_id, products, code, n)
), k AS (
    SELECT * FROM unnest($4::integer[], $5::varchar[], $6::varchar[], $7::varchar[])
         WITH ORDINALITY AS k(click, scheme, scope, value, pos)
), p AS MATERIALIZED (
    SELECT DISTINCT ON (k.click) k.click, person.id, person.kind
    FROM k
    JOIN person_identifier pi ON pi.scheme = k.scheme AND pi.scope = k.scope
                             AND pi.value = k.value
    JOIN person ON person.id = pi.person_id
    WHERE person.erased_at IS NULL
    ORDER BY k.click, k.pos
), w AS MATERIALIZED (
    SELECT s.school_id,
           json_agg(json_build_array(r.supplier_id, r.role) ORDER BY r.supplier_id, r.role)
               AS watching
    FROM (SELECT DISTINCT school_id FROM click) s
    CROSS JOIN LATERAL ({_watchers_fragment()}) r
    GROUP BY s.school_id
)
SELECT
    click.n, p.id, p.kind,
    (SELECT json_agg(json_build_array(m.k, m.v)) FROM (
        SELECT 'S' AS k, e.school_id AS v
        FROM enrolment e JOIN school_period sp ON sp.id = e.period_id
        WHERE e.person_id = p.id AND {_CURRENT_PERIOD}
        UNION ALL
        SELECT 'G', gm.group_id
        FROM group_membership gm JOIN teaching_group g ON g.id = gm.group_id
        JOIN school_period sp ON sp.id = g.period_id
        WHERE gm.person_id = p.id AND {_CURRENT_PERIOD}
        UNION ALL
        SELECT 'J', se.subject_id
        FROM subject_enrolment se JOIN school_period sp ON sp.id = se.period_id
        WHERE se.person_id = p.id AND {_CURRENT_PERIOD}
    ) m)::text,
    (SELECT json_agg(json_build_array(l.id, l.entitlement_id, l.person_id, l.product_id,
                                      l.school_id, l.status, l.activated_at,
                                      l.expiration_date, e.status))
     FROM licence l JOIN entitlement e ON e.id = l.entitlement_id
     WHERE l.person_id = p.id AND l.product_id = ANY(click.product_ids))::text,
    (SELECT json_agg(json_build_array(e.id, e.variant, e.status, e.start_date,
                                      e.activation_until_date, e.school_id, e.group_id,
                                      e.subject_id, e.quantity, e.licences_used,
                                      e.delivery_id, e.product_id, e.min_expiration_date,
                                      e.licence_duration_months, d.seller_id,
                                      EXISTS (SELECT 1 FROM entitlee n
                                              WHERE n.entitlement_id = e.id
                                                AND n.person_id = p.id),
                                      code.id, code.code_state) ORDER BY e.id)
     FROM entitlement e
     JOIN delivery d ON d.id = e.delivery_id
     LEFT JOIN entitlee code ON code.entitlement_id = e.id
                            AND code.activation_code = click.code
     WHERE e.product_id = ANY(click.product_ids)
       AND e.id IN (
           SELECT o.id FROM entitlement o
           WHERE o.school_id = click.school_id AND o.product_id = ANY(click.product_ids)
             AND o.variant IN ({_OPEN})
           UNION SELECT x.entitlement_id FROM entitlee x WHERE x.person_id = p.id
           UNION SELECT y.entitlement_id FROM entitlee y WHERE y.activation_code = click.code
       ))::text,
    w.watching::text,
    click.code IS NOT NULL
        AND EXISTS (SELECT 1 FROM entitlee z WHERE z.activation_code = click.code)
FROM click
LEFT JOIN p ON p.click = click.n
LEFT JOIN w ON w.school_id = click.school_id
ORDER BY click.n
"""

# The seats first, then the holders' advisory locks (the holder CTE's InitPlan reads
# `seat`, the outer query's InitPlan reads `holder`): one order for every batch.
LOCK = """
WITH seat AS MATERIALIZED (
    SELECT id, status, quantity, licences_used FROM entitlement
    WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE
), holder AS MATERIALIZED (
    SELECT count(*) AS n FROM (
        SELECT pg_advisory_xact_lock(o.k)
        FROM (SELECT DISTINCT k FROM unnest($2::bigint[]) AS k ORDER BY k) o
        WHERE (SELECT count(*) FROM seat) >= 0
    ) taken
)
SELECT id, status, quantity, licences_used FROM seat
WHERE (SELECT n FROM holder) >= 0
ORDER BY id
"""


def holder_key(person_id: int, product_id: int) -> int:
    """The advisory lock of a person's licences on a product: a signed 64-bit hash
    (the one-key form, apart from the event-writer lock's two-key form); two pairs
    that share a key only wait for each other."""
    digest = hashlib.blake2b(
        f"ketenpoort-licence/{person_id}/{product_id}".encode(), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big", signed=True)


CURRENT = """
SELECT l.id, l.entitlement_id, l.person_id, l.product_id, l.school_id, l.status,
       l.activated_at, l.expiration_date, e.status
FROM licence l JOIN entitlement e ON e.id = l.entitlement_id
WHERE l.person_id = ANY($1::bigint[]) AND l.product_id = ANY($2::integer[])
"""

CODES = "SELECT id, code_state FROM entitlee WHERE id = ANY($1::bigint[])"

REGISTER = f"""
WITH input AS (
    SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::integer[], $4::integer[],
                         $5::bigint[], $6::date[], $7::integer[], $8::varchar[],
                         $9::text[], $10::text[], $11::bigint[])
        WITH ORDINALITY AS i(entitlement_id, person_id, product_id, school_id, delivery_id,
                             expiration_date, actor_supplier_id, actor_role, payload, detail,
                             code_entitlee_id, n)
), seat AS (
    UPDATE entitlement e SET licences_used = e.licences_used + s.taken
    FROM (SELECT entitlement_id, count(*) AS taken FROM input GROUP BY entitlement_id) s
    WHERE e.id = s.entitlement_id
), code AS (
    UPDATE entitlee x SET code_state = 'USED', person_id = i.person_id
    FROM input i WHERE x.id = i.code_entitlee_id
), lic AS (
    INSERT INTO licence (entitlement_id, person_id, product_id, school_id, status,
                         expiration_date)
    SELECT entitlement_id, person_id, product_id, school_id, 'ACTIVATED', expiration_date
    FROM input ORDER BY n
    RETURNING id, entitlement_id, person_id, activated_at
), done AS (
    SELECT i.*, lic.id AS licence_id, lic.activated_at
    FROM input i JOIN lic ON lic.entitlement_id = i.entitlement_id
                         AND lic.person_id = i.person_id
), ev AS (
    INSERT INTO event (tx_id, kind, school_id, delivery_id, entitlement_id, licence_id,
                       status, actor_supplier_id, actor_role, payload)
    SELECT {PG_EVENT_POSITION}, 'LICENCE_ACTIVATED', school_id, delivery_id,
           entitlement_id, licence_id, 'ACTIVATED', actor_supplier_id, actor_role,
           payload::json
    FROM done ORDER BY n
), au AS (
    INSERT INTO audit_log (supplier_id, role, action, object_type, object_id, school_id,
                           detail)
    SELECT actor_supplier_id, actor_role, 'licence.activate', 'licence', licence_id::text,
           school_id, detail::json
    FROM done ORDER BY n
)
SELECT n, licence_id, activated_at FROM done ORDER BY n
"""

_KEYS = "unnest($1::integer[], $2::varchar[], $3::varchar[])"

STORED = f"""
SELECT m.supplier_id, m.operation, m.reference_id, m.request_hash, m.response::text
FROM processed_message m JOIN {_KEYS} AS k(s, o, r)
  ON m.supplier_id = k.s AND m.operation = k.o AND m.reference_id = k.r
"""

CLAIM = """
INSERT INTO processed_message (supplier_id, operation, reference_id, request_hash, response)
SELECT s, o, r, h, '{}'::json
FROM unnest($1::integer[], $2::varchar[], $3::varchar[], $4::varchar[]) AS k(s, o, r, h)
ON CONFLICT DO NOTHING
RETURNING supplier_id, operation, reference_id
"""

REMEMBER = """
UPDATE processed_message m SET response = a.response::json
FROM unnest($1::integer[], $2::varchar[], $3::varchar[], $4::text[]) AS a(s, o, r, response)
WHERE m.supplier_id = a.s AND m.operation = a.o AND m.reference_id = a.r
"""


RELEASE = f"""
DELETE FROM processed_message m USING {_KEYS} AS k(s, o, r)
WHERE m.supplier_id = k.s AND m.operation = k.o AND m.reference_id = k.r
"""


# --- where the statements run -----------------------------------------------------------------


class Executor(Protocol):
    async def fetch(self, sql: str, *args: Any) -> Sequence[Sequence[Any]]: ...

    def transaction(self) -> Any: ...

    def events_written(self) -> Any: ...


class AsyncpgExecutor:
    """A connection of the plain pool (db/pg.py): asyncpg prepares each statement once
    per connection; the batch is its own transaction."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    async def fetch(self, sql: str, *args: Any) -> Sequence[Sequence[Any]]:
        return await self.connection.fetch(sql, *args)  # type: ignore[no-any-return]

    def transaction(self) -> Any:
        return self.connection.transaction()

    def events_written(self) -> None:
        events_committed()  # called after the commit: wake this process's broker


class SessionExecutor:
    """The caller's session (a click inside its transaction): the same statements
    through SQLAlchemy's connection, so they take part in that transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def fetch(self, sql: str, *args: Any) -> Sequence[Sequence[Any]]:
        connection: AsyncConnection = await self.session.connection()
        result = await connection.exec_driver_sql(sql, args)
        return result.all() if result.returns_rows else []

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        yield  # the caller's

    async def events_written(self) -> None:
        await events_written(self.session)  # wakes the broker after the caller's commit


def _json(text: str | None) -> Any:
    return json.loads(text) if text else []


def _day(value: str | None) -> date | None:
    return date.fromisoformat(value) if value is not None else None


class PgActivationStore:
    """`services.unit_of_work.ActivationStore` on PostgreSQL."""

    def __init__(self, executor: Executor) -> None:
        self.db = executor

    async def gather(self, requests: Sequence[ActivationRequest], today: date) -> list[Gathered]:
        schools, products, codes = [], [], []
        key_click, key_scheme, key_scope, key_value = [], [], [], []
        for n, request in enumerate(requests, start=1):
            schools.append(request.school_id)
            products.append("{" + ",".join(map(str, request.product.ids)) + "}")
            codes.append(request.activation_code)
            for scheme, value in request.person_keys:
                key_click.append(n)
                key_scheme.append(scheme.value)
                key_scope.append(str(request.school_id) if is_school_scoped(scheme) else "")
                key_value.append(value)
        rows = await self.db.fetch(
            FACTS, schools, products, codes, key_click, key_scheme, key_scope, key_value, today
        )
        return [_gathered(request, today, row) for request, row in zip(requests, rows, strict=True)]

    async def stored(self, keys: Sequence[ReferenceKey]) -> dict[ReferenceKey, tuple[str, Any]]:
        rows = await self.db.fetch(STORED, *_columns(keys, 3))
        return {(r[0], r[1], r[2]): (r[3], json.loads(r[4])) for r in rows}

    def transaction(self) -> Any:
        return self.db.transaction()

    async def claim(self, refs: Sequence[tuple[ReferenceKey, str]]) -> set[ReferenceKey]:
        columns = _columns([(*key, digest) for key, digest in refs], 4)
        return {(r[0], r[1], r[2]) for r in await self.db.fetch(CLAIM, *columns)}

    async def lock(
        self, entitlement_ids: Sequence[int], holders: Sequence[tuple[int, int]] = ()
    ) -> dict[int, SeatState]:
        keys = sorted({holder_key(person, product) for person, product in holders})
        rows = await self.db.fetch(LOCK, list(entitlement_ids), keys)
        return {r[0]: SeatState(EntitlementStatus(r[1]), r[2], r[3]) for r in rows}

    async def current(
        self,
        person_ids: Sequence[int],
        product_ids: Sequence[int],
        entitlee_ids: Sequence[int],
    ) -> tuple[list[HeldLicence], dict[int, str | None]]:
        held = [
            held_licence(r)
            for r in await self.db.fetch(CURRENT, list(person_ids), list(product_ids))
        ]
        codes: dict[int, str | None] = {}
        if entitlee_ids:
            codes = {r[0]: r[1] for r in await self.db.fetch(CODES, list(entitlee_ids))}
        return held, codes

    async def register(self, registrations: Sequence[Registration]) -> list[tuple[int, datetime]]:
        rows = await self.db.fetch(
            REGISTER,
            [r.entitlement_id for r in registrations],
            [r.person_id for r in registrations],
            [r.product_id for r in registrations],
            [r.school_id for r in registrations],
            [r.delivery_id for r in registrations],
            [r.expiration_date for r in registrations],
            [r.actor.supplier_id for r in registrations],
            [r.actor.role for r in registrations],
            [json.dumps(r.payload) for r in registrations],
            [json.dumps(r.detail) for r in registrations],
            [r.code_entitlee_id for r in registrations],
        )
        if len(rows) != len(registrations):
            raise RuntimeError("a registration of the batch wrote no licence")
        return [(r[1], r[2]) for r in rows]

    async def remember(self, answers: Sequence[tuple[ReferenceKey, dict[str, Any]]]) -> None:
        rows = [(*key, json.dumps(answer)) for key, answer in answers]
        await self.db.fetch(REMEMBER, *_columns(rows, 4))

    async def release(self, keys: Sequence[ReferenceKey]) -> None:
        await self.db.fetch(RELEASE, *_columns(keys, 3))

    async def committed(self) -> None:
        await _maybe_await(self.db.events_written())


async def _maybe_await(value: Any) -> None:
    if hasattr(value, "__await__"):
        await value


def _columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    return [[row[i] for row in rows] for i in range(width)]


def _gathered(request: ActivationRequest, today: date, row: Sequence[Any]) -> Gathered:
    _n, person_id, kind, memberships, licences, candidates, watching, code_known = row
    if person_id is None:
        return assemble(request, today, None)
    found: dict[str, set[int]] = {"S": set(), "G": set(), "J": set()}
    for k, v in _json(memberships):
        found[k].add(v)
    held = []
    for r in _json(licences):
        r[6], r[7] = datetime.fromisoformat(r[6]), date.fromisoformat(r[7])
        held.append(held_licence(r))
    found_candidates = []
    for r in _json(candidates):
        r[3], r[4], r[12] = _day(r[3]), _day(r[4]), _day(r[12])
        found_candidates.append(candidate(r, r[16], r[17]))
    return assemble(
        request,
        today,
        (person_id, PersonKind(kind)),
        (frozenset(found["S"]), frozenset(found["G"]), frozenset(found["J"])),
        held,
        found_candidates,
        bool(code_known),
        [{"supplierId": s, "role": role.upper()} for s, role in _json(watching)],
    )
