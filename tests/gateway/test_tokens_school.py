"""Issue 12 items 8 and 10 through the whole gateway: a school account speaks only
for the schools the registry lists for it (`supplier_school`), on HTTP, at the
websocket's connection_init, through the supplier cache and its NOTIFY
invalidation; a school-scope token without a `school` is a 401 like every other
token failure. The operator's `ketenpoort school-account` registers and withdraws.

Waits are bounded loops on the thing itself (a notification counted, a command's
exit), never fixed sleeps.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import jwt
import pytest
import websockets

from db.pg import connect_arguments
from settings import Environment, Settings
from tests.conftest import token_for
from tests.e2e.conftest import CLI, ROOT, Gateway, start_gateway, stop_gateway
from tests.ops.conftest import database as database  # noqa: F401 (fixture)
from tests.ops.conftest import ops_settings, running_app
from tests.ops.conftest import postgres_database as postgres_database  # noqa: F401 (fixture)
from tests.waiting import until_async

COLLEGE, BASISSCHOOL = "104A158", "104A159"
EXCHANGES = """query ($school: OrganisationIdentifierInput!) {
  dataExchanges(school: $school) { dataType } }"""
TRANSPORT_WS = "graphql-transport-ws"
WAIT = 90  # only a guard against a hang on a busy machine


def _variables(school: str) -> dict[str, Any]:
    return {"school": {"value": school}}


def _headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _code(body: dict[str, Any]) -> str | None:
    errors = body.get("errors")
    return errors[0]["extensions"]["code"] if errors else None


async def _ask(client: Any, supplier: str, school: str) -> tuple[int, str | None, Any]:
    token = token_for(supplier, "school", school=school)
    response = await client.post(
        "/graphql",
        json={"query": EXCHANGES, "variables": _variables(school)},
        headers=_headers(token),
    )
    body = response.json()
    return response.status_code, _code(body), body


# --- HTTP, both databases ------------------------------------------------------------------


async def test_a_school_account_speaks_only_for_its_registered_schools(
    database: str,  # noqa: F811
) -> None:
    async with running_app(ops_settings(database)) as client:
        # demo-college-admin is registered for the college only.
        status, code, body = await _ask(client, "demo-college-admin", COLLEGE)
        assert (status, code) == (200, None), body
        status, code, body = await _ask(client, "demo-college-admin", BASISSCHOOL)
        assert code == "FORBIDDEN", body
        assert "not registered as an administrator of the school '104A159'" in (
            body["errors"][0]["message"]
        )
        assert body["data"] is None
        # Naming the other school by another of its identifiers changes nothing.
        status, code, body = await _ask(client, "demo-college-admin", "10AB")
        assert code == "FORBIDDEN", body
        # The board's administrator is registered for all three demo schools.
        for school in (COLLEGE, BASISSCHOOL, "104A160"):
            status, code, body = await _ask(client, "demo-school-admin", school)
            assert (status, code) == (200, None), body


@pytest.mark.parametrize(
    ("school", "message"),
    [(None, "must carry a `school` claim"), ("", "must carry a `school` claim"),
     (["104A158"], "one school identifier"), ("1" * 65, "at most 64 characters"),
     ("999A999", "not one known school")],
)
async def test_a_school_token_without_one_known_school_is_a_401(
    database: str,  # noqa: F811
    school: Any,
    message: str,
) -> None:
    settings = Settings(environment=Environment.TEST)
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": settings.jwt_issuer, "aud": settings.jwt_audience, "sub": "demo-school-admin",
        "scope": "school", "iat": now, "exp": now + 600, "jti": f"t-{now}",
    }
    if school is not None:
        claims["school"] = school
    token = jwt.encode(claims, settings.jwt_secret, algorithm="HS256")
    async with running_app(ops_settings(database)) as client:
        response = await client.post(
            "/graphql", json={"query": EXCHANGES, "variables": _variables(COLLEGE)},
            headers=_headers(token),
        )
    assert response.status_code == 401, response.text
    body = response.json()
    assert _code(body) == "UNAUTHENTICATED"
    assert message in body["errors"][0]["message"]


# --- the supplier cache and its NOTIFY (PostgreSQL) ----------------------------------------


async def _invalidated(client: Any, seen: int) -> None:
    invalidation = client.app.state.supplier_invalidation
    await until_async(lambda: invalidation.invalidations > seen,
                      "the NOTIFY for the supplier_school change", bound=WAIT)


@pytest.mark.postgres_only
async def test_a_registry_change_takes_effect_in_every_gateway_at_once(
    postgres_database: str,  # noqa: F811
) -> None:
    """Both gateways cache the registration for an hour; adding or withdrawing a
    school (here with plain SQL, as an operator's psql would) is seen by both as soon
    as the commit's NOTIFY arrives."""
    settings = ops_settings(postgres_database, supplier_cache_seconds=3600)
    add = (
        "INSERT INTO supplier_school (supplier_id, organisation_id) "
        "SELECT s.id, o.id FROM supplier s, organisation o "
        "WHERE s.code = 'demo-college-admin' AND o.rio_id = $1"
    )
    withdraw = (
        "DELETE FROM supplier_school WHERE supplier_id = "
        "(SELECT id FROM supplier WHERE code = 'demo-college-admin') AND organisation_id = "
        "(SELECT id FROM organisation WHERE rio_id = $1)"
    )
    async with running_app(settings) as one, running_app(settings) as two:
        clients = (one, two)
        for client in clients:
            await asyncio.wait_for(client.app.state.supplier_invalidation.listening.wait(), WAIT)
            assert (await _ask(client, "demo-college-admin", BASISSCHOOL))[1] == "FORBIDDEN"
        connection = await asyncpg.connect(**connect_arguments(postgres_database))
        try:
            seen = [c.app.state.supplier_invalidation.invalidations for c in clients]
            await connection.execute(add, BASISSCHOOL)
            for client, before in zip(clients, seen, strict=True):
                await _invalidated(client, before)
                assert (await _ask(client, "demo-college-admin", BASISSCHOOL))[1] is None
            seen = [c.app.state.supplier_invalidation.invalidations for c in clients]
            await connection.execute(withdraw, COLLEGE)
            for client, before in zip(clients, seen, strict=True):
                await _invalidated(client, before)
                assert (await _ask(client, "demo-college-admin", COLLEGE))[1] == "FORBIDDEN"
                assert (await _ask(client, "demo-college-admin", BASISSCHOOL))[1] is None
        finally:
            await connection.close()


# --- a real gateway: websocket connection_init and the operator's command -------------------


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """`ketenpoort migrate`, `demo` and uvicorn on SQLite, as `make run` does; no supplier
    cache, so a registry change made by the command (another process) shows at once."""
    folder = tmp_path_factory.mktemp("school-accounts")
    gateway = start_gateway(
        f"sqlite+aiosqlite:///{folder / 'gateway.db'}",
        extra_env={"KETENPOORT_SUPPLIER_CACHE_SECONDS": "0"},
    )
    yield gateway
    stop_gateway(gateway)


def _cli(gateway: Gateway, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], env=gateway.env, cwd=ROOT, capture_output=True, text=True, timeout=WAIT
    )


