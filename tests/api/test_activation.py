"""Activation (seed 003) through the GraphQL API, on SQLite and PostgreSQL: every
branch of the licence office's decision tree, the licence it creates (term, set
components, events and audit rows), blocking and unblocking, the reads, and the
seed's scenario from step 19 to step 27 end to end."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import AuditLog, Entitlee, Entitlement, Event, Licence
from domain.entitlements import ActivationCodeState, EntitlementStatus, Variant
from domain.licences import LicenceStatus, add_months
from domain.persons import PersonKind
from domain.products import ProductType
from resolvers.clock import today
from tests.conftest import GraphQLClient, StatementCounter
from tests.factories import (
    MadePerson,
    grant_consent,
    make_entitlement,
    make_group,
    make_licence,
    make_period,
    make_person,
    make_product,
    make_subject,
    school_id,
    supplier_id,
)

LICENSOR = ("demo-publisher", "licensor")
SHOP = ("demo-shop", "seller")
PORTAL = ("demo-portal", "portal")
DASHBOARD = ("demo-dashboard", "dashboard")
V = Variant
S = EntitlementStatus

LICENCE_FIELDS = """
  id status hasAccess expirationDate
  product { productId components { productId } }
  entitlement { id licencesUsed quantity licencesAvailable }
  school { rioId }
"""

ACTIVATE = f"""
mutation ($input: LicenceActivateInput!) {{
  licenceActivate(input: $input) {{
    __typename
    ... on LicenceGranted {{
      rule code reason created replayed
      licence {{ {LICENCE_FIELDS} }}
      passedOver {{ entitlementId rule }}
    }}
    ... on ActivationDenied {{
      rule code message entitlementId licenceId passedOver {{ entitlementId rule }}
    }}
    ... on ValidationError {{ code field problems {{ code field message }} }}
    ... on ReferenceConflictError {{ message }}
  }}
}}
"""

BLOCK = f"""
mutation ($input: LicenceStepInput!) {{
  licenceBlock(input: $input) {{
    __typename
    ... on LicenceChanged {{ replayed licence {{ {LICENCE_FIELDS} }} }}
    ... on MutationError {{ code field message }}
    ... on TransitionNotAllowedError {{ currentStatus action }}
  }}
}}
"""
UNBLOCK = BLOCK.replace("licenceBlock", "licenceUnblock")


@dataclass
class World:
    college: int
    basisschool: int
    lyceum: int


@pytest.fixture
async def world(session: AsyncSession) -> World:
    return World(
        await school_id(session, "104A158"),
        await school_id(session, "104A159"),
        await school_id(session, "104A160"),
    )


async def activate(
    gql: GraphQLClient,
    product: Any,
    person: MadePerson | None = None,
    *,
    eck_id: str | None = None,
    identifiers: list[dict[str, str]] | None = None,
    school: str = "104A158",
    code: str | None = None,
    reference: str | None = None,
    as_: tuple[str, ...] = LICENSOR,
) -> dict[str, Any]:
    person_input: dict[str, Any] = {}
    if person is not None and person.eck_id:
        person_input["eckId"] = person.eck_id
    elif person is not None:
        person_input["identifiers"] = [{"scheme": s, "value": v} for s, v in person.identifiers]
    if eck_id is not None:
        person_input["eckId"] = eck_id
    if identifiers is not None:
        person_input["identifiers"] = identifiers
    input: dict[str, Any] = {
        "productId": product if isinstance(product, str) else product.code,
        "school": {"value": school},
        "person": person_input,
    }
    if code is not None:
        input["activationCode"] = code
    if reference is not None:
        input["referenceId"] = reference
    data = await gql.data(ACTIVATE, {"input": input}, as_=as_)
    return data["licenceActivate"]  # type: ignore[no-any-return]


async def set_status(
    session: AsyncSession, entitlement_id: int, status: S, *, before: S | None
) -> None:
    """What the seller's entitlementBlock/Unblock stores (tested with the delivery)."""
    await session.execute(
        update(Entitlement)
        .where(Entitlement.id == entitlement_id)
        .values(status=status.value, status_before_block=before.value if before else None)
    )
    await session.commit()


async def holder(session: AsyncSession, granted: dict[str, Any]) -> int | None:
    """The person a granted licence was registered for (a licence's holder is read
    under the school's consent for school organisation data, which the licence
    office does not have in these tests)."""
    return await session.scalar(
        select(Licence.person_id).where(Licence.id == int(granted["licence"]["id"]))
    )


async def licences_of(session: AsyncSession, person: MadePerson) -> int:
    return int(
        await session.scalar(
            select(func.count()).select_from(Licence).where(Licence.person_id == person.id)
        )
    )


# --- 1. is the person known? ---------------------------------------------------------------


