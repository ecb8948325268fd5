"""Expected mutation failures are part of the schema.

Every mutation returns a union of its success type and the error types below.
Each error carries the agreed numeric status code of the chain (DOMAIN.md §5),
the input field it is about, and a message; clients can select the common
fields once with `... on MutationError { code field message }`.
"""

from __future__ import annotations

from typing import Any, get_args

import strawberry

from domain.errors import DomainError, StatusCode, TransitionNotAllowed, ValidationFailed


@strawberry.interface(description="A refused mutation: nothing was written.")
class MutationError:
    code: int = strawberry.field(
        description="Agreed status code (SEM tables 23/57): e.g. 9 school unknown, 11 product "
        "unknown, 41 quantity not allowed, 42 licence registered, 99 other."
    )
    field: str | None = strawberry.field(
        description="Input path the problem is about, e.g. orderLines.0.productId."
    )
    message: str = strawberry.field(description="What is wrong, in words.")


@strawberry.type(description="One problem in the input, with its status code and path.")
class Problem:
    code: int = strawberry.field(description="Agreed status code.")
    field: str | None = strawberry.field(description="Input path, e.g. orderLines.2.quantity.")
    message: str = strawberry.field(description="What is wrong.")


@strawberry.type(
    description="The input was refused as a whole; `problems` lists every problem found, "
    "so the sender can fix its message in one round trip."
)
class ValidationError(MutationError):
    problems: list[Problem] = strawberry.field(description="Every problem, in input order.")


@strawberry.type(description="The entitlement, licence or other object is unknown (code 40).")
class NotFoundError(MutationError):
    pass


@strawberry.type(description="The state machine does not allow this step from the current status.")
class TransitionNotAllowedError(MutationError):
    current_status: str = strawberry.field(description="The status the object is in now.")
    action: str = strawberry.field(description="The step that was refused.")


@strawberry.type(
    description="A rule of the chain refused the change (e.g. 41 quantity not allowed, "
    "42 licence registered on the entitlement)."
)
class RuleViolationError(MutationError):
    pass


@strawberry.type(
    description="The referenceId was already used for a different message; a retry must "
    "send the same message, a new message needs a new referenceId."
)
class ReferenceConflictError(MutationError):
    reference_id: str = strawberry.field(description="The reused referenceId.")


def error_payload(error: DomainError) -> MutationError:
    """The schema type for a refusal raised by the domain."""
    if isinstance(error, ValidationFailed):
        return ValidationError(
            code=int(error.code),
            field=error.field,
            message=error.message,
            problems=[
                Problem(code=int(e.code), field=e.field, message=e.message) for e in error.errors
            ],
        )
    if isinstance(error, TransitionNotAllowed):
        return TransitionNotAllowedError(
            code=int(error.code),
            field=error.field,
            message=error.message,
            current_status=str(error.current_status),
            action=str(error.action),
        )
    if error.code == StatusCode.ENTITLEMENT_UNKNOWN:
        return NotFoundError(code=int(error.code), field=error.field, message=error.message)
    return RuleViolationError(code=int(error.code), field=error.field, message=error.message)


def members(payload: Any) -> tuple[type, ...]:
    """The types a payload union (`Annotated[A | B, strawberry.union(...)]`) lists."""
    union, *_annotations = get_args(payload)
    return get_args(union)


def admitted(answer: MutationError, payload: Any) -> MutationError:
    """`answer` as the mutation's payload union admits it: itself when the union
    lists its type; otherwise, with the same code, field and message, the union's
    general refusal: `RuleViolationError`, or `ValidationError` with it as the one
    problem (the message refused as a whole, as a delivery is). A union with neither
    is a defect of the schema (TypeError), which tests/api/test_payload_unions.py
    finds for every mutation."""
    listed = members(payload)
    if type(answer) in listed:
        return answer
    code, field, message = answer.code, answer.field, answer.message
    if RuleViolationError in listed:
        return RuleViolationError(code=code, field=field, message=message)
    if ValidationError in listed:
        return ValidationError(
            code=code,
            field=field,
            message=message,
            problems=[Problem(code=code, field=field, message=message)],
        )
    raise TypeError(f"the payload union {payload} lists no general refusal type")


def conflict_payload(reference_id: str, message: str) -> ReferenceConflictError:
    return ReferenceConflictError(
        code=int(StatusCode.OTHER),
        field="referenceId",
        message=message,
        reference_id=reference_id,
    )