async def _connection_init(gateway: Gateway, token: str) -> tuple[str, str]:
    """'ack' or the close code and reason of a connection_init with `token`."""
    url = gateway.url.replace("http://", "ws://") + "/graphql"
    async with websockets.connect(url, subprotocols=[TRANSPORT_WS]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {
            "Authorization": f"Bearer {token}"}}))
        try:
            message = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
        except websockets.ConnectionClosed as closed:
            frame = closed.rcvd
        else:
            return message["type"], ""
    return (str(frame.code), frame.reason) if frame is not None else ("1006", "")


def _http(gateway: Gateway, token: str, school: str) -> str | None:
    response = httpx.post(
        f"{gateway.url}/graphql", json={"query": EXCHANGES, "variables": _variables(school)},
        headers=_headers(token), timeout=WAIT,
    )
    return _code(response.json())


async def test_websocket_and_http_follow_the_registry_the_command_keeps(
    gateway: Gateway,
) -> None:
    other = gateway.token("demo-college-admin", "school", school=BASISSCHOOL)
    own = gateway.token("demo-college-admin", "school", school=COLLEGE)
    assert await _connection_init(gateway, own) == ("connection_ack", "")
    code, reason = await _connection_init(gateway, other)
    assert code == "4403"
    assert "not registered as an administrator" in reason
    assert _http(gateway, other, BASISSCHOOL) == "FORBIDDEN"

    added = _cli(gateway, "school-account", "demo-college-admin", BASISSCHOOL)
    assert added.returncode == 0, added.stderr
    assert "demo-college-admin speaks for 104A159" in added.stdout
    assert await _connection_init(gateway, other) == ("connection_ack", "")
    assert _http(gateway, other, BASISSCHOOL) is None
    again = _cli(gateway, "school-account", "demo-college-admin", "10AB")  # BRIN4 of it
    assert "already registered" in again.stdout

    removed = _cli(gateway, "school-account", "demo-college-admin", BASISSCHOOL, "--remove")
    assert removed.returncode == 0, removed.stderr
    assert (await _connection_init(gateway, other))[0] == "4403"
    assert _http(gateway, other, BASISSCHOOL) == "FORBIDDEN"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nobody", COLLEGE], "no supplier has code 'nobody'"),
        (["demo-shop", COLLEGE], "does not hold the school role"),
        (["demo-college-admin", "999A999"], "no organisation at level PROVIDER"),
        (["demo-college-admin", "09QQ00"], "no organisation at level PROVIDER"),
    ],
)
def test_the_command_refuses_what_it_cannot_register(
    gateway: Gateway, args: list[str], message: str
) -> None:
    refused = _cli(gateway, "school-account", *args)
    assert refused.returncode == 2
    assert message in refused.stderr


def test_a_school_token_cannot_be_minted_without_its_school(gateway: Gateway) -> None:
    refused = _cli(gateway, "token", "demo-school-admin", "--scope", "school")
    assert refused.returncode == 2
    assert "must name its school" in refused.stderr
    too_long = _cli(gateway, "token", "demo-shop", "--scope", "seller", "--hours", "25")
    assert too_long.returncode == 2
    assert "at most 86400 s" in too_long.stderr