async def test_unknown_person_is_denied_with_code_3_through_the_api(
    gql: GraphQLClient, session: AsyncSession
) -> None:
    product = await make_product(session)
    await session.commit()
    answer = await activate(gql, product, eck_id="https://ketenid.nl/pilot/" + "0" * 128)
    assert answer["__typename"] == "ActivationDenied"
    assert (answer["rule"], answer["code"]) == ("PERSON_UNKNOWN", 3)


async def test_person_found_by_secondary_id_when_the_eck_id_is_unknown_through_the_api(
    gql: GraphQLClient, session: AsyncSession, world: World
) -> None:
    product = await make_product(session)
    pupil = await make_person(session, school=world.college, nepri="piet@voorbeeld")
    await make_entitlement(session, product=product, variant=V.SCHOOL, school=world.college)
    await session.commit()
    answer = await activate(
        gql,
        product,
        eck_id="https://ketenid.nl/pilot/" + "1" * 128,
        identifiers=[{"scheme": "NEPRI", "value": "piet@voorbeeld"}],
    )
    assert answer["__typename"] == "LicenceGranted"
    assert await holder(session, answer) == pupil.id


# --- 2. an active licence already exists ------------------------------------------------


async def test_existing_licence_is_returned_and_nothing_is_created_through_the_api(
    gql: GraphQLClient, session: AsyncSession, world: World, statements: StatementCounter
) -> None:
    product = await make_product(session)
    pupil = await make_person(session, school=world.college)
    entitlement = await make_entitlement(
        session, product=product, variant=V.SCHOOL, school=world.college
    )
    await session.commit()
    first = await activate(gql, product, pupil)
    statements.reset()
    second = await activate(gql, product, pupil)
    assert first["created"] is True
    assert second["__typename"] == "LicenceGranted"
    assert (second["rule"], second["created"]) == ("EXISTING_LICENCE", False)
    assert second["licence"]["id"] == first["licence"]["id"]
    assert not [s for s in statements.statements if "INSERT " in s.upper()]
    assert await licences_of(session, pupil) == 1
    used = await session.scalar(
        select(Entitlement.licences_used).where(Entitlement.id == entitlement.id)
    )
    assert used == 1


async def test_blocked_licence_denies_without_falling_through_through_the_api(
    gql: GraphQLClient, session: AsyncSession, world: World
) -> None:
    product = await make_product(session)
    pupil = await make_person(session, school=world.college)
    blocked_on = await make_entitlement(
        session, product=product, variant=V.SCHOOL_PUPIL, school=world.college, entitlees=[pupil.id]
    )
    licence = await make_licence(
        session, entitlement=blocked_on, person=pupil.id, status=LicenceStatus.BLOCKED
    )
    await make_entitlement(session, product=product, variant=V.SCHOOL, school=world.college)
    await session.commit()
    answer = await activate(gql, product, pupil)
    assert answer["__typename"] == "ActivationDenied"
    assert answer["rule"] == "LICENCE_BLOCKED"
    assert answer["licenceId"] == str(licence.id)


async def test_licence_on_a_blocked_entitlement_is_blocked_through_the_api(
    gql: GraphQLClient, session: AsyncSession, world: World
) -> None:
    product = await make_product(session)
    pupil = await make_person(session, school=world.college)
    entitlement = await make_entitlement(
        session, product=product, variant=V.SCHOOL, school=world.college, status=S.BLOCKED
    )
    await make_licence(session, entitlement=entitlement, person=pupil.id)
    await session.commit()
    answer = await activate(gql, product, pupil)
    assert answer["rule"] == "LICENCE_BLOCKED"
    assert "entitlement" in answer["message"]


# --- 3a. individual entitlements and activation codes --------------------------------------


async def test_individual_entitlement_naming_the_pupil_grants_through_the_api(
    gql: GraphQLClient, session: AsyncSession, world: World
) -> None:
    product = await make_product(session)
    pupil = await make_person(session, school=world.college)
    named = await make_entitlement(
        session, product=product, variant=V.SCHOOL_PUPIL, school=world.college, entitlees=[pupil.id]
    )
    await make_entitlement(session, product=product, variant=V.SCHOOL, school=world.college)
    await session.commit()
    answer = await activate(gql, product, pupil)
    assert (answer["rule"], answer["code"], answer["created"]) == ("INDIVIDUAL", 0, True)
    assert answer["licence"]["entitlement"]["id"] == str(named.id)
    assert answer["licence"]["entitlement"]["licencesUsed"] == 1


async def test_personal_entitlement_follows_the_pupil_to_any_login_school_through_the_api(
    gql: GraphQLClient, session: AsyncSession, world: World
) -> None:
    product = await make_product(session)
    pupil = await make_person(session, school=None)
    await make_entitlement(
        session, product=product, variant=V.PERSONAL, school=None, entitlees=[pupil.id]
    )
    await session.commit()
    answer = await activate(gql, product, pupil, school="104A160")
    assert answer["rule"] == "INDIVIDUAL"
    assert answer["licence"]["school"] == {"rioId": "104A160"}


