"""Hostile and careless queries: each kind is refused with a clear error before it
costs the database anything; production switches off introspection and
GraphiQL; unexpected errors are masked but logged; clients are rate limited."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app import create_app
from gateway.limits import gateway_schema
from settings import Environment, Settings
from tests.conftest import TEST_SETTINGS, Backend, GraphQLClient, token_for

OPERATOR = {"Authorization": f"Bearer {token_for('operator', 'operator')}"}


def codes(result: Any) -> list[str]:
    return [str((e.extensions or {}).get("code", e.message)) for e in result.errors or []]


async def test_too_deep_query_is_refused(gql: GraphQLClient) -> None:
    inner = "id"
    for _ in range(12):
        inner = f"licences {{ entitlement {{ {inner} }} }}"
    result = await gql.execute(f"{{ entitlements(first: 1) {{ nodes {{ {inner} }} }} }}")
    assert result.errors
    assert "exceeds maximum operation depth" in result.errors[0].message


async def test_too_many_aliases_are_refused(gql: GraphQLClient) -> None:
    aliases = " ".join(f"a{i}: products(first: 1) {{ nodes {{ id }} }}" for i in range(20))
    result = await gql.execute(f"{{ {aliases} }}")
    assert result.errors
    assert "aliases" in result.errors[0].message.lower()


async def test_too_many_tokens_are_refused(gql: GraphQLClient) -> None:
    fields = " ".join("id" for _ in range(2500))
    result = await gql.execute(f"{{ products(first: 1) {{ nodes {{ {fields} }} }} }}")
    assert result.errors
    assert "token" in result.errors[0].message.lower()


COSTLY = """{ entitlements(first: 100) { nodes { licences { person { licences {
  product { components { id } } } } } } } }"""


async def test_costly_nested_lists_are_refused(gql: GraphQLClient) -> None:
    result = await gql.execute(COSTLY)
    assert codes(result) == ["QUERY_TOO_COSTLY"]
    assert result.errors[0].extensions["cost"] > result.errors[0].extensions["limit"]


async def test_fragments_do_not_hide_cost(gql: GraphQLClient) -> None:
    query = """
    fragment Deep on Licence { person { licences { product { components { id } } } } }
    { entitlements(first: 100) { nodes { licences { ...Deep } } } }"""
    assert codes(await gql.execute(query)) == ["QUERY_TOO_COSTLY"]


async def test_a_variable_page_size_counts_as_the_maximum(gql: GraphQLClient) -> None:
    query = """query ($n: Int) { entitlements(first: $n) { nodes { licences {
        person { licences { product { components { id } } } } } } } }"""
    assert codes(await gql.execute(query, {"n": 1})) == ["QUERY_TOO_COSTLY"]


async def test_an_ordinary_page_is_well_within_the_cost_limit(gql: GraphQLClient) -> None:
    query = """{ entitlements(first: 50) { nodes { id school { name } product { name }
        licences { id status } } } }"""
    assert (await gql.execute(query)).errors is None


async def test_production_schema_has_no_introspection() -> None:
    production = Settings(environment=Environment.PRODUCTION, graphiql=False,
                          introspection=False, jwt_secret="p" * 40)
    result = await gateway_schema(production).execute("{ __schema { types { name } } }")
    assert result.errors
    assert "introspection" in result.errors[0].message.lower()


def test_production_refuses_development_secrets_and_graphiql() -> None:
    with pytest.raises(ValueError, match="JWT_SECRET"):
        Settings(environment=Environment.PRODUCTION, graphiql=False,
                 introspection=False).check()
    with pytest.raises(ValueError, match="GraphiQL"):
        Settings(environment=Environment.PRODUCTION, jwt_secret="p" * 40).check()


@pytest.fixture
async def client_for(backend: Backend) -> AsyncIterator[Any]:
    from db.engine import create_sessionmaker

    clients: list[httpx.AsyncClient] = []

    async def make(**overrides: Any) -> httpx.AsyncClient:
        settings = TEST_SETTINGS.model_copy(update=overrides)
        app = create_app(settings, sessionmaker=create_sessionmaker(backend.engine))
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                   base_url="http://gateway")
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


async def test_graphiql_can_be_switched_off(client_for: Any) -> None:
    client = await client_for(graphiql=False)
    response = await client.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 404


async def test_unexpected_errors_are_masked_and_logged(
    client_for: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from resolvers import queries

    async def broken(*_args: Any) -> Any:
        raise RuntimeError("database password is hunter2")

    monkeypatch.setattr(queries, "products_list", broken)
    client = await client_for()
    with caplog.at_level(logging.ERROR):
        response = await client.post("/graphql", json={"query": "{ products { nodes { id } } }"},
                                     headers=OPERATOR)
    body = response.json()
    assert body["errors"][0]["message"] == "Unexpected error; it has been logged."
    assert "hunter2" not in response.text
    assert "hunter2" in caplog.text


async def test_clients_are_rate_limited(client_for: Any) -> None:
    client = await client_for(rate_limit_per_second=0.5, rate_limit_burst=2)
    query = {"query": "{ products(first: 1) { nodes { id } } }"}
    statuses = [(await client.post("/graphql", json=query, headers=OPERATOR)).status_code
                for _ in range(3)]
    assert statuses == [200, 200, 429]
    limited = await client.post("/graphql", json=query, headers=OPERATOR)
    assert limited.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert int(limited.headers["Retry-After"]) >= 1
    # Another client has its own bucket.
    other = {"Authorization": f"Bearer {token_for('demo-shop', 'seller')}"}
    assert (await client.post("/graphql", json=query, headers=other)).status_code == 200


async def test_a_bsn_is_refused_anywhere_without_being_repeated(gql: GraphQLClient) -> None:
    bsn = "111222333"  # passes the 11-test
    in_variable = await gql.execute(
        "query ($v: String!) { organisation(identifier: {value: $v}) { __typename } }",
        {"v": bsn})
    assert in_variable.errors[0].extensions["reason"] == "pgn"
    assert bsn not in str(in_variable.errors[0].formatted)
    in_literal = await gql.execute(
        f'mutation {{ deliverySubmit(input: {{orderNumber: "{bsn}"}}) {{ __typename }} }}',
        as_=("demo-shop", "seller"))
    assert in_literal.errors[0].extensions["reason"] == "pgn"
    ordinary = await gql.execute(
        'query { organisation(identifier: {value: "123456789"}) { __typename } }')
    assert ordinary.errors is None  # fails the 11-test: not a BSN


# --- issue 12.1: linear validation, an execution deadline --------------------------------------


def fragment_attack(levels: int = 30) -> str:
    """Two fragments per level, each spreading both of the level below (< 3 KB)."""
    parts = ["fragment A0 on Product { id }", "fragment B0 on Product { name }"]
    for level in range(1, levels + 1):
        below = f"...A{level - 1} ...B{level - 1}"
        parts += [f"fragment A{level} on Product {{ {below} }}",
                  f"fragment B{level} on Product {{ {below} }}"]
    top = f"...A{levels} ...B{levels}"
    return "\n".join(parts) + f"\n{{ products(first: 1) {{ nodes {{ {top} }} }} }}"


async def test_the_fragment_attack_is_refused(gql: GraphQLClient) -> None:
    query = fragment_attack(30)
    assert len(query.encode()) < 3 * 1024
    # The work is counted in tests/gateway/test_shape.py; here: refused, not run.
    result = await gql.execute(query)
    assert codes(result) == ["QUERY_TOO_COSTLY"]
    assert result.data is None


@pytest.fixture
def blocked_products(monkeypatch: pytest.MonkeyPatch) -> Any:
    """`products` waits until released (a slow request, without a fixed sleep)."""
    import asyncio

    from resolvers import queries

    entered, release = asyncio.Event(), asyncio.Event()

    async def slow(*_args: Any, **_kw: Any) -> Any:
        entered.set()
        await release.wait()
        raise RuntimeError("released")

    monkeypatch.setattr(queries, "products_list", slow)
    return entered, release


async def test_other_requests_are_answered_while_a_slow_one_runs(
    client_for: Any, blocked_products: Any
) -> None:
    """The event loop is free while a request waits (/healthz with a real server
    and a slow statement: tests/gateway/test_shape_transports.py)."""
    import asyncio

    entered, release = blocked_products
    client = await client_for(request_timeout_seconds=0)
    slow = asyncio.create_task(client.post(
        "/graphql", json={"query": "{ products(first: 1) { nodes { id } } }"}, headers=OPERATOR))
    await asyncio.wait_for(entered.wait(), 60)
    other = await asyncio.wait_for(client.post(
        "/graphql", json={"query": "{ __typename }"}, headers=OPERATOR), 60)
    assert other.json()["data"] == {"__typename": "Query"}
    assert (await client.get("/livez")).status_code == 200
    assert not slow.done()
    release.set()
    await asyncio.wait_for(slow, 60)


async def test_a_request_past_its_deadline_is_cut_off(
    client_for: Any, blocked_products: Any
) -> None:
    client = await client_for(request_timeout_seconds=0.2)
    response = await client.post(
        "/graphql", json={"query": "{ products(first: 1) { nodes { id } } }"}, headers=OPERATOR)
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "REQUEST_TIMEOUT"
    assert "0.2 s" in error["message"]
    assert not blocked_products[1].is_set()  # cut off, never released


# --- issue 12.16 and 12.11: input strings, NUL, ids and cursors, variable coercion -----------


def refusal(result: Any) -> dict[str, Any]:
    assert result.data is None, result.data  # refused before any resolver (or SQL) ran
    (error,) = result.errors
    assert error.extensions["code"] == "BAD_USER_INPUT", error.formatted
    return {"message": error.message, **error.extensions}


async def test_a_name_filter_has_a_natural_cap_in_literals_and_variables(
    gql: GraphQLClient,
) -> None:
    long = "x" * 201
    literal = await gql.execute(
        f'{{ organisations(filter: {{nameContains: "{long}"}}) {{ nodes {{ id }} }} }}')
    found = refusal(literal)
    assert found["field"] == "filter.nameContains"
    assert found["reason"] == "too_long"
    assert long not in found["message"]
    variable = await gql.execute(
        "query ($n: String) { products(filter: {nameContains: $n}) { nodes { id } } }",
        {"n": long})
    assert refusal(variable)["field"] == "$n (filter.nameContains)"
    whole = await gql.execute(
        "query ($f: ProductFilter) { products(filter: $f) { nodes { id } } }",
        {"f": {"nameContains": "x" * (4 * 1024 * 1024)}})
    assert refusal(whole)["field"] == "$f.nameContains (filter.nameContains)"
    fits = await gql.execute(
        "query ($n: String) { products(filter: {nameContains: $n}) { nodes { id } } }",
        {"n": "x" * 200})
    assert fits.errors is None


async def test_every_other_string_has_the_default_cap(client_for: Any) -> None:
    client = await client_for(max_input_string_length=100)
    query = ('mutation ($m: String!) { entitlementReportFailure(input: {entitlementId: "1", '
             'referenceId: "r-1", code: 10, message: $m}) { __typename } }')
    response = await client.post("/graphql", json={"query": query, "variables": {"m": "m" * 101}},
                                 headers=OPERATOR)
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT", error
    assert error["extensions"]["field"] == "$m (input.message)"


@pytest.mark.parametrize(
    ("query", "variables", "field"),
    [
        ('{ organisations(filter: {nameContains: "a\\u0000b"}) { nodes { id } } }', None,
         "filter.nameContains"),
        ("query ($v: String!) { organisation(identifier: {value: $v}) { __typename } }",
         {"v": "09QQ\x00"}, "$v (identifier.value)"),
        ("mutation ($i: DeliveryInput!) { deliverySubmit(input: $i) { __typename } }",
         {"i": {"referenceId": "r", "orderLines": [{"eckIds": ["ok", "bad\x00"]}]}},
         "$i.orderLines.0.eckIds.1 (input.orderLines.0.eckIds.1)"),
    ],
)
async def test_a_nul_character_is_refused_anywhere(
    gql: GraphQLClient, query: str, variables: Any, field: str
) -> None:
    found = refusal(await gql.execute(query, variables))
    assert (found["field"], found["reason"]) == (field, "nul")


@pytest.mark.parametrize(
    ("query", "variables", "field"),
    [
        ('{ entitlement(id: "99999999999999999999") { id } }', None, "id"),
        ("{ entitlement(id: 9223372036854775808) { id } }", None, "id"),
        ("query ($id: ID!) { entitlement(id: $id) { id } }", {"id": "9" * 40}, "$id (id)"),
        ("query ($f: LicenceFilter) { licences(filter: $f) { nodes { id } } }",
         {"f": {"entitlementId": "123456789012345678901234"}},
         "$f.entitlementId (filter.entitlementId)"),
    ],
)
async def test_an_id_beyond_64_bits_is_refused(
    gql: GraphQLClient, query: str, variables: Any, field: str
) -> None:
    found = refusal(await gql.execute(query, variables))
    assert (found["field"], found["reason"]) == (field, "out_of_range")


async def test_the_largest_id_is_an_ordinary_unknown_one(gql: GraphQLClient) -> None:
    result = await gql.execute(f'{{ entitlement(id: "{2**63 - 1}") {{ id }} }}')
    assert "Unexpected error" not in str(result.errors)


async def test_a_cursor_beyond_64_bits_is_refused(gql: GraphQLClient) -> None:
    import base64

    cursor = base64.urlsafe_b64encode(b"product:" + b"9" * 30).decode().rstrip("=")
    for after in (cursor, base64.urlsafe_b64encode(b"ev:1:" + b"9" * 25).decode()):
        result = await gql.execute(
            "query ($a: String) { products(first: 1, after: $a) { nodes { id } } }", {"a": after})
        found = refusal(result)
        assert (found["field"], found["reason"]) == ("$a (after)", "out_of_range")
    literal = await gql.execute(f'{{ entitlements(after: "{cursor}") {{ nodes {{ id }} }} }}')
    assert refusal(literal)["field"] == "after"


@pytest.mark.parametrize(
    ("query", "variables", "said"),
    [
        ("query ($n: Int) { products(first: $n) { nodes { id } } }", {"n": "ten"},
         "Int cannot represent non-integer value"),
        ("query ($n: Int!) { products(first: $n) { nodes { id } } }", {},
         "Expected a value of non-null type 'Int!'"),
        ("query ($s: [EntitlementStatus!]) { entitlements(filter: {status: $s}) "
         "{ nodes { id } } }", {"s": ["NOPE"]}, "does not exist in 'EntitlementStatus'"),
        ("query ($f: ProductFilter) { products(filter: $f) { nodes { id } } }",
         {"f": {"nope": 1}}, "'nope'"),
    ],
)
async def test_variable_coercion_failures_say_what_is_wrong(
    client_for: Any, query: str, variables: Any, said: str
) -> None:
    client = await client_for()
    response = await client.post("/graphql", json={"query": query, "variables": variables},
                                 headers=OPERATOR)
    (error,) = response.json()["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT", error
    assert said in error["message"]


async def test_a_bsn_in_a_badly_typed_variable_is_still_not_repeated(gql: GraphQLClient) -> None:
    result = await gql.execute("query ($n: Int) { products(first: $n) { nodes { id } } }",
                               {"n": "111222333"})
    assert result.errors[0].extensions["reason"] == "pgn"
    assert "111222333" not in str(result.errors[0].formatted)


# --- issue 12.17: introspection counts, and needs a token -------------------------------------

FIFTEEN_SCHEMAS = "{ " + " ".join(
    f"s{i}: __schema {{ types {{ name fields {{ name }} }} }}" for i in range(15)) + " }"


async def test_aliased_schema_introspection_is_refused(gql: GraphQLClient) -> None:
    assert codes(await gql.execute(FIFTEEN_SCHEMAS)) == ["QUERY_TOO_COSTLY"]


async def test_introspection_needs_a_token_by_default(client_for: Any) -> None:
    from graphql import get_introspection_query

    client = await client_for()
    query = {"query": get_introspection_query()}
    anonymous = await client.post("/graphql", json=query)
    assert anonymous.status_code == 401
    assert anonymous.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert anonymous.json().get("data") is None
    with_token = await client.post("/graphql", json=query, headers=OPERATOR)
    assert with_token.status_code == 200
    assert with_token.json()["data"]["__schema"]["types"]
    # __typename is no introspection.
    typename = await client.post("/graphql", json={"query": "{ __typename }"})
    assert typename.json()["data"] == {"__typename": "Query"}


async def test_introspection_without_a_token_when_so_configured(client_for: Any) -> None:
    client = await client_for(introspection_needs_token=False)
    response = await client.post("/graphql", json={"query": "{ __schema { types { name } } }"})
    assert response.status_code == 200
    assert response.json()["data"]["__schema"]["types"]
