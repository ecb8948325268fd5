"""The entitlement state machine, its guards, quantity rules and recipients."""

from __future__ import annotations

import ast
import itertools
from datetime import date
from pathlib import Path

import pytest

from domain.entitlements import (
    ALLOWED,
    BLOCKABLE,
    EntitlementAction,
    EntitlementState,
    EntitlementStatus,
    RecipientRole,
    Requirement,
    Variant,
    allowed_actions,
    confirmation_action,
    effective_status,
    failure_allowed,
    initial_status,
    recipients_for,
    transition,
)
from domain.errors import DomainError, StatusCode, TransitionNotAllowed
from domain.persons import PersonKind

S = EntitlementStatus
A = EntitlementAction
UNTIL = date(2025, 7, 31)

EXPECTED_ALLOWED = {
    (S.ENTITLED, A.PROVISION): S.PROVISIONED,
    (S.PROVISIONED, A.LINK_READY): S.LINK_READY,
    (S.LINK_READY, A.LINK_READY): S.LINK_READY,
    (S.ENTITLED, A.CANCEL): S.CANCELLED,
    (S.PROVISIONED, A.CANCEL): S.CANCELLED,
    (S.LINK_READY, A.CANCEL): S.CANCELLED,
    (S.ENTITLED, A.BLOCK): S.BLOCKED,
    (S.PROVISIONED, A.BLOCK): S.BLOCKED,
    (S.LINK_READY, A.BLOCK): S.BLOCKED,
    (S.CANCELLED, A.BLOCK): S.BLOCKED,
    (S.BLOCKED, A.UNBLOCK): None,
}
FORBIDDEN = [pair for pair in itertools.product(S, A) if pair not in EXPECTED_ALLOWED]


def test_allowed_table_is_exactly_the_agreed_lifecycle():
    assert dict(ALLOWED) == EXPECTED_ALLOWED


@pytest.mark.parametrize(
    ("current", "action", "expected"),
    [(c, a, t) for (c, a), t in EXPECTED_ALLOWED.items() if t is not None],
    ids=lambda v: str(v),
)
def test_allowed_transition_gives_its_target(current, action, expected):
    assert transition(current, action) is expected


@pytest.mark.parametrize("before", sorted(BLOCKABLE))
def test_unblock_restores_the_status_before_the_block(before):
    assert transition(S.BLOCKED, A.UNBLOCK, status_before_block=before) is before


@pytest.mark.parametrize("before", [None, S.BLOCKED, S.ENDED])
def test_unblock_without_a_valid_previous_status_is_a_data_fault(before):
    with pytest.raises(DomainError) as info:
        transition(S.BLOCKED, A.UNBLOCK, status_before_block=before)
    assert info.value.code is StatusCode.OTHER
    assert not isinstance(info.value, TransitionNotAllowed)


@pytest.mark.parametrize(("current", "action"), FORBIDDEN, ids=lambda v: str(v))
def test_forbidden_transition_raises_typed_error_naming_the_status(current, action):
    with pytest.raises(TransitionNotAllowed) as info:
        transition(current, action, status_before_block=S.LINK_READY)
    error = info.value
    assert error.code is StatusCode.OTHER
    assert error.current_status is current
    assert error.action is action
    assert f"entitlement that is {current}" in error.message


def test_forbidden_message_reads_naturally():
    with pytest.raises(TransitionNotAllowed, match="cannot cancel an entitlement that is BLOCKED"):
        transition(S.BLOCKED, A.CANCEL)


def test_ended_is_never_a_source_of_a_transition():
    assert allowed_actions(S.ENDED) == frozenset()
    assert all(S.ENDED not in pair and target is not S.ENDED for pair, target in ALLOWED.items())


@pytest.mark.parametrize(
    ("status", "actions"),
    [
        (S.ENTITLED, {A.PROVISION, A.CANCEL, A.BLOCK}),
        (S.PROVISIONED, {A.LINK_READY, A.CANCEL, A.BLOCK}),
        (S.LINK_READY, {A.LINK_READY, A.CANCEL, A.BLOCK}),
        (S.CANCELLED, {A.BLOCK}),
        (S.BLOCKED, {A.UNBLOCK}),
    ],
)
def test_allowed_actions_per_status(status, actions):
    assert allowed_actions(status) == actions


@pytest.mark.parametrize(
    ("combined_role", "expected"), [(True, S.PROVISIONED), (False, S.ENTITLED)]
)
def test_initial_status_skips_licence_office_in_combined_role(combined_role, expected):
    assert initial_status(combined_role) is expected


@pytest.mark.parametrize(
    ("stored", "today", "expected"),
    [
        (S.LINK_READY, date(2025, 7, 31), S.LINK_READY),
        (S.LINK_READY, date(2025, 8, 1), S.ENDED),
        (S.ENTITLED, date(2025, 8, 1), S.ENDED),
        (S.PROVISIONED, date(2025, 8, 1), S.ENDED),
        (S.CANCELLED, date(2025, 8, 1), S.CANCELLED),
        (S.BLOCKED, date(2025, 8, 1), S.BLOCKED),
        (S.BLOCKED, date(2025, 1, 1), S.BLOCKED),
    ],
)
def test_effective_status_derives_ended_after_activation_until_date(stored, today, expected):
    assert effective_status(stored, UNTIL, today) is expected


