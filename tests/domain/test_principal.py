"""The caller's own rules (`domain.roles.Principal`): whom it acts as in event and
audit rows, which school's consent it manages, whose objects it owns."""

from __future__ import annotations

import pytest

from domain.roles import Actor, Principal, Role, role_name

SHOP = Principal(1, frozenset({Role.SELLER}), supplier_code="demo-shop")
COMBINED = Principal(2, frozenset({Role.SELLER, Role.LICENSOR}))
ADMIN = Principal(7, frozenset({Role.SCHOOL}), school_id=40, school="104A158")
OPERATOR = Principal(9, frozenset({Role.OPERATOR, Role.SELLER}))


@pytest.mark.parametrize(
    ("caller", "actor"),
    [
        (SHOP, Actor(1, "seller")),
        (COMBINED, Actor(2, "licensor,seller")),
        (ADMIN, Actor(7, "school")),
        (OPERATOR, Actor(9, "operator")),
    ],
)
def test_a_caller_acting_in_all_its_roles_is_named_by_them(caller: Principal, actor: Actor) -> None:
    assert caller.actor == actor


def test_a_caller_acting_in_one_role_is_named_by_that_role() -> None:
    assert OPERATOR.acting_as(Role.SELLER) == Actor(9, "seller")


def test_the_role_name_fits_the_audit_column() -> None:
    every = [r for r in Role if r is not Role.OPERATOR]
    assert role_name(every) == "dashboard,licens"
    assert len(role_name(every)) == 16


@pytest.mark.parametrize(
    ("caller", "school_id", "manages"),
    [
        (ADMIN, 40, True),
        (ADMIN, 41, False),
        (OPERATOR, 41, True),
        (SHOP, 40, False),
        # A school id without the school role (a token that lost its scope) manages nothing.
        (Principal(7, frozenset({Role.SELLER}), school_id=40), 40, False),
    ],
)
def test_only_its_administrator_and_the_operator_manage_a_school(
    caller: Principal, school_id: int, manages: bool
) -> None:
    assert caller.manages(school_id) is manages


@pytest.mark.parametrize(
    ("caller", "supplier_id", "owns"),
    [(SHOP, 1, True), (SHOP, 2, False), (SHOP, None, False), (OPERATOR, 1, True)],
)
def test_a_supplier_owns_its_own_objects_and_the_operator_all(
    caller: Principal, supplier_id: int | None, owns: bool
) -> None:
    assert caller.owns(supplier_id) is owns
