"""What every mutation resolver shares: the write path's refusals as the schema's
typed payloads. The write path itself (one transaction, idempotent by referenceId)
is `services/writes.py`."""

from __future__ import annotations

from typing import Any

from db.idempotency import ReferenceConflict
from domain.errors import DomainError
from schema.payloads import MutationError, admitted, conflict_payload, error_payload
from services.writes import run_once, run_write

#: What a use case raises for a refused message: answered with a typed payload.
REFUSED = (ReferenceConflict, DomainError)


def refusal(
    error: ReferenceConflict | DomainError, reference_id: str | None, payload: Any
) -> Any:
    """The answer of a mutation whose payload union is `payload` to a refusal: a
    reused referenceId (`ReferenceConflictError`) or a rule of the domain
    (`error_payload`, a `MutationError` chosen by the error's code), as the union
    admits it (`schema.payloads.admitted`): never a type the union does not list,
    which strawberry would mask as an unexpected error. Typed Any on purpose, in
    this one place: the error type follows the code at run time, which no
    annotation can state."""
    answer: MutationError = (
        conflict_payload(reference_id or "", str(error))
        if isinstance(error, ReferenceConflict)
        else error_payload(error)
    )
    return admitted(answer, payload)


__all__ = ["REFUSED", "ReferenceConflict", "refusal", "run_once", "run_write"]