async def test_activation_code_grants_once_then_is_used_through_the_api(
    gql: GraphQLClient, session: AsyncSession, world: World
) -> None:
    product = await make_product(session)
    first = await make_person(session, school=world.college)
    second = await make_person(session, school=world.college)
    entitlement = await make_entitlement(
        session,
        product=product,
        variant=V.SCHOOL_PUPIL,
        school=world.college,
        codes=[("CODE-ABC-123", ActivationCodeState.UNUSED)],
    )
    await session.commit()
    granted = await activate(gql, product, first, code="CODE-ABC-123")
    assert granted["rule"] == "ACTIVATION_CODE"
    entitlee = (
        await session.execute(
            select(Entitlee.code_state, Entitlee.person_id).where(
                Entitlee.entitlement_id == entitlement.id
            )
        )
    ).one()
    assert tuple(entitlee) == ("USED", first.id)
    used = await activate(gql, product, second, code="CODE-ABC-123")
    assert (used["rule"], used["code"]) == ("ACTIVATION_CODE_USED", 51)


@pytest.mark.parametrize(
    ("state", "code", "rule", "status_code"),
    [
        (ActivationCodeState.REVOKED, "CODE-R", "ACTIVATION_CODE_REVOKED", 52),
        (ActivationCodeState.UNUSED, "NO-SUCH-CODE", "ACTIVATION_CODE_UNKNOWN", 50),
    ],
)
async def test_revoked_or_unknown_activation_code_is_denied_through_the_api(
    gql: GraphQLClient,
    session: AsyncSession,
    world: World,
    state: ActivationCodeState,
    code: str,
    rule: str,
    status_code: int,
) -> None:
    product = await make_product(session)
    pupil = await make_person(session, school=world.college)
    await make_entitlement(
        session,
        product=product,
        variant=V.SCHOOL_PUPIL,
        school=world.college,
        codes=[("CODE-R", state)],
    )
    await session.commit()
    answer = await activate(gql, product, pupil, code=code)
    assert (answer["rule"], answer["code"]) == (rule, status_code)


# --- 3b. group and subject entitlements (membership at activation time) -------------------


async def test_group_entitlement_grants_a_pupil_in_the_group_now_through_the_api(
    gql: GraphQLClient, session: AsyncSession, world: World
) -> None:
    product = await make_product(session)
    group = await make_group(session, world.college)
    member = await make_person(session, school=world.college, groups=[group])
    outsider = await make_person(session, school=world.college)
    await make_entitlement(
        session, product=product, variant=V.SCHOOL_GROUP, school=world.college, group=group
    )
    await session.commit()
    assert (await activate(gql, product, member))["rule"] == "GROUP"
    assert (await activate(gql, product, outsider))["rule"] == "NO_ENTITLEMENT"


async def test_group_of_a_past_period_does_not_count_through_the_api(
    gql: GraphQLClient, session: AsyncSession, world: World
) -> None:
    product = await make_product(session)
    last_year = await make_period(
        session, world.college, today() - timedelta(days=500), today() - timedelta(days=140)
    )
    old_group = await make_group(session, world.college, last_year)
    pupil = await make_person(session, school=world.college, groups=[old_group])
    await make_entitlement(
        session, product=product, variant=V.SCHOOL_GROUP, school=world.college, group=old_group
    )
    await session.commit()
    assert (await activate(gql, product, pupil))["rule"] == "NO_ENTITLEMENT"


async def test_subject_entitlement_grants_a_pupil_who_follows_it_now_through_the_api(
    gql: GraphQLClient, session: AsyncSession, world: World
) -> None:
    product = await make_product(session)
    subject = await make_subject(session, world.college)
    pupil = await make_person(session, school=world.college, subjects=[subject])
    await make_entitlement(
        session, product=product, variant=V.SCHOOL_SUBJECT, school=world.college, subject=subject
    )
    await make_entitlement(session, product=product, variant=V.SCHOOL, school=world.college)
    await session.commit()
    answer = await activate(gql, product, pupil)
    assert answer["rule"] == "SUBJECT"


# --- 3c. the school entitlement, and the order of the ranks --------------------------------


async def test_school_entitlement_grants_every_enrolled_pupil_through_the_api(
    gql: GraphQLClient, session: AsyncSession, world: World
) -> None:
    product = await make_product(session)
    pupil = await make_person(session, school=world.college)
    elsewhere = await make_person(session, school=world.lyceum)
    await make_entitlement(session, product=product, variant=V.SCHOOL, school=world.college)
    await session.commit()
    assert (await activate(gql, product, pupil))["rule"] == "SCHOOL"
    # A pupil of another school logging in through this school's id gets nothing.
    assert (await activate(gql, product, elsewhere))["rule"] == "NO_ENTITLEMENT"


