"""The permission matrix: every role × every operation × the school's consent
present / absent / revoked / expired, with the expected answer derived from ONE
table below. Every root field of the schema must have a row (a new resolver
without a row fails `test_every_root_field_is_in_the_matrix`), so no operation
ships without a decided access rule.

The rules the table encodes (DOMAIN.md §2 and §7), written out here rather than
imported from domain/, so the test checks the resolvers against the agreements:
a role outside the operation's roles is FORBIDDEN (transport code 3); school data
needs the school's activation and, when confidential, a valid mandate (else
CONSENT_REQUIRED, transport code 4); shop and licence office are exempt for
entitlements and activations; the administration system needs the mandate only;
the school itself and the operator need nothing. A caller with no relation to the
pupil asked for (no entitlement of the pupil it takes part in, and the school has no
data exchange or processing agreement with it) is told what an unknown identifier
is told (NOT_FOUND), so that it cannot learn whether the pupil exists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import delete, func, select

from db.models import DataExchange, Organisation, ProcessingAgreement, Supplier
from resolvers.api import schema
from resolvers.clock import today
from tests.conftest import GraphQLClient

SCHOOL = "104A158"

CALLERS: dict[str, tuple[str, ...]] = {
    "seller": ("demo-shop", "seller"),
    "licensor": ("demo-publisher", "licensor"),
    "portal": ("demo-portal", "portal"),
    "dashboard": ("demo-dashboard", "dashboard"),
    "sis": ("demo-sis", "sis"),
    "school": ("demo-school-admin", "school"),
    "operator": ("operator", "operator"),
}
ALL = frozenset(CALLERS)
STATES = ("present", "absent", "revoked", "expired")

# Which roles receive which data type, and which need what (DOMAIN.md §7).
RECEIVES = {
    "SCHOOL_ORGANISATION": {"seller", "licensor", "portal", "dashboard", "sis"},
    "ENTITLEMENTS": {"seller", "licensor", "portal", "dashboard"},
    "ACTIVATIONS": {"seller", "licensor", "portal", "dashboard"},
}
BILATERAL = {"ENTITLEMENTS": {"seller", "licensor"}, "ACTIVATIONS": {"seller", "licensor"}}


@dataclass(frozen=True)
class Operation:
    """One root field: how to call it, who may, and which school data it reads."""

    name: str
    query: str
    roles: frozenset[str]
    data_type: str | None = None
    variables: dict[str, Any] = field(default_factory=dict)
    needs_pupil: bool = False
    about_person: bool = False


def op(
    name: str, query: str, roles: frozenset[str] | set[str], data_type: str | None = None, **kw: Any
) -> Operation:
    return Operation(name, query, frozenset(roles), data_type, **kw)


MUTATION = "mutation { %s(input: %s) { __typename } }"

OPERATIONS: list[Operation] = [
    op("organisation", '{ organisation(identifier: {value: "104A158"}) { __typename } }', ALL),
    op("organisations", "{ organisations(first: 1) { nodes { id } } }", ALL),
    op("products", "{ products(first: 1) { nodes { id } } }", ALL),
    op(
        "entitlements",
        '{ entitlements(first: 5, filter: {school: {value: "104A158"}}) { nodes { id } } }',
        {"seller", "licensor", "portal", "dashboard", "school", "operator"},
        "ENTITLEMENTS",
    ),
    op(
        "licences",
        '{ licences(first: 5, filter: {school: {value: "104A158"}}) { nodes { id } } }',
        {"seller", "licensor", "portal", "dashboard", "school", "operator"},
        "ACTIVATIONS",
    ),
    op(
        "pupil",
        "query ($eck: String!) { pupil(eckId: $eck) { __typename } }",
        {"seller", "licensor", "portal", "sis", "school", "operator"},
        "SCHOOL_ORGANISATION",
        needs_pupil=True,
        about_person=True,
    ),
    op(
        "person",
        '{ person(identifier: {scheme: ASI, value: "LL100000", school: {value: "104A158"}}) '
        "{ __typename } }",
        {"seller", "licensor", "portal", "sis", "school", "operator"},
        "SCHOOL_ORGANISATION",
        about_person=True,
    ),
    op(
        "entitlement",
        '{ entitlement(id: "1") { id } }',
        {"seller", "licensor", "portal", "dashboard", "operator"},
        "ENTITLEMENTS",
    ),
    op("delivery", '{ delivery(referenceId: "demo-1") { id } }', {"seller", "operator"}),
    op(
        "licenceHolders",
        '{ licenceHolders(school: {value: "104A158"}, productId: "9789000000012") '
        "{ nodes { id } } }",
        {"seller", "licensor", "portal", "dashboard", "school", "operator"},
        "ACTIVATIONS",
    ),
    op(
        "dashboard",
        '{ dashboard(school: {value: "104A158"}) { entitlementsByStatus { status } } }',
        {"seller", "dashboard", "school", "operator"},
        "ENTITLEMENTS",
    ),
    op(
        "auditTrail",
        '{ auditTrail(school: {value: "104A158"}) { nodes { action } } }',
        {"school", "operator"},
    ),
    op(
        "dataExchanges",
        '{ dataExchanges(school: {value: "104A158"}) { id } }',
        {"school", "operator"},
    ),
    op(
        "processingAgreements",
        '{ processingAgreements(school: {value: "104A158"}) { id } }',
        {"school", "operator"},
    ),
]

# Mutations: the role gate comes before the input is used, so a minimal valid input
# shows it. Consent on mutations is tested in test_consent.py.
STEP = '{entitlementId: "1", referenceId: "matrix"}'
SCHOOL_INPUT = (
    '{school: {value: "104A158"}, supplierCode: "demo-portal", role: PORTAL, '
    "dataType: ENTITLEMENTS}"
)
MUTATIONS: dict[str, tuple[set[str], str]] = {
    "deliverySubmit": ({"seller", "operator"}, "{}"),
    "entitlementProvision": ({"licensor", "operator"}, STEP),
    "entitlementLinkReady": ({"portal", "operator"}, STEP),
    "entitlementReportFailure": (
        {"licensor", "portal", "operator"},
        '{entitlementId: "1", referenceId: "m", code: 7, message: "m"}',
    ),
    "entitlementCancel": ({"seller", "operator"}, STEP),
    "entitlementBlock": ({"seller", "operator"}, STEP),
    "entitlementUnblock": ({"seller", "operator"}, STEP),
    "entitlementLowerQuantity": (
        {"seller", "operator"},
        '{entitlementId: "1", referenceId: "m", quantity: 1}',
    ),
    "schoolRosterUpsert": (
        {"sis", "operator"},
        '{school: {value: "104A158"}, period: {code: "x", startDate: "2026-08-01", '
        'endDate: "2027-07-31"}, subjects: [], groups: [], pupils: [], teachers: []}',
    ),
    "licenceActivate": (
        {"licensor", "operator"},
        '{productId: "9789000000012", school: {value: "104A158"}, '
        'person: {eckId: "https://ketenid.nl/pilot/%s", identifiers: []}}' % ("0" * 128),
    ),
    "licenceBlock": ({"seller", "licensor", "operator"}, '{licenceId: "1"}'),
    "licenceUnblock": ({"seller", "licensor", "operator"}, '{licenceId: "1"}'),
    "personErase": ({"operator"}, '{identifier: {scheme: ECK_ID, value: "x"}, reason: "matrix"}'),
    "dataExchangeActivate": ({"school", "operator"}, SCHOOL_INPUT),
    "dataExchangeRevoke": ({"school", "operator"}, SCHOOL_INPUT),
    "processingAgreementRegister": (
        {"school", "operator"},
        '{school: {value: "104A158"}, supplierCode: "demo-shop", validFrom: "2026-08-01"}',
    ),
}


def expected(operation: Operation, role: str, state: str) -> str:
    if role not in operation.roles:
        return "FORBIDDEN"
    data_type = operation.data_type
    if data_type is None or role in {"school", "operator"}:
        return "ALLOWED"
    if role in BILATERAL.get(data_type, set()):
        return "ALLOWED"
    if role == "sis":  # the mandate only
        if operation.about_person and state == "absent":
            # The demo pupils' entitlements are the shop's, the publisher's and the
            # portals': the administration system without the school's agreement
            # has no relation to the pupil.
            return "NOT_FOUND"
        return "ALLOWED" if state in {"present", "revoked"} else "CONSENT_REQUIRED"
    return "ALLOWED" if state == "present" else "CONSENT_REQUIRED"


async def set_consent(session: Any, supplier_code: str, role: str, state: str) -> None:
    """Give the caller exactly the consent of `state` at the school."""
    school = await session.scalar(select(Organisation.id).where(Organisation.rio_id == SCHOOL))
    supplier = await session.scalar(select(Supplier.id).where(Supplier.code == supplier_code))
    await session.execute(
        delete(DataExchange).where(
            DataExchange.school_id == school, DataExchange.supplier_id == supplier
        )
    )
    await session.execute(
        delete(ProcessingAgreement).where(
            ProcessingAgreement.school_id == school, ProcessingAgreement.supplier_id == supplier
        )
    )
    day = today()
    if state != "absent":
        revoked = await session.scalar(select(func.now())) if state == "revoked" else None
        for data_type, receivers in RECEIVES.items():
            if role in receivers:
                session.add(
                    DataExchange(
                        school_id=school,
                        supplier_id=supplier,
                        role=role,
                        data_type=data_type,
                        revoked_at=revoked,
                    )
                )
        session.add(
            ProcessingAgreement(
                school_id=school,
                supplier_id=supplier,
                valid_from=day - timedelta(days=30),
                valid_until=day - timedelta(days=1) if state == "expired" else None,
            )
        )
    await session.commit()


def outcome(result: Any) -> str:
    if not result.errors:
        found = next(iter((result.data or {}).values()), None)
        if isinstance(found, dict) and found.get("__typename") == "PersonNotFound":
            return "NOT_FOUND"
        return "ALLOWED"
    return str(result.errors[0].extensions.get("code", "ERROR"))


CASES = [(o, r, s) for o in OPERATIONS for r in CALLERS for s in STATES]


@pytest.mark.parametrize(
    ("operation", "role", "state"), CASES, ids=[f"{o.name}-{r}-{s}" for o, r, s in CASES]
)
async def test_permission_matrix(
    gql: GraphQLClient, session: Any, operation: Operation, role: str, state: str
) -> None:
    caller = CALLERS[role]
    if role not in {"school", "operator"}:
        await set_consent(session, caller[0], role, state)
    variables = dict(operation.variables)
    if operation.needs_pupil:
        variables["eck"] = await _enrolled_pupil(session)
    result = await gql.execute(
        operation.query, variables, as_=caller, school=SCHOOL if role == "school" else None
    )
    assert outcome(result) == expected(operation, role, state), result.errors


@pytest.mark.parametrize(("mutation", "role"), [(m, r) for m in MUTATIONS for r in CALLERS])
async def test_mutation_role_gate(gql: GraphQLClient, mutation: str, role: str) -> None:
    roles, input = MUTATIONS[mutation]
    result = await gql.execute(
        MUTATION % (mutation, input), as_=CALLERS[role], school=SCHOOL if role == "school" else None
    )
    codes = [e.extensions.get("code") for e in result.errors or []]
    assert ("FORBIDDEN" in codes) is (role not in roles), result.errors


async def _enrolled_pupil(session: Any) -> str:
    """A pupil of the school holding a licence on one of the demo's entitlements
    (so the shop, the publisher and the portals are related to it)."""
    from db.models import Enrolment, Licence, PersonIdentifier

    school = await session.scalar(select(Organisation.id).where(Organisation.rio_id == SCHOOL))
    return str(
        await session.scalar(
            select(PersonIdentifier.value)
            .join(Enrolment, Enrolment.person_id == PersonIdentifier.person_id)
            .join(Licence, Licence.person_id == PersonIdentifier.person_id)
            .where(Enrolment.school_id == school, PersonIdentifier.scheme == "ECK_ID")
            .order_by(PersonIdentifier.person_id)
            .limit(1)
        )
    )


def test_every_root_field_is_in_the_matrix() -> None:
    covered = {o.name for o in OPERATIONS} | set(MUTATIONS) | set(EXTRA_COVERED)
    fields = set()
    for root in (schema.query, schema.mutation, schema.subscription):
        if root is not None:
            fields |= {
                f.graphql_name or _camel(f.python_name)
                for f in root.__strawberry_definition__.fields
            }
    missing = sorted(fields - covered)
    assert not missing, f"root fields without a row in the permission matrix: {missing}"


# Root fields whose access rules are tested in their own modules (listed here so
# the matrix knows they were decided): name → where.
EXTRA_COVERED: dict[str, str] = {
    "deliveryProgress": "tests/api/test_live_access.py",
    "entitlementsReachingStatus": "tests/api/test_live_access.py",
    "licenceActivations": "tests/api/test_live_access.py",
    "pushEndpoints": "tests/push/test_registry.py",
    "pushEndpoint": "tests/push/test_registry.py",
    "pushEndpointRegister": "tests/push/test_registry.py",
    "pushEndpointChange": "tests/push/test_registry.py",
    "pushEndpointRetryNow": "tests/push/test_registry.py",
    "pushEndpointRemove": "tests/push/test_registry.py",
    "pushSeedRequest": "tests/push/test_registry.py",
}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)
