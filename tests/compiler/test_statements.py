"""A compiled page is one statement, and the audit rows it leads to are the
resolvers' rows."""

from __future__ import annotations

from typing import Any

import pytest
from graphql import parse
from sqlalchemy import delete, select

from compiler import CompiledAnswer, Fallback, ReadCompiler
from db.models import AuditLog, Supplier
from db.privacy import record_reads
from domain.roles import Actor, Role
from resolvers.auth import Principal
from resolvers.clock import today
from tests.compiler.oracle import raw_connection
from tests.conftest import _SCHEMA, TEST_SETTINGS, GraphQLClient

PAGE = """query ($first: Int!, $school: OrganisationIdentifierInput) {
  entitlements(first: $first, filter: {school: $school}) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node {
      id status licencesAvailable createdAt
      school { rioId identifiers { scheme value } boards { rioId } }
      product { productId publisher { code } }
      recipients { role state updatedAt supplier { code } }
      history { kind occurredAt detail }
      licences { status hasAccess }
    } }
  }
}"""


class Counting:
    """An asyncpg connection that counts the statements sent through it."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.statements: list[str] = []

    async def fetchrow(self, sql: str, *args: Any) -> Any:
        self.statements.append(sql)
        return await self.connection.fetchrow(sql, *args)

    async def fetch(self, sql: str, *args: Any) -> Any:
        self.statements.append(sql)
        return await self.connection.fetch(sql, *args)

    async def execute(self, sql: str, *args: Any) -> Any:
        self.statements.append(sql)
        return await self.connection.execute(sql, *args)


async def _principal(session: Any, code: str, role: str) -> Principal:
    supplier_id = await session.scalar(select(Supplier.id).where(Supplier.code == code))
    return Principal(supplier_id, frozenset({Role(role)}), supplier_code=code)


async def _compiled(session: Any, query: str, variables: dict[str, Any], caller: Any) -> Any:
    compiler = ReadCompiler(_SCHEMA, TEST_SETTINGS)
    plan = compiler.plan(parse(query), None, caller, variables)
    assert not isinstance(plan, Fallback), plan
    connection = Counting(await raw_connection(session))
    answer = await plan.execute(connection, variables, caller, today())
    assert isinstance(answer, CompiledAnswer), answer
    return answer, connection.statements


@pytest.mark.parametrize(("code", "role"), [("operator", "operator"), ("demo-portal", "portal")])
@pytest.mark.parametrize("first", [1, 50])
async def test_a_compiled_page_is_one_statement(
    postgres_only: None, session: Any, gql: GraphQLClient, code: str, role: str, first: int
) -> None:
    variables = {"first": first, "school": {"value": "104A158"} if role == "portal" else None}
    caller = await _principal(session, code, role)
    answer, statements = await _compiled(session, PAGE, variables, caller)
    assert len(statements) == 1
    # And it is the resolvers' answer (the test client compares the two).
    await gql.data(PAGE, variables, as_=(code, role))


async def test_compiled_reads_write_the_resolvers_audit_rows(
    postgres_only: None, session: Any, gql: GraphQLClient
) -> None:
    query = """query ($school: OrganisationIdentifierInput) {
      a: entitlements(first: 20, filter: {school: $school}) { nodes { id } }
      b: entitlement(id: "1") { id }
      c: licences(first: 20) { nodes { id } }
    }"""
    variables = {"school": {"value": "104A158"}}
    caller = await _principal(session, "operator", "operator")

    async def rows() -> set[tuple[Any, ...]]:
        found = await session.execute(
            select(
                AuditLog.supplier_id,
                AuditLog.role,
                AuditLog.action,
                AuditLog.object_type,
                AuditLog.object_id,
                AuditLog.school_id,
            )
        )
        return set(found.all())

    await session.execute(delete(AuditLog))
    await gql.data(query, variables)  # the resolvers write their rows when the request ends
    by_resolvers = await rows()
    await session.execute(delete(AuditLog))
    answer, _ = await _compiled(session, query, variables, caller)
    await record_reads(session, Actor(caller.supplier_id, "operator"), answer.reads)
    by_compiled = await rows()
    assert by_resolvers
    assert by_compiled == by_resolvers


async def test_free_text_with_nine_digits_is_left_to_the_resolvers_rule(
    postgres_only: None, session: Any, gql: GraphQLClient
) -> None:
    """A failure message holding what may be a BSN: the compiled path hands the
    request to the resolvers, whose rule decides what to show."""
    from sqlalchemy import update

    from db.models import EntitlementRecipient

    await session.execute(
        update(EntitlementRecipient)
        .where(EntitlementRecipient.state == "FAILED")
        .values(failure_message="leerling 123 456 782 onbekend")
    )
    query = "{ entitlements(first: 50) { nodes { recipients { failureMessage } } } }"
    caller = await _principal(session, "operator", "operator")
    compiler = ReadCompiler(_SCHEMA, TEST_SETTINGS)
    plan = compiler.plan(parse(query), None, caller, {})
    assert not isinstance(plan, Fallback)
    answer = await plan.execute(await raw_connection(session), {}, caller, today())
    assert isinstance(answer, Fallback)
    assert "redact" in answer.reason
    await gql.data(query)


@pytest.mark.parametrize(
    ("state", "code"), [("revoked", "CONSENT_REQUIRED"), ("absent", "CONSENT_REQUIRED")]
)
async def test_a_named_school_without_consent_is_refused_by_the_compiled_read(
    postgres_only: None, session: Any, gql: GraphQLClient, state: str, code: str
) -> None:
    from tests.api.test_permission_matrix import set_consent

    await set_consent(session, "demo-portal", "portal", state)
    query = '{ entitlements(filter: {school: {value: "104A158"}}) { nodes { id } } }'
    caller = await _principal(session, "demo-portal", "portal")
    answer, statements = await _compiled(session, query, {}, caller)
    assert len(statements) == 1
    assert answer.data == "null"
    (error,) = answer.errors
    assert error["path"] == ["entitlements"]
    assert error["extensions"]["code"] == code
    assert "104A158" in error["message"]
    result = await gql.execute(query, as_=("demo-portal", "portal"))
    assert [e.formatted for e in result.errors] == answer.errors


async def test_a_large_compiled_statement_is_prepared_once_per_connection(
    postgres_only: None, backend: Any, session: Any
) -> None:
    """asyncpg prepares (and PostgreSQL plans) a statement once per connection only
    when it caches it; `db.pg.Connections` caches compiled statements larger than
    asyncpg's default limit (15 KiB), which a rich page exceeds."""
    from db.pg import Connections

    caller = await _principal(session, "demo-portal", "portal")
    variables = {"first": 100, "school": {"value": "104A158"}}
    plan = ReadCompiler(_SCHEMA, TEST_SETTINGS).plan(parse(PAGE), None, caller, variables)
    assert not isinstance(plan, Fallback)
    assert plan.sql is not None
    assert len(plan.sql.encode()) > 15 * 1024  # over asyncpg's default: the case in point
    pool = Connections(backend.engine.url, max_size=1)
    try:
        async with pool.acquire() as connection:
            for _ in range(3):
                answer = await plan.execute(connection, variables, caller, today())
                assert isinstance(answer, CompiledAnswer)
            prepared = await connection.fetchval(
                "SELECT count(*) FROM pg_prepared_statements WHERE statement = $1", plan.sql
            )
    finally:
        await pool.close()
    assert prepared == 1
