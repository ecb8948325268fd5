"""The consent decision, branch by branch, from one table per rule."""

from __future__ import annotations

import pytest

from domain.consent import (
    Access,
    ConsentFacts,
    Disclosure,
    best,
    decide,
    disclose,
    needs_activation,
    needs_mandate,
    person_access,
)
from domain.roles import DataType, Role

FULL = ConsentFacts(involved=True, activated=True, mandate_valid=True)
NO_MANDATE = ConsentFacts(involved=True, activated=True, mandate_valid=False)
NOT_ACTIVATED = ConsentFacts(involved=True, activated=False, mandate_valid=True)
NOTHING = ConsentFacts(involved=True)
OUTSIDER = ConsentFacts(involved=False, activated=True, mandate_valid=True)


@pytest.mark.parametrize(
    ("role", "data_type", "facts", "expected"),
    [
        # Portals and dashboards need activation and, for confidential data, a mandate.
        (Role.PORTAL, DataType.ENTITLEMENTS, FULL, Access.ALLOWED),
        (Role.PORTAL, DataType.ENTITLEMENTS, NO_MANDATE, Access.CONSENT_REQUIRED),
        (Role.PORTAL, DataType.ENTITLEMENTS, NOT_ACTIVATED, Access.CONSENT_REQUIRED),
        (Role.DASHBOARD, DataType.ACTIVATIONS, NOTHING, Access.CONSENT_REQUIRED),
        (Role.DASHBOARD, DataType.ACTIVATIONS, FULL, Access.ALLOWED),
        # School info is not confidential: activation alone is enough.
        (Role.PORTAL, DataType.SCHOOL_INFO, NO_MANDATE, Access.ALLOWED),
        (Role.PORTAL, DataType.SCHOOL_INFO, NOT_ACTIVATED, Access.CONSENT_REQUIRED),
        # Shop and licence office: bilateral contract, no activation needed.
        (Role.SELLER, DataType.ENTITLEMENTS, NOTHING, Access.ALLOWED),
        (Role.SELLER, DataType.ACTIVATIONS, NOTHING, Access.ALLOWED),
        (Role.LICENSOR, DataType.ENTITLEMENTS, NOTHING, Access.ALLOWED),
        # ...but school organisation data needs the school's consent for everyone.
        (Role.SELLER, DataType.SCHOOL_ORGANISATION, NOTHING, Access.CONSENT_REQUIRED),
        (Role.LICENSOR, DataType.SCHOOL_ORGANISATION, NO_MANDATE, Access.CONSENT_REQUIRED),
        (Role.LICENSOR, DataType.SCHOOL_ORGANISATION, FULL, Access.ALLOWED),
        # The administration system needs the mandate, not an activation.
        (Role.SIS, DataType.SCHOOL_ORGANISATION, NOT_ACTIVATED, Access.ALLOWED),
        (Role.SIS, DataType.SCHOOL_ORGANISATION, NO_MANDATE, Access.CONSENT_REQUIRED),
        # Fine distribution (addresses) only ever goes to the shop.
        (Role.PORTAL, DataType.FINE_DISTRIBUTION, FULL, Access.SCOPE_REQUIRED),
        (Role.SIS, DataType.ENTITLEMENTS, FULL, Access.SCOPE_REQUIRED),
        # Not involved: never allowed, whatever the consent.
        (Role.PORTAL, DataType.ENTITLEMENTS, OUTSIDER, Access.NOT_INVOLVED),
        (Role.SELLER, DataType.ENTITLEMENTS, OUTSIDER, Access.NOT_INVOLVED),
        # The school reads its own data; the operator everything.
        (Role.SCHOOL, DataType.SCHOOL_ORGANISATION, NOTHING, Access.ALLOWED),
        (Role.SCHOOL, DataType.ACTIVATIONS, OUTSIDER, Access.NOT_INVOLVED),
        (Role.OPERATOR, DataType.ACTIVATIONS, OUTSIDER, Access.ALLOWED),
    ],
)
def test_consent_decision(role: Role, data_type: DataType, facts: ConsentFacts,
                          expected: Access) -> None:
    assert decide(role, data_type, facts) is expected


@pytest.mark.parametrize("data_type", list(DataType))
def test_confidential_data_needs_a_mandate_for_portals(data_type: DataType) -> None:
    assert needs_mandate(Role.PORTAL, data_type) is data_type.confidential
    assert needs_activation(Role.PORTAL, data_type)


def test_several_roles_get_the_most_permissive_answer() -> None:
    assert best([Access.SCOPE_REQUIRED, Access.CONSENT_REQUIRED]) is Access.CONSENT_REQUIRED
    assert best([Access.CONSENT_REQUIRED, Access.ALLOWED]) is Access.ALLOWED
    assert best([]) is Access.SCOPE_REQUIRED


# --- persons and "not found" -------------------------------------------------------------


@pytest.mark.parametrize(
    ("allowed", "related", "expected"),
    [
        (True, True, Access.ALLOWED),
        (True, False, Access.ALLOWED),
        (False, True, Access.CONSENT_REQUIRED),
        (False, False, Access.NOT_INVOLVED),
    ],
)
def test_person_access(allowed: bool, related: bool, expected: Access) -> None:
    assert person_access(allowed=allowed, related=related) is expected


@pytest.mark.parametrize(
    ("access", "told"),
    [
        (Access.ALLOWED, Disclosure.SHOWN),
        (Access.CONSENT_REQUIRED, Disclosure.CONSENT_REQUIRED),
        (Access.NOT_INVOLVED, Disclosure.NOT_FOUND),
        (Access.SCOPE_REQUIRED, Disclosure.NOT_FOUND),
        (None, Disclosure.NOT_FOUND),  # does not exist
    ],
)
def test_unknown_and_not_yours_are_told_the_same(access: Access | None, told: Disclosure) -> None:
    assert disclose(access) is told
