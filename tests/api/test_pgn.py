"""A BSN or onderwijsnummer never enters, whole or inside free text, and is never
repeated (issue 12 item 5), on SQLite and PostgreSQL, over the schema, HTTP and a
subscription. The rule for text is `domain.privacy` (tested branch by branch in
tests/domain/test_privacy.py); here: every place input enters, and stored text
shown to other suppliers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import AuditLog, Delivery, EntitlementRecipient, Event
from domain.privacy import REDACTED
from tests.api.test_delivery import PORTAL, SHOP, delivery, submit
from tests.conftest import GraphQLClient, LiveGateway, token_for

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations" / "versions"
BSN = "123456782"  # passes the 11-test
AS_INT = 123456782
ONDERWIJSNUMMER = "101222331"


def refused(result: Any, where: str | None = None) -> None:
    """Refused as a whole with BAD_USER_INPUT (reason pgn), the number nowhere in
    the answer."""
    assert result.data is None
    (error,) = result.errors
    assert error.extensions["code"] == "BAD_USER_INPUT"
    assert error.extensions["reason"] == "pgn"
    if where is not None:
        assert error.extensions["field"] == where
        assert where in error.message
    answer = json.dumps([e.formatted for e in result.errors])
    assert BSN not in answer
    assert ONDERWIJSNUMMER not in answer


DOCUMENTS = {
    "string argument": (
        f'{{ organisation(identifier: {{value: "{BSN}"}}) {{ __typename }} }}',
        "organisation.identifier.value",
    ),
    "free text in an input object": (
        f'mutation {{ deliverySubmit(input: {{referenceId: "r", orderNumber: "ORD {BSN}"}}) '
        "{ __typename } }",
        "deliverySubmit.input.orderNumber",
    ),
    "string inside a list": (
        f'mutation {{ deliverySubmit(input: {{referenceId: "r", orderLines: [{{eckIds: '
        f'["x", "leerling {BSN}"]}}]}}) {{ __typename }} }}',
        "deliverySubmit.input.orderLines.0.eckIds.1",
    ),
    "Int literal": (
        'mutation { entitlementLowerQuantity(input: {entitlementId: "1", referenceId: "r", '
        f"quantity: {AS_INT}}}) {{ __typename }} }}",
        "entitlementLowerQuantity.input.quantity",
    ),
    "Int literal where a String belongs": (
        f"{{ organisation(identifier: {{value: {AS_INT}}}) {{ __typename }} }}",
        "organisation.identifier.value",
    ),
    "Float literal": (
        f'{{ products(first: 1, filter: {{nameContains: "x"}}) {{ nodes {{ id }} }} '
        f"organisations(first: {AS_INT}.0) {{ nodes {{ id }} }} }}",
        "organisations.first",
    ),
    "enum name": (
        f"{{ entitlements(filter: {{status: [LINK_READY, BSN_{BSN}]}}) {{ nodes {{ id }} }} }}",
        "entitlements.filter.status.1",
    ),
    "ID literal": (f'{{ entitlement(id: "{BSN}") {{ id }} }}', "entitlement.id"),
    "operation name": (f"query Q{BSN} {{ __typename }}", "the operation name"),
    "variable name": (
        f"query ($v{BSN}: String) {{ __typename }}",
        f"a variable name at $v{REDACTED}",
    ),
    "variable default": (
        f'query ($v: String = "{BSN}") {{ organisation(identifier: {{value: $v}}) '
        "{ __typename } }",
        "$v",
    ),
    "alias": (f"{{ a{BSN}: __typename }}", None),
    "fragment name": (
        f"{{ ...F{BSN} }} fragment F{BSN} on Query {{ __typename }}",
        None,
    ),
    "unknown field": (f"{{ f{BSN} }}", f"a field name or alias at f{REDACTED}"),
    "directive argument": (
        f'{{ __typename @include(if: "{BSN}") }}',
        "__typename.if",
    ),
    "onderwijsnummer": (
        f'{{ organisation(identifier: {{value: "{ONDERWIJSNUMMER}"}}) {{ __typename }} }}',
        "organisation.identifier.value",
    ),
}


@pytest.mark.parametrize("name", list(DOCUMENTS))
async def test_a_pgn_anywhere_in_the_document_is_refused_before_validation(
    gql: GraphQLClient, name: str
) -> None:
    document, where = DOCUMENTS[name]
    result = await gql.execute(document, as_=SHOP)
    refused(result, where)


VARIABLES = {
    "string": ({"v": BSN}, "query ($v: String!) { organisation(identifier: {value: $v}) "
               "{ __typename } }", "v"),
    "free text": (
        {"v": f"leerling bsn {BSN} onbekend"},
        "query ($v: String!) { organisation(identifier: {value: $v}) { __typename } }",
        "v",
    ),
    "formatted": (
        {"v": "1234.56.782"},
        "query ($v: String!) { organisation(identifier: {value: $v}) { __typename } }",
        "v",
    ),
    "Int": ({"v": AS_INT}, "query ($v: Int) { organisations(first: $v) { nodes { id } } }", "v"),
    "Float": (
        {"v": float(AS_INT)},
        "query ($v: Int) { organisations(first: $v) { nodes { id } } }",
        "v",
    ),
    "string for an Int": (
        {"v": BSN},
        "query ($v: Int) { organisations(first: $v) { nodes { id } } }",
        "v",
    ),
    "inside a list": (
        {"v": ["LINK_READY", BSN]},
        "query ($v: [EntitlementStatus!]) { entitlements(filter: {status: $v}) "
        "{ nodes { id } } }",
        "v.1",
    ),
    "nested input object": (
        {"v": {"referenceId": "r", "orderLines": [{"eckIds": ["ok", f"x{BSN}"]}]}},
        "mutation ($v: DeliveryInput!) { deliverySubmit(input: $v) { __typename } }",
        "v.orderLines.0.eckIds.1",
    ),
    "a key of an input object": (
        {"v": {"referenceId": "r", f"x{BSN}": 1}},
        "mutation ($v: DeliveryInput!) { deliverySubmit(input: $v) { __typename } }",
        "a field name in v",
    ),
    "an unused variable": (
        {"v": "x", "w": BSN},
        "query ($v: String!) { organisation(identifier: {value: $v}) { __typename } }",
        "w",
    ),
}


@pytest.mark.parametrize("name", list(VARIABLES))
async def test_a_pgn_in_any_variable_is_refused_before_coercion(
    gql: GraphQLClient, name: str
) -> None:
    values, document, where = VARIABLES[name]
    refused(await gql.execute(document, values, as_=SHOP), where)


async def test_a_failure_message_holding_a_bsn_is_refused_and_nothing_is_stored(
    gql: GraphQLClient, session: AsyncSession
) -> None:
    entitlement_id = (await submit(gql, delivery("pgn-failure")))["delivery"]["entitlements"][0][
        "id"
    ]
    result = await gql.execute(
        """mutation ($input: EntitlementFailureInput!) { entitlementReportFailure(input: $input)
           { __typename } }""",
        {
            "input": {
                "entitlementId": entitlement_id,
                "referenceId": "pgn-1",
                "code": 7,
                "message": f"leerling bsn {BSN} onbekend",
            }
        },
        as_=PORTAL,
    )
    refused(result, "input.message")
    messages = await session.scalars(
        select(EntitlementRecipient.failure_message).where(
            EntitlementRecipient.entitlement_id == int(entitlement_id)
        )
    )
    assert set(messages) == {None}


async def test_an_ordinary_nine_digit_number_is_no_bsn(gql: GraphQLClient) -> None:
    result = await gql.execute(
        '{ organisation(identifier: {value: "123456789"}) { __typename } }', as_=SHOP
    )
    assert result.errors is None  # fails the 11-test


async def test_stored_text_holding_a_bsn_is_shown_redacted(
    gql: GraphQLClient, session: AsyncSession
) -> None:
    """Text written before the rule (or by hand) reaches no other supplier whole:
    a failure message, its event's detail, an order number, an audit detail."""
    created = await submit(gql, delivery("pgn-stored"))
    entitlement_id = int(created["delivery"]["entitlements"][0]["id"])
    text = f"leerling bsn {BSN} onbekend"
    await session.execute(
        update(EntitlementRecipient)
        .where(EntitlementRecipient.entitlement_id == entitlement_id)
        .values(state="FAILED", failure_code=7, failure_message=text)
    )
    event = await session.scalar(select(Event).where(Event.entitlement_id == entitlement_id))
    assert event is not None
    await session.execute(
        update(Event).where(Event.id == event.id).values(payload={"message": text, "n": AS_INT})
    )
    await session.execute(
        update(Delivery)
        .where(Delivery.id == int(created["delivery"]["id"]))
        .values(order_number=f"ORD-{BSN}")
    )
    await session.execute(
        update(AuditLog)
        .where(AuditLog.object_type == "delivery", AuditLog.object_id == created["delivery"]["id"])
        .values(detail={"referenceId": text})
    )
    await session.commit()
    seen = await gql.data(
        """query ($id: ID!, $d: ID!) {
             entitlement(id: $id) { recipients { failureMessage } history { detail } }
             delivery(id: $d) { orderNumber } }""",
        {"id": str(entitlement_id), "d": created["delivery"]["id"]},
        as_=SHOP,
    )
    messages = {r["failureMessage"] for r in seen["entitlement"]["recipients"]}
    assert messages == {f"leerling bsn {REDACTED} onbekend"}
    assert {"message": f"leerling bsn {REDACTED} onbekend", "n": REDACTED} in [
        h["detail"] for h in seen["entitlement"]["history"]
    ]
    assert seen["delivery"]["orderNumber"] == f"ORD-{REDACTED}"
    trail = await gql.data(
        '{ auditTrail(school: {value: "09QQ"}, first: 100) { nodes { objectType detail } } }',
        as_=("demo-school-admin", "school"),
        school="104A158",
    )
    assert BSN not in json.dumps(trail)
    assert json.dumps(seen).count(BSN) == 0


