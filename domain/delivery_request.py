"""A delivery specification as its sender wrote it, before any identifier is
resolved (`db/delivery.gather` turns it into `domain.delivery` facts): what the
idempotency fingerprint is taken of, and how a problem's path is reported back in
the sender's own terms."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from domain.entitlements import Variant
from domain.errors import FieldError


@dataclass(frozen=True)
class EntiteeRequest:
    eck_id: str | None = None
    user_scheme: str | None = None
    user_value: str | None = None
    activation_code: str | None = None


@dataclass(frozen=True)
class LineRequest:
    product_id: str | None = None
    variant: Variant | None = None
    quantity: int | None = None
    school_subject_id: str | None = None
    group_id: str | None = None
    entitlees: tuple[EntiteeRequest, ...] = ()
    start_date: date | None = None
    activation_until_date: date | None = None
    min_expiration_date: date | None = None
    duration_months: int | None = None
    licence_term_given: bool = False
    # Entitlees beyond this index came in the bulk `eckIds` list.
    explicit_entitlees: int = 0


@dataclass(frozen=True)
class DeliveryRequest:
    reference_id: str | None
    school_id: str | None
    private_person: bool
    buyer_given: bool
    order_number: str | None
    contract_number: str | None
    lines: tuple[LineRequest, ...]


def bulk_paths(
    request: DeliveryRequest, problems: tuple[FieldError, ...] | list[FieldError]
) -> tuple[FieldError, ...]:
    """Report problems of entitlees sent in the bulk `eckIds` list under that list's
    own path (`orderLines.i.eckIds.k`), as the sender wrote them."""
    fixed = []
    for problem in problems:
        parts = (problem.field or "").split(".")
        if len(parts) >= 4 and parts[0] == "orderLines" and parts[2] == "entitlees":
            explicit = request.lines[int(parts[1])].explicit_entitlees
            index = int(parts[3]) if parts[3].isdigit() else -1
            if index >= explicit:
                field = ".".join(["orderLines", parts[1], "eckIds", str(index - explicit)])
                problem = FieldError(problem.code, field, problem.message)
        fixed.append(problem)
    return tuple(fixed)


def message_of(request: DeliveryRequest) -> list[Any]:
    """The request as plain JSON-able data, for the idempotency fingerprint (built
    directly: a generic recursive conversion costs seconds for 5,000 entitlees)."""
    return [
        request.reference_id,
        request.school_id,
        request.private_person,
        request.buyer_given,
        request.order_number,
        request.contract_number,
        [
            [
                line.product_id,
                line.variant,
                line.quantity,
                line.school_subject_id,
                line.group_id,
                line.start_date,
                line.activation_until_date,
                line.min_expiration_date,
                line.duration_months,
                line.licence_term_given,
                [
                    [e.eck_id, e.user_scheme, e.user_value, e.activation_code]
                    for e in line.entitlees
                ],
            ]
            for line in request.lines
        ],
    ]
