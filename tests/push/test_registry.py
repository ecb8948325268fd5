"""Registering endpoints over GraphQL, on SQLite and PostgreSQL: secrets are never
returned, logged or audited and are stored encrypted; every change is audited;
suppliers see only their own endpoints; production refuses private addresses;
a change reaches the delivering process."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app import create_app
from db import push as store
from db.engine import create_sessionmaker
from db.models import AuditLog
from tests.conftest import LiveGateway, token_for
from tests.push.conftest import (
    PORTAL,
    PUBLISHER,
    REGISTER,
    SHOP,
    SIGNING_SECRET,
    Clock,
    gql,
    push_settings,
    queued,
    register,
    submit,
)
from tests.push.receiver import Receiver, serve

OAUTH_SECRET = "the-oauth-client-secret-nobody-may-see"

ENDPOINTS = """
query { pushEndpoints { id url auth tokenUrl clientId scope hasSecret kinds batchSize enabled
  supplier { code } } }"""
CHANGE = """
mutation ($input: PushEndpointChangeInput!) {
  pushEndpointChange(input: $input) {
    __typename
    ... on PushEndpointSaved { endpoint { id url kinds enabled batchSize } }
    ... on MutationError { code field message }
  }
}"""


async def _audit(live: LiveGateway, endpoint_id: str) -> list[AuditLog]:
    async with create_sessionmaker(live.engine)() as session:
        rows = await session.scalars(
            select(AuditLog)
            .where(AuditLog.object_type == "push_endpoint", AuditLog.object_id == endpoint_id)
            .order_by(AuditLog.id)
        )
        return list(rows)


async def test_a_secret_is_stored_encrypted_and_never_returned_logged_or_audited(
    live: LiveGateway, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    body = {
        "url": receiver.url,
        "auth": "OAUTH2",
        "secret": OAUTH_SECRET,
        "tokenUrl": receiver.token_url,
        "clientId": "gateway",
        "scope": "mp.entitlement",
        "kinds": ["ENTITLEMENT_CREATED", "LICENCE_ACTIVATED"],
        "batchSize": 50,
    }
    answer = await gql(live, REGISTER, {"input": body}, PUBLISHER)
    saved = answer["data"]["pushEndpointRegister"]
    assert saved["__typename"] == "PushEndpointSaved"
    endpoint = saved["endpoint"]
    assert endpoint["hasSecret"] is True
    assert endpoint["kinds"] == ["ENTITLEMENT_CREATED", "LICENCE_ACTIVATED"]
    listed = await gql(live, ENDPOINTS, {}, PUBLISHER)
    change = await gql(
        live, CHANGE, {"input": {"id": endpoint["id"], "secret": OAUTH_SECRET + "-2"}}, PUBLISHER
    )
    assert change["data"]["pushEndpointChange"]["__typename"] == "PushEndpointSaved"
    async with create_sessionmaker(live.engine)() as session:
        row = await session.get(store.PushEndpoint, int(endpoint["id"]))
        assert row is not None
        cipher = row.secret_cipher
    audit = await _audit(live, endpoint["id"])
    assert [a.action for a in audit] == ["pushEndpoint.register", "pushEndpoint.change"]
    assert audit[1].detail is not None
    assert audit[1].detail["changed"] == ["secret"]
    everything = [
        json.dumps(answer),
        json.dumps(listed),
        json.dumps(change),
        cipher,
        json.dumps([a.detail for a in audit]),
        caplog.text,
    ]
    for text in everything:
        assert OAUTH_SECRET not in text


async def test_every_change_is_audited_and_reaches_the_delivering_process(
    live: LiveGateway, service_for, clock: Clock
) -> None:
    async with serve() as first, serve() as second:
        endpoint_id = await register(live, first.url)
        service = await service_for(clock)
        await submit(live, lines=1)
        worker = await queued(service, endpoint_id, 1)
        assert await worker.step() == "sent"
        changed = await gql(
            live, CHANGE, {"input": {"id": endpoint_id, "url": second.url}}, PUBLISHER
        )
        assert changed["data"]["pushEndpointChange"]["endpoint"]["url"] == second.url
        await service.refresh_leases()  # what the lease loop does within a third of a lease
        await submit(live, lines=1)
        worker = await queued(service, endpoint_id, 1)
        assert await worker.step() == "sent"
        assert len(first.requests) == 1
        assert len(second.requests) == 1
        # Switched off: the process lets the endpoint go; events keep waiting.
        off = await gql(live, CHANGE, {"input": {"id": endpoint_id, "enabled": False}}, PUBLISHER)
        assert off["data"]["pushEndpointChange"]["endpoint"]["enabled"] is False
        await service.refresh_leases()
        assert int(endpoint_id) not in service.workers
    retry = await gql(
        live,
        """mutation ($id: ID!) { pushEndpointRetryNow(id: $id) { __typename } }""",
        {"id": endpoint_id},
        PUBLISHER,
    )
    assert retry["data"]["pushEndpointRetryNow"]["__typename"] == "PushEndpointSaved"
    removed = await gql(
        live,
        """mutation ($id: ID!) { pushEndpointRemove(id: $id) { __typename } }""",
        {"id": endpoint_id},
        PUBLISHER,
    )
    assert removed["data"]["pushEndpointRemove"]["__typename"] == "PushEndpointRemoved"
    actions = [a.action for a in await _audit(live, endpoint_id)]
    assert actions == [
        "pushEndpoint.register",
        "pushEndpoint.change",
        "pushEndpoint.change",
        "pushEndpoint.retryNow",
        "pushEndpoint.remove",
    ]


async def test_suppliers_see_and_change_only_their_own_endpoints(
    live: LiveGateway, receiver: Receiver
) -> None:
    mine = await register(live, receiver.url, as_=PUBLISHER)
    other = await gql(live, ENDPOINTS, {}, PORTAL)
    assert mine not in [e["id"] for e in other["data"]["pushEndpoints"]]
    single = await gql(
        live, "query ($id: ID!) { pushEndpoint(id: $id) { id } }", {"id": mine}, PORTAL
    )
    assert single["data"]["pushEndpoint"] is None
    refused = await gql(live, CHANGE, {"input": {"id": mine, "url": receiver.url}}, PORTAL)
    assert refused["data"]["pushEndpointChange"]["__typename"] == "NotFoundError"
    everyone = await gql(live, ENDPOINTS, {}, ("operator", "operator"))
    assert mine in [e["id"] for e in everyone["data"]["pushEndpoints"]]
    # Only the operator registers for another supplier.
    body = {
        "url": receiver.url,
        "auth": "SIGNED",
        "secret": SIGNING_SECRET,
        "supplierCode": "demo-lms",
    }
    denied = await gql(live, REGISTER, {"input": body}, SHOP)
    assert denied["data"]["pushEndpointRegister"]["field"] == "supplierCode"
    done = await gql(live, REGISTER, {"input": body}, ("operator", "operator"))
    assert done["data"]["pushEndpointRegister"]["__typename"] == "PushEndpointSaved"
    listed = await gql(live, ENDPOINTS, {}, ("demo-lms", "portal"))
    assert [e["supplier"]["code"] for e in listed["data"]["pushEndpoints"]] == ["demo-lms"]
    anonymous = await live.client.post("/graphql", json={"query": ENDPOINTS})
    assert anonymous.status_code == 401


async def test_bad_registrations_get_typed_errors_with_every_problem(
    live: LiveGateway, receiver: Receiver
) -> None:
    body = {
        "url": "ftp://x",
        "auth": "OAUTH2",
        "secret": "x",
        "batchSize": 0,
    }
    answer = await gql(live, REGISTER, {"input": body}, PUBLISHER)
    payload = answer["data"]["pushEndpointRegister"]
    assert payload["__typename"] == "ValidationError"
    assert [p["field"] for p in payload["problems"]] == ["url", "tokenUrl", "clientId", "batchSize"]
    huge = {"url": "http://127.0.0.1/" + "x" * 100_000, "auth": "SIGNED", "secret": SIGNING_SECRET}
    answer = await gql(live, REGISTER, {"input": huge}, PUBLISHER)
    # Refused at the door: an input url is at most 2,048 characters (gateway/inputs.py).
    assert answer["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert answer["errors"][0]["extensions"]["field"] == "$input.url (input.url)"


async def test_production_refuses_loopback_and_private_endpoints(live: LiveGateway) -> None:
    settings = push_settings(push_allow_private_addresses=False)
    app = create_app(settings, sessionmaker=create_sessionmaker(live.engine))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway"
    ) as client:
        for url in ("https://127.0.0.1/events", "https://10.1.2.3/events", "http://x.nl/e"):
            body: dict[str, Any] = {"url": url, "auth": "SIGNED", "secret": SIGNING_SECRET}
            response = await client.post(
                "/graphql",
                json={"query": REGISTER, "variables": {"input": body}},
                headers={"Authorization": f"Bearer {token_for(*PUBLISHER)}"},
            )
            payload = response.json()["data"]["pushEndpointRegister"]
            assert payload["__typename"] == "ValidationError", url
            assert payload["field"] == "url"


ROOT_FIELDS = {
    "pushEndpoints": "{ pushEndpoints { id } }",
    "pushEndpoint": '{ pushEndpoint(id: "1") { id } }',
    "pushEndpointRegister": (
        'mutation { pushEndpointRegister(input: {url: "http://127.0.0.1:9/e", auth: SIGNED, '
        'secret: "short"}) { __typename } }'
    ),
    "pushEndpointChange": 'mutation { pushEndpointChange(input: {id: "0"}) { __typename } }',
    "pushEndpointRetryNow": 'mutation { pushEndpointRetryNow(id: "0") { __typename } }',
    "pushEndpointRemove": 'mutation { pushEndpointRemove(id: "0") { __typename } }',
    "pushSeedRequest": (
        'mutation { pushSeedRequest(endpointId: "0", school: {value: "09QQ"}) { __typename } }'
    ),
}
CALLERS = {
    "seller": ("demo-shop", "seller"),
    "licensor": ("demo-publisher", "licensor"),
    "portal": ("demo-portal", "portal"),
    "dashboard": ("demo-dashboard", "dashboard"),
    "sis": ("demo-sis", "sis"),
    "operator": ("operator", "operator"),
}
RECEIVING = {"seller", "licensor", "portal", "dashboard", "operator"}


@pytest.mark.parametrize("field", sorted(ROOT_FIELDS))
async def test_only_suppliers_that_receive_events_manage_endpoints(
    live: LiveGateway, field: str
) -> None:
    for role, caller in CALLERS.items():
        answer = await gql(live, ROOT_FIELDS[field], {}, caller)
        codes = [e.get("extensions", {}).get("code") for e in answer.get("errors") or []]
        assert ("FORBIDDEN" in codes) is (role not in RECEIVING), (field, role, answer)
    school = token_for("demo-school-admin", "school", school="104A158")
    response = await live.client.post(
        "/graphql",
        json={"query": ROOT_FIELDS[field]},
        headers={"Authorization": f"Bearer {school}"},
    )
    codes = [e["extensions"]["code"] for e in response.json().get("errors") or []]
    assert "FORBIDDEN" in codes
