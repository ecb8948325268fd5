"""The school is in control, through the API on SQLite and PostgreSQL: a portal
loses access the moment the school revokes the data exchange and regains it on
re-activation; an expired mandate stops confidential data; a school
administrator manages only its own school; every change is audited."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from db.models import AuditLog, ProcessingAgreement, Supplier
from resolvers.clock import today
from tests.api.test_delivery import PORTAL, PUBLISHER, SHOP, delivery, step, submit
from tests.conftest import GraphQLClient

SCHOOL_ADMIN = ("demo-school-admin", "school")

ACTIVATE = """mutation ($input: DataExchangeInput!) { dataExchangeActivate(input: $input) {
  __typename ... on DataExchangeChanged { changed dataExchange { state role dataType } }
  ... on MutationError { code field message } } }"""
REVOKE = ACTIVATE.replace("dataExchangeActivate", "dataExchangeRevoke")
ENTITLEMENT = "query ($id: ID!) { entitlement(id: $id) { id status } }"
LIST = """query ($school: OrganisationIdentifierInput) {
  entitlements(first: 100, filter: {school: $school}) { nodes { id } } }"""


def exchange(
    data_type: str = "ENTITLEMENTS",
    supplier: str = "demo-portal",
    role: str = "PORTAL",
    school: str = "104A158",
) -> dict[str, Any]:
    return {
        "input": {
            "school": {"value": school},
            "supplierCode": supplier,
            "role": role,
            "dataType": data_type,
        }
    }


async def as_school(
    gql: GraphQLClient, query: str, variables: dict[str, Any], school: str = "104A158"
) -> Any:
    return await gql.execute(query, variables, as_=SCHOOL_ADMIN, school=school)


def consent_error(result: Any) -> bool:
    return (
        bool(result.errors)
        and result.errors[0].extensions["code"] == "CONSENT_REQUIRED"
        and result.errors[0].extensions["statusCode"] == 4
    )


async def test_seed_004_with_consent_revoked_midway(gql: GraphQLClient, session: Any) -> None:
    entitlement_id = (await submit(gql, delivery("walk")))["delivery"]["entitlements"][0]["id"]
    await step(gql, "entitlementProvision", entitlement_id, PUBLISHER, "walk-p")
    seen = await gql.data(ENTITLEMENT, {"id": entitlement_id}, as_=PORTAL)
    assert seen["entitlement"]["status"] == "PROVISIONED"

    # The school revokes the entitlements exchange for the portal: at that moment the
    # portal can no longer read or act on the school's entitlements.
    revoked = await as_school(gql, REVOKE, exchange())
    assert revoked.data["dataExchangeRevoke"]["dataExchange"]["state"] == "REVOKED"
    assert consent_error(await gql.execute(ENTITLEMENT, {"id": entitlement_id}, as_=PORTAL))
    assert consent_error(await gql.execute(LIST, {"school": {"value": "104A158"}}, as_=PORTAL))
    unfiltered = await gql.data(LIST, {"school": None}, as_=PORTAL)
    assert entitlement_id not in [n["id"] for n in unfiltered["entitlements"]["nodes"]]
    link = await gql.execute(
        """mutation ($i: EntitlementStepInput!) { entitlementLinkReady(input: $i) {
             __typename } }""",
        {"i": {"entitlementId": entitlement_id, "referenceId": "walk-l"}},
        as_=PORTAL,
    )
    assert consent_error(link)
    # The shop is not affected: its bilateral flow with the licence office goes on.
    assert (await gql.data(ENTITLEMENT, {"id": entitlement_id}, as_=SHOP))["entitlement"]

    # Re-activated: the portal regains access and places its link.
    again = await as_school(gql, ACTIVATE, exchange())
    assert again.data["dataExchangeActivate"]["changed"] is True
    seen = await gql.data(ENTITLEMENT, {"id": entitlement_id}, as_=PORTAL)
    assert seen["entitlement"]["status"] == "PROVISIONED"
    linked = await step(gql, "entitlementLinkReady", entitlement_id, PORTAL, "walk-l2")
    assert linked["entitlement"]["status"] == "LINK_READY"

    changes = [
        a
        for a in await session.scalars(
            select(AuditLog.action).order_by(AuditLog.id.desc()).limit(12)
        )
        if not a.startswith("read.")
    ]
    assert changes[:3] == ["entitlement.link_ready", "dataExchange.activate", "dataExchange.revoke"]
    # The portal's reads are in the trail too, in its role.
    reads = list(
        await session.scalars(select(AuditLog.role).where(AuditLog.action == "read.entitlement"))
    )
    assert "portal" in reads


async def test_activating_twice_changes_nothing(gql: GraphQLClient) -> None:
    result = await as_school(gql, ACTIVATE, exchange())
    assert result.data["dataExchangeActivate"]["changed"] is False


async def test_expired_mandate_stops_confidential_data(gql: GraphQLClient, session: Any) -> None:
    portal = await session.scalar(select(Supplier.id).where(Supplier.code == "demo-portal"))
    await session.execute(
        update(ProcessingAgreement)
        .where(ProcessingAgreement.supplier_id == portal)
        .values(valid_until=today() - timedelta(days=1))
    )
    await session.commit()
    assert consent_error(await gql.execute(LIST, {"school": {"value": "104A158"}}, as_=PORTAL))


async def test_school_that_never_activated_answers_consent_required(gql: GraphQLClient) -> None:
    result = await gql.execute(LIST, {"school": {"value": "104A160"}}, as_=PORTAL)
    assert consent_error(result)
    assert "104A160" in result.errors[0].message


async def test_school_admin_manages_only_its_own_school(gql: GraphQLClient) -> None:
    result = await as_school(gql, REVOKE, exchange(school="104A159"))
    assert result.errors[0].extensions["code"] == "FORBIDDEN"


async def test_school_admin_reads_its_exchanges_and_agreements(gql: GraphQLClient) -> None:
    result = await as_school(
        gql,
        """query { dataExchanges(school: {value: "09QQ"}) {
        state dataType supplier { code } }
        processingAgreements(school: {value: "104A158"}) { reference supplier { code } } }""",
        {},
    )
    assert result.errors is None
    assert {
        "state": "ACTIVE",
        "dataType": "ENTITLEMENTS",
        "supplier": {"code": "demo-portal"},
    } in result.data["dataExchanges"]
    assert "demo-sis" in {a["supplier"]["code"] for a in result.data["processingAgreements"]}


async def test_a_role_that_never_receives_a_data_type_cannot_be_activated(
    gql: GraphQLClient,
) -> None:
    result = await as_school(gql, ACTIVATE, exchange(data_type="FINE_DISTRIBUTION"))
    assert result.data["dataExchangeActivate"]["__typename"] == "RuleViolationError"


async def test_mandate_registration_checks_its_period(gql: GraphQLClient) -> None:
    query = """mutation ($i: ProcessingAgreementInput!) { processingAgreementRegister(input: $i) {
        __typename ... on MutationError { field } } }"""
    day = today()
    result = await as_school(
        gql,
        query,
        {
            "i": {
                "school": {"value": "104A158"},
                "supplierCode": "demo-shop",
                "validFrom": day.isoformat(),
                "validUntil": (day - timedelta(days=1)).isoformat(),
            }
        },
    )
    assert result.data["processingAgreementRegister"] == {
        "__typename": "RuleViolationError",
        "field": "validUntil",
    }


async def test_pupil_data_needs_school_organisation_consent(gql: GraphQLClient) -> None:
    eck = (
        await gql.data("""{ licences(first: 1, filter: {school: {value: "104A158"}}) {
        nodes { person { eckId } } } }""")
    )["licences"]["nodes"][0]["person"]["eckId"]
    query = "query ($e: String!) { pupil(eckId: $e) { __typename } }"
    # The portal has the school's consent for school organisation data...
    assert (await gql.data(query, {"e": eck}, as_=PORTAL))["pupil"]["__typename"] == "Person"
    await as_school(gql, REVOKE, exchange(data_type="SCHOOL_ORGANISATION"))
    # ...until the school revokes it; the shop never had it.
    assert consent_error(await gql.execute(query, {"e": eck}, as_=PORTAL))
    assert consent_error(await gql.execute(query, {"e": eck}, as_=SHOP))
