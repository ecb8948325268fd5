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
