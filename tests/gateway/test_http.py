"""The GraphQL-over-HTTP handler (gateway/http.py) through the real ASGI app: the
specification's media types and status codes, hostile bodies, operation selection,
authentication answers, and what reaches the logs."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app import create_app
from db.engine import create_sessionmaker
from tests.conftest import TEST_SETTINGS, Backend, token_for

SPEC = "application/graphql-response+json"
#: Passes the BSN 11-test (the number the tests of the guard use).
PGN = "123456782"
FORBIDDEN_FOR_SHOP = '{ auditTrail(school: {value: "104A158"}) { totalCount } }'


def operator() -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for('operator', 'operator')}"}


def spec(headers: dict[str, str] | None = None) -> dict[str, str]:
    return {**(headers or operator()), "Accept": SPEC}


@pytest.fixture
async def client(backend: Backend) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(TEST_SETTINGS, sessionmaker=create_sessionmaker(backend.engine))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway"
    ) as found:
        yield found


def only_error(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert len(body["errors"]) == 1, body
    return body["errors"][0]  # type: ignore[no-any-return]


# --- the media types ------------------------------------------------------------------------


async def test_a_query_answers_in_the_media_type_asked_for(client: httpx.AsyncClient) -> None:
    query = {"query": "{ products(first: 1) { nodes { productId } } }"}
    as_json = await client.post("/graphql", json=query, headers=operator())
    as_spec = await client.post("/graphql", json=query, headers=spec())
    assert as_json.status_code == as_spec.status_code == 200
    assert as_json.headers["content-type"] == "application/json"
    assert as_spec.headers["content-type"].startswith(SPEC)
    assert as_json.json() == as_spec.json()
    assert as_json.json()["data"]["products"]["nodes"]


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        ("{ products(first: 1) { nodes { productId } ", None),  # does not parse
        ("{ products(first: 1) { nodes { noSuchField } } }", None),  # does not validate
        (  # variables that do not coerce
            "query Q($n: Int!) { products(first: $n) { nodes { productId } } }",
            {"n": "many"},
        ),
        (  # a required variable missing
            "query Q($n: Int!) { products(first: $n) { nodes { productId } } }",
            {},
        ),
    ],
    ids=["syntax", "validation", "coercion", "missing-variable"],
)
async def test_a_request_error_is_4xx_without_data_in_the_spec_media_type(
    client: httpx.AsyncClient, query: str, variables: Any
) -> None:
    body = {"query": query, "variables": variables}
    answer = await client.post("/graphql", json=body, headers=spec())
    assert answer.status_code == 400
    assert "data" not in answer.json()
    assert answer.json()["errors"]
    # application/json answers as it always did: 200, data null, the same errors.
    legacy = await client.post("/graphql", json=body, headers=operator())
    assert legacy.status_code == 200
    assert legacy.json() == {"data": None, "errors": answer.json()["errors"]}


async def test_a_field_error_is_200_with_data_in_the_spec_media_type(
    client: httpx.AsyncClient,
) -> None:
    # FORBIDDEN at a field: the request ran, so it is a response with data.
    dashboard = {"Authorization": f"Bearer {token_for('demo-shop', 'seller')}"}
    answer = await client.post(
        "/graphql", json={"query": FORBIDDEN_FOR_SHOP}, headers=spec(dashboard)
    )
    assert answer.status_code == 200
    assert "data" in answer.json()
    assert only_error(answer)["extensions"]["code"] == "FORBIDDEN"


# --- GET -------------------------------------------------------------------------------------


async def test_get_runs_a_query(client: httpx.AsyncClient) -> None:
    answer = await client.get(
        "/graphql",
        params={
            "query": "query Q($n: Int) { products(first: $n) { nodes { productId } } }",
            "variables": json.dumps({"n": 1}),
            "operationName": "Q",
        },
        headers=operator(),
    )
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["data"]["products"]["nodes"]) == 1


@pytest.mark.parametrize("accept", [SPEC, "application/json"])
async def test_get_refuses_a_mutation_with_405(client: httpx.AsyncClient, accept: str) -> None:
    mutation = 'mutation { entitlementCancel(input: {id: "1", referenceId: "x"}) { __typename } }'
    answer = await client.get(
        "/graphql", params={"query": mutation}, headers={**operator(), "Accept": accept}
    )
    assert answer.status_code == 405
    assert answer.headers["allow"] == "POST"
    assert "data" not in answer.json()
    assert "GET" in only_error(answer)["message"]


async def test_other_methods_and_media_types_are_refused(client: httpx.AsyncClient) -> None:
    put = await client.put("/graphql", json={"query": "{ __typename }"})
    assert put.status_code == 405
    assert only_error(put)["extensions"]["code"] == "METHOD_NOT_ALLOWED"
    form = await client.post(
        "/graphql",
        content=b"query={ __typename }",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert form.status_code == 415
    assert only_error(form)["extensions"]["code"] == "UNSUPPORTED_MEDIA_TYPE"


# --- hostile bodies ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"\xff\xfe\x00",
        b"",
        b"[1, 2]",
        b'"just a string"',
        b'{"query": 42}',
        b'{"query": "{ __typename }", "variables": [1]}',
        b'{"query": "{ __typename }", "operationName": 7}',
    ],
    ids=["broken", "not-utf8", "empty", "batch", "string", "query-type", "variables", "name"],
)
@pytest.mark.parametrize("accept", [SPEC, "application/json"])
async def test_a_malformed_body_is_400_with_a_json_error(
    client: httpx.AsyncClient, body: bytes, accept: str
) -> None:
    answer = await client.post(
        "/graphql",
        content=body,
        headers={**operator(), "Content-Type": "application/json", "Accept": accept},
    )
    assert answer.status_code == 400
    assert only_error(answer)["message"]
    assert "data" not in answer.json()


@pytest.mark.parametrize("accept", [SPEC, "application/json"])
async def test_a_body_nested_100000_deep_is_400_not_500(
    client: httpx.AsyncClient, accept: str
) -> None:
    deep = b'{"query": "{ __typename }", "variables": {"a": ' + b"[" * 100_000 + b"]" * 100_000
    deep += b"}}"
    answer = await client.post(
        "/graphql",
        content=deep,
        headers={**operator(), "Content-Type": "application/json", "Accept": accept},
    )
    assert answer.status_code == 400
    assert answer.headers["content-type"].startswith(accept)
    assert "nested too deeply" in only_error(answer)["message"]
    # The same through GET's variables.
    answer = await client.get(
        "/graphql",
        params={"query": "{ __typename }", "variables": "[" * 5_000 + "]" * 5_000},
        headers={**operator(), "Accept": accept},
    )
    assert answer.status_code == 400
    assert "nested too deeply" in only_error(answer)["message"]


# --- choosing the operation ---------------------------------------------------------------------

TWO = "query A { __typename } query B { products(first: 1) { nodes { productId } } }"


@pytest.mark.parametrize("accept", [SPEC, "application/json"])
async def test_two_operations_without_a_name_are_a_request_error(
    client: httpx.AsyncClient, accept: str
) -> None:
    answer = await client.post(
        "/graphql", json={"query": TWO}, headers={**operator(), "Accept": accept}
    )
    assert answer.status_code == (400 if accept == SPEC else 200)
    assert "operation name" in only_error(answer)["message"]
    assert answer.json().get("data") is None
    named = await client.post(
        "/graphql", json={"query": TWO, "operationName": "B"}, headers=operator()
    )
    assert named.json()["data"]["products"]["nodes"]


async def test_an_unknown_operation_name_is_a_request_error(client: httpx.AsyncClient) -> None:
    answer = await client.post(
        "/graphql", json={"query": TWO, "operationName": "C"}, headers=spec()
    )
    assert answer.status_code == 400
    assert "'C'" in only_error(answer)["message"]
    assert "data" not in answer.json()


async def test_an_operation_name_holding_a_bsn_is_never_echoed(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        for accept in (SPEC, "application/json"):
            answer = await client.post(
                "/graphql",
                json={"query": TWO, "operationName": f"Q{PGN}"},
                headers={**operator(), "Accept": accept},
            )
            assert PGN not in answer.text
            error = only_error(answer)
            assert error["extensions"]["code"] == "BAD_USER_INPUT"
            assert error["extensions"]["reason"] == "pgn"
        # In the document: refused by the BSN guard; the request line names no number.
        answer = await client.post(
            "/graphql",
            json={"query": f"query Q{PGN} {{ __typename }}", "variables": {f"v{PGN}": 1}},
            headers=operator(),
        )
        assert PGN not in answer.text
        assert only_error(answer)["extensions"]["code"] == "BAD_USER_INPUT"
    assert PGN not in caplog.text


# --- authentication -----------------------------------------------------------------------------


@pytest.mark.parametrize("accept", [SPEC, "application/json"])
@pytest.mark.parametrize(
    "authorization",
    ["Bearer not-a-token", "Basic dXNlcjpwYXNz", None],
    ids=["bad-token", "not-bearer", "no-token"],
)
async def test_every_authentication_failure_is_401_with_www_authenticate(
    client: httpx.AsyncClient, authorization: str | None, accept: str
) -> None:
    headers = {"Accept": accept}
    if authorization:
        headers["Authorization"] = authorization
    answer = await client.post(
        "/graphql",
        json={"query": "{ products(first: 1) { nodes { productId } } }"},
        headers=headers,
    )
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"
    assert only_error(answer)["extensions"]["code"] == "UNAUTHENTICATED"
    assert "not-a-token" not in answer.text


async def test_an_expired_token_is_401_even_for_a_typename(client: httpx.AsyncClient) -> None:
    from datetime import timedelta

    expired = token_for("operator", "operator", lifetime=timedelta(seconds=-120))
    answer = await client.post(
        "/graphql",
        json={"query": "{ __typename }"},
        headers={"Authorization": f"Bearer {expired}"},
    )
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"


# --- logs ---------------------------------------------------------------------------------------


async def test_expected_refusals_are_one_info_line_without_the_query(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "zz_secret_field_name_zz"
    dashboard = {"Authorization": f"Bearer {token_for('demo-shop', 'seller')}"}
    with caplog.at_level(logging.DEBUG):
        await client.post("/graphql", json={"query": f"{{ {secret} }}"}, headers=operator())
        await client.post(
            "/graphql",
            json={"query": f'{{ organisation(identifier: {{value: "{secret}"}}) '},
            headers=operator(),
        )
        await client.post("/graphql", json={"query": FORBIDDEN_FOR_SHOP}, headers=dashboard)
    assert secret not in caplog.text
    refusals = [r for r in caplog.records if r.name == "ketenpoort.errors"]
    assert len(refusals) == 3, [r.getMessage() for r in refusals]
    assert all(r.levelno == logging.INFO and r.exc_info is None for r in refusals)
    assert "FORBIDDEN" in refusals[2].getMessage()
    assert not [r for r in caplog.records if r.name.startswith("strawberry")]


async def test_unexpected_errors_keep_their_traceback(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from resolvers import queries

    async def broken(*_args: Any) -> Any:
        raise RuntimeError("the cause, for the operator")

    monkeypatch.setattr(queries, "products_list", broken)
    with caplog.at_level(logging.INFO):
        answer = await client.post(
            "/graphql", json={"query": "{ products { nodes { id } } }"}, headers=spec()
        )
    assert answer.status_code == 200  # a field error: the request ran
    assert only_error(answer)["message"] == "Unexpected error; it has been logged."
    assert "the cause" not in answer.text
    logged = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(logged) == 1
    assert logged[0].exc_info is not None
    assert "the cause, for the operator" in caplog.text


def test_the_access_log_never_holds_a_query_string() -> None:
    from gateway import logging as gateway_logging

    gateway_logging.configure("text", "INFO")
    access = logging.getLogger("uvicorn.access")
    record = access.makeRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        (
            "127.0.0.1:1",
            "GET",
            "/graphql?headers=%7B%22Authorization%22%3A%22Bearer%20eyJ",
            "1.1",
            200,
        ),
        None,
    )
    assert all(f.filter(record) for f in access.filters)
    assert record.getMessage() == '127.0.0.1:1 - "GET /graphql HTTP/1.1" 200'


@pytest.mark.parametrize("accept", [SPEC, "application/json"])
async def test_a_school_token_without_its_school_is_401(
    client: httpx.AsyncClient, accept: str
) -> None:
    """Issue 12 item 10: the verifier refuses it (TokenError), so it is a 401 like
    every other authentication failure, whatever the query."""
    import time
    import uuid

    import jwt

    now = int(time.time())
    claims = {
        "iss": TEST_SETTINGS.jwt_issuer,
        "aud": TEST_SETTINGS.jwt_audience,
        "sub": "demo-school-admin",
        "scope": "school",
        "iat": now,
        "exp": now + 600,
        "jti": str(uuid.uuid4()),
    }
    bearer = jwt.encode(claims, TEST_SETTINGS.jwt_secret, algorithm="HS256")
    for query in ("{ __typename }", "{ products(first: 1) { totalCount } }"):
        answer = await client.post(
            "/graphql",
            json={"query": query},
            headers={"Authorization": f"Bearer {bearer}", "Accept": accept},
        )
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"] == "Bearer"
        assert "school" in only_error(answer)["message"]


@pytest.mark.parametrize(
    "body",
    [
        b'{"query": "{ __typename }"}',
        '{"query": "{ __typename }", "variables": {"n": "é☃"}}'.encode(),
        b'\xef\xbb\xbf{"query": "{ __typename }"}',  # UTF-8 with a byte-order mark
        '{"query": "{ __typename }"}'.encode("utf-16"),
        '{"query": "{ __typename }"}'.encode("utf-32-le"),
        b'{"query": "\xed\xa0\x80"}',  # a lone surrogate, as json.loads lets it through
        b'{"query": "\xff"}',  # not UTF-8
        b"\x00\x00",
        b"",
    ],
)
def test_a_body_is_read_as_json_loads_reads_bytes(body: bytes) -> None:
    """The body is decoded without json's search for the encoding when it is plainly
    UTF-8; whatever the bytes, the answer is json.loads's (or a 400 where it fails)."""
    from gateway.http import _json, _Refusal

    try:
        expected = json.loads(body)
    except ValueError:
        with pytest.raises(_Refusal):
            _json(body, "the request body")
    else:
        assert _json(body, "the request body") == expected
