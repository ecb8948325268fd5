"""The gateway as a user meets it: a real uvicorn process over real HTTP."""

from __future__ import annotations

import httpx

from tests.e2e.conftest import Gateway


def test_health_endpoint_reports_the_database(sqlite_gateway: Gateway) -> None:
    response = httpx.get(f"{sqlite_gateway.url}/healthz")
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["database"], body["migrations"]) == ("ok", "up", "at head")


def test_graphiql_is_served_with_the_first_query(sqlite_gateway: Gateway) -> None:
    response = httpx.get(f"{sqlite_gateway.url}/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert "graphiql" in response.text.lower()
    assert "query FirstQuery" in response.text


def test_request_without_token_is_401_with_a_graphql_error(sqlite_gateway: Gateway) -> None:
    response = httpx.post(
        f"{sqlite_gateway.url}/graphql", json={"query": "{ products { nodes { name } } }"}
    )
    assert response.status_code == 401
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "UNAUTHENTICATED"


def test_readme_first_query_answers_with_a_minted_token(sqlite_gateway: Gateway) -> None:
    from app import FIRST_QUERY

    token = sqlite_gateway.token("operator", "operator")
    response = httpx.post(
        f"{sqlite_gateway.url}/graphql",
        json={"query": FIRST_QUERY},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    assert body["data"]["organisation"]["__typename"] == "OrganisationAmbiguous"
    assert body["data"]["entitlements"]["nodes"]


def test_oversized_body_is_refused_before_parsing(sqlite_gateway: Gateway) -> None:
    response = httpx.post(
        f"{sqlite_gateway.url}/graphql",
        content=b'{"query": "' + b"x" * (6 * 1024 * 1024) + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413


def test_unexpected_errors_are_masked(sqlite_gateway: Gateway) -> None:
    token = sqlite_gateway.token("operator", "operator")
    # An ID that is not a number reaches the database layer as a bad input error,
    # which is expected and readable; a malformed query is a validation error.
    response = httpx.post(
        f"{sqlite_gateway.url}/graphql",
        json={"query": '{ organisation(id: "abc") { __typename } }'},
        headers={"Authorization": f"Bearer {token}"},
    )
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "Traceback" not in response.text