async def test_group_beats_school_and_individual_beats_group_through_the_api(
    gql: GraphQLClient, session: AsyncSession, world: World
) -> None:
    product = await make_product(session)
    group = await make_group(session, world.college)
    pupils = [await make_person(session, school=world.college, groups=[group]) for _ in range(2)]
    await make_entitlement(session, product=product, variant=V.SCHOOL, school=world.college)
    await make_entitlement(
        session, product=product, variant=V.SCHOOL_GROUP, school=world.college, group=group
    )
    await make_entitlement(
        session,
        product=product,
        variant=V.SCHOOL_PUPIL,
        school=world.college,
        entitlees=[pupils[1].id],
    )
    await session.commit()
    assert (await activate(gql, product, pupils[0]))["rule"] == "GROUP"
    assert (await activate(gql, product, pupils[1]))["rule"] == "INDIVIDUAL"


# --- teachers -------------------------------------------------------------------------------


async def test_teacher_cannot_use_open_school_entitlement_through_the_api(
    gql: GraphQLClient, session: AsyncSession, world: World
) -> None:
    product = await make_product(session)
    teacher = await make_person(session, school=world.college, kind=PersonKind.TEACHER)
    await make_entitlement(session, product=product, variant=V.SCHOOL, school=world.college)
    await session.commit()
    answer = await activate(gql, product, teacher)
    assert answer["__typename"] == "ActivationDenied"
    assert answer["rule"] == "TEACHER_NEEDS_INDIVIDUAL"


async def test_teacher_gets_a_licence_through_school_teacher_by_secondary_id_through_the_api(
    gql: GraphQLClient, session: AsyncSession, world: World
) -> None:
    product = await make_product(session)
    teacher = await make_person(session, school=world.college, kind=PersonKind.TEACHER)
    await make_entitlement(
        session,
        product=product,
        variant=V.SCHOOL_TEACHER,
        school=world.college,
        entitlees=[teacher.id],
    )
    await session.commit()
    answer = await activate(gql, product, teacher)
    assert answer["rule"] == "INDIVIDUAL"
    assert await holder(session, answer) == teacher.id


async def test_pupil_cannot_use_a_teacher_entitlement_through_the_api(
    gql: GraphQLClient, session: AsyncSession, world: World
) -> None:
    product = await make_product(session)
    pupil = await make_person(session, school=world.college)
    await make_entitlement(
        session,
        product=product,
        variant=V.SCHOOL_TEACHER,
        school=world.college,
        entitlees=[pupil.id],
    )
    await session.commit()
    assert (await activate(gql, product, pupil))["rule"] == "TEACHERS_ONLY"


# --- 4. the checks on the entitlement ---------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "rule"),
    [
        ({"status": S.PROVISIONED}, "NOT_LINK_READY"),
        ({"status": S.ENTITLED}, "NOT_LINK_READY"),
        ({"status": S.CANCELLED}, "CANCELLED"),
        ({"status": S.BLOCKED}, "BLOCKED"),
        ({"start": "future"}, "NOT_STARTED"),
        ({"until": "past"}, "ACTIVATION_PERIOD_ENDED"),
        ({"quantity": 2, "licences_used": 2}, "QUANTITY_EXHAUSTED"),
    ],
)
async def test_entitlement_that_fails_a_check_denies_with_that_rule_through_the_api(
    gql: GraphQLClient, session: AsyncSession, world: World, changes: dict, rule: str
) -> None:
    product = await make_product(session)
    pupil = await make_person(session, school=world.college)
    day = today()
    if changes.get("start") == "future":
        changes = {"start": day + timedelta(days=5), "until": day + timedelta(days=50)}
    if changes.get("until") == "past":
        changes = {"start": day - timedelta(days=50), "until": day - timedelta(days=1)}
    entitlement = await make_entitlement(
        session, product=product, variant=V.SCHOOL, school=world.college, **changes
    )
    await session.commit()
    answer = await activate(gql, product, pupil)
    assert answer["__typename"] == "ActivationDenied"
    assert (answer["rule"], answer["code"]) == (rule, 99)
    assert answer["entitlementId"] == str(entitlement.id)
    assert await licences_of(session, pupil) == 0


async def test_failing_individual_entitlement_does_not_stop_the_school_one_through_the_api(
    gql: GraphQLClient, session: AsyncSession, world: World
) -> None:
    product = await make_product(session)
    pupil = await make_person(session, school=world.college)
    blocked = await make_entitlement(
        session,
        product=product,
        variant=V.SCHOOL_PUPIL,
        school=world.college,
        entitlees=[pupil.id],
        status=S.BLOCKED,
    )
    await make_entitlement(session, product=product, variant=V.SCHOOL, school=world.college)
    await session.commit()
    answer = await activate(gql, product, pupil)
    assert answer["rule"] == "SCHOOL"
    assert answer["passedOver"] == [{"entitlementId": str(blocked.id), "rule": "BLOCKED"}]


