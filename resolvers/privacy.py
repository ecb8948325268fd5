"""Data minimisation at the door: the gateway never accepts a BSN or
onderwijsnummer, whole or inside free text (DOMAIN.md §3, the rule in
`domain.privacy`). Every name and value of the query document (strings, Int and
Float literals, enum names, operation, variable, field and fragment names, values
inside lists and input objects) and every variable (values of every type, and
the keys of input objects) is checked after parsing and before validation, so no
validation or coercion message can repeat the number either. A request that
holds one is refused as a whole with BAD_USER_INPUT (reason `pgn`), naming where
it was and never the number.

A document that does not parse keeps its syntax error, with any pgn in the
message redacted. Not covered here (the transport's side): the HTTP
`operationName`, logs (strawberry logs a syntax error with the source excerpt).
They call `domain.privacy.contains_pgn` / `redact_pgns` or `pgn_in_request`.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from graphql import (
    ArgumentNode,
    DirectiveNode,
    DocumentNode,
    EnumValueNode,
    FieldNode,
    FloatValueNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    IntValueNode,
    NamedTypeNode,
    NameNode,
    Node,
    ObjectFieldNode,
    OperationDefinitionNode,
    StringValueNode,
    VariableDefinitionNode,
    VariableNode,
)
from strawberry.extensions import SchemaExtension
from strawberry.types import Info

from domain.privacy import contains_pgn, number_holds_pgn, redact_pgns
from resolvers.writes import refusal
from schema.errors import BadInput
from schema.lookups import OrganisationIdentifierInput
from schema.privacy import AuditEntry, PersonErased, PersonEraseInput, PersonErasePayload
from schema.types import Connection

_NAME_OF = {
    OperationDefinitionNode: "the operation name",
    VariableNode: "a variable name",
    FieldNode: "a field name or alias",
    ArgumentNode: "an argument name",
    ObjectFieldNode: "an input field name",
    FragmentDefinitionNode: "a fragment name",
    FragmentSpreadNode: "a fragment name",
    DirectiveNode: "a directive name",
    NamedTypeNode: "a type name",
}


def _value_holds_pgn(value: Any) -> bool:
    if isinstance(value, str):
        return contains_pgn(value)
    if isinstance(value, (int, float)):
        return number_holds_pgn(value)
    return False


def pgn_in_variables(variables: dict[str, Any] | None) -> str | None:
    """Where in the variables a pgn is (`input.orderLines.0.quantity`), or None.
    Walked with a stack: nesting depth costs no recursion."""
    stack: list[tuple[Any, str]] = [(variables or {}, "")]
    while stack:
        value, path = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                at = f"{path}.{key}" if path else str(key)
                if contains_pgn(str(key)):
                    return f"a field name in {path or 'the variables'}"
                stack.append((item, at))
        elif isinstance(value, list):
            stack.extend((item, f"{path}.{index}") for index, item in enumerate(value))
        elif _value_holds_pgn(value):
            return path
    return None


_LITERALS = (StringValueNode, EnumValueNode, IntValueNode, FloatValueNode)


def pgn_in_document(document: DocumentNode) -> str | None:
    """Where in the document a pgn is, or None: every node is visited once, with a
    stack (fragments are not expanded), so the time is linear in the document."""
    stack: list[tuple[Node, Node | None, str]] = [(document, None, "")]
    while stack:
        node, parent, path = stack.pop()
        if isinstance(node, NameNode):
            if contains_pgn(node.value):
                kind = _NAME_OF.get(type(parent), "a name")
                return f"{kind} at {path}" if path else kind
            continue
        if isinstance(node, _LITERALS):
            # The literal's text as written (an Int literal is never converted:
            # a 100,000-digit one would cost more than the check).
            if contains_pgn(node.value):
                return path or "the query"
            continue
        if isinstance(node, FieldNode):
            path = f"{path}.{node.name.value}" if path else node.name.value
        elif isinstance(node, (ArgumentNode, ObjectFieldNode)):
            path = f"{path}.{node.name.value}"
        elif isinstance(node, VariableDefinitionNode):
            path = f"${node.variable.name.value}"
        for key in node.keys:
            child = getattr(node, key, None)
            if isinstance(child, Node):
                stack.append((child, node, path))
            elif isinstance(child, tuple | list):
                stack.extend(
                    (item, node, f"{path}.{index}" if key == "values" else path)
                    for index, item in enumerate(child)
                    if isinstance(item, Node)
                )
    return None


def pgn_refusal(where: str) -> BadInput:
    """The refusal (BAD_USER_INPUT, reason pgn) naming where, never the number."""

    # `where` is built from the caller's names and keys, which may hold the number.
    where = redact_pgns(where)
    return BadInput(
        f"the input at {where} holds a BSN or onderwijsnummer (a number passing the "
        "11-test); the gateway never accepts or stores one: use the ECK iD or another "
        "identifier, and leave the number out of free text",
        field=where,
        reason="pgn",
    )


def pgn_in_request(document: DocumentNode | None, variables: dict[str, Any] | None) -> str | None:
    """Where a request holds a pgn (its variables, then its document), or None: what
    `RefusePgnInput` refuses, for every path that answers a request (the compiled
    reads ask it too)."""
    where = pgn_in_variables(variables)
    if where is None and document is not None:
        where = pgn_in_document(document)
    return where


class RefusePgnInput(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        # A document that does not parse is answered with graphql-core's syntax
        # error, whose message quotes the token it stopped at: never a pgn. (With a
        # parser cache the error leaves the operation as an exception.)
        try:
            yield
        except GraphQLError as error:
            self._redact_syntax_errors([error])
            raise
        self._redact_syntax_errors(self.execution_context.pre_execution_errors or [])

    def _redact_syntax_errors(self, errors: list[GraphQLError]) -> None:
        context = self.execution_context
        if context.graphql_document is None and context.query and contains_pgn(context.query):
            for error in errors:
                error.message = redact_pgns(error.message)

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        where = pgn_in_request(context.graphql_document, context.variables)
        if where is not None:
            # Set before validation runs (an earlier extension may already have
            # validated): the refusal replaces whatever validation would say.
            context.pre_execution_errors = [pgn_refusal(where)]
            yield
            context.pre_execution_errors = [pgn_refusal(where)]
            return
        yield


async def audit_trail(
    info: Info,
    school: OrganisationIdentifierInput,
    first: int | None,
    after: str | None,
    since: datetime | None,
    until: datetime | None,
) -> Connection[AuditEntry]:
    """The school's audit trail: who read or changed what, when, in which role."""
    from db.models import AuditLog as Row
    from db.privacy import trail_statement
    from resolvers.auth import managed_school
    from resolvers.queries import _page

    _caller, school_id = await managed_school(info, school)
    statement = trail_statement(school_id, since, until)
    return await _page(info, statement, Row.id, "audit", first, after, AuditEntry.from_row)


async def erase(info: Info, input: PersonEraseInput) -> PersonErasePayload:
    """Operator: erase a person (`services/privacy.py`)."""
    from domain.errors import DomainError, StatusCode
    from resolvers import lookup
    from resolvers.auth import principal
    from services import privacy as service

    caller = await principal(info.context)
    identifier = input.identifier
    school = (identifier.school.scheme, identifier.school.value) if identifier.school else None
    found = await lookup.find_person(info.context.db, identifier.scheme, identifier.value, school)
    if not isinstance(found, lookup.PersonFound):
        unknown = DomainError(StatusCode.PERSON_UNKNOWN, "no such person", field="identifier")
        return refusal(unknown, None, PersonErasePayload)
    person_id = found.row.id
    erased = await service.erase(info.context.db, caller, person_id, input.reason)
    return PersonErased(
        person_id=str(person_id),
        identifiers_removed=erased.identifiers_removed,
        enrolments_removed=erased.enrolments_removed,
        licences_anonymised=erased.licences_anonymised,
    )
