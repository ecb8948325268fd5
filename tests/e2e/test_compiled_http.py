"""Compiled reads over real HTTP on PostgreSQL (issue 14): two gateway processes on
one database, one with `compiled_reads` on and one with it off (the resolvers, the
oracle). The answers must be equal, the compiled one marked `x-ketenpoort-compiled: 1`,
a query the compiler does not take answered by the resolvers, both counted, and the
audit rows of a compiled read equal those of the resolvers'."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import BACKENDS, _create_postgres_database, _drop_postgres_database, token_for
from tests.e2e.conftest import Gateway, start_gateway, stop_gateway

pytestmark = pytest.mark.skipif("postgresql" not in BACKENDS, reason="compiled reads: PostgreSQL")

ENTITLEMENT_PAGE = """
query Page($first: Int!) {
  entitlements(first: $first) {
    totalCount
    pageInfo { hasNextPage endCursor }
    nodes {
      id variant status quantity licencesUsed licencesAvailable
      school { rioId name level }
      product { productId name }
    }
  }
}"""
QUERIES: list[tuple[str, str, dict[str, Any], tuple[str, ...]]] = [
    ("typename", "{ __typename products(first: 1) { totalCount } }", {}, ("operator", "operator")),
    (
        "products",
        "{ products(first: 5) { totalCount nodes { productId name } } }",
        {},
        ("demo-shop", "seller"),
    ),
    ("entitlement-page-operator", ENTITLEMENT_PAGE, {"first": 20}, ("operator", "operator")),
    ("entitlement-page-portal", ENTITLEMENT_PAGE, {"first": 20}, ("demo-portal", "portal")),
    ("entitlement-page-shop", ENTITLEMENT_PAGE, {"first": 20}, ("demo-shop", "seller")),
    (
        "organisation",
        """{ organisation(identifier: {value: "104A158"}) { __typename
              ... on Organisation { rioId name level identifiers { scheme value } } } }""",
        {},
        ("demo-shop", "seller"),
    ),
    (
        "aliases-fragments",
        """query Q($withName: Boolean!) {
             a: products(first: 2) { nodes { ...P } }
             b: products(first: 3) { nodes { productId name @include(if: $withName) } }
           }
           fragment P on Product { productId name }""",
        {"withName": False},
        ("demo-publisher", "licensor"),
    ),
]


@pytest.fixture(scope="module")
async def database() -> AsyncIterator[str]:
    name, url = await _create_postgres_database()
    try:
        yield url
    finally:
        await _drop_postgres_database(name)


@pytest.fixture(scope="module")
def gateways(database: str) -> Iterator[tuple[Gateway, Gateway]]:
    compiled = start_gateway(database)
    resolvers = start_gateway(
        database, demo=False, extra_env={"KETENPOORT_COMPILED_READS": "false"}
    )
    yield compiled, resolvers
    stop_gateway(compiled)
    stop_gateway(resolvers)


def post(gateway: Gateway, query: str, variables: dict[str, Any], as_: tuple[str, ...]) -> Any:
    return httpx.post(
        f"{gateway.url}/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {token_for(*as_)}"},
        timeout=60,
    )


@pytest.mark.parametrize(
    ("query", "variables", "as_"), [q[1:] for q in QUERIES], ids=[q[0] for q in QUERIES]
)
def test_a_compiled_answer_equals_the_resolvers_answer(
    gateways: tuple[Gateway, Gateway],
    query: str,
    variables: dict[str, Any],
    as_: tuple[str, ...],
) -> None:
    compiled, resolvers = gateways
    fast = post(compiled, query, variables, as_)
    slow = post(resolvers, query, variables, as_)
    assert fast.status_code == slow.status_code == 200
    assert fast.headers.get("x-ketenpoort-compiled") == "1", fast.text
    assert "x-ketenpoort-compiled" not in slow.headers
    assert fast.json() == slow.json()
    assert "errors" not in fast.json()


def test_a_refusal_is_the_same_both_ways(gateways: tuple[Gateway, Gateway]) -> None:
    # The role gate of a compiled root: FORBIDDEN at the field's path.
    query = (
        '{ a: products(first: 1) { totalCount } dataExchanges(school: {value: "104A158"}) { id } }'
    )
    compiled, resolvers = gateways
    fast = post(compiled, query, {}, ("demo-shop", "seller"))
    slow = post(resolvers, query, {}, ("demo-shop", "seller"))
    assert fast.headers.get("x-ketenpoort-compiled") == "1"
    assert fast.json() == slow.json()
    assert fast.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"


def test_what_does_not_compile_is_answered_by_the_resolvers(
    gateways: tuple[Gateway, Gateway],
) -> None:
    compiled, resolvers = gateways
    # Introspection always runs on the resolvers (compiler/: what does not compile).
    query = "{ __schema { queryType { name } } products(first: 1) { totalCount } }"
    metrics_before = compiled_reads(compiled)
    fast = post(compiled, query, {}, ("demo-shop", "seller"))
    slow = post(resolvers, query, {}, ("demo-shop", "seller"))
    assert "x-ketenpoort-compiled" not in fast.headers
    assert fast.json() == slow.json()
    post(compiled, "{ products(first: 1) { totalCount } }", {}, ("demo-shop", "seller"))
    after = compiled_reads(compiled)
    assert after["fallback"] == metrics_before["fallback"] + 1
    assert after["compiled"] == metrics_before["compiled"] + 1


def test_a_typename_only_query_is_its_constant_answer_on_both(
    gateways: tuple[Gateway, Gateway],
) -> None:
    """`{ __typename }` needs neither the compiler nor the resolvers (gateway/pipeline.py)."""
    compiled, resolvers = gateways
    before = compiled_reads(compiled)
    fast = post(compiled, "{ t: __typename __typename }", {}, ("demo-shop", "seller"))
    slow = post(resolvers, "{ t: __typename __typename }", {}, ("demo-shop", "seller"))
    assert fast.json() == slow.json() == {"data": {"t": "Query", "__typename": "Query"}}
    assert "x-ketenpoort-compiled" not in fast.headers
    assert compiled_reads(compiled) == before


def test_a_mutation_and_a_bad_token_are_not_compiled(gateways: tuple[Gateway, Gateway]) -> None:
    compiled, _ = gateways
    answer = httpx.post(
        f"{compiled.url}/graphql",
        json={"query": "{ products(first: 1) { totalCount } }"},
        headers={"Authorization": "Bearer nonsense"},
        timeout=60,
    )
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"
    assert "x-ketenpoort-compiled" not in answer.headers


def compiled_reads(gateway: Gateway) -> dict[str, float]:
    text = httpx.get(f"{gateway.url}/metrics", timeout=30).text
    found = {"compiled": 0.0, "fallback": 0.0}
    for line in text.splitlines():
        if line.startswith("ketenpoort_compiled_reads_total{"):
            outcome = line.split('outcome="', 1)[1].split('"', 1)[0]
            found[outcome] = float(line.rsplit(" ", 1)[1])
    return found


async def audit_rows_of(url: str, after: int, supplier: str) -> set[tuple[Any, ...]]:
    """The audit rows written after row `after` for `supplier`'s reads, waited for
    (the audit buffer writes them within a second or so)."""
    parsed = make_url(url)
    connection = await asyncpg.connect(
        host=parsed.host, port=parsed.port, user=parsed.username, database=parsed.database
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            rows = await connection.fetch(
                """SELECT a.action, a.object_type, a.object_id, a.school_id, a.role
                   FROM audit_log a JOIN supplier s ON s.id = a.supplier_id
                   WHERE a.id > $1 AND s.code = $2""",
                after,
                supplier,
            )
            if rows or time.monotonic() > deadline:
                return {tuple(row) for row in rows}
            await asyncio.sleep(0.1)
    finally:
        await connection.close()


async def last_audit_id(url: str) -> int:
    parsed = make_url(url)
    connection = await asyncpg.connect(
        host=parsed.host, port=parsed.port, user=parsed.username, database=parsed.database
    )
    try:
        return int(await connection.fetchval("SELECT coalesce(max(id), 0) FROM audit_log"))
    finally:
        await connection.close()


async def test_a_compiled_read_writes_the_resolvers_audit_rows(
    gateways: tuple[Gateway, Gateway], database: str
) -> None:
    compiled, resolvers = gateways
    as_ = ("demo-portal", "portal")
    rows = []
    for gateway, marked in ((compiled, True), (resolvers, False)):
        before = await last_audit_id(database)
        answer = await asyncio.to_thread(post, gateway, ENTITLEMENT_PAGE, {"first": 20}, as_)
        assert ("x-ketenpoort-compiled" in answer.headers) is marked
        rows.append(await audit_rows_of(database, before, "demo-portal"))
    assert rows[0], "a portal's read of entitlements is audited"
    assert rows[0] == rows[1]
