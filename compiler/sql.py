"""The statement under construction: SQL text with asyncpg's `$n` parameters, each
parameter read from the request when the plan runs (`Run`), and the pieces that
turn stored values into GraphQL's JSON (enum names, timestamps, cursors).

Rules written as SQLAlchemy expressions in `db/` (the consent scopes of
`db/access.py`, the derived statuses) are compiled here into the same text, their
runtime values (the caller, today) becoming parameters: the compiled path runs the
very expressions the resolvers run, not a copy.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from graphql import GraphQLEnumType
from sqlalchemy import Date, Integer, bindparam, literal_column, select
from sqlalchemy.dialects import postgresql

from domain.roles import Principal, Role


def _utc_now() -> datetime:
    from resolvers import clock

    return clock.utc_now()


@dataclass
class Run:
    """What a plan reads when it runs: the caller, today, the values each root
    field prepared from its arguments (keyed by the root field's response key), and
    the request's moment (taken once, from the resolvers' clock)."""

    caller: Any
    today: date
    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    now: datetime = field(default_factory=_utc_now)
    #: The request's coerced variables (graphql-core's), for a nested field's
    #: arguments given as variables.
    variables: Any = None


Getter = Callable[[Run], Any]


def fixed(value: Any) -> Getter:
    """A getter that answers `value` on every run (a constant the plan carries)."""
    return lambda run: value

_DIALECT = postgresql.dialect()
_PARAM = re.compile(r"%\(([A-Za-z0-9_]+)\)s")

#: The caller's values inside expressions built by `db/access.py`.
SUPPLIER, SCHOOL, TODAY = "sc_supplier", "sc_school", "sc_today"
_SCOPE_GETTERS: dict[str, Getter] = {
    SUPPLIER: lambda run: run.caller.supplier_id,
    SCHOOL: lambda run: run.caller.school_id,
    TODAY: lambda run: run.today,
}


def plan_caller(roles: frozenset[Role], has_school: bool) -> Principal:
    """A caller whose supplier and school are parameters, so that one plan serves
    every caller with these roles."""
    return Principal(
        bindparam(SUPPLIER, type_=Integer()),  # type: ignore[arg-type]
        roles,
        bindparam(SCHOOL, type_=Integer()) if has_school else None,  # type: ignore[arg-type]
    )


def plan_today() -> Any:
    """The day the consent rules apply on, as a parameter."""
    return bindparam(TODAY, type_=Date())


def _cast_of(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "bigint"
    if isinstance(value, date):
        return "date"
    return "text"


class Statement:
    """Parameters and aliases of one statement being built."""

    def __init__(self) -> None:
        self.getters: list[Getter] = []
        self._aliases = itertools.count(1)

    def param(self, getter: Getter, cast: str | None) -> str:
        """A new parameter read by `getter` when the plan runs, with its type
        (asyncpg infers none from a bare `$n` in some places)."""
        self.getters.append(getter)
        return f"${len(self.getters)}" + (f"::{cast}" if cast else "")

    def constant(self, value: Any, cast: str | None = None) -> str:
        return self.param(fixed(value), cast or _cast_of(value))

    def value(self, root: str, name: str, cast: str) -> str:
        """A value the root field `root` prepared from its arguments."""
        return self.param(lambda run: run.values[root][name], cast)

    def alias(self) -> str:
        return f"t{next(self._aliases)}"

    def condition(self, table: Any, condition: Any) -> str:
        """A SQLAlchemy condition on `table` as SQL text: columns of `table` are
        written `table.column` (the caller places it where that name is the row
        meant), the caller's values and constants become parameters."""
        compiled = (
            select(literal_column("1"))
            .select_from(table)
            .where(condition)
            .compile(dialect=_DIALECT, compile_kwargs={"render_postcompile": True})
        )
        _head, found, where = compiled.string.partition("\nWHERE ")
        if not found:
            raise ValueError(f"no WHERE in {compiled.string!r}")
        return self._substitute(where, compiled.params)

    def scalar(self, expression: Any) -> str:
        """A SQLAlchemy value expression (of literal columns and parameters) as text."""
        compiled = select(expression.label("v")).compile(
            dialect=_DIALECT, compile_kwargs={"render_postcompile": True}
        )
        text = compiled.string
        if not text.startswith("SELECT ") or not text.endswith(" AS v"):
            raise ValueError(f"unexpected rendering {text!r}")
        return self._substitute(text[len("SELECT ") : -len(" AS v")], compiled.params)

    def lazy(self, getter: Getter, cast: str) -> Lazy:
        """A parameter that exists only once some SQL uses it (asyncpg cannot type
        a parameter the statement never mentions)."""
        return Lazy(self, getter, cast)

    def embed(self, statement: Any, values: dict[str, Any], *, typed: bool = False) -> str:
        """A whole SQLAlchemy statement as a subquery, its named parameters replaced
        by the SQL in `values` (the others are constants; `typed`: each cast to its
        Python type's, for constants PostgreSQL cannot type, as in `sum(CASE … 1)`)."""
        compiled = statement.compile(dialect=_DIALECT, compile_kwargs={"render_postcompile": True})
        return self._substitute(compiled.string, compiled.params, values, typed)

    def _substitute(
        self,
        where: str,
        constants: dict[str, Any],
        values: dict[str, Any] | None = None,
        typed: bool = False,
    ) -> str:

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if values and name in values:
                return str(values[name])
            if name in _SCOPE_GETTERS:
                return self.param(_SCOPE_GETTERS[name], None)
            value = constants[name]
            return self.param(fixed(value), _cast_of(value) if typed else None)

        return "(" + _PARAM.sub(substitute, where).replace("%%", "%") + ")"