# --- 5. the licence ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ({"min_expiration_date": date(2031, 7, 31)}, lambda day: date(2031, 7, 31)),
        ({"duration_months": 12}, lambda day: add_months(day, 12)),
        (
            {"min_expiration_date": today() + timedelta(days=10), "duration_months": 6},
            lambda day: add_months(day, 6),
        ),
    ],
)
async def test_expiration_date_follows_the_licence_term_through_the_api(
    gql: GraphQLClient, session: AsyncSession, world: World, term: dict, expected: Any
) -> None:
    product = await make_product(session)
    pupil = await make_person(session, school=world.college)
    await make_entitlement(session, product=product, variant=V.SCHOOL, school=world.college, **term)
    await session.commit()
    answer = await activate(gql, product, pupil)
    assert answer["licence"]["expirationDate"] == expected(today()).isoformat()
    assert answer["licence"]["status"] == "ACTIVATED"
    assert answer["licence"]["hasAccess"] is True


async def test_licence_on_a_set_covers_every_component_through_the_api(
    gql: GraphQLClient, session: AsyncSession, world: World
) -> None:
    parts = [await make_product(session) for _ in range(2)]
    bundle = await make_product(session, type=ProductType.SET, components=[p.id for p in parts])
    pupil = await make_person(session, school=world.college)
    await make_entitlement(session, product=bundle, variant=V.SCHOOL, school=world.college)
    await session.commit()
    answer = await activate(gql, bundle, pupil)
    assert answer["rule"] == "SCHOOL"
    assert sorted(c["productId"] for c in answer["licence"]["product"]["components"]) == sorted(
        p.code for p in parts
    )
    # A click on a component's access link is covered by the set's licence.
    component = await activate(gql, parts[0], pupil)
    assert (component["rule"], component["created"]) == ("EXISTING_LICENCE", False)
    assert component["licence"]["id"] == answer["licence"]["id"]


async def test_component_click_activates_the_set_entitlement_through_the_api(
    gql: GraphQLClient, session: AsyncSession, world: World
) -> None:
    part = await make_product(session)
    bundle = await make_product(session, type=ProductType.COMBI, components=[part.id])
    pupil = await make_person(session, school=world.college)
    await make_entitlement(session, product=bundle, variant=V.SCHOOL, school=world.college)
    await session.commit()
    answer = await activate(gql, part, pupil)
    assert answer["rule"] == "SCHOOL"
    assert answer["licence"]["product"]["productId"] == bundle.code


async def test_activation_writes_its_event_for_shop_portals_and_dashboard_and_an_audit_row(
    gql: GraphQLClient, session: AsyncSession, world: World
) -> None:
    product = await make_product(session)
    pupil = await make_person(session, school=world.college)
    entitlement = await make_entitlement(
        session, product=product, variant=V.SCHOOL, school=world.college
    )
    await session.commit()
    answer = await activate(gql, product, pupil)
    licence_id = int(answer["licence"]["id"])
    event = await session.scalar(select(Event).where(Event.licence_id == licence_id))
    assert event is not None
    assert (event.kind, event.status) == ("LICENCE_ACTIVATED", "ACTIVATED")
    assert (event.school_id, event.entitlement_id, event.delivery_id) == (
        world.college,
        entitlement.id,
        entitlement.delivery_id,
    )
    assert event.actor_supplier_id == await supplier_id(session, "demo-publisher")
    recipients = {(r["role"], r["supplierId"]) for r in event.payload["recipients"]}
    assert recipients == {
        ("SELLER", await supplier_id(session, "demo-shop")),
        ("PORTAL", await supplier_id(session, "demo-portal")),
        ("PORTAL", await supplier_id(session, "demo-lms")),
        ("DASHBOARD", await supplier_id(session, "demo-dashboard")),
    }
    assert event.payload["expirationDate"] == answer["licence"]["expirationDate"]
    audit = await session.scalar(
        select(AuditLog).where(
            AuditLog.object_type == "licence", AuditLog.object_id == str(licence_id)
        )
    )
    assert audit is not None
    assert audit.action == "licence.activate"
    assert audit.detail == {"rule": "SCHOOL", "entitlementId": entitlement.id}


async def test_a_denial_writes_nothing(
    gql: GraphQLClient, session: AsyncSession, world: World, statements: StatementCounter
) -> None:
    product = await make_product(session)
    pupil = await make_person(session, school=world.college)
    await make_entitlement(
        session, product=product, variant=V.SCHOOL, school=world.college, status=S.CANCELLED
    )
    await session.commit()
    statements.reset()
    answer = await activate(gql, product, pupil)
    assert answer["rule"] == "CANCELLED"
    writes = [
        s
        for s in statements.statements
        if any(verb in s.upper() for verb in ("INSERT ", "UPDATE ", "DELETE "))
    ]
    assert writes == []


