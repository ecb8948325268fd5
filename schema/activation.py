"""Activation (In gebruik nemen): the licence office's decision tree as a mutation,
the seller's block and unblock of one licence, and who holds a licence."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry

from domain.activation import Rule
from schema.lookups import OrganisationIdentifierInput
from schema.payloads import (
    MutationError,
    NotFoundError,
    ReferenceConflictError,
    RuleViolationError,
    TransitionNotAllowedError,
    ValidationError,
)
from schema.roster import PersonIdInput
from schema.types import Licence

ActivationRule = strawberry.enum(
    Rule,
    name="ActivationRule",
    description="The rule of the decision tree that decided. Grants: EXISTING_LICENCE (an "
    "active licence exists; nothing new), INDIVIDUAL (an entitlement names the person), "
    "ACTIVATION_CODE, GROUP, SUBJECT, SCHOOL. Denials: PERSON_UNKNOWN (3), LICENCE_BLOCKED, "
    "NO_ENTITLEMENT, NOT_LINK_READY, NOT_STARTED, ACTIVATION_PERIOD_ENDED, CANCELLED, BLOCKED, "
    "QUANTITY_EXHAUSTED, TEACHER_NEEDS_INDIVIDUAL (teachers only through SCHOOL_TEACHER), "
    "TEACHERS_ONLY, ACTIVATION_CODE_UNKNOWN (50), ACTIVATION_CODE_USED (51), "
    "ACTIVATION_CODE_REVOKED (52).",
)

First = Annotated[
    int | None, strawberry.argument(description="Page size (default 20, at most 100).")
]
After = Annotated[
    str | None, strawberry.argument(description="Cursor of the last row of the previous page.")
]

# --- inputs -----------------------------------------------------------------------------------


@strawberry.input(
    description="The person who clicked the access link, as the federated login released "
    "them: the ECK iD and, for the hybrid situation, a secondary userId (always for teachers)."
)
class ActivatingPersonInput:
    eck_id: str | None = strawberry.field(default=None, description="The pupil's ECK iD.")
    identifiers: list[PersonIdInput] = strawberry.field(
        default_factory=list,
        description="Secondary identifiers (NEPRI, NEPPI, BPI, ASI within the login school, "
        "EDUID); used when the ECK iD is absent or unknown.",
    )


@strawberry.input(description="A click on an access link: may this person use this product?")
class LicenceActivateInput:
    product_id: str = strawberry.field(description="EAN/ISBN-13 or UUID of the product.")
    school: OrganisationIdentifierInput = strawberry.field(
        description="The school from the login (schoolId), by any RIO identifier; a VE_CODE "
        "(BRIN6) of a location stands for its school."
    )
    person: ActivatingPersonInput = strawberry.field(description="Who clicked.")
    activation_code: str | None = strawberry.field(
        default=None, description="An activation code the person entered, if any."
    )
    reference_id: str | None = strawberry.field(
        default=None,
        description="Optional message id: a repeat with the same id gets the same answer. A "
        "click needs none, a second click finds the first click's licence.",
    )


@strawberry.input(description="One licence to block or unblock.")
class LicenceStepInput:
    licence_id: strawberry.ID = strawberry.field(description="The licence.")
    reference_id: str | None = strawberry.field(
        default=None, description="Optional message id: a repeat gets the same answer."
    )


# --- payloads -----------------------------------------------------------------------------------


@strawberry.type(description="A better-ranked entitlement that applied but could not be used.")
class PassedOverEntitlement:
    entitlement_id: strawberry.ID = strawberry.field(description="The entitlement.")
    rule: ActivationRule = strawberry.field(description="Why it could not be used.")  # type: ignore[valid-type]


def _passed_over(answer: dict[str, Any]) -> list[PassedOverEntitlement]:
    return [
        PassedOverEntitlement(entitlement_id=strawberry.ID(str(eid)), rule=Rule(rule))
        for eid, rule in answer["passedOver"]
    ]


@strawberry.type(
    description="Access granted (code 0): on a new licence (created) or on the active licence "
    "the person already had. A new licence's activation is reported to the shop, the portals "
    "and the dashboards of the school as a LICENCE_ACTIVATED event."
)
class LicenceGranted:
    rule: ActivationRule = strawberry.field(description="The rule that granted access.")  # type: ignore[valid-type]
    code: int = strawberry.field(description="Agreed status code: 0.")
    reason: str = strawberry.field(description="Why, in words.")
    created: bool = strawberry.field(
        description="True when this click created the licence; false when it already existed."
    )
    replayed: bool = strawberry.field(
        description="True when this referenceId was processed before and this is that answer."
    )
    licence: Licence = strawberry.field(
        description="The licence; the portal keeps the access link visible until its "
        "expirationDate."
    )
    passed_over: list[PassedOverEntitlement] = strawberry.field(
        description="Better-ranked entitlements that applied but failed a check."
    )

    @classmethod
    def build(cls, answer: dict[str, Any], replayed: bool, licence: Licence) -> LicenceGranted:
        return cls(
            rule=Rule(answer["rule"]),
            code=answer["code"],
            reason=answer["reason"],
            created=answer["created"],
            replayed=replayed,
            licence=licence,
            passed_over=_passed_over(answer),
        )


@strawberry.type(
    description="Access denied: the rule that failed and why. Nothing was written. Codes: 3 "
    "person unknown, 50/51/52 activation code unknown/used/revoked, 99 otherwise (the rule "
    "says which)."
)
class ActivationDenied(MutationError):
    rule: ActivationRule = strawberry.field(description="The rule that failed.")  # type: ignore[valid-type]
    entitlement_id: strawberry.ID | None = strawberry.field(
        description="The entitlement whose check failed (or the blocked licence's one)."
    )
    licence_id: strawberry.ID | None = strawberry.field(
        description="The blocked licence, for LICENCE_BLOCKED."
    )
    passed_over: list[PassedOverEntitlement] = strawberry.field(
        description="Other entitlements that applied and failed, best-ranked first."
    )

    @classmethod
    def build(cls, answer: dict[str, Any]) -> ActivationDenied:
        return cls(
            code=answer["code"],
            field=None,
            message=answer["reason"],
            rule=Rule(answer["rule"]),
            entitlement_id=strawberry.ID(str(answer["entitlementId"]))
            if answer["entitlementId"] is not None
            else None,
            licence_id=strawberry.ID(str(answer["licenceId"]))
            if answer["licenceId"] is not None
            else None,
            passed_over=_passed_over(answer),
        )


LicenceActivatePayload = Annotated[
    LicenceGranted | ActivationDenied | ValidationError | ReferenceConflictError,
    strawberry.union(
        "LicenceActivatePayload",
        description="Access granted with the licence, access denied with the rule, or the "
        "input refused (codes 1, 2, 9 school unknown, 11 product unknown).",
    ),
]


@strawberry.type(description="The licence after the change.")
class LicenceChanged:
    licence: Licence = strawberry.field(description="The licence, with its new status.")
    replayed: bool = strawberry.field(
        description="True when this referenceId was processed before and this is that answer."
    )


LicenceChangePayload = Annotated[
    LicenceChanged
    | NotFoundError
    | TransitionNotAllowedError
    | RuleViolationError
    | ReferenceConflictError,
    strawberry.union(
        "LicenceChangePayload",
        description="The changed licence, or why not (40: unknown to you; 99: not allowed in "
        "its current status).",
    ),
]