# -- variants ----------


@pytest.mark.parametrize(
    ("variant", "is_open", "for_school", "kind", "requires"),
    [
        (Variant.PERSONAL, False, False, PersonKind.PUPIL, {"entitlees"}),
        (Variant.SCHOOL, True, True, PersonKind.PUPIL, {"schoolId", "quantity"}),
        (
            Variant.SCHOOL_SUBJECT,
            True,
            True,
            PersonKind.PUPIL,
            {"schoolId", "schoolSubjectId", "quantity"},
        ),
        (Variant.SCHOOL_GROUP, True, True, PersonKind.PUPIL, {"schoolId", "groupId", "quantity"}),
        (Variant.SCHOOL_PUPIL, False, True, PersonKind.PUPIL, {"schoolId", "entitlees"}),
        (Variant.SCHOOL_TEACHER, False, True, PersonKind.TEACHER, {"schoolId", "entitlees"}),
    ],
)
def test_variant_properties_follow_the_variant_table(variant, is_open, for_school, kind, requires):
    assert variant.is_open is is_open
    assert variant.is_individual is (not is_open)
    assert variant.for_school is for_school
    assert variant.person_kind is kind
    assert variant.requires == {Requirement(r) for r in requires}


# -- EntitlementState ----------


def state(**kwargs) -> EntitlementState:
    defaults = {
        "status": S.LINK_READY,
        "variant": Variant.SCHOOL,
        "activation_until_date": UNTIL,
        "quantity": 30,
        "licences_used": 0,
    }
    defaults.update(kwargs)
    return EntitlementState(**defaults)


def test_happy_path_entitled_to_link_ready():
    s = state(status=S.ENTITLED).provision().link_ready().link_ready()
    assert s.status is S.LINK_READY


def test_block_remembers_previous_status_and_unblock_restores_it():
    blocked = state(status=S.CANCELLED).block()
    assert blocked.status is S.BLOCKED
    assert blocked.status_before_block is S.CANCELLED
    restored = blocked.unblock()
    assert restored.status is S.CANCELLED
    assert restored.status_before_block is None


def test_transitions_return_a_new_state():
    original = state()
    cancelled = original.cancel()
    assert original.status is S.LINK_READY
    assert cancelled.status is S.CANCELLED


@pytest.mark.parametrize(
    ("kwargs", "guard", "expected"),
    [
        ({"status": S.ENTITLED}, "can_provision", True),
        ({"status": S.PROVISIONED}, "can_provision", False),
        ({"status": S.PROVISIONED}, "can_link_ready", True),
        ({"status": S.ENTITLED}, "can_link_ready", False),
        ({"status": S.LINK_READY}, "can_cancel", True),
        ({"status": S.ENTITLED}, "can_cancel", True),
        ({"status": S.CANCELLED}, "can_cancel", False),
        ({"status": S.CANCELLED}, "can_block", True),
        ({"status": S.BLOCKED, "status_before_block": S.CANCELLED}, "can_block", False),
        ({"status": S.BLOCKED, "status_before_block": S.CANCELLED}, "can_unblock", True),
        ({"status": S.BLOCKED}, "can_unblock", False),
        ({"status": S.LINK_READY}, "can_unblock", False),
        (
            {"status": S.LINK_READY, "variant": Variant.SCHOOL_PUPIL, "quantity": None},
            "can_cancel",
            True,
        ),
        (
            {
                "status": S.LINK_READY,
                "variant": Variant.SCHOOL_PUPIL,
                "quantity": None,
                "licences_used": 1,
            },
            "can_cancel",
            False,
        ),
        ({"status": S.LINK_READY, "licences_used": 12}, "can_cancel", True),
    ],
)
def test_guards(kwargs, guard, expected):
    assert getattr(state(**kwargs), guard)() is expected


@pytest.mark.parametrize(
    "variant", [Variant.PERSONAL, Variant.SCHOOL_PUPIL, Variant.SCHOOL_TEACHER]
)
def test_individual_entitlement_with_a_licence_cannot_be_cancelled(variant):
    s = state(variant=variant, quantity=None, licences_used=1)
    with pytest.raises(DomainError) as info:
        s.cancel()
    assert info.value.code is StatusCode.LICENCE_REGISTERED


def test_open_entitlement_with_licences_can_be_cancelled():
    assert state(licences_used=5).cancel().status is S.CANCELLED


def test_cancel_of_blocked_individual_reports_the_status_first():
    s = state(status=S.BLOCKED, variant=Variant.SCHOOL_PUPIL, quantity=None, licences_used=1)
    with pytest.raises(TransitionNotAllowed):
        s.cancel()