async def test_over_http_the_answer_and_the_log_hold_no_bsn(
    live: LiveGateway, caplog: pytest.LogCaptureFixture
) -> None:
    response = await live.client.post(
        "/graphql",
        json={
            "query": f"query Q{BSN} ($v: Int) {{ organisations(first: $v) {{ nodes {{ id }} }} }}",
            "variables": {"v": AS_INT},
        },
        headers={"Authorization": f"Bearer {token_for('demo-shop', 'seller')}"},
    )
    body = response.json()
    assert body["errors"][0]["extensions"]["reason"] == "pgn"
    assert BSN not in response.text
    assert BSN not in caplog.text


async def test_a_subscription_holding_a_bsn_is_refused(gql: GraphQLClient, session: Any) -> None:
    from graphql import ExecutionResult

    from gateway.tokens import TokenVerifier
    from live.broker import Broker
    from live.context import LiveContext
    from resolvers.api import schema
    from tests.conftest import TEST_SETTINGS

    broker = Broker(TEST_SETTINGS, lambda: session)
    broker.running = True
    context = LiveContext(TEST_SETTINGS, lambda: session, broker=broker)
    context.caller = TokenVerifier(TEST_SETTINGS).verify(
        f"Bearer {token_for('demo-portal', 'portal')}"
    )
    result = await schema.subscribe(
        f'subscription {{ deliveryProgress(school: {{value: "{BSN}"}}) {{ __typename }} }}',
        context_value=context,
    )
    if not isinstance(result, ExecutionResult):
        stream = result
        result = await stream.__anext__()
        await stream.aclose()
    refused(result, "deliveryProgress.school.value")


