"""Who receives an entitlement's events, role by role, from one table."""

from __future__ import annotations

import pytest

from domain.entitlements import RecipientRole
from domain.roles import DataType, Role
from domain.visibility import EntitlementFacts, SchoolConsent, Viewer, may_see

SHOP, PUBLISHER, PORTAL, OTHER_PORTAL, DASHBOARD, SCHOOL = 1, 2, 3, 4, 5, 100

ENTITLEMENT = EntitlementFacts(
    school_id=SCHOOL,
    seller_id=SHOP,
    publisher_id=PUBLISHER,
    recipients=frozenset(
        {
            (PUBLISHER, RecipientRole.LICENSOR),
            (PORTAL, RecipientRole.PORTAL),
            (DASHBOARD, RecipientRole.DASHBOARD),
        }
    ),
)


def consent(*suppliers: tuple[int, Role], mandates: tuple[int, ...] = ()) -> SchoolConsent:
    return SchoolConsent(
        activations=frozenset(
            (supplier, role, data_type)
            for supplier, role in suppliers
            for data_type in (DataType.ENTITLEMENTS, DataType.ACTIVATIONS)
        ),
        mandates=frozenset(mandates),
    )


FULL = consent((PORTAL, Role.PORTAL), (DASHBOARD, Role.DASHBOARD), mandates=(PORTAL, DASHBOARD))
NONE = SchoolConsent()
NO_MANDATE = consent((PORTAL, Role.PORTAL), (DASHBOARD, Role.DASHBOARD))


def viewer(supplier: int, *roles: Role, school: int | None = None) -> Viewer:
    return Viewer(supplier, frozenset(roles), school)


@pytest.mark.parametrize(
    ("who", "school_consent", "expected"),
    [
        # The shop that sold it and the publisher's licence office: no consent needed.
        (viewer(SHOP, Role.SELLER), NONE, True),
        (viewer(PUBLISHER, Role.LICENSOR), NONE, True),
        # Another shop, another licence office: never.
        (viewer(99, Role.SELLER), FULL, False),
        (viewer(99, Role.LICENSOR), FULL, False),
        # A recipient portal or dashboard: only with activation and mandate.
        (viewer(PORTAL, Role.PORTAL), FULL, True),
        (viewer(PORTAL, Role.PORTAL), NO_MANDATE, False),
        (viewer(PORTAL, Role.PORTAL), NONE, False),
        (viewer(DASHBOARD, Role.DASHBOARD), FULL, True),
        (viewer(DASHBOARD, Role.DASHBOARD), NONE, False),
        # A portal the entitlement was not sent to, even with the school's consent.
        (viewer(OTHER_PORTAL, Role.PORTAL), consent((OTHER_PORTAL, Role.PORTAL)), False),
        # A recipient in one role does not see it through another role it holds.
        (viewer(PORTAL, Role.DASHBOARD), FULL, False),
        # The school itself, and only its own.
        (viewer(50, Role.SCHOOL, school=SCHOOL), NONE, True),
        (viewer(50, Role.SCHOOL, school=SCHOOL + 1), NONE, False),
        # The administration system receives no entitlements.
        (viewer(60, Role.SIS), FULL, False),
        # The operator sees everything.
        (viewer(70, Role.OPERATOR), NONE, True),
        # Several roles: the most permissive decides.
        (viewer(PORTAL, Role.SELLER, Role.PORTAL), FULL, True),
    ],
)
def test_who_receives_an_entitlements_events(
    who: Viewer, school_consent: SchoolConsent, expected: bool
) -> None:
    assert may_see(who, ENTITLEMENT, school_consent) is expected


def test_activations_need_their_own_data_exchange() -> None:
    entitlements_only = SchoolConsent(
        activations=frozenset({(PORTAL, Role.PORTAL, DataType.ENTITLEMENTS)}),
        mandates=frozenset({PORTAL}),
    )
    portal = viewer(PORTAL, Role.PORTAL)
    assert may_see(portal, ENTITLEMENT, entitlements_only, DataType.ENTITLEMENTS)
    assert not may_see(portal, ENTITLEMENT, entitlements_only, DataType.ACTIVATIONS)
    assert may_see(viewer(SHOP, Role.SELLER), ENTITLEMENT, NONE, DataType.ACTIVATIONS)


def test_a_private_purchase_reaches_no_portal() -> None:
    private = EntitlementFacts(
        school_id=None,
        seller_id=SHOP,
        publisher_id=PUBLISHER,
        recipients=frozenset({(PORTAL, RecipientRole.PORTAL)}),
    )
    assert not may_see(viewer(PORTAL, Role.PORTAL), private, NONE)
    assert may_see(viewer(SHOP, Role.SELLER), private, NONE)
