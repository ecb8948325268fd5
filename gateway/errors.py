"""How the gateway logs the errors of an operation, over HTTP and websockets alike.

Expected refusals (the caller's own doing: UNAUTHENTICATED, FORBIDDEN,
BAD_USER_INPUT, CONSENT_REQUIRED, RATE_LIMITED, a query that does not parse or
validate, variables that do not coerce) are one line at INFO each: the code, the
path and, for the gateway's own refusals, their message with any BSN redacted;
never the query text, its variables or a validation message (which quotes the
query). Unexpected errors keep their traceback at ERROR (the client sees them
masked, `schema.build_schema`).

`install(schema)` makes this the schema's `process_errors` (strawberry's default
logs every error with its traceback); `refused` and `unexpected` are for the
transports' own refusals and crashes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from graphql import GraphQLError

from domain.privacy import redact_pgns
from schema.errors import GatewayError

log = logging.getLogger("ketenpoort.errors")

#: The code of an error about the request itself (graphql-core's syntax,
#: validation and variable errors carry none).
REQUEST_ERROR = "GRAPHQL_INVALID"


def code_of(error: GraphQLError) -> str | None:
    extensions = error.extensions or {}
    code = extensions.get("code")
    return str(code) if code else None


def is_expected(error: GraphQLError) -> bool:
    """A refusal the caller caused: the gateway's own errors, and errors about the
    request (parse, validation, coercion: no original error)."""
    original = error.original_error
    if isinstance(error, GatewayError) or isinstance(original, GatewayError):
        return True
    return original is None


def _operation(execution_context: Any) -> str | None:
    try:
        name = execution_context.operation_name if execution_context is not None else None
    except Exception:  # an unparsable document has no operation
        return None
    return redact_pgns(name) if isinstance(name, str) else None


def refused(code: str, message: str | None = None, **where: Any) -> None:
    """One INFO line for an expected refusal; `message` only when the gateway wrote it."""
    if not log.isEnabledFor(logging.INFO):
        return
    text = redact_pgns(message)[:200] if message else ""
    details = " ".join(f"{key}={value}" for key, value in where.items() if value is not None)
    log.info("refused %s%s%s", code, f" {details}" if details else "", f": {text}" if text else "")


def unexpected(message: str, *args: Any, error: BaseException | None = None) -> None:
    """An unexpected error, with its traceback (masked to the client)."""
    exc_info = (type(error), error, error.__traceback__) if error is not None else True
    log.error(message, *args, exc_info=exc_info)


def process_errors(errors: Iterable[GraphQLError], execution_context: Any = None) -> None:
    """Strawberry's `Schema.process_errors`: called with the errors of every
    operation before they are masked."""
    operation = None
    for error in errors:
        path = ".".join(str(p) for p in error.path) if error.path else None
        if is_expected(error):
            if operation is None:
                operation = _operation(execution_context) or "-"
            own = isinstance(error, GatewayError) or isinstance(error.original_error, GatewayError)
            refused(
                code_of(error) or REQUEST_ERROR,
                error.message if own else None,
                operation=operation,
                path=path,
            )
        else:
            original = error.original_error
            unexpected(
                "unexpected error in operation %s at %s",
                _operation(execution_context) or "-",
                path or "-",
                error=original if original is not None else error,
            )


def no_operation(operation_name: str | None) -> str:
    """The request error for a document without the operation asked for (its name
    redacted of any BSN)."""
    if operation_name:
        return f"the document has no operation named {redact_pgns(operation_name)!r}"
    return "the document holds no operation"


def explain_refused_choice(query: str, operation_name: str | None) -> str | None:
    """Why strawberry's stream refused to choose an operation (it answers that with a
    masked error): no query, or no operation of that name. None when that is not it.
    Only asked on that error path: it parses the document again."""
    from graphql import GraphQLError as ParseError
    from graphql import OperationDefinitionNode, parse

    if not query:
        return "no query"
    try:
        document = parse(query)
    except ParseError:
        return None
    names = [
        d.name.value if d.name else None
        for d in document.definitions
        if isinstance(d, OperationDefinitionNode)
    ]
    if not names or (operation_name is not None and operation_name not in names):
        return no_operation(operation_name)
    return None


def install(schema: Any) -> None:
    """Make `process_errors` the schema's (one schema object serves HTTP and websockets)."""
    schema.process_errors = process_errors