@pytest.mark.parametrize(
    ("action", "status"),
    [
        (EntitlementAction.PROVISION, S.LINK_READY),
        (EntitlementAction.LINK_READY, S.ENTITLED),
        (EntitlementAction.BLOCK, S.BLOCKED),
        (EntitlementAction.UNBLOCK, S.LINK_READY),
    ],
)
def test_state_methods_raise_transition_not_allowed(action, status):
    with pytest.raises(TransitionNotAllowed):
        state(status=status, status_before_block=S.LINK_READY).apply(action)


# -- quantity ----------


@pytest.mark.parametrize(
    ("quantity", "used", "new", "code"),
    [
        (30, 10, 0, StatusCode.QUANTITY_TOO_LOW),
        (30, 0, -3, StatusCode.QUANTITY_TOO_LOW),
        (30, 10, 30, StatusCode.QUANTITY_NOT_ALLOWED),
        (30, 10, 31, StatusCode.QUANTITY_NOT_ALLOWED),
        (30, 10, 9, StatusCode.QUANTITY_NOT_ALLOWED),
    ],
    ids=["zero", "negative", "equal", "higher", "below-activated"],
)
def test_lowering_quantity_is_refused(quantity, used, new, code):
    s = state(quantity=quantity, licences_used=used)
    assert not s.can_lower_quantity(new)
    with pytest.raises(DomainError) as info:
        s.lower_quantity(new)
    assert info.value.code is code
    assert info.value.field == "quantity"


@pytest.mark.parametrize(("used", "new"), [(10, 10), (10, 29), (0, 1)])
def test_quantity_may_go_down_to_the_licences_already_activated(used, new):
    s = state(quantity=30, licences_used=used)
    assert s.can_lower_quantity(new)
    assert s.lower_quantity(new).quantity == new


@pytest.mark.parametrize(
    "variant", [Variant.PERSONAL, Variant.SCHOOL_PUPIL, Variant.SCHOOL_TEACHER]
)
def test_individual_variant_has_no_quantity_to_lower(variant):
    with pytest.raises(DomainError) as info:
        state(variant=variant, quantity=None).lower_quantity(1)
    assert info.value.code is StatusCode.QUANTITY_NOT_ALLOWED
    assert "only open variants" in info.value.message


@pytest.mark.parametrize("status", [S.CANCELLED, S.BLOCKED, S.ENTITLED])
def test_quantity_may_be_lowered_in_any_stored_status(status):
    assert state(status=status, status_before_block=S.LINK_READY).lower_quantity(5).quantity == 5


# -- recipients ----------

L, P, D = RecipientRole.LICENSOR, RecipientRole.PORTAL, RecipientRole.DASHBOARD


@pytest.mark.parametrize(
    ("seller", "publisher", "activated", "expected"),
    [
        (1, 2, [], [(2, L)]),
        (1, 2, [(5, P), (3, D), (4, P)], [(2, L), (4, P), (5, P), (3, D)]),
        (2, 2, [(5, P), (3, D)], [(5, P), (3, D)]),
        (1, 2, [(5, P), (5, P), (3, D), (3, D)], [(2, L), (5, P), (3, D)]),
        (1, 2, [(2, L), (9, L)], [(2, L)]),
        (1, 2, [(7, P), (7, D)], [(2, L), (7, P), (7, D)]),
        (2, 2, [], []),
        (1, 2, [(1, P)], [(2, L), (1, P)]),
    ],
    ids=[
        "licence-office-only",
        "portals-then-dashboards-sorted",
        "combined-role-skips-licence-office",
        "deduplicated",
        "activated-licensors-ignored",
        "same-supplier-two-roles",
        "combined-role-no-activation",
        "seller-is-also-portal",
    ],
)
def test_recipients_for(seller, publisher, activated, expected):
    assert recipients_for(seller, publisher, activated) == expected


@pytest.mark.parametrize(
    ("role", "action"),
    [(L, EntitlementAction.PROVISION), (P, EntitlementAction.LINK_READY), (D, None)],
)
def test_confirmation_action_per_role(role, action):
    assert confirmation_action(role) is action


@pytest.mark.parametrize(
    ("role", "code", "expected"),
    [
        *[(L, c, c is not StatusCode.OK) for c in StatusCode],
        *[(P, c, c is not StatusCode.OK) for c in StatusCode],
        *[(D, c, False) for c in StatusCode],
        (L, 77, False),
    ],
)
def test_failure_allowed(role, code, expected):
    assert failure_allowed(role, code) is expected


# -- purity ----------

CORE_MODULES = [
    "errors",
    "persons",
    "products",
    "entitlements",
    "licences",
    "activation",
    "delivery",
]
FRAMEWORKS = {"strawberry", "starlette", "sqlalchemy", "asyncpg", "aiosqlite", "alembic"}


@pytest.mark.parametrize("module", CORE_MODULES)
def test_domain_core_imports_no_framework_and_reads_no_clock(module):
    source = (Path(__file__).parents[2] / "domain" / f"{module}.py").read_text()
    tree = ast.parse(source)
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & FRAMEWORKS
    assert "today()" not in source
    assert ".now(" not in source