async def test_an_activation_costs_a_bounded_number_of_statements(
    gql: GraphQLClient, session: AsyncSession, world: World, statements: StatementCounter
) -> None:
    product = await make_product(session)
    pupil = await make_person(session, school=world.college)
    await make_entitlement(session, product=product, variant=V.SCHOOL, school=world.college)
    await session.commit()
    statements.reset()
    input = {"productId": product.code, "school": {"value": "104A158"}, "person": {}}
    input["person"]["eckId"] = pupil.eck_id
    await gql.data(
        "mutation ($input: LicenceActivateInput!) { licenceActivate(input: $input) { "
        "... on LicenceGranted { rule licence { id expirationDate } } } }",
        {"input": input},
        as_=LICENSOR,
    )
    # principal, school, product; on PostgreSQL the facts in one statement, then the
    # entitlement locked, the person's licences read again and the registration in one
    # statement; on SQLite person, memberships, licences, candidates, watchers, then
    # seat, licence, event and audit row.
    limit = 12 if session.bind.dialect.name == "sqlite" else 8
    assert statements.count <= limit, statements.statements


# --- block and unblock -----------------------------------------------------------------------


async def test_seller_blocks_and_unblocks_one_licence_through_the_api(
    gql: GraphQLClient, session: AsyncSession, world: World
) -> None:
    product = await make_product(session)
    pupil = await make_person(session, school=world.college)
    await make_entitlement(session, product=product, variant=V.SCHOOL, school=world.college)
    await session.commit()
    licence_id = (await activate(gql, product, pupil))["licence"]["id"]
    blocked = (await gql.data(BLOCK, {"input": {"licenceId": licence_id}}, as_=SHOP))[
        "licenceBlock"
    ]
    assert blocked["__typename"] == "LicenceChanged"
    assert (blocked["licence"]["status"], blocked["licence"]["hasAccess"]) == ("BLOCKED", False)
    denied = await activate(gql, product, pupil)
    assert denied["rule"] == "LICENCE_BLOCKED"
    again = (await gql.data(BLOCK, {"input": {"licenceId": licence_id}}, as_=SHOP))["licenceBlock"]
    assert again["__typename"] == "TransitionNotAllowedError"
    assert again["currentStatus"] == "BLOCKED"
    unblocked = (await gql.data(UNBLOCK, {"input": {"licenceId": licence_id}}, as_=SHOP))[
        "licenceUnblock"
    ]
    assert (unblocked["licence"]["status"], unblocked["licence"]["hasAccess"]) == (
        "ACTIVATED",
        True,
    )
    kinds = list(
        await session.scalars(
            select(Event.kind).where(Event.licence_id == int(licence_id)).order_by(Event.id)
        )
    )
    assert kinds == ["LICENCE_ACTIVATED", "LICENCE_BLOCKED", "LICENCE_UNBLOCKED"]
    actions = list(
        await session.scalars(
            select(AuditLog.action)
            .where(AuditLog.object_type == "licence", AuditLog.object_id == licence_id)
            .order_by(AuditLog.id)
        )
    )
    assert actions == ["licence.activate", "licence.block", "licence.unblock"]


async def test_another_seller_cannot_block_and_learns_nothing_through_the_api(
    gql: GraphQLClient, session: AsyncSession, world: World
) -> None:
    product = await make_product(session)
    pupil = await make_person(session, school=world.college)
    await make_entitlement(session, product=product, variant=V.SCHOOL, school=world.college)
    await session.commit()
    licence_id = (await activate(gql, product, pupil))["licence"]["id"]
    other = ("demo-combined", "seller")
    refused = (await gql.data(BLOCK, {"input": {"licenceId": licence_id}}, as_=other))[
        "licenceBlock"
    ]
    missing = (await gql.data(BLOCK, {"input": {"licenceId": "999999999"}}, as_=SHOP))[
        "licenceBlock"
    ]
    assert refused["__typename"] == missing["__typename"] == "NotFoundError"
    assert refused["code"] == missing["code"] == 40
    # The product's own licence office may block it.
    by_publisher = (await gql.data(BLOCK, {"input": {"licenceId": licence_id}}, as_=LICENSOR))[
        "licenceBlock"
    ]
    assert by_publisher["licence"]["status"] == "BLOCKED"


async def test_blocking_the_entitlement_blocks_its_licences_and_unblocking_restores_them(
    gql: GraphQLClient, session: AsyncSession, world: World
) -> None:
    product = await make_product(session)
    pupil = await make_person(session, school=world.college)
    entitlement = await make_entitlement(
        session, product=product, variant=V.SCHOOL, school=world.college
    )
    await session.commit()
    licence_id = (await activate(gql, product, pupil))["licence"]["id"]
    lookup = """query ($eck: String!) { pupil(eckId: $eck) {
                  ... on Person { licences { id status hasAccess } } } }"""
    await set_status(session, entitlement.id, S.BLOCKED, before=S.LINK_READY)
    blocked = (await gql.data(lookup, {"eck": pupil.eck_id}, as_=PORTAL))["pupil"]["licences"]
    assert blocked == [{"id": licence_id, "status": "BLOCKED", "hasAccess": False}]
    await set_status(session, entitlement.id, S.LINK_READY, before=None)
    restored = (await gql.data(lookup, {"eck": pupil.eck_id}, as_=PORTAL))["pupil"]["licences"]
    assert restored == [{"id": licence_id, "status": "ACTIVATED", "hasAccess": True}]