async def test_the_scrub_migration_redacts_text_stored_before_the_rule(
    session: AsyncSession,
) -> None:
    """Migration 0005 on rows written before the rule, on both databases."""
    import importlib.util

    from alembic.operations import Operations
    from alembic.runtime.migration import MigrationContext

    from db.models import SchoolSubject, TeachingGroup
    from domain.entitlements import Variant
    from tests.factories import make_entitlement, make_product, school_id

    college = await school_id(session, "104A158")
    entitlement = await make_entitlement(
        session, product=await make_product(session), variant=Variant.SCHOOL, school=college
    )
    text = f"leerling bsn {BSN} onbekend"
    await session.execute(
        update(EntitlementRecipient)
        .where(EntitlementRecipient.entitlement_id == entitlement.id)
        .values(failure_message=text)
    )
    failed = Event(
        kind="ENTITLEMENT_FAILED",
        school_id=college,
        entitlement_id=entitlement.id,
        status="ENTITLED",
        payload={"code": 7, "message": text, "recipientSupplierId": 3},
    )
    other = Event(
        kind="ENTITLEMENT_CREATED",
        school_id=college,
        entitlement_id=entitlement.id,
        status="ENTITLED",
        payload={"productId": "9789001123456"},
    )
    session.add_all([failed, other])
    await session.execute(
        update(Delivery)
        .where(Delivery.id == entitlement.delivery_id)
        .values(order_number=f"ORD {ONDERWIJSNUMMER}")
    )
    audit = AuditLog(
        action="deliverySubmit",
        object_type="delivery",
        object_id=str(entitlement.delivery_id),
        school_id=college,
        detail={"referenceId": f"REF-{BSN}", "entitlements": 1},
    )
    session.add(audit)
    group = await session.scalar(select(TeachingGroup).limit(1))
    subject = await session.scalar(select(SchoolSubject).limit(1))
    assert group is not None
    assert subject is not None
    group.name = f"Klas 1A ({BSN})"
    subject_name = subject.name
    await session.flush()

    (found,) = MIGRATIONS.glob("*_scrub_pgns_from_stored_text.py")
    spec = importlib.util.spec_from_file_location("scrub", found)
    assert spec is not None
    assert spec.loader is not None
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)

    def run(connection: Any) -> None:
        with Operations.context(MigrationContext.configure(connection)):
            migration.upgrade()

    ids = (failed.id, other.id, audit.id, group.id, subject.id)
    connection = await session.connection()
    await connection.run_sync(run)
    session.expire_all()
    failed_id, other_id, audit_id, group_id, subject_id = ids

    message = await session.scalar(
        select(EntitlementRecipient.failure_message).where(
            EntitlementRecipient.entitlement_id == entitlement.id,
            EntitlementRecipient.failure_message.is_not(None),
        )
    )
    assert message == f"leerling bsn {REDACTED} onbekend"
    assert (await session.get(Event, failed_id)).payload == {
        "code": 7,
        "message": f"leerling bsn {REDACTED} onbekend",
        "recipientSupplierId": 3,
    }
    assert (await session.get(Event, other_id)).payload == {"productId": "9789001123456"}
    assert (await session.get(Delivery, entitlement.delivery_id)).order_number == (
        f"ORD {REDACTED}"
    )
    assert (await session.get(AuditLog, audit_id)).detail == {
        "referenceId": f"REF-{REDACTED}",
        "entitlements": 1,
    }
    assert (await session.get(TeachingGroup, group_id)).name == f"Klas 1A ({REDACTED})"
    assert (await session.get(SchoolSubject, subject_id)).name == subject_name


@pytest.mark.parametrize(
    "document",
    [
        f"{{ {BSN} }}",
        f'{{ organisation(identifier: {{value: "{BSN}"}}) {{ __typename }}',
        f"query {{ entitlement(id: {AS_INT}) }} }}",
    ],
    ids=["number where a name belongs", "unclosed document", "extra brace"],
)
async def test_a_syntax_error_never_repeats_the_number(gql: GraphQLClient, document: str) -> None:
    result = await gql.execute(document, as_=SHOP)
    (error,) = result.errors
    assert error.message.startswith("Syntax Error")
    assert BSN not in json.dumps(error.formatted)


async def test_a_syntax_error_over_http_never_repeats_the_number(live: LiveGateway) -> None:
    response = await live.client.post(
        "/graphql",
        json={"query": f"{{ {BSN} }}"},
        headers={"Authorization": f"Bearer {token_for('demo-shop', 'seller')}"},
    )
    assert "Syntax Error" in response.text
    assert BSN not in response.text
