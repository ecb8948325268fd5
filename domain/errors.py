"""Agreed status codes of the chain and the typed errors of the domain core.

The numeric codes are not ours to invent: they are the status codes agreed in the
SEM specification (tables 23 and 57, see DOMAIN.md §5). A licence office or portal
answers a delivery with one of them, and every expected error of the gateway carries
one, so a supplier can handle a refusal by number rather than by parsing English.

Three kinds of error leave the domain:

* ``DomainError``: one problem, with the agreed ``code``, the GraphQL input ``field``
  it concerns (a camelCase dotted path with zero-based list indices, for example
  ``orderLines.0.productId``; ``None`` when no single input field is to blame) and an
  English ``message``.
* ``TransitionNotAllowed``: a state machine refused an action in the current status.
  There is no agreed code for "wrong status", so it carries 99 (OTHER) unless the
  caller knows a more specific one.
* ``ValidationFailed``: a validation that reports every problem at once (a delivery
  specification) carries a tuple of ``FieldError`` values; its own code, field and
  message are those of the first problem, so a caller that only shows one still shows
  something true.

Transport-level codes (``TransportCode``) are about who may call, not about the
content of a message; they belong to the authorisation layer and are listed here
only so that every agreed number lives in one module.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class StatusCode(IntEnum):
    """Agreed content status codes (SEM tables 23 and 57)."""

    OK = 0
    FIELD_MISSING = 1
    PERSON_ID_MISSING = 2
    PERSON_UNKNOWN = 3
    SUBJECT_MISSING = 4
    SUBJECT_UNKNOWN = 5
    GROUP_MISSING = 6
    GROUP_UNKNOWN = 7
    SCHOOL_MISSING = 8
    SCHOOL_UNKNOWN = 9
    PRODUCT_MISSING = 10
    PRODUCT_UNKNOWN = 11
    PRODUCT_NOT_YET_FOR_SALE = 12
    PRODUCT_NO_LONGER_FOR_SALE = 13
    START_BEFORE_PUBLICATION = 14
    CONTRACT_UNKNOWN = 20
    CONTRACT_RESTRICTED = 21
    QUANTITY_TOO_LOW = 30
    ENTITLEMENT_UNKNOWN = 40
    QUANTITY_NOT_ALLOWED = 41
    LICENCE_REGISTERED = 42
    ACTIVATION_CODE_UNKNOWN = 50
    ACTIVATION_CODE_USED = 51
    ACTIVATION_CODE_REVOKED = 52
    OTHER = 99


class TransportCode(IntEnum):
    """Agreed transport-level codes: the call itself is refused, not its content."""

    SCOPE_REQUIRED = 3
    CONSENT_REQUIRED = 4
    SCHOOL_UNKNOWN_TO_RECEIVER = 5


@dataclass(frozen=True)
class FieldError:
    """One problem found by a validation that reports all problems at once."""

    code: StatusCode
    field: str | None
    message: str


class DomainError(Exception):
    """An expected, typed refusal; becomes a ``…Error`` type in a mutation payload."""

    code: StatusCode
    field: str | None
    message: str

    def __init__(self, code: StatusCode, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.field = field
        self.message = message

    def to_field_error(self) -> FieldError:
        return FieldError(self.code, self.field, self.message)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code.name}, field={self.field!r}, "
            f"message={self.message!r})"
        )


class TransitionNotAllowed(DomainError):
    """A state machine refused ``action`` in ``current_status``.

    ``current_status`` and ``action`` are the enum members of the state machine that
    refused (entitlement or licence), so a caller can react to them without parsing
    the message. The message names the current status, e.g. "cannot cancel an
    entitlement that is BLOCKED".
    """

    current_status: str
    action: str

    def __init__(
        self,
        current_status: str,
        action: str,
        message: str | None = None,
        *,
        code: StatusCode = StatusCode.OTHER,
        field: str | None = None,
    ) -> None:
        if message is None:
            message = f"cannot {str(action).lower()} in status {current_status}"
        super().__init__(code, message, field=field)
        self.current_status = current_status
        self.action = action


class ValidationFailed(DomainError):
    """Several problems at once; ``errors`` holds every one of them, in input order."""

    errors: tuple[FieldError, ...]

    def __init__(self, errors: tuple[FieldError, ...] | list[FieldError]) -> None:
        errors = tuple(errors)
        if not errors:
            raise ValueError("ValidationFailed needs at least one FieldError")
        first = errors[0]
        message = (
            first.message
            if len(errors) == 1
            else (f"{first.message} (and {len(errors) - 1} more problem(s))")
        )
        super().__init__(first.code, message, field=first.field)
        self.errors = errors
