"""What root fields share: the `Root` a root field compiles to, and the checks and
lookups their arguments need, each as its resolver does it (identifiers validated
by `domain/`, cursors decoded by `db/pagination`, an organisation found as
`db.organisations.find` finds it, a school's consent decided by
`domain.consent.decide` evaluated in SQL). Input the resolvers answer with an error
raises `Replay`: the request runs on the resolvers.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from sqlalchemy import literal_column

from compiler.objects import Compiler
from compiler.sql import quote
from db.pagination import InvalidCursor, decode_cursor
from domain.consent import Access
from domain.identifiers import (
    PRIMARY_SCHEME,
    IdentifierError,
    OrgIdScheme,
    validate_org_identifier,
)
from domain.roles import DataType
from settings import Settings

MAX_BIGINT = 2**63 - 1


class Replay(Exception):
    """This request's input needs the resolvers' answer (an error or a rare case)."""


@dataclass
class Root:
    """One root field of a plan."""

    key: str
    sql: str
    prepare: Callable[[dict[str, Any], Any], dict[str, Any]]
    action: str | None = None  # audit action of the reads column
    object_type: str | None = None
    refusals: dict[str, Callable[[dict[str, Any]], Any]] | None = None
    marks: list[Any] = field(default_factory=list)  # the plan's `Compiler.marks`

    def refuse(self, problem: str, values: dict[str, Any]) -> Any:
        """The error the rules give for `problem` (a refusal the statement found),
        or None when the resolvers must answer."""
        refusals = self.refusals or {}
        make = refusals.get(problem)
        if make is not None:
            return make(values)
        head, found, detail = problem.partition(":")
        make = refusals.get(f"{head}:*") if found else None
        return make({**values, "detail": detail}) if make is not None else None


Prepare = Callable[[dict[str, Any], Any], dict[str, Any]]


# --- shared argument checks ----------------------------------------------------------------


def gateway_id(value: Any) -> int:
    """`resolvers.queries._int_id` without its error (the resolvers give that)."""
    try:
        number = int(value)
    except (TypeError, ValueError) as exc:
        raise Replay("not a gateway id") from exc
    if not 0 <= number <= MAX_BIGINT:
        raise Replay("id out of range")
    return number


def page_size(settings: Settings, first: int | None) -> int:
    size = settings.default_page_size if first is None else first
    if not 1 <= size <= settings.max_page_size:
        raise Replay("page size out of range")
    return size


def after_key(kind: str, after: str | None) -> int:
    if after is None:
        return 0
    try:
        key = decode_cursor(kind, after)
    except InvalidCursor as exc:
        raise Replay("bad cursor") from exc
    if not -MAX_BIGINT <= key <= MAX_BIGINT:
        raise Replay("cursor out of range")
    return key


_PRIMARY_LEVEL = {scheme.value: level.value for level, scheme in PRIMARY_SCHEME.items()}


def organisation_search(identifier: dict[str, Any]) -> dict[str, Any]:
    """What `resolvers.lookup.find_organisation` searches for, as parameters of
    `organisation_ids` (the value as stored, and in upper case for the retry it
    makes without a scheme)."""
    scheme, value = identifier.get("scheme"), identifier["value"]
    if scheme is not None:
        try:
            clean = validate_org_identifier(scheme, value)
        except IdentifierError as exc:
            raise Replay("malformed identifier") from exc
        scheme = OrgIdScheme(scheme).value
    else:
        clean = value.strip()
    if not clean:
        raise Replay("empty identifier")
    upper = clean.upper() if scheme is None and clean.upper() != clean else None
    if scheme is None:
        return {"rio": clean, "level": None, "sec": clean, "sec_scheme": None, "upper": upper}
    if scheme in _PRIMARY_LEVEL:
        level = _PRIMARY_LEVEL[scheme]
        return {"rio": clean, "level": level, "sec": None, "sec_scheme": None, "upper": None}
    return {"rio": None, "level": None, "sec": clean, "sec_scheme": scheme, "upper": None}


class _FindsNothing:
    """A database and a loader that find nothing, for `lookup_answer`."""

    def __init__(self) -> None:
        self.asked = False

    async def run(self, work: Any) -> list[Any]:
        self.asked = True
        return []

    async def load(self, key: Any) -> None:
        self.asked = True
        return None


def _drive(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """The value of a coroutine that never waits (its I/O answered at once)."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise Replay("the lookup waits for I/O")


def invalid_answer(answer: Any) -> dict[str, Any]:
    """A lookup's `InvalidIdentifier` as the plans keep it (`kind` "invalid")."""
    return {
        "kind": "invalid",
        "scheme": answer.scheme,
        "value": answer.value,
        "problem": answer.problem,
        "message": answer.message,
    }


