"""Validation of a delivery specification (Leverspecificatie), reporting every problem.

A shop submits what was ordered (seed 004): the buyer (a school or a private person),
optional order and contract numbers, and per ordered product the entitlement variant
with the data it needs (DOMAIN.md §4), the activation period and the licence term.
The gateway refuses a specification with the agreed status codes (DOMAIN.md §5), and
reports ALL problems at once so a shop fixes its message in one round trip.

The resolver first resolves identifiers through the database (RIO school ids,
product ids, subjects and groups within the buyer's school, ECK iDs / userIds,
activation codes) and hands the outcome to ``validate_delivery()`` as facts. This
module never sees an identifier's format; "known" means "resolved".

Input shape (GraphQL ``DeliveryInput``) and the field paths problems are reported on.
Paths are camelCase, dot-separated, with zero-based list indices::

    referenceId: String                  referenceId           (idempotency key)
    buyer: {                             buyer
      schoolId: String                   buyer.schoolId        (any RIO identifier)
      privatePerson: Boolean             buyer.privatePerson
    }
    orderNumber: String                  orderNumber           (optional, not checked)
    contractNumber: String               contractNumber        (optional)
    orderLines: [{                       orderLines
      productId: String                  orderLines.{i}.productId
      variant: EntitlementVariant        orderLines.{i}.variant
      quantity: Int                      orderLines.{i}.quantity          (open variants)
      schoolSubjectId: String            orderLines.{i}.schoolSubjectId   (SCHOOL_SUBJECT)
      groupId: String                    orderLines.{i}.groupId           (SCHOOL_GROUP)
      entitlees: [{                      orderLines.{i}.entitlees         (individual variants)
        eckId: String                    orderLines.{i}.entitlees.{j}.eckId
        userId: {scheme, value}          orderLines.{i}.entitlees.{j}.userId
        activationCode: String           orderLines.{i}.entitlees.{j}.activationCode
      }]
      startDate: Date                    orderLines.{i}.startDate
      activationUntilDate: Date          orderLines.{i}.activationUntilDate
      licenceTerm: {                     orderLines.{i}.licenceTerm
        minExpirationDate: Date          orderLines.{i}.licenceTerm.minExpirationDate
        durationMonths: Int              orderLines.{i}.licenceTerm.durationMonths
      }
    }]

The GraphQL input should leave these fields nullable so that a missing one is
answered with its agreed code (1, 2, 4, 6, 8, 10) and path instead of a schema error.

Decisions:

* One product per order line; the school is the buyer's (``buyer.schoolId``), so a
  school problem (8/9) is reported once, not per line. A board buying for several
  schools sends one delivery per school.
* A buyer is either a school or a private person. A private buyer can only order
  PERSONAL, a school cannot order PERSONAL (it orders SCHOOL_PUPIL): 99 on the line's
  ``variant``. PERSONAL names exactly one pupil.
* A quantity is required (1 if absent) and at least 1 (30) for open variants, and
  refused (99) for individual ones, whose size is their entitlees.
* A subject, group or entitlee list sent for a variant that does not use it is
  refused (99) rather than ignored: it usually means the shop chose the wrong variant.
* A teacher named in SCHOOL_PUPIL or PERSONAL, or a pupil in SCHOOL_TEACHER, is
  refused with 99 (not 3: the person is known, only the variant is wrong). The seed
  allows an eckId for teachers too, so any identifier is accepted for either kind.
* The same person (or activation code) twice in one line is 99 on the later one.
* Dates: ``activationUntilDate`` before ``startDate``, or before today, is 99;
  ``startDate`` before the product's first publication is 14; sale window checks
  (12/13) use today, the day the order is delivered.
* A licence term with only ``minExpirationDate`` that ends before
  ``activationUntilDate`` is 99: pupils activating late would get a licence that is
  already expired.
* Contract: 20 only when a number is given and the resolver found it unknown
  (``contract_known is False``; None = not checked, e.g. in the combined role). A
  line the contract does not cover is 21, reported on ``contractNumber``.
* A physical product is 99, "physical delivery is out of scope"; combi and set are
  delivered as one entitlement (DOMAIN.md §3).
* Checks that depend on a missing or unknown input are skipped rather than reported
  twice (no sale-window check for an unknown product, no entitlee check without a
  variant).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from domain.entitlements import ActivationCodeState, Requirement, Variant
from domain.errors import FieldError, StatusCode, ValidationFailed
from domain.licences import LicenceTerm
from domain.persons import PersonKind
from domain.products import ProductType, sale_status


class IdentifierField(StrEnum):
    """Which identifier an entitlee was given by; the value is the input field name."""

    ECK_ID = "eckId"
    USER_ID = "userId"
    ACTIVATION_CODE = "activationCode"


@dataclass(frozen=True, kw_only=True)
class ProductFacts:
    """A product the resolver found for ``productId``."""

    product_id: str
    type: ProductType
    publisher_supplier_id: int
    sale_start_date: date | None = None
    sale_end_date: date | None = None
    first_publication_date: date | None = None


@dataclass(frozen=True, kw_only=True)
class PersonRef:
    """One entitlee as resolved.

    ``given``: the identifier the resolver used (None: the shop sent none).
    ``known``: it resolved, to a person (eckId/userId) or to an activation code.
    For an activation code, ``activation_code`` and its ``activation_code_state``.
    """

    given: IdentifierField | None
    known: bool = False
    person_id: int | None = None
    kind: PersonKind | None = None
    activation_code: str | None = None
    activation_code_state: ActivationCodeState | None = None


@dataclass(frozen=True, kw_only=True)
class LicenceTermInput:
    """The licence term as sent, not yet validated (see ``LicenceTerm``)."""

    min_expiration_date: date | None = None
    duration_months: int | None = None

    def to_term(self) -> LicenceTerm:
        return LicenceTerm(self.min_expiration_date, self.duration_months)


@dataclass(frozen=True, kw_only=True)
class BuyerFacts:
    private_person: bool = False
    school_given: bool = False
    school_known: bool = False


@dataclass(frozen=True, kw_only=True)
class OrderLine:
    """One ordered product. ``product`` is None when ``product_id`` did not resolve.

    ``contract_restriction``: why the contract does not allow this line, if it does
    not (the resolver knows the contract's terms).
    """

    product_id: str | None = None
    product: ProductFacts | None = None
    variant: Variant | None = None
    quantity: int | None = None
    subject_given: bool = False
    subject_known: bool = False
    group_given: bool = False
    group_known: bool = False
    entitlees: tuple[PersonRef, ...] = ()
    start_date: date | None = None
    activation_until_date: date | None = None
    licence_term: LicenceTermInput | None = None
    contract_restriction: str | None = None


@dataclass(frozen=True, kw_only=True)
class DeliverySpec:
    reference_id: str | None
    buyer: BuyerFacts | None
    lines: tuple[OrderLine, ...]
    order_number: str | None = None
    contract_number: str | None = None
    contract_known: bool | None = None


def validate_delivery(spec: DeliverySpec, today: date) -> tuple[FieldError, ...]:
    """Every problem of ``spec``, in input order; empty when it may be delivered."""
    errors: list[FieldError] = []
    add = errors.append

    if _blank(spec.reference_id):
        add(FieldError(StatusCode.FIELD_MISSING, "referenceId", "referenceId is required"))

    buyer = spec.buyer
    if buyer is None:
        add(FieldError(StatusCode.FIELD_MISSING, "buyer", "buyer is required"))
    elif buyer.private_person and buyer.school_given:
        add(
            FieldError(
                StatusCode.OTHER,
                "buyer.schoolId",
                "a buyer is a school (schoolId) or a private person (privatePerson), not both",
            )
        )
    elif not buyer.private_person and not buyer.school_given:
        add(
            FieldError(
                StatusCode.SCHOOL_MISSING,
                "buyer.schoolId",
                "schoolId is required unless the buyer is a private person",
            )
        )
    elif buyer.school_given and not buyer.school_known:
        add(
            FieldError(
                StatusCode.SCHOOL_UNKNOWN,
                "buyer.schoolId",
                "schoolId is unknown or ambiguous",
            )
        )

    if not _blank(spec.contract_number) and spec.contract_known is False:
        add(
            FieldError(
                StatusCode.CONTRACT_UNKNOWN,
                "contractNumber",
                f"contract {spec.contract_number!r} is unknown",
            )
        )

    if not spec.lines:
        add(FieldError(StatusCode.FIELD_MISSING, "orderLines", "at least one order line"))
    for index, line in enumerate(spec.lines):
        errors.extend(_validate_line(index, line, buyer, today))
    return tuple(errors)


def check_delivery(spec: DeliverySpec, today: date) -> None:
    """Raise ``ValidationFailed`` with every problem, if there is any."""
    errors = validate_delivery(spec, today)
    if errors:
        raise ValidationFailed(errors)


def _blank(value: str | None) -> bool:
    return value is None or not value.strip()


def _validate_line(
    index: int, line: OrderLine, buyer: BuyerFacts | None, today: date
) -> list[FieldError]:
    at = f"orderLines.{index}"
    errors: list[FieldError] = []

    def add(code: StatusCode, field: str, message: str) -> None:
        errors.append(FieldError(code, f"{at}.{field}" if field else at, message))

    # -- product ------------------------------------------------------------------
    product = line.product
    if _blank(line.product_id):
        add(StatusCode.PRODUCT_MISSING, "productId", "productId is required")
    elif product is None:
        add(StatusCode.PRODUCT_UNKNOWN, "productId", f"product {line.product_id!r} is unknown")
    else:
        if not product.type.deliverable:
            add(StatusCode.OTHER, "productId", "physical delivery is out of scope")
        sale = sale_status(today, product.sale_start_date, product.sale_end_date)
        if sale is StatusCode.PRODUCT_NOT_YET_FOR_SALE:
            assert product.sale_start_date is not None
            add(
                sale,
                "productId",
                f"product is not for sale before {product.sale_start_date.isoformat()}",
            )
        elif sale is StatusCode.PRODUCT_NO_LONGER_FOR_SALE:
            assert product.sale_end_date is not None
            add(
                sale,
                "productId",
                f"product is no longer for sale since {product.sale_end_date.isoformat()}",
            )

    # -- variant and what it requires ------------------------------------------------
    variant = line.variant
    if variant is None:
        add(StatusCode.FIELD_MISSING, "variant", "variant is required")
    elif buyer is not None and buyer.private_person and variant.for_school:
        add(
            StatusCode.OTHER,
            "variant",
            f"a private person can only order PERSONAL, not {variant}",
        )
    elif buyer is not None and not buyer.private_person and not variant.for_school:
        add(
            StatusCode.OTHER,
            "variant",
            "PERSONAL is for private buyers; a school orders SCHOOL_PUPIL for named pupils",
        )

    requires = variant.requires if variant is not None else frozenset()
    if variant is not None:
        if Requirement.QUANTITY in requires:
            if line.quantity is None:
                add(StatusCode.FIELD_MISSING, "quantity", f"quantity is required for {variant}")
            elif line.quantity < 1:
                add(
                    StatusCode.QUANTITY_TOO_LOW,
                    "quantity",
                    f"quantity must be at least 1, got {line.quantity}",
                )
        elif line.quantity is not None:
            add(
                StatusCode.OTHER,
                "quantity",
                f"a {variant} entitlement has no quantity: its entitlees are its size",
            )

        if Requirement.SCHOOL_SUBJECT_ID in requires:
            if not line.subject_given:
                add(StatusCode.SUBJECT_MISSING, "schoolSubjectId", "schoolSubjectId is required")
            elif not line.subject_known:
                add(
                    StatusCode.SUBJECT_UNKNOWN,
                    "schoolSubjectId",
                    "schoolSubjectId is unknown at the buyer's school",
                )
        elif line.subject_given:
            add(
                StatusCode.OTHER,
                "schoolSubjectId",
                f"schoolSubjectId only applies to SCHOOL_SUBJECT, not {variant}",
            )

        if Requirement.GROUP_ID in requires:
            if not line.group_given:
                add(StatusCode.GROUP_MISSING, "groupId", "groupId is required")
            elif not line.group_known:
                add(StatusCode.GROUP_UNKNOWN, "groupId", "groupId is unknown at the buyer's school")
        elif line.group_given:
            add(
                StatusCode.OTHER,
                "groupId",
                f"groupId only applies to SCHOOL_GROUP, not {variant}",
            )

        if Requirement.ENTITLEES in requires:
            errors.extend(_validate_entitlees(at, variant, line.entitlees))
        elif line.entitlees:
            add(
                StatusCode.OTHER,
                "entitlees",
                f"entitlees only apply to individual variants, not {variant}",
            )

    # -- activation period ---------------------------------------------------------------
    start, until = line.start_date, line.activation_until_date
    if start is None:
        add(StatusCode.FIELD_MISSING, "startDate", "startDate is required")
    elif (
        product is not None
        and product.first_publication_date is not None
        and start < product.first_publication_date
    ):
        add(
            StatusCode.START_BEFORE_PUBLICATION,
            "startDate",
            f"startDate is before the product's first publication on "
            f"{product.first_publication_date.isoformat()}",
        )
    if until is None:
        add(StatusCode.FIELD_MISSING, "activationUntilDate", "activationUntilDate is required")
    elif start is not None and until < start:
        add(StatusCode.OTHER, "activationUntilDate", "activationUntilDate is before startDate")
    elif until < today:
        add(
            StatusCode.OTHER,
            "activationUntilDate",
            f"the activation period has already ended ({until.isoformat()})",
        )

    # -- licence term ----------------------------------------------------------------------
    term = line.licence_term
    if term is None:
        add(StatusCode.FIELD_MISSING, "licenceTerm", "licenceTerm is required")
    else:
        problems = LicenceTerm.problems(
            term.min_expiration_date, term.duration_months, prefix=f"{at}.licenceTerm"
        )
        errors.extend(problems)
        if (
            not problems
            and term.duration_months is None
            and term.min_expiration_date is not None
            and until is not None
            and term.min_expiration_date < until
        ):
            add(
                StatusCode.OTHER,
                "licenceTerm.minExpirationDate",
                "minExpirationDate is before activationUntilDate: a licence activated "
                "late would already be expired",
            )

    # -- contract ------------------------------------------------------------------------------
    if line.contract_restriction is not None:
        errors.append(
            FieldError(
                StatusCode.CONTRACT_RESTRICTED,
                "contractNumber",
                f"order line {index}: {line.contract_restriction}",
            )
        )
    return errors


def _validate_entitlees(
    at: str, variant: Variant, entitlees: tuple[PersonRef, ...]
) -> list[FieldError]:
    errors: list[FieldError] = []
    if not entitlees:
        errors.append(
            FieldError(
                StatusCode.PERSON_ID_MISSING,
                f"{at}.entitlees",
                f"a {variant} entitlement needs an eckId, userId or activationCode",
            )
        )
        return errors
    if variant is Variant.PERSONAL and len(entitlees) > 1:
        errors.append(
            FieldError(
                StatusCode.OTHER,
                f"{at}.entitlees",
                f"a PERSONAL entitlement names exactly one pupil, got {len(entitlees)}",
            )
        )

    wanted = variant.person_kind
    seen: set[tuple[str, object]] = set()
    for j, ref in enumerate(entitlees):
        base = f"{at}.entitlees.{j}"
        if ref.given is None:
            errors.append(
                FieldError(
                    StatusCode.PERSON_ID_MISSING,
                    base,
                    "an entitlee needs an eckId, userId or activationCode",
                )
            )
            continue
        field = f"{base}.{ref.given}"
        if ref.given is IdentifierField.ACTIVATION_CODE:
            if not ref.known:
                errors.append(
                    FieldError(
                        StatusCode.ACTIVATION_CODE_UNKNOWN, field, "activation code is unknown"
                    )
                )
                continue
            if ref.activation_code_state is ActivationCodeState.USED:
                errors.append(
                    FieldError(
                        StatusCode.ACTIVATION_CODE_USED,
                        field,
                        "activation code was already used or sold",
                    )
                )
            elif ref.activation_code_state is ActivationCodeState.REVOKED:
                errors.append(
                    FieldError(
                        StatusCode.ACTIVATION_CODE_REVOKED, field, "activation code was revoked"
                    )
                )
            key: tuple[str, object] = ("code", ref.activation_code)
        else:
            if not ref.known:
                errors.append(
                    FieldError(StatusCode.PERSON_UNKNOWN, field, f"{ref.given} is unknown")
                )
                continue
            if ref.kind is not None and ref.kind is not wanted:
                errors.append(
                    FieldError(
                        StatusCode.OTHER,
                        field,
                        f"this person is a {ref.kind.lower()}; a {variant} entitlement "
                        f"names {wanted.lower()}s"
                        + (" (use SCHOOL_TEACHER)" if ref.kind is PersonKind.TEACHER else ""),
                    )
                )
            key = ("person", ref.person_id)
        if key[1] is not None:
            if key in seen:
                errors.append(
                    FieldError(
                        StatusCode.OTHER,
                        field,
                        "this entitlee is named twice in one order line",
                    )
                )
            seen.add(key)
    return errors
