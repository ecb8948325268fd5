"""Every branch of the licence office's decision tree (DOMAIN.md §6)."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import date

import pytest

from domain.activation import (
    RULE_CODES,
    ActivationCodeState,
    ActivationFacts,
    CandidateEntitlement,
    Decision,
    ExistingLicence,
    PersonFacts,
    PersonKind,
    Rule,
    decide,
)
from domain.entitlements import EntitlementStatus, Variant
from domain.errors import StatusCode
from domain.licences import LicenceStatus

TODAY = date(2024, 9, 2)
START = date(2024, 8, 1)
UNTIL = date(2025, 7, 31)
SCHOOL, OTHER_SCHOOL = 10, 11
GROUP, OTHER_GROUP = 100, 101
SUBJECT, OTHER_SUBJECT = 200, 201

PUPIL = PersonFacts(
    person_id=1,
    kind=PersonKind.PUPIL,
    school_ids=frozenset({SCHOOL}),
    group_ids=frozenset({GROUP}),
    subject_ids=frozenset({SUBJECT}),
)
TEACHER = replace(PUPIL, person_id=2, kind=PersonKind.TEACHER)

S = EntitlementStatus
V = Variant
CODE = ActivationCodeState


def ent(id: int, variant: Variant, **kwargs) -> CandidateEntitlement:
    """A usable candidate of ``variant`` for PUPIL at SCHOOL, unless overridden."""
    values: dict = {
        "id": id,
        "variant": variant,
        "status": S.LINK_READY,
        "start_date": START,
        "activation_until_date": UNTIL,
        "school_id": None if variant is V.PERSONAL else SCHOOL,
        "group_id": GROUP if variant is V.SCHOOL_GROUP else None,
        "subject_id": SUBJECT if variant is V.SCHOOL_SUBJECT else None,
        "quantity": 30 if variant.is_open else None,
        "licences_used": 0,
        "names_person": variant.is_individual,
    }
    values.update(kwargs)
    return CandidateEntitlement(**values)


def lic(id: int, entitlement_id: int = 900, **kwargs) -> ExistingLicence:
    values: dict = {
        "id": id,
        "entitlement_id": entitlement_id,
        "status": LicenceStatus.ACTIVATED,
        "expiration_date": UNTIL,
        "entitlement_status": S.LINK_READY,
    }
    values.update(kwargs)
    return ExistingLicence(**values)


def facts(*candidates: CandidateEntitlement, **kwargs) -> ActivationFacts:
    values: dict = {
        "today": TODAY,
        "school_id": SCHOOL,
        "person": PUPIL,
        "candidates": candidates,
    }
    values.update(kwargs)
    return ActivationFacts(**values)


def assert_decision(decision: Decision, granted: bool, rule: Rule, entitlement_id: int | None):
    assert (decision.granted, decision.rule, decision.entitlement_id) == (
        granted,
        rule,
        entitlement_id,
    ), decision.reason
    assert decision.code is RULE_CODES[rule]
    assert str(rule) in decision.reason
    assert decision.reason.startswith("granted" if granted else "denied")


# -- grants ----------

GRANTS = [
    pytest.param(facts(ent(1, V.PERSONAL)), Rule.INDIVIDUAL, 1, id="pupil_named_in_personal"),
    pytest.param(
        facts(ent(1, V.SCHOOL_PUPIL)), Rule.INDIVIDUAL, 1, id="pupil_named_in_school_pupil"
    ),
    pytest.param(
        facts(ent(1, V.SCHOOL_TEACHER), person=TEACHER),
        Rule.INDIVIDUAL,
        1,
        id="teacher_named_in_school_teacher",
    ),
    pytest.param(
        facts(
            ent(1, V.PERSONAL, names_person=False, activation_code_state=CODE.UNUSED),
            activation_code="ABC-123",
            activation_code_known=True,
        ),
        Rule.ACTIVATION_CODE,
        1,
        id="pupil_with_unused_activation_code",
    ),
    pytest.param(
        facts(
            ent(1, V.SCHOOL_PUPIL, activation_code_state=CODE.USED),
            activation_code="ABC-123",
            activation_code_known=True,
        ),
        Rule.INDIVIDUAL,
        1,
        id="named_pupil_needs_no_code_even_if_the_code_is_used",
    ),
    pytest.param(facts(ent(1, V.SCHOOL_GROUP)), Rule.GROUP, 1, id="pupil_in_group_now"),
    pytest.param(facts(ent(1, V.SCHOOL_SUBJECT)), Rule.SUBJECT, 1, id="pupil_follows_subject_now"),
    pytest.param(facts(ent(1, V.SCHOOL)), Rule.SCHOOL, 1, id="pupil_of_the_school"),
    pytest.param(
        facts(ent(1, V.SCHOOL), ent(2, V.SCHOOL_GROUP), ent(3, V.SCHOOL_PUPIL)),
        Rule.INDIVIDUAL,
        3,
        id="individual_outranks_group_and_school",
    ),
    pytest.param(
        facts(ent(1, V.SCHOOL), ent(2, V.SCHOOL_GROUP)),
        Rule.GROUP,
        2,
        id="group_outranks_school",
    ),
    pytest.param(
        facts(ent(1, V.SCHOOL), ent(2, V.SCHOOL_SUBJECT)),
        Rule.SUBJECT,
        2,
        id="subject_outranks_school",
    ),
    pytest.param(
        facts(ent(1, V.SCHOOL_PUPIL, school_id=OTHER_SCHOOL)),
        Rule.INDIVIDUAL,
        1,
        id="named_pupil_keeps_entitlement_of_previous_school",
    ),
    pytest.param(
        facts(ent(1, V.SCHOOL), today=START), Rule.SCHOOL, 1, id="activation_on_start_date"
    ),
    pytest.param(
        facts(ent(1, V.SCHOOL), today=UNTIL), Rule.SCHOOL, 1, id="activation_on_until_date"
    ),
    pytest.param(
        facts(ent(1, V.SCHOOL, quantity=30, licences_used=29)),
        Rule.SCHOOL,
        1,
        id="last_seat_is_granted",
    ),
    pytest.param(
        facts(ent(1, V.SCHOOL_PUPIL, quantity=1, licences_used=5)),
        Rule.INDIVIDUAL,
        1,
        id="individual_entitlement_has_no_quantity_check",
    ),
]


@pytest.mark.parametrize(("the_facts", "rule", "entitlement_id"), GRANTS)
def test_access_is_granted(the_facts, rule, entitlement_id):
    decision = decide(the_facts)
    assert_decision(decision, True, rule, entitlement_id)
    assert decision.licence_id is None
    assert decision.creates_licence


# -- denials ----------

DENIALS = [
    pytest.param(
        facts(ent(1, V.SCHOOL), person=None), Rule.PERSON_UNKNOWN, None, id="unknown_person"
    ),
    pytest.param(
        facts(ent(1, V.SCHOOL), person=None, existing_licences=(lic(5),)),
        Rule.PERSON_UNKNOWN,
        None,
        id="unknown_person_is_checked_before_licences",
    ),
    pytest.param(facts(), Rule.NO_ENTITLEMENT, None, id="no_entitlement_on_product"),
    pytest.param(
        facts(ent(1, V.SCHOOL_GROUP, group_id=OTHER_GROUP)),
        Rule.NO_ENTITLEMENT,
        None,
        id="pupil_not_in_the_group_now",
    ),
    pytest.param(
        facts(ent(1, V.SCHOOL_SUBJECT, subject_id=OTHER_SUBJECT)),
        Rule.NO_ENTITLEMENT,
        None,
        id="pupil_does_not_follow_the_subject_now",
    ),
    pytest.param(
        facts(ent(1, V.SCHOOL, school_id=OTHER_SCHOOL)),
        Rule.NO_ENTITLEMENT,
        None,
        id="open_entitlement_of_another_school",
    ),
    pytest.param(
        facts(ent(1, V.SCHOOL), person=replace(PUPIL, school_ids=frozenset({OTHER_SCHOOL}))),
        Rule.NO_ENTITLEMENT,
        None,
        id="pupil_no_longer_enrolled_at_login_school",
    ),
    pytest.param(
        facts(ent(1, V.SCHOOL_GROUP), person=replace(PUPIL, school_ids=frozenset())),
        Rule.NO_ENTITLEMENT,
        None,
        id="group_entitlement_needs_enrolment_at_login_school",
    ),
    pytest.param(
        facts(
            ent(1, V.SCHOOL, school_id=OTHER_SCHOOL),
            person=replace(PUPIL, school_ids=frozenset({SCHOOL, OTHER_SCHOOL})),
        ),
        Rule.NO_ENTITLEMENT,
        None,
        id="pupil_at_two_schools_uses_the_login_schools_entitlements",
    ),
    pytest.param(
        facts(ent(1, V.SCHOOL_PUPIL, names_person=False)),
        Rule.NO_ENTITLEMENT,
        None,
        id="individual_entitlement_naming_someone_else",
    ),
    pytest.param(
        facts(ent(1, V.SCHOOL), person=TEACHER),
        Rule.TEACHER_NEEDS_INDIVIDUAL,
        1,
        id="teacher_cannot_use_open_school_entitlement",
    ),
    pytest.param(
        facts(ent(1, V.SCHOOL_GROUP), person=TEACHER),
        Rule.TEACHER_NEEDS_INDIVIDUAL,
        1,
        id="teacher_cannot_use_open_group_entitlement",
    ),
    pytest.param(
        facts(ent(1, V.SCHOOL_SUBJECT), person=TEACHER),
        Rule.TEACHER_NEEDS_INDIVIDUAL,
        1,
        id="teacher_cannot_use_open_subject_entitlement",
    ),
    pytest.param(
        facts(ent(1, V.SCHOOL_PUPIL), person=TEACHER),
        Rule.TEACHER_NEEDS_INDIVIDUAL,
        1,
        id="teacher_named_in_pupil_entitlement_is_refused",
    ),
    pytest.param(
        facts(ent(1, V.PERSONAL), person=TEACHER),
        Rule.TEACHER_NEEDS_INDIVIDUAL,
        1,
        id="teacher_named_in_personal_entitlement_is_refused",
    ),
    pytest.param(
        facts(ent(1, V.SCHOOL_TEACHER, names_person=False), person=TEACHER),
        Rule.NO_ENTITLEMENT,
        None,
        id="teacher_without_any_entitlement",
    ),
    pytest.param(
        facts(
            ent(1, V.SCHOOL_TEACHER, names_person=False, activation_code_state=CODE.UNUSED),
            activation_code="T-1",
            activation_code_known=True,
        ),
        Rule.TEACHERS_ONLY,
        1,
        id="pupil_cannot_use_a_teachers_activation_code",
    ),
    pytest.param(
        facts(ent(1, V.SCHOOL_PUPIL, status=S.BLOCKED)),
        Rule.BLOCKED,
        1,
        id="blocked_entitlement",
    ),
    pytest.param(
        facts(ent(1, V.SCHOOL, status=S.CANCELLED)),
        Rule.CANCELLED,
        1,
        id="cancelled_entitlement_allows_no_new_activation",
    ),
    pytest.param(
        facts(ent(1, V.SCHOOL, status=S.ENTITLED)),
        Rule.NOT_LINK_READY,
        1,
        id="entitled_but_not_provisioned",
    ),
    pytest.param(
        facts(ent(1, V.SCHOOL, status=S.PROVISIONED)),
        Rule.NOT_LINK_READY,
        1,
        id="provisioned_but_link_not_placed",
    ),
    pytest.param(
        facts(ent(1, V.SCHOOL), today=date(2024, 7, 31)),
        Rule.NOT_STARTED,
        1,
        id="activation_period_not_started",
    ),
    pytest.param(
        facts(ent(1, V.SCHOOL), today=date(2025, 8, 1)),
        Rule.ACTIVATION_PERIOD_ENDED,
        1,
        id="activation_period_ended",
    ),
    pytest.param(
        facts(ent(1, V.SCHOOL, status=S.ENDED)),
        Rule.ACTIVATION_PERIOD_ENDED,
        1,
        id="derived_ended_status_passed_in",
    ),
    pytest.param(
        facts(ent(1, V.SCHOOL, quantity=30, licences_used=30)),
        Rule.QUANTITY_EXHAUSTED,
        1,
        id="open_entitlement_without_a_seat_left",
    ),
    pytest.param(
        facts(ent(1, V.SCHOOL_GROUP, quantity=None)),
        Rule.QUANTITY_EXHAUSTED,
        1,
        id="open_entitlement_without_quantity_has_no_seat",
    ),
    pytest.param(
        facts(
            ent(1, V.PERSONAL, names_person=False, activation_code_state=CODE.USED),
            activation_code="ABC",
            activation_code_known=True,
        ),
        Rule.ACTIVATION_CODE_USED,
        1,
        id="activation_code_already_used",
    ),
    pytest.param(
        facts(
            ent(1, V.PERSONAL, names_person=False, activation_code_state=CODE.REVOKED),
            activation_code="ABC",
            activation_code_known=True,
        ),
        Rule.ACTIVATION_CODE_REVOKED,
        1,
        id="activation_code_revoked",
    ),
    pytest.param(
        facts(activation_code="NOPE"),
        Rule.ACTIVATION_CODE_UNKNOWN,
        None,
        id="activation_code_unknown",
    ),
    pytest.param(
        facts(ent(1, V.PERSONAL, status=S.BLOCKED), activation_code="NOPE"),
        Rule.ACTIVATION_CODE_UNKNOWN,
        None,
        id="unknown_code_is_reported_before_other_failures",
    ),
    # check order within one candidate: permanent reasons before temporary ones
    pytest.param(
        facts(ent(1, V.SCHOOL, status=S.BLOCKED), today=date(2025, 8, 1)),
        Rule.BLOCKED,
        1,
        id="blocked_is_reported_before_ended",
    ),
    pytest.param(
        facts(ent(1, V.SCHOOL, status=S.CANCELLED), today=date(2024, 7, 1)),
        Rule.CANCELLED,
        1,
        id="cancelled_is_reported_before_not_started",
    ),
    pytest.param(
        facts(ent(1, V.SCHOOL, status=S.PROVISIONED), today=date(2025, 8, 1)),
        Rule.ACTIVATION_PERIOD_ENDED,
        1,
        id="ended_is_reported_before_not_link_ready",
    ),
    pytest.param(
        facts(ent(1, V.SCHOOL, status=S.ENTITLED, licences_used=30)),
        Rule.NOT_LINK_READY,
        1,
        id="not_link_ready_is_reported_before_quantity",
    ),
    pytest.param(
        facts(
            ent(
                1,
                V.PERSONAL,
                names_person=False,
                status=S.BLOCKED,
                activation_code_state=CODE.REVOKED,
            ),
            activation_code="ABC",
            activation_code_known=True,
        ),
        Rule.ACTIVATION_CODE_REVOKED,
        1,
        id="code_state_is_reported_before_entitlement_status",
    ),
    pytest.param(
        facts(ent(1, V.SCHOOL_GROUP, status=S.BLOCKED), person=TEACHER),
        Rule.TEACHER_NEEDS_INDIVIDUAL,
        1,
        id="person_kind_is_reported_first",
    ),
]


@pytest.mark.parametrize(("the_facts", "rule", "entitlement_id"), DENIALS)
def test_access_is_denied(the_facts, rule, entitlement_id):
    decision = decide(the_facts)
    assert_decision(decision, False, rule, entitlement_id)
    assert not decision.creates_licence
    assert not decision.takes_seat


@pytest.mark.parametrize(
    ("rule", "code"),
    [
        (Rule.PERSON_UNKNOWN, StatusCode.PERSON_UNKNOWN),
        (Rule.ACTIVATION_CODE_UNKNOWN, StatusCode.ACTIVATION_CODE_UNKNOWN),
        (Rule.ACTIVATION_CODE_USED, StatusCode.ACTIVATION_CODE_USED),
        (Rule.ACTIVATION_CODE_REVOKED, StatusCode.ACTIVATION_CODE_REVOKED),
        (Rule.NO_ENTITLEMENT, StatusCode.OTHER),
        (Rule.QUANTITY_EXHAUSTED, StatusCode.OTHER),
        (Rule.SCHOOL, StatusCode.OK),
    ],
)
def test_rule_codes(rule, code):
    assert RULE_CODES[rule] is code


def test_every_rule_has_a_code():
    assert set(RULE_CODES) == set(Rule)
    assert all((RULE_CODES[r] is StatusCode.OK) is r.grants for r in Rule)


@pytest.mark.parametrize(
    ("known", "message"),
    [(False, "is unknown"), (True, "does not belong to an entitlement on this product")],
)
def test_unknown_activation_code_message_says_whether_it_exists_elsewhere(known, message):
    decision = decide(facts(activation_code="X", activation_code_known=known))
    assert message in decision.reason


# -- existing licences ----------

EXISTING = [
    pytest.param(
        facts(existing_licences=(lic(5, entitlement_id=1),)),
        True,
        Rule.EXISTING_LICENCE,
        5,
        1,
        id="active_licence_is_reused_without_entitlement",
    ),
    pytest.param(
        facts(ent(2, V.SCHOOL), existing_licences=(lic(5, entitlement_id=1),)),
        True,
        Rule.EXISTING_LICENCE,
        5,
        1,
        id="active_licence_wins_over_a_new_one",
    ),
    pytest.param(
        facts(existing_licences=(lic(5, expiration_date=TODAY),)),
        True,
        Rule.EXISTING_LICENCE,
        5,
        900,
        id="licence_is_active_on_its_expiration_date",
    ),
    pytest.param(
        facts(existing_licences=(lic(5, entitlement_status=S.CANCELLED),)),
        True,
        Rule.EXISTING_LICENCE,
        5,
        900,
        id="licence_on_cancelled_entitlement_keeps_working",
    ),
    pytest.param(
        facts(
            existing_licences=(
                lic(5, expiration_date=date(2025, 1, 1)),
                lic(7, expiration_date=date(2026, 1, 1)),
                lic(6, expiration_date=date(2026, 1, 1)),
            )
        ),
        True,
        Rule.EXISTING_LICENCE,
        6,
        900,
        id="latest_expiring_licence_then_lowest_id",
    ),
    pytest.param(
        facts(
            ent(2, V.SCHOOL),
            existing_licences=(lic(5, expiration_date=date(2024, 9, 1)),),
        ),
        True,
        Rule.SCHOOL,
        None,
        2,
        id="expired_licence_lets_a_new_one_be_made",
    ),
    pytest.param(
        facts(existing_licences=(lic(5, expiration_date=date(2024, 9, 1)),)),
        False,
        Rule.NO_ENTITLEMENT,
        None,
        None,
        id="expired_licence_alone_gives_no_access",
    ),
    pytest.param(
        facts(ent(2, V.SCHOOL), existing_licences=(lic(5, status=LicenceStatus.BLOCKED),)),
        False,
        Rule.LICENCE_BLOCKED,
        5,
        900,
        id="blocked_licence_is_not_circumvented_by_another_entitlement",
    ),
    pytest.param(
        facts(ent(2, V.SCHOOL), existing_licences=(lic(5, entitlement_status=S.BLOCKED),)),
        False,
        Rule.LICENCE_BLOCKED,
        5,
        900,
        id="licence_on_blocked_entitlement_is_blocked",
    ),
    pytest.param(
        facts(
            ent(2, V.SCHOOL),
            existing_licences=(
                lic(5, status=LicenceStatus.BLOCKED, expiration_date=date(2024, 9, 1)),
            ),
        ),
        True,
        Rule.SCHOOL,
        None,
        2,
        id="expired_blocked_licence_does_not_block_next_year",
    ),
    pytest.param(
        facts(existing_licences=(lic(5, status=LicenceStatus.BLOCKED), lic(6))),
        True,
        Rule.EXISTING_LICENCE,
        6,
        900,
        id="active_licence_wins_over_a_blocked_one",
    ),
]


@pytest.mark.parametrize(("the_facts", "granted", "rule", "licence_id", "entitlement_id"), EXISTING)
def test_existing_licence(the_facts, granted, rule, licence_id, entitlement_id):
    decision = decide(the_facts)
    assert_decision(decision, granted, rule, entitlement_id)
    assert decision.licence_id == licence_id
    assert not decision.creates_licence or rule is not Rule.EXISTING_LICENCE


def test_blocked_licence_message_says_the_entitlement_is_blocked():
    decision = decide(facts(existing_licences=(lic(5, entitlement_status=S.BLOCKED),)))
    assert "because entitlement 900 is blocked" in decision.reason


# -- fall-through ----------

FALL_THROUGH = [
    pytest.param(
        facts(ent(1, V.SCHOOL_PUPIL, status=S.BLOCKED), ent(2, V.SCHOOL)),
        True,
        Rule.SCHOOL,
        2,
        ((1, Rule.BLOCKED),),
        id="blocked_individual_does_not_stop_school_entitlement",
    ),
    pytest.param(
        facts(ent(1, V.SCHOOL_GROUP, licences_used=30), ent(2, V.SCHOOL)),
        True,
        Rule.SCHOOL,
        2,
        ((1, Rule.QUANTITY_EXHAUSTED),),
        id="full_group_entitlement_falls_through_to_school",
    ),
    pytest.param(
        facts(
            ent(1, V.SCHOOL_GROUP, activation_until_date=date(2025, 1, 1), licences_used=30),
            ent(2, V.SCHOOL_GROUP),
        ),
        True,
        Rule.GROUP,
        2,
        ((1, Rule.QUANTITY_EXHAUSTED),),
        id="full_entitlement_falls_through_to_one_of_the_same_rank",
    ),
    pytest.param(
        facts(ent(1, V.SCHOOL_TEACHER, status=S.CANCELLED), ent(2, V.SCHOOL), person=TEACHER),
        False,
        Rule.CANCELLED,
        1,
        ((2, Rule.TEACHER_NEEDS_INDIVIDUAL),),
        id="teacher_falls_through_to_nothing_and_hears_the_best_reason",
    ),
    pytest.param(
        facts(
            ent(3, V.SCHOOL, licences_used=30),
            ent(2, V.SCHOOL_SUBJECT, status=S.PROVISIONED),
            ent(1, V.PERSONAL, status=S.BLOCKED),
        ),
        False,
        Rule.BLOCKED,
        1,
        ((2, Rule.NOT_LINK_READY), (3, Rule.QUANTITY_EXHAUSTED)),
        id="denial_names_the_best_ranked_failure",
    ),
    pytest.param(
        facts(
            ent(3, V.SCHOOL, licences_used=30),
            ent(2, V.SCHOOL_SUBJECT, status=S.PROVISIONED),
        ),
        False,
        Rule.NOT_LINK_READY,
        2,
        ((3, Rule.QUANTITY_EXHAUSTED),),
        id="subject_failure_outranks_school_failure",
    ),
    pytest.param(
        facts(ent(2, V.SCHOOL), activation_code="NOPE"),
        True,
        Rule.SCHOOL,
        2,
        (),
        id="usable_entitlement_wins_over_a_wrong_code",
    ),
]


@pytest.mark.parametrize(
    ("the_facts", "granted", "rule", "entitlement_id", "passed_over"), FALL_THROUGH
)
def test_fall_through(the_facts, granted, rule, entitlement_id, passed_over):
    decision = decide(the_facts)
    assert_decision(decision, granted, rule, entitlement_id)
    assert decision.passed_over == passed_over


# -- determinism ----------

SAME_RANK = [
    ent(4, V.SCHOOL, activation_until_date=date(2025, 7, 31)),
    ent(3, V.SCHOOL, activation_until_date=date(2025, 7, 31)),
    ent(9, V.SCHOOL, activation_until_date=date(2025, 6, 30)),
    ent(1, V.SCHOOL, activation_until_date=date(2026, 7, 31)),
]


@pytest.mark.parametrize("order", list(itertools.permutations(SAME_RANK)))
def test_same_rank_choice_is_deterministic_earliest_until_date_first(order):
    assert decide(facts(*order)).entitlement_id == 9


def test_same_rank_and_same_until_date_choose_lowest_id():
    assert decide(facts(SAME_RANK[0], SAME_RANK[1], SAME_RANK[3])).entitlement_id == 3


@pytest.mark.parametrize(
    ("group_until", "subject_until", "expected"),
    [
        (date(2025, 7, 31), date(2025, 6, 30), Rule.SUBJECT),
        (date(2025, 6, 30), date(2025, 7, 31), Rule.GROUP),
    ],
)
def test_group_and_subject_share_a_rank(group_until, subject_until, expected):
    decision = decide(
        facts(
            ent(1, V.SCHOOL_GROUP, activation_until_date=group_until),
            ent(2, V.SCHOOL_SUBJECT, activation_until_date=subject_until),
        )
    )
    assert decision.rule is expected


# -- exclude (lost race for the last seat) ----------


def test_excluded_entitlement_is_skipped_for_the_next_one():
    the_facts = facts(ent(1, V.SCHOOL_GROUP, licences_used=29), ent(2, V.SCHOOL))
    first = decide(the_facts)
    assert first.entitlement_id == 1
    assert first.takes_seat
    retry = decide(the_facts, exclude=frozenset({first.entitlement_id}))
    assert_decision(retry, True, Rule.SCHOOL, 2)
    assert retry.passed_over == ((1, Rule.QUANTITY_EXHAUSTED),)


def test_excluding_the_only_entitlement_reports_quantity_exhausted():
    decision = decide(facts(ent(1, V.SCHOOL, licences_used=29)), exclude=frozenset({1}))
    assert_decision(decision, False, Rule.QUANTITY_EXHAUSTED, 1)
    assert "concurrent activation" in decision.reason


def test_exclude_does_not_change_a_denial_for_a_more_permanent_reason():
    decision = decide(facts(ent(1, V.SCHOOL, status=S.BLOCKED)), exclude=frozenset({1}))
    assert decision.rule is Rule.BLOCKED


@pytest.mark.parametrize(
    ("variant", "takes_seat"),
    [(V.SCHOOL, True), (V.SCHOOL_GROUP, True), (V.SCHOOL_PUPIL, False), (V.PERSONAL, False)],
)
def test_only_open_variants_take_a_seat(variant, takes_seat):
    decision = decide(facts(ent(1, variant)))
    assert decision.variant is variant
    assert decision.takes_seat is takes_seat


def test_existing_licence_creates_nothing():
    decision = decide(facts(ent(2, V.SCHOOL), existing_licences=(lic(5),)))
    assert not decision.creates_licence
    assert not decision.takes_seat