def lookup_answer(args: dict[str, Any]) -> dict[str, Any]:
    """What `resolvers.queries.organisation` answers for these arguments when no
    organisation matches, asked of the resolver itself with a database that finds
    nothing: `kind` is "invalid" (an `InvalidIdentifier`, nothing looked up),
    "missing" (not found without a lookup: an empty identifier) or "lookup" (the
    `OrganisationNotFound` to give if the statement finds nothing), with the
    answer's `value`, `scheme`, `problem` and `message` (the messages are the
    resolver's, one source)."""
    from domain.identifiers import OrgIdScheme
    from resolvers import queries
    from schema.lookups import InvalidIdentifier

    if args.get("id") is not None:
        gateway_id(args["id"])  # the resolvers answer a malformed id with an error
    identifier = args.get("identifier")
    if identifier is not None:
        scheme = identifier.get("scheme")
        identifier = SimpleNamespace(
            value=identifier["value"], scheme=None if scheme is None else OrgIdScheme(scheme)
        )
    nothing = _FindsNothing()
    info = SimpleNamespace(
        context=SimpleNamespace(db=nothing, loaders=SimpleNamespace(organisation=nothing))
    )
    answer = _drive(queries.organisation(info, args.get("id"), identifier))  # type: ignore[arg-type]
    if isinstance(answer, InvalidIdentifier):
        return invalid_answer(answer)
    return {
        "kind": "lookup" if nothing.asked else "missing",
        "scheme": None if answer.scheme is None else OrgIdScheme(answer.scheme).value,
        "value": answer.value,
        "problem": None,
        "message": answer.message,
    }


def organisation_ids(c: Compiler, root: str, prefix: str, level: str | None = None) -> str:
    """SQL: the ids (in order) of the organisations the prepared identifier names,
    as `db.organisations.find` finds them (with the upper-case retry), or NULL."""

    def value(name: str) -> str:
        return c.st.value(root, f"{prefix}{name}", "text")

    at_level = f" AND o.level = {quote(level)}" if level else ""

    def find(rio: str, sec: str) -> str:
        return (
            "(SELECT array_agg(id ORDER BY id) FROM (SELECT o.id FROM organisation AS o "
            f"WHERE (o.rio_id = {rio} AND ({value('level')} IS NULL OR o.level = {value('level')})"
            f" OR o.id IN (SELECT i.organisation_id FROM organisation_identifier AS i "
            f"WHERE i.value = {sec} AND ({value('sec_scheme')} IS NULL "
            f"OR i.scheme = {value('sec_scheme')}))){at_level} ORDER BY o.id LIMIT 20) AS x)"
        )

    first = find(value("rio"), value("sec"))
    upper = value("upper")
    retry = find(upper, upper)
    return f"coalesce({first}, CASE WHEN {upper} IS NOT NULL THEN {retry} END)"


def access_rank(c: Compiler, school: str, data_type: DataType) -> str:
    """SQL: `db.access.school_access` for one school as the rank of its answer in
    `domain.consent.best` (0 is ALLOWED), from `domain.consent.decide` itself: the
    decision for every combination of the facts, per role of the caller."""
    from db.access import activated, mandated
    from domain.consent import ConsentFacts, decide
    from domain.roles import Role

    scope = c.caller
    if Role.OPERATOR in scope.roles:
        return "0"
    ranks = RANK
    school_col: Any = literal_column(school)
    mandate = c.st.scalar(mandated(school_col, scope.supplier_id, c.today))
    per_role = []
    for role in sorted(scope.roles):
        involved = (
            f"({school} = {c.st.scalar(scope.school_id)})"  # type: ignore[arg-type]
            if role == Role.SCHOOL and scope.school_id is not None
            else ("FALSE" if role == Role.SCHOOL else "TRUE")
        )
        act = c.st.scalar(activated(school_col, scope.supplier_id, role, data_type))
        arms = []
        for inv in (True, False):
            for is_act in (True, False):
                for man in (True, False):
                    answer = decide(
                        role,
                        data_type,
                        ConsentFacts(involved=inv, activated=is_act, mandate_valid=man),
                    )
                    test = " AND ".join(
                        f"{'' if flag else 'NOT '}{sql}"
                        for flag, sql in ((inv, involved), (is_act, act), (man, mandate))
                    )
                    arms.append(f"WHEN {test} THEN {ranks[answer]}")
        per_role.append(f"(CASE {' '.join(arms)} END)")
    return f"LEAST({', '.join(per_role)})" if per_role else str(ranks[Access.SCOPE_REQUIRED])


def _ranks() -> dict[Access, int]:
    """The order of `domain.consent.best`, read from `best` itself."""
    from domain.consent import best

    remaining, order = list(Access), []
    while remaining:
        chosen = best(remaining)
        order.append(chosen)
        remaining.remove(chosen)
    return {access: index for index, access in enumerate(order)}


RANK = _ranks()
