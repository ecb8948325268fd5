"""What every mutation resolver shares: the write path's refusals as the schema's
typed payloads. The write path itself (one transaction, idempotent by referenceId)
is `services/writes.py`."""

from __future__ import annotations

from typing import Any

from db.idempotency import ReferenceConflict
from domain.errors import DomainError
from schema.payloads import conflict_payload, error_payload
from services.writes import actor, run_once, run_write

#: What a use case raises for a refused message: answered with a typed payload.
REFUSED = (ReferenceConflict, DomainError)


def refusal(error: ReferenceConflict | DomainError, reference_id: str | None) -> Any:
    """The payload for a refusal: a reused referenceId (`ReferenceConflictError`) or
    a rule of the domain (`error_payload`, a `MutationError` chosen by the error's
    code). Typed Any on purpose, in this one place: which error types a mutation
    admits is its union's statement in the schema, checked by strawberry when it
    resolves the union; the error type follows the code at run time, which no
    annotation can state."""
    if isinstance(error, ReferenceConflict):
        return conflict_payload(reference_id or "", str(error))
    return error_payload(error)


__all__ = ["REFUSED", "ReferenceConflict", "actor", "refusal", "run_once", "run_write"]