class Lazy:
    def __init__(self, statement: Statement, getter: Getter, cast: str) -> None:
        self.statement, self.getter, self.cast = statement, getter, cast
        self.text: str | None = None

    def __str__(self) -> str:
        if self.text is None:
            self.text = self.statement.param(self.getter, self.cast)
        return self.text


# --- values as GraphQL shows them -------------------------------------------------------


def quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def enum_name(column: str, enum: GraphQLEnumType) -> str:
    """A stored enum value as its GraphQL name (stored `vo` is `VO`)."""
    pairs = [(str(v.value), name) for name, v in enum.values.items()]
    if all(stored == name for stored, name in pairs):
        return column
    cases = " ".join(f"WHEN {quote(stored)} THEN {quote(name)}" for stored, name in pairs)
    return f"(CASE {column} {cases} END)"


def timestamp(column: str) -> str:
    """A timestamptz as Python's `isoformat()` of the UTC datetime the driver
    returns: microseconds only when there are any, always `+00:00`."""
    utc = f"({column} AT TIME ZONE 'UTC')"
    return (
        f"(CASE WHEN {column} IS NULL THEN NULL ELSE "
        f"to_char({utc}, 'YYYY-MM-DD\"T\"HH24:MI:SS') || "
        f"CASE WHEN date_part('microseconds', {utc})::bigint % 1000000 = 0 THEN '' "
        f"ELSE '.' || to_char({utc}, 'US') END || '+00:00' END)"
    )


def cursor(prefix: str, key: str) -> str:
    """`db.pagination.encode_cursor` in SQL: urlsafe base64 of `prefix:key`, no padding."""
    raw = f"encode(convert_to({quote(prefix + ':')} || {key}, 'UTF8'), 'base64')"
    return f"rtrim(translate(replace({raw}, E'\\n', ''), '+/', '-_'), '=')"


def event_cursor(tx_id: str, event_id: str) -> str:
    """`db.pagination.event_cursor` in SQL."""
    raw = f"encode(convert_to('ev:' || {tx_id} || ':' || {event_id}, 'UTF8'), 'base64')"
    return f"rtrim(translate(replace({raw}, E'\\n', ''), '+/', '-_'), '=')"


def json_object(pairs: list[tuple[str, str]]) -> str:
    """`json_build_object` of (key, SQL expression) pairs, in the query's order."""
    if not pairs:
        return "json_build_object()"
    if len(pairs) > 50:
        raise TooBig(f"more than 50 fields in one selection ({len(pairs)})")
    return "json_build_object(" + ", ".join(f"{quote(k)}, {v}" for k, v in pairs) + ")"


class TooBig(Exception):
    pass


class NotCompiled(Exception):
    """This operation (or a part of it) has no SQL form: the resolvers answer it."""