async def test_expired_licence_shows_expired_and_gives_no_access_through_the_api(
    gql: GraphQLClient, session: AsyncSession, world: World
) -> None:
    product = await make_product(session)
    pupil = await make_person(session, school=world.college)
    entitlement = await make_entitlement(
        session, product=product, variant=V.SCHOOL, school=world.college
    )
    await make_licence(
        session,
        entitlement=entitlement,
        person=pupil.id,
        expiration_date=today() - timedelta(days=1),
    )
    await session.commit()
    lookup = """query ($eck: String!) { pupil(eckId: $eck) {
                  ... on Person { licences { status hasAccess } } } }"""
    found = (await gql.data(lookup, {"eck": pupil.eck_id}, as_=PORTAL))["pupil"]["licences"]
    assert found == [{"status": "EXPIRED", "hasAccess": False}]
    # One licence per person per entitlement: the used entitlement is no candidate again.
    assert (await activate(gql, product, pupil))["rule"] == "NO_ENTITLEMENT"


# --- reads ------------------------------------------------------------------------------------


async def test_licences_used_against_quantity_and_who_holds_a_licence_through_the_api(
    gql: GraphQLClient, session: AsyncSession, world: World
) -> None:
    product = await make_product(session)
    pupils = [await make_person(session, school=world.college) for _ in range(3)]
    entitlement = await make_entitlement(
        session, product=product, variant=V.SCHOOL, school=world.college, quantity=5
    )
    await session.commit()
    for pupil in pupils:
        await activate(gql, product, pupil)
    query = """query ($school: OrganisationIdentifierInput!, $product: String!, $id: ID!) {
             entitlement(id: $id) { quantity licencesUsed licencesAvailable }
             licenceHolders(school: $school, productId: $product) {
               totalCount nodes { person { eckId } hasAccess }
             }
           }"""
    variables = {"school": {"value": "09QQ"}, "product": product.code, "id": str(entitlement.id)}
    data = await gql.data(query.replace("person { eckId }", ""), variables, as_=SHOP)
    assert data["entitlement"] == {"quantity": 5, "licencesUsed": 3, "licencesAvailable": 2}
    holders = data["licenceHolders"]
    assert holders["totalCount"] == 3
    # Who holds them is the school's organisation data: the shop needs its consent.
    refused = await gql.execute(query, variables, as_=SHOP)
    assert {e.extensions["code"] for e in refused.errors} == {"CONSENT_REQUIRED"}
    await grant_consent(
        session,
        school=world.college,
        supplier=await supplier_id(session, "demo-shop"),
        role="seller",
        data_types=["SCHOOL_ORGANISATION"],
    )
    await session.commit()
    holders = (await gql.data(query, variables, as_=SHOP))["licenceHolders"]
    assert sorted(n["person"]["eckId"] for n in holders["nodes"]) == sorted(
        p.eck_id for p in pupils
    )


# --- input, roles, idempotency -------------------------------------------------------------------


async def test_refused_input_reports_every_problem_with_its_code(
    gql: GraphQLClient, session: AsyncSession
) -> None:
    answer = await activate(
        gql,
        "9789000000000",
        eck_id="https://ketenid.nl/pilot/xyz",
        school="999A999",
    )
    assert answer["__typename"] == "ValidationError"
    assert [(p["code"], p["field"]) for p in answer["problems"]] == [
        (1, "productId"),
        (1, "person.eckId"),
        (9, "school"),
    ]
    other_publishers = await make_product(session, publisher="demo-combined")
    await session.commit()
    answer = await activate(gql, other_publishers, identifiers=[])
    assert [(p["code"], p["field"]) for p in answer["problems"]] == [
        (2, "person.eckId"),
        (11, "productId"),
    ]


async def test_only_a_licence_office_may_activate(gql: GraphQLClient) -> None:
    result = await gql.execute(
        ACTIVATE,
        {"input": {"productId": "x", "school": {"value": "09QQ"}, "person": {}}},
        as_=PORTAL,
    )
    assert result.errors[0].extensions["code"] == "FORBIDDEN"


async def test_login_by_brin6_of_a_location_finds_its_school_through_the_api(
    gql: GraphQLClient, session: AsyncSession, world: World
) -> None:
    product = await make_product(session)
    pupil = await make_person(session, school=world.college)
    await make_entitlement(session, product=product, variant=V.SCHOOL, school=world.college)
    await session.commit()
    # 09QQ00 names two locations of Het Voorbeeld College, no provider.
    answer = await activate(gql, product, pupil, school="09QQ00")
    assert answer["rule"] == "SCHOOL"
    assert answer["licence"]["school"] == {"rioId": "104A158"}


