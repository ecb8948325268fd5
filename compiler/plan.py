"""A compiled operation (the cached statement and how to read its row) and one
request's plan of it: `Plan.execute` prepares the arguments, runs the one
statement and hands the row to the compiler to assemble the answer."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from graphql import OperationDefinitionNode
from graphql.execution.values import get_argument_values

from compiler.arguments import Replay, Root
from compiler.sql import Run

if TYPE_CHECKING:
    from compiler import ReadCompiler

log = logging.getLogger("ketenpoort.compiler")


@dataclass(frozen=True)
class Fallback:
    """The resolvers answer this request; `reason` says why."""

    reason: str


@dataclass
class CompiledAnswer:
    data: str  # JSON text of the `data` object
    errors: list[dict[str, Any]] = field(default_factory=list)
    reads: list[tuple[Any, ...]] = field(default_factory=list)  # Context.record_read's arguments


@dataclass
class _RootPlan:
    key: str
    field: Any  # GraphQLField
    details: Any  # FieldDetailsList
    nullable: bool

    @property
    def nodes(self) -> list[Any]:
        return [details.node for details in self.details]

    root: Root | None = None
    static: str | None = None  # JSON text known without SQL (`__typename`)
    error: dict[str, Any] | None = None  # a refusal known without SQL (role gate)


@dataclass
class _Compiled:
    """The cached part of a plan: the statement and how to read its row."""

    operation: OperationDefinitionNode
    roots: list[_RootPlan]
    sql: str | None
    getters: list[Any]
    compiler: ReadCompiler


class Plan:
    """A compiled operation bound to one request's coerced variables."""

    def __init__(self, compiled: _Compiled, coerced: Any) -> None:
        self._compiled = compiled
        self._coerced = coerced

    @property
    def needs_connection(self) -> bool:
        """False when the answer needs no SQL (e.g. `{ __typename }`)."""
        return self._compiled.sql is not None

    @property
    def sql(self) -> str | None:
        return self._compiled.sql

    def _run(self, caller: Any, today: date) -> Run | Fallback:
        """The values every root field prepares from its arguments for this request."""
        compiled = self._compiled
        run = Run(caller, today, variables=self._coerced)
        try:
            for plan in compiled.roots:
                if plan.root is None:
                    continue
                details = plan.details[0]
                args = get_argument_values(
                    plan.field, details.node, self._coerced, details.fragment_variable_values
                )
                run.values[plan.key] = plan.root.prepare(args, caller)
        except Replay as replay:
            return compiled.compiler.fallback(f"input: {replay}")
        return run

    def statement(
        self, variables: Any, caller: Any, today: date
    ) -> tuple[str | None, list[Any]] | Fallback:
        """The SQL and its arguments for this request (a Fallback when its input
        needs the resolvers' answer)."""
        run = self._run(caller, today)
        if isinstance(run, Fallback):
            return run
        arguments = self._arguments(run)
        if isinstance(arguments, Fallback):
            return arguments
        return self._compiled.sql, arguments

    def _arguments(self, run: Run) -> list[Any] | Fallback:
        """The statement's parameters for this request (a Fallback when a nested
        field's variable needs the resolvers' answer)."""
        try:
            return [getter(run) for getter in self._compiled.getters]
        except Replay as replay:
            return self._compiled.compiler.fallback(f"input: {replay}")

    async def execute(
        self, connection: Any, variables: Any, caller: Any, today: date
    ) -> CompiledAnswer | Fallback:
        """Run the plan's one statement on `connection` (asyncpg) and read the
        answer; a Fallback when the resolvers must answer after all."""
        compiled = self._compiled
        run = self._run(caller, today)
        if isinstance(run, Fallback):
            return run
        arguments = self._arguments(run)
        if isinstance(arguments, Fallback):
            return arguments
        try:
            row = None
            if compiled.sql is not None:
                row = await connection.fetchrow(compiled.sql, *arguments)
        except Exception:
            # A statement the compiler built wrongly must not cost the caller an
            # answer: logged with its cause, the request goes to the resolvers.
            log.exception("compiled read failed; the resolvers answer")
            return compiled.compiler.fallback("compiled statement failed")
        return compiled.compiler.assemble(compiled, row, run)
