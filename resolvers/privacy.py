"""Data minimisation at the door: the gateway never accepts a BSN or
onderwijsnummer (DOMAIN.md §3). Every string the caller sends, in variables or
written into the query, is checked before anything runs; a value that is one is
refused without repeating it (so logs cannot leak it either)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from graphql import ExecutionResult, StringValueNode, visit
from graphql.language import Visitor
from strawberry.extensions import SchemaExtension

from domain.identifiers import looks_like_pgn
from schema.errors import BadInput


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, f"{path}.{index}")


class _Literals(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.found = False

    def enter_string_value(self, node: StringValueNode, *_: Any) -> None:
        if looks_like_pgn(node.value):
            self.found = True


class RefusePgnInput(SchemaExtension):
    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        where = next(
            (path for path, text in _strings(context.variables or {}, "") if looks_like_pgn(text)),
            None,
        )
        if where is None and context.graphql_document is not None:
            literals = _Literals()
            visit(context.graphql_document, literals)
            where = "query" if literals.found else None
        if where is not None:
            context.result = ExecutionResult(
                data=None,
                errors=[
                    BadInput(
                        f"the input at {where} looks like a BSN or onderwijsnummer; the "
                        "gateway never accepts or stores one (use the ECK iD or a secondary "
                        "identifier)",
                        field=where,
                        reason="pgn",
                    )
                ],
            )
        yield


async def audit_trail(
    info: Any, school: Any, first: int | None, after: str | None, since: Any, until: Any
) -> Any:
    """The school's audit trail: who read or changed what, when, in which role."""
    from db.models import AuditLog as Row
    from db.privacy import trail_statement
    from resolvers.consent import school_for_admin
    from resolvers.queries import _page
    from schema.privacy import AuditEntry

    _caller, school_id = await school_for_admin(info, school)
    statement = trail_statement(school_id, since, until)
    return await _page(info, statement, Row.id, "audit", first, after, AuditEntry.from_row)


async def erase(info: Any, input: Any) -> Any:
    """Operator: erase a person. Identifiers and school data go; licences stay
    anonymised; the erasure itself is audited (without the identifiers)."""
    from db.privacy import erase_person
    from domain.errors import DomainError, StatusCode
    from resolvers import lookup
    from resolvers.auth import principal
    from resolvers.writes import actor
    from schema.payloads import error_payload
    from schema.privacy import PersonErased

    caller = await principal(info.context)
    identifier = input.identifier
    school = (identifier.school.scheme, identifier.school.value) if identifier.school else None
    found = await lookup.find_person(info.context.db, identifier.scheme, identifier.value, school)
    if not isinstance(found, lookup.PersonFound):
        return error_payload(
            DomainError(StatusCode.PERSON_UNKNOWN, "no such person", field="identifier")
        )
    person_id = found.row.id
    async with info.context.db.transaction() as session:
        counts = await erase_person(session, person_id, actor(caller, "operator"), input.reason)
    return PersonErased(
        person_id=str(person_id),
        **{
            "identifiers_removed": counts["identifiers"],
            "enrolments_removed": counts["enrolments"],
            "licences_anonymised": counts["licencesAnonymised"],
        },
    )
