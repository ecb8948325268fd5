"""Validation of a delivery specification: every status code path, all at once."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from domain.delivery import (
    BuyerFacts,
    DeliverySpec,
    IdentifierField,
    LicenceTermInput,
    OrderLine,
    PersonRef,
    ProductFacts,
    check_delivery,
    validate_delivery,
)
from domain.entitlements import ActivationCodeState, Variant
from domain.errors import StatusCode, ValidationFailed
from domain.licences import LicenceTerm
from domain.persons import PersonKind
from domain.products import ProductType

C = StatusCode
V = Variant
TODAY = date(2024, 8, 20)

PRODUCT = ProductFacts(
    product_id="9789006123456",
    type=ProductType.DIGITAL,
    publisher_supplier_id=2,
    sale_start_date=date(2024, 1, 1),
    sale_end_date=date(2025, 12, 31),
    first_publication_date=date(2024, 6, 1),
)
SCHOOL_BUYER = BuyerFacts(school_given=True, school_known=True)
PRIVATE_BUYER = BuyerFacts(private_person=True)
TERM = LicenceTermInput(min_expiration_date=date(2025, 7, 31))


def pupil(person_id: int, given: IdentifierField = IdentifierField.ECK_ID) -> PersonRef:
    return PersonRef(given=given, known=True, person_id=person_id, kind=PersonKind.PUPIL)


def teacher(person_id: int) -> PersonRef:
    return PersonRef(
        given=IdentifierField.USER_ID, known=True, person_id=person_id, kind=PersonKind.TEACHER
    )


def code(value: str, state: ActivationCodeState = ActivationCodeState.UNUSED) -> PersonRef:
    return PersonRef(
        given=IdentifierField.ACTIVATION_CODE,
        known=True,
        activation_code=value,
        activation_code_state=state,
    )


def line(variant: Variant | None = V.SCHOOL, **kwargs) -> OrderLine:
    """A valid order line of ``variant`` unless overridden."""
    individual = variant is not None and variant.is_individual
    values: dict = {
        "product_id": PRODUCT.product_id,
        "product": PRODUCT,
        "variant": variant,
        "quantity": 30 if variant is not None and variant.is_open else None,
        "subject_given": variant is V.SCHOOL_SUBJECT,
        "subject_known": variant is V.SCHOOL_SUBJECT,
        "group_given": variant is V.SCHOOL_GROUP,
        "group_known": variant is V.SCHOOL_GROUP,
        "entitlees": (
            (teacher(7),) if variant is V.SCHOOL_TEACHER else (pupil(1),) if individual else ()
        ),
        "start_date": date(2024, 8, 1),
        "activation_until_date": date(2025, 7, 31),
        "licence_term": TERM,
    }
    values.update(kwargs)
    return OrderLine(**values)


def spec(*lines: OrderLine, **kwargs) -> DeliverySpec:
    values: dict = {
        "reference_id": "ref-1",
        "buyer": SCHOOL_BUYER,
        "lines": lines or (line(),),
        "order_number": "PO-2024-001",
    }
    values.update(kwargs)
    return DeliverySpec(**values)


def personal(**kwargs) -> DeliverySpec:
    return spec(line(V.PERSONAL, **kwargs), buyer=PRIVATE_BUYER)


def problems(the_spec: DeliverySpec, today: date = TODAY) -> list[tuple[StatusCode, str | None]]:
    return [(e.code, e.field) for e in validate_delivery(the_spec, today)]


# -- valid specifications ----------

VALID = [
    pytest.param(spec(line(V.SCHOOL)), id="school"),
    pytest.param(spec(line(V.SCHOOL_SUBJECT)), id="school_subject"),
    pytest.param(spec(line(V.SCHOOL_GROUP)), id="school_group"),
    pytest.param(
        spec(line(V.SCHOOL_PUPIL, entitlees=(pupil(1), pupil(2, IdentifierField.USER_ID)))),
        id="school_pupil_with_eck_id_and_user_id",
    ),
    pytest.param(spec(line(V.SCHOOL_TEACHER)), id="school_teacher_by_user_id"),
    pytest.param(
        spec(
            line(V.SCHOOL_TEACHER, entitlees=(replace(teacher(7), given=IdentifierField.ECK_ID),))
        ),
        id="school_teacher_by_eck_id_as_the_seed_allows",
    ),
    pytest.param(personal(), id="personal_for_private_buyer_needs_no_school"),
    pytest.param(
        spec(line(V.SCHOOL_PUPIL, entitlees=(code("A"), code("B")))),
        id="individual_by_activation_codes",
    ),
    pytest.param(spec(line(product=replace(PRODUCT, type=ProductType.COMBI))), id="combi_product"),
    pytest.param(spec(line(product=replace(PRODUCT, type=ProductType.SET))), id="set_product"),
    pytest.param(
        spec(line(licence_term=LicenceTermInput(duration_months=12))), id="duration_only_term"
    ),
    pytest.param(
        spec(
            line(
                licence_term=LicenceTermInput(
                    min_expiration_date=date(2025, 1, 1), duration_months=12
                )
            )
        ),
        id="early_minimum_is_fine_with_a_duration",
    ),
    pytest.param(spec(line(), line(V.SCHOOL_GROUP)), id="several_lines"),
    pytest.param(spec(contract_number="C-1", contract_known=True), id="known_contract"),
    pytest.param(
        spec(contract_number="C-1", contract_known=None), id="contract_not_checked_in_combined_role"
    ),
    pytest.param(
        spec(line(product=replace(PRODUCT, sale_start_date=TODAY))),
        id="sale_starts_today",
    ),
    pytest.param(spec(line(product=replace(PRODUCT, sale_end_date=TODAY))), id="sale_ends_today"),
    pytest.param(
        spec(line(product=replace(PRODUCT, sale_start_date=None, sale_end_date=None))),
        id="no_sale_window",
    ),
    pytest.param(spec(line(start_date=date(2024, 6, 1))), id="start_on_first_publication_date"),
    pytest.param(
        spec(line(start_date=TODAY, activation_until_date=TODAY)),
        id="one_day_activation_period_ending_today",
    ),
    pytest.param(spec(order_number=None), id="order_number_is_optional"),
]


@pytest.mark.parametrize("the_spec", VALID)
def test_valid_delivery_has_no_problems(the_spec):
    assert validate_delivery(the_spec, TODAY) == ()
    check_delivery(the_spec, TODAY)


# -- every status code ----------

INVALID = [
    # envelope
    pytest.param(
        spec(reference_id=None), [(C.FIELD_MISSING, "referenceId")], id="reference_id_missing"
    ),
    pytest.param(
        spec(reference_id="  "), [(C.FIELD_MISSING, "referenceId")], id="reference_id_blank"
    ),
    pytest.param(spec(buyer=None), [(C.FIELD_MISSING, "buyer")], id="buyer_missing"),
    pytest.param(
        spec(buyer=BuyerFacts()), [(C.SCHOOL_MISSING, "buyer.schoolId")], id="school_id_missing"
    ),
    pytest.param(
        spec(buyer=BuyerFacts(school_given=True)),
        [(C.SCHOOL_UNKNOWN, "buyer.schoolId")],
        id="school_id_unknown",
    ),
    pytest.param(
        spec(
            line(V.PERSONAL),
            buyer=BuyerFacts(private_person=True, school_given=True, school_known=True),
        ),
        [(C.OTHER, "buyer.schoolId")],
        id="buyer_cannot_be_school_and_private_person",
    ),
    pytest.param(
        spec(contract_number="C-9", contract_known=False),
        [(C.CONTRACT_UNKNOWN, "contractNumber")],
        id="contract_unknown",
    ),
    pytest.param(
        spec(line(contract_restriction="contract C-1 does not cover this product")),
        [(C.CONTRACT_RESTRICTED, "contractNumber")],
        id="contract_restricts_line",
    ),
    pytest.param(spec(lines=()), [(C.FIELD_MISSING, "orderLines")], id="no_order_lines"),
    # product
    pytest.param(
        spec(line(product_id=None, product=None)),
        [(C.PRODUCT_MISSING, "orderLines.0.productId")],
        id="product_id_missing",
    ),
    pytest.param(
        spec(line(product_id="", product=None)),
        [(C.PRODUCT_MISSING, "orderLines.0.productId")],
        id="product_id_blank",
    ),
    pytest.param(
        spec(line(product_id="9789006999999", product=None, start_date=date(2000, 1, 1))),
        [(C.PRODUCT_UNKNOWN, "orderLines.0.productId")],
        id="product_unknown_skips_product_checks",
    ),
    pytest.param(
        spec(line(product=replace(PRODUCT, type=ProductType.PHYSICAL))),
        [(C.OTHER, "orderLines.0.productId")],
        id="physical_delivery_is_out_of_scope",
    ),
    pytest.param(
        spec(line(product=replace(PRODUCT, sale_start_date=date(2024, 8, 21)))),
        [(C.PRODUCT_NOT_YET_FOR_SALE, "orderLines.0.productId")],
        id="product_not_yet_for_sale",
    ),
    pytest.param(
        spec(line(product=replace(PRODUCT, sale_end_date=date(2024, 8, 19)))),
        [(C.PRODUCT_NO_LONGER_FOR_SALE, "orderLines.0.productId")],
        id="product_no_longer_for_sale",
    ),
    pytest.param(
        spec(line(start_date=date(2024, 5, 31))),
        [(C.START_BEFORE_PUBLICATION, "orderLines.0.startDate")],
        id="start_before_first_publication",
    ),
    # variant
    pytest.param(
        spec(line(variant=None, quantity=5, entitlees=(pupil(1),))),
        [(C.FIELD_MISSING, "orderLines.0.variant")],
        id="variant_missing_skips_variant_checks",
    ),
    pytest.param(
        spec(line(V.SCHOOL), buyer=PRIVATE_BUYER),
        [(C.OTHER, "orderLines.0.variant")],
        id="private_person_cannot_order_school_variant",
    ),
    pytest.param(
        spec(line(V.PERSONAL)),
        [(C.OTHER, "orderLines.0.variant")],
        id="school_cannot_order_personal",
    ),
    # quantity
    pytest.param(
        spec(line(quantity=None)),
        [(C.FIELD_MISSING, "orderLines.0.quantity")],
        id="open_variant_needs_quantity",
    ),
    pytest.param(
        spec(line(V.SCHOOL_GROUP, quantity=0)),
        [(C.QUANTITY_TOO_LOW, "orderLines.0.quantity")],
        id="quantity_zero",
    ),
    pytest.param(
        spec(line(V.SCHOOL_SUBJECT, quantity=-4)),
        [(C.QUANTITY_TOO_LOW, "orderLines.0.quantity")],
        id="quantity_negative",
    ),
    pytest.param(
        spec(line(V.SCHOOL_PUPIL, quantity=1)),
        [(C.OTHER, "orderLines.0.quantity")],
        id="individual_variant_refuses_quantity",
    ),
    # subject and group
    pytest.param(
        spec(line(V.SCHOOL_SUBJECT, subject_given=False, subject_known=False)),
        [(C.SUBJECT_MISSING, "orderLines.0.schoolSubjectId")],
        id="subject_missing",
    ),
    pytest.param(
        spec(line(V.SCHOOL_SUBJECT, subject_known=False)),
        [(C.SUBJECT_UNKNOWN, "orderLines.0.schoolSubjectId")],
        id="subject_unknown",
    ),
    pytest.param(
        spec(line(V.SCHOOL, subject_given=True, subject_known=True)),
        [(C.OTHER, "orderLines.0.schoolSubjectId")],
        id="subject_for_wrong_variant",
    ),
    pytest.param(
        spec(line(V.SCHOOL_GROUP, group_given=False, group_known=False)),
        [(C.GROUP_MISSING, "orderLines.0.groupId")],
        id="group_missing",
    ),
    pytest.param(
        spec(line(V.SCHOOL_GROUP, group_known=False)),
        [(C.GROUP_UNKNOWN, "orderLines.0.groupId")],
        id="group_unknown",
    ),
    pytest.param(
        spec(line(V.SCHOOL_SUBJECT, group_given=True, group_known=True)),
        [(C.OTHER, "orderLines.0.groupId")],
        id="group_for_wrong_variant",
    ),
    # entitlees
    pytest.param(
        spec(line(V.SCHOOL_PUPIL, entitlees=())),
        [(C.PERSON_ID_MISSING, "orderLines.0.entitlees")],
        id="individual_variant_needs_entitlees",
    ),
    pytest.param(
        personal(entitlees=()),
        [(C.PERSON_ID_MISSING, "orderLines.0.entitlees")],
        id="personal_needs_an_entitlee",
    ),
    pytest.param(
        spec(line(V.SCHOOL_PUPIL, entitlees=(pupil(1), PersonRef(given=None)))),
        [(C.PERSON_ID_MISSING, "orderLines.0.entitlees.1")],
        id="entitlee_without_identifier",
    ),
    pytest.param(
        spec(line(V.SCHOOL_PUPIL, entitlees=(PersonRef(given=IdentifierField.ECK_ID),))),
        [(C.PERSON_UNKNOWN, "orderLines.0.entitlees.0.eckId")],
        id="eck_id_unknown",
    ),
    pytest.param(
        spec(line(V.SCHOOL_TEACHER, entitlees=(PersonRef(given=IdentifierField.USER_ID),))),
        [(C.PERSON_UNKNOWN, "orderLines.0.entitlees.0.userId")],
        id="user_id_unknown",
    ),
    pytest.param(
        spec(line(V.SCHOOL_PUPIL, entitlees=(pupil(1), teacher(7)))),
        [(C.OTHER, "orderLines.0.entitlees.1.userId")],
        id="teacher_named_in_school_pupil_is_refused",
    ),
    pytest.param(
        spec(line(V.SCHOOL_TEACHER, entitlees=(pupil(1),))),
        [(C.OTHER, "orderLines.0.entitlees.0.eckId")],
        id="pupil_named_in_school_teacher_is_refused",
    ),
    pytest.param(
        personal(entitlees=(teacher(7),)),
        [(C.OTHER, "orderLines.0.entitlees.0.userId")],
        id="teacher_named_in_personal_is_refused",
    ),
    pytest.param(
        personal(entitlees=(pupil(1), pupil(2))),
        [(C.OTHER, "orderLines.0.entitlees")],
        id="personal_names_exactly_one_pupil",
    ),
    pytest.param(
        spec(
            line(V.SCHOOL_PUPIL, entitlees=(pupil(1), pupil(2), pupil(1, IdentifierField.USER_ID)))
        ),
        [(C.OTHER, "orderLines.0.entitlees.2.userId")],
        id="duplicated_pupil_in_one_line",
    ),
    pytest.param(
        spec(line(V.SCHOOL_PUPIL, entitlees=(code("A"), code("A")))),
        [(C.OTHER, "orderLines.0.entitlees.1.activationCode")],
        id="duplicated_activation_code_in_one_line",
    ),
    pytest.param(
        spec(
            line(
                V.SCHOOL_PUPIL,
                entitlees=(PersonRef(given=IdentifierField.ACTIVATION_CODE, known=False),),
            )
        ),
        [(C.ACTIVATION_CODE_UNKNOWN, "orderLines.0.entitlees.0.activationCode")],
        id="activation_code_unknown",
    ),
    pytest.param(
        spec(line(V.SCHOOL_PUPIL, entitlees=(code("A", ActivationCodeState.USED),))),
        [(C.ACTIVATION_CODE_USED, "orderLines.0.entitlees.0.activationCode")],
        id="activation_code_used",
    ),
    pytest.param(
        spec(line(V.SCHOOL_PUPIL, entitlees=(code("A", ActivationCodeState.REVOKED),))),
        [(C.ACTIVATION_CODE_REVOKED, "orderLines.0.entitlees.0.activationCode")],
        id="activation_code_revoked",
    ),
    pytest.param(
        spec(line(V.SCHOOL_GROUP, entitlees=(pupil(1),))),
        [(C.OTHER, "orderLines.0.entitlees")],
        id="open_variant_refuses_entitlees",
    ),
    # activation period
    pytest.param(
        spec(line(start_date=None)),
        [(C.FIELD_MISSING, "orderLines.0.startDate")],
        id="start_date_missing",
    ),
    pytest.param(
        spec(line(activation_until_date=None)),
        [(C.FIELD_MISSING, "orderLines.0.activationUntilDate")],
        id="activation_until_date_missing",
    ),
    pytest.param(
        spec(line(start_date=date(2024, 9, 1), activation_until_date=date(2024, 8, 31))),
        [(C.OTHER, "orderLines.0.activationUntilDate")],
        id="activation_until_date_before_start_date",
    ),
    pytest.param(
        spec(line(start_date=date(2024, 7, 1), activation_until_date=date(2024, 8, 19))),
        [(C.OTHER, "orderLines.0.activationUntilDate")],
        id="activation_period_already_over",
    ),
    # licence term
    pytest.param(
        spec(line(licence_term=None)),
        [(C.FIELD_MISSING, "orderLines.0.licenceTerm")],
        id="licence_term_missing",
    ),
    pytest.param(
        spec(line(licence_term=LicenceTermInput())),
        [(C.FIELD_MISSING, "orderLines.0.licenceTerm.minExpirationDate")],
        id="licence_term_empty",
    ),
    pytest.param(
        spec(line(licence_term=LicenceTermInput(duration_months=0))),
        [(C.OTHER, "orderLines.0.licenceTerm.durationMonths")],
        id="licence_duration_below_one_month",
    ),
    pytest.param(
        spec(line(licence_term=LicenceTermInput(min_expiration_date=date(2025, 7, 30)))),
        [(C.OTHER, "orderLines.0.licenceTerm.minExpirationDate")],
        id="fixed_expiration_before_activation_until_date",
    ),
    # paths and accumulation
    pytest.param(
        spec(line(), line(V.SCHOOL_GROUP, group_known=False)),
        [(C.GROUP_UNKNOWN, "orderLines.1.groupId")],
        id="second_line_is_indexed",
    ),
    pytest.param(
        spec(line(V.SCHOOL), line(V.SCHOOL_PUPIL), buyer=BuyerFacts()),
        [(C.SCHOOL_MISSING, "buyer.schoolId")],
        id="missing_school_is_reported_once",
    ),
    pytest.param(
        spec(
            line(
                V.SCHOOL_GROUP,
                product=replace(PRODUCT, type=ProductType.PHYSICAL, sale_end_date=date(2024, 1, 1)),
                quantity=0,
                group_given=False,
                start_date=date(2024, 1, 1),
                activation_until_date=None,
                licence_term=LicenceTermInput(duration_months=0),
            ),
            line(product_id=None, product=None, variant=None),
            reference_id=None,
            buyer=BuyerFacts(school_given=True),
            contract_number="C-9",
            contract_known=False,
        ),
        [
            (C.FIELD_MISSING, "referenceId"),
            (C.SCHOOL_UNKNOWN, "buyer.schoolId"),
            (C.CONTRACT_UNKNOWN, "contractNumber"),
            (C.OTHER, "orderLines.0.productId"),
            (C.PRODUCT_NO_LONGER_FOR_SALE, "orderLines.0.productId"),
            (C.QUANTITY_TOO_LOW, "orderLines.0.quantity"),
            (C.GROUP_MISSING, "orderLines.0.groupId"),
            (C.START_BEFORE_PUBLICATION, "orderLines.0.startDate"),
            (C.FIELD_MISSING, "orderLines.0.activationUntilDate"),
            (C.OTHER, "orderLines.0.licenceTerm.durationMonths"),
            (C.PRODUCT_MISSING, "orderLines.1.productId"),
            (C.FIELD_MISSING, "orderLines.1.variant"),
        ],
        id="every_problem_is_reported_at_once_in_input_order",
    ),
]


@pytest.mark.parametrize(("the_spec", "expected"), INVALID)
def test_invalid_delivery_reports_agreed_codes_and_paths(the_spec, expected):
    assert problems(the_spec) == expected


def test_every_status_code_of_a_delivery_is_exercised():
    seen = {code for param in INVALID for code, _ in param.values[1]}
    delivery_codes = {
        C.FIELD_MISSING,
        C.PERSON_ID_MISSING,
        C.PERSON_UNKNOWN,
        C.SUBJECT_MISSING,
        C.SUBJECT_UNKNOWN,
        C.GROUP_MISSING,
        C.GROUP_UNKNOWN,
        C.SCHOOL_MISSING,
        C.SCHOOL_UNKNOWN,
        C.PRODUCT_MISSING,
        C.PRODUCT_UNKNOWN,
        C.PRODUCT_NOT_YET_FOR_SALE,
        C.PRODUCT_NO_LONGER_FOR_SALE,
        C.START_BEFORE_PUBLICATION,
        C.CONTRACT_UNKNOWN,
        C.CONTRACT_RESTRICTED,
        C.QUANTITY_TOO_LOW,
        C.ACTIVATION_CODE_UNKNOWN,
        C.ACTIVATION_CODE_USED,
        C.ACTIVATION_CODE_REVOKED,
        C.OTHER,
    }
    assert delivery_codes <= seen


def test_physical_product_message_says_out_of_scope():
    (error,) = validate_delivery(
        spec(line(product=replace(PRODUCT, type=ProductType.PHYSICAL))), TODAY
    )
    assert error.message == "physical delivery is out of scope"


def test_check_delivery_raises_every_problem():
    the_spec = spec(line(quantity=0), reference_id=None)
    with pytest.raises(ValidationFailed) as info:
        check_delivery(the_spec, TODAY)
    error = info.value
    assert [(e.code, e.field) for e in error.errors] == [
        (C.FIELD_MISSING, "referenceId"),
        (C.QUANTITY_TOO_LOW, "orderLines.0.quantity"),
    ]
    assert error.code is C.FIELD_MISSING
    assert error.field == "referenceId"
    assert "1 more problem" in error.message


def test_valid_licence_term_input_converts_to_a_term():
    assert TERM.to_term() == LicenceTerm(date(2025, 7, 31), None)