async def test_a_repeated_reference_id_is_answered_the_same_through_the_api(
    gql: GraphQLClient, session: AsyncSession, world: World
) -> None:
    product = await make_product(session)
    pupil = await make_person(session, school=world.college)
    await make_entitlement(session, product=product, variant=V.SCHOOL, school=world.college)
    await session.commit()
    first = await activate(gql, product, pupil, reference="click-1")
    again = await activate(gql, product, pupil, reference="click-1")
    assert (first["created"], first["replayed"]) == (True, False)
    assert (again["created"], again["replayed"], again["rule"]) == (True, True, "SCHOOL")
    assert again["licence"]["id"] == first["licence"]["id"]
    assert await licences_of(session, pupil) == 1


# --- seed 003, steps 19 to 27 ---------------------------------------------------------------


async def test_seed_003_activation_from_login_to_the_portal_link(
    gql: GraphQLClient, session: AsyncSession
) -> None:
    """In gebruik nemen van digitaal leermiddel, steps 19-27, after a delivery (seed 004)
    travelled ENTITLED → PROVISIONED → LINK_READY through the API."""
    from tests.api.test_delivery import PUBLISHER, delivery, line, step, submit

    product = await make_product(session)  # published by demo-publisher
    college = await school_id(session, "104A158")
    pupil = await make_person(session, school=college)
    await session.commit()
    submitted = await submit(
        gql,
        delivery(
            "seed-003",
            school="09QQ",
            orderLines=[line(productId=product.code, quantity=25)],
        ),
    )
    entitlement_id = submitted["delivery"]["entitlements"][0]["id"]
    await step(gql, "entitlementProvision", entitlement_id, PUBLISHER, "lk-1")
    ready = await step(gql, "entitlementLinkReady", entitlement_id, PORTAL, "lp-1")
    assert ready["entitlement"]["status"] == "LINK_READY"

    # 19-21: the pupil logged in (ECK iD and schoolId from the federated IdP); the
    # licence office looks up the entitlements for this pupil and school and runs the
    # decision tree.
    granted = await activate(gql, product, pupil, school="09QQ00")
    # 22-24: a licence is created and the pupil may use the material.
    assert granted["__typename"] == "LicenceGranted"
    assert (granted["rule"], granted["code"], granted["created"]) == ("SCHOOL", 0, True)
    licence = granted["licence"]
    assert licence["entitlement"]["id"] == entitlement_id
    assert licence["expirationDate"] == add_months(today(), 12).isoformat()
    assert licence["hasAccess"] is True

    # 25: the activation message goes to the shop, the portals and the dashboard.
    event = await session.scalar(select(Event).where(Event.licence_id == int(licence["id"])))
    assert event.kind == "LICENCE_ACTIVATED"
    roles = sorted(r["role"] for r in event.payload["recipients"])
    assert roles == ["DASHBOARD", "PORTAL", "PORTAL", "SELLER"]

    # 26: the shop sees the activation on its entitlement; so does the dashboard.
    for who in (SHOP, DASHBOARD):
        seen = await gql.data(
            """query ($id: ID!) { entitlement(id: $id) { licencesUsed licences { id } } }""",
            {"id": entitlement_id},
            as_=who,
        )
        assert seen["entitlement"]["licencesUsed"] == 1
        assert [lic["id"] for lic in seen["entitlement"]["licences"]] == [licence["id"]]

    # 27: the portal keeps the access link visible until the licence's expirationDate.
    portal_view = await gql.data(
        """query ($eck: String!) { pupil(eckId: $eck) { ... on Person {
             licences { id status hasAccess expirationDate product { productId } } } } }""",
        {"eck": pupil.eck_id},
        as_=PORTAL,
    )
    assert portal_view["pupil"]["licences"] == [
        {
            "id": licence["id"],
            "status": "ACTIVATED",
            "hasAccess": True,
            "expirationDate": licence["expirationDate"],
            "product": {"productId": product.code},
        }
    ]
    # A second click the next lesson: the same licence, nothing new.
    again = await activate(gql, product, pupil, school="09QQ00")
    assert (again["rule"], again["licence"]["id"]) == ("EXISTING_LICENCE", licence["id"])


async def test_who_holds_a_licence_needs_the_schools_consent(gql: GraphQLClient) -> None:
    # demo-portal has the ACTIVATIONS exchange for 104A158 and 104A159, not for 104A160.
    query = """query ($school: OrganisationIdentifierInput!) {
                 licenceHolders(school: $school, productId: "9789000000012") { totalCount } }"""
    allowed = await gql.execute(query, {"school": {"value": "104A158"}}, as_=PORTAL)
    assert allowed.errors is None
    refused = await gql.execute(query, {"school": {"value": "104A160"}}, as_=PORTAL)
    assert refused.errors[0].extensions["code"] == "CONSENT_REQUIRED"
