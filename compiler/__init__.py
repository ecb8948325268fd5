"""Compiled reads: a validated GraphQL query becomes one SQL statement that builds
the JSON of `data` in PostgreSQL, so the gateway passes PostgreSQL's text on
without building Python objects per row or field (issue 14).

    compiler = ReadCompiler(schema, settings)
    found = compiler.plan(document, operation_name, caller, variables)
    if isinstance(found, Fallback):  ...run the resolvers...
    answer = await found.execute(connection, variables, caller, today)
    # answer may again be a Fallback (the input needs the resolvers' answer)

The rules are the resolvers' own: role gates from the schema's permission classes,
consent scopes from `db/access.py` compiled into the statement, derived statuses
from `db/derived.py` (held equal to `domain/`), audit reads returned beside the
JSON, the BSN guard run on the input. What the compiler does not take (mutations,
subscriptions, introspection, a field it has no SQL for) and input the resolvers
must answer (unknown, ambiguous or malformed identifiers, bad cursors) run
on the resolvers: counted in `fallbacks` and logged at debug with the reason.

Plans are cached (bounded LRU) per operation text, operation name, the caller's
roles and whether it speaks for a school, and the shape of the variables (which
are null, and the values of booleans, which can decide `@include`/`@skip`); the
caller, today and every argument are parameters, and asyncpg prepares the text
once per connection.
"""

from __future__ import annotations

import json
import logging
from collections import Counter, OrderedDict
from types import SimpleNamespace
from typing import Any

import strawberry
from graphql import (
    DocumentNode,
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLNonNull,
    OperationDefinitionNode,
    OperationType,
    located_error,
)
from graphql.execution.collect_fields import FragmentDetails, collect_fields
from graphql.execution.values import get_argument_values, get_variable_values
from strawberry.extensions import SchemaExtension

from compiler.dashboard import dashboard
from compiler.marks import MARKED_JSON, unmark
from compiler.objects import REDACT_MARK, Compiler
from compiler.persons import PERSON_ROOTS
from compiler.plan import CompiledAnswer, Fallback, Plan, _Compiled, _RootPlan
from compiler.roots import ROOTS
from compiler.sql import NotCompiled, Run, Statement, TooBig, plan_caller, plan_today
from settings import Settings

log = logging.getLogger("ketenpoort.compiler")

REDACT_MARK_JSON = json.dumps(REDACT_MARK)[1:-1]

#: The root fields that compile (the others run on the resolvers).
COMPILED_ROOTS = {**ROOTS, **PERSON_ROOTS, "dashboard": dashboard}

__all__ = ["CompiledAnswer", "Fallback", "Plan", "ReadCompiler"]


class ReadCompiler:
    """Plans for the query operations of one schema."""

    def __init__(
        self, schema: strawberry.Schema, settings: Settings, *, cache_size: int = 512
    ) -> None:
        self.schema = schema
        self.graphql_schema = schema._schema
        self.settings = settings
        self.cache_size = cache_size
        self._cache: OrderedDict[Any, _Compiled | Fallback] = OrderedDict()
        self.fallbacks: Counter[str] = Counter()
        self.compiled = 0
        # The BSN guard of the resolver path (one rule, `resolvers.privacy`).
        self._guards = [
            extension
            for extension in getattr(schema, "extensions", [])
            if isinstance(extension, type)
            and issubclass(extension, SchemaExtension)
            and any(
                getattr(extension, hook) is not getattr(SchemaExtension, hook)
                for hook in ("on_validate", "on_execute")
            )
            and extension.__module__ == "resolvers.privacy"
        ]

    # --- planning ------------------------------------------------------------------------

    def plan(
        self,
        document: DocumentNode,
        operation: Any,
        caller: Any,
        variables: Any,
        coerced: Any = None,
    ) -> Plan | Fallback:
        """The plan for this request, or a Fallback. `coerced`: the variables as
        graphql-core's `get_variable_values` coerced them for this operation, given by
        a caller that has also run the BSN guard on them (the HTTP pipeline); neither
        is done again here."""
        if isinstance(operation, OperationDefinitionNode):
            operation_name = operation.name.value if operation.name else None
        else:
            operation_name = operation
        variables = variables or {}
        if variables and coerced is None:
            refused = self._guarded(None, variables)
            if refused is not None:
                return self.fallback(refused)
        text = document.loc.source.body if document.loc is not None else id(document)
        key = (
            text,
            operation_name,
            frozenset(caller.roles),
            caller.school_id is not None,
            _shape({name: variables.get(name) for name in _declared(document)}),
        )
        found = self._cache.get(key)
        if found is None:
            # The operation text is guarded once per plan, the variables per request.
            refused = self._guarded(document, {})
            found = (
                Fallback(refused)
                if refused is not None
                else self._build(document, operation_name, caller, variables)
            )
            self._cache[key] = found
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        if isinstance(found, Fallback):
            return self.fallback(found.reason)
        if coerced is None:
            coerced = get_variable_values(
                self.graphql_schema, found.operation.variable_definitions or (), variables
            )
            if isinstance(coerced, list):
                return self.fallback("variables do not coerce")
        self.compiled += 1
        return Plan(found, coerced)

    def fallback(self, reason: str) -> Fallback:
        self.fallbacks[reason] += 1
        log.debug("compiled reads: fallback to the resolvers: %s", reason)
        return Fallback(reason)

    def _guarded(self, document: DocumentNode | None, variables: dict[str, Any]) -> str | None:
        """The BSN guard on this request (the operation text, or the variables): a
        refused input is answered by the resolvers, with the guard's error. The
        guard is the resolvers' own extension, asked through its hooks."""
        for guard in self._guards:
            context = SimpleNamespace(
                variables=variables,
                graphql_document=document,
                result=None,
                pre_execution_errors=None,
            )
            extension = guard()
            extension.execution_context = context  # type: ignore[assignment]
            for hook in ("on_validate", "on_execute"):
                if getattr(guard, hook) is getattr(SchemaExtension, hook):
                    continue
                steps = getattr(extension, hook)()
                try:
                    next(steps)
                except StopIteration:
                    pass
                if context.result is not None or context.pre_execution_errors:
                    return f"input refused by {guard.__name__}"
        return None

    def _build(
        self, document: DocumentNode, operation_name: str | None, caller: Any, variables: Any
    ) -> _Compiled | Fallback:
        operation = _operation(document, operation_name)
        if operation is None:
            return Fallback("no single operation")
        if operation.operation is not OperationType.QUERY:
            return Fallback(operation.operation.value)
        schema = self.graphql_schema
        coerced = get_variable_values(schema, operation.variable_definitions or (), variables)
        if isinstance(coerced, list):
            return Fallback("variables do not coerce")
        fragments = {}
        for definition in document.definitions:
            if isinstance(definition, FragmentDefinitionNode):
                if definition.variable_definitions:
                    return Fallback("fragment variables")
                fragments[definition.name.value] = FragmentDetails(definition, None)
        st = Statement()
        compiler = Compiler(
            schema,
            fragments,
            coerced,
            operation,
            plan_caller(frozenset(caller.roles), caller.school_id is not None),
            plan_today(),
            st,
            self.settings.max_page_size,
        )
        query_type = schema.query_type
        assert query_type is not None
        collected = collect_fields(schema, fragments, coerced, query_type, operation)
        roots: list[_RootPlan] = []
        try:
            for key, details in collected.grouped_field_set.items():
                node = details[0].node
                name = node.name.value
                if name == "__typename":
                    roots.append(
                        _RootPlan(key, None, details, False, static=f'"{query_type.name}"')
                    )
                    continue
                field_def = query_type.fields.get(name)
                compile_root = COMPILED_ROOTS.get(name)
                if field_def is None or compile_root is None:
                    return Fallback(f"Query.{name}")
                plan = _RootPlan(
                    key, field_def, details, not isinstance(field_def.type, GraphQLNonNull)
                )
                refusal = self._role_gate(field_def, caller)
                if refusal is not None:
                    plan.error = dict(located_error(refusal, plan.nodes, [key]).formatted)
                else:
                    args = get_argument_values(
                        field_def, node, coerced, details[0].fragment_variable_values
                    )
                    plan.root = compile_root(compiler, key, details, args, self.settings)
                    plan.root.marks = compiler.marks
                roots.append(plan)
        except (NotCompiled, TooBig) as reason:
            return Fallback(f"not compiled: {reason}")
        with_sql = [(i, p) for i, p in enumerate(roots) if p.root is not None]
        sql = None
        if with_sql:
            laterals = " ".join(
                f"LEFT JOIN LATERAL {p.root.sql} AS r{i} ON TRUE"  # type: ignore[union-attr]
                for i, p in with_sql
            )
            columns = ", ".join(
                f"r{i}.data::text AS d{i}, r{i}.problem AS p{i}, r{i}.reads::text AS a{i}"
                for i, _ in with_sql
            )
            sql = f"SELECT {columns} FROM (SELECT 1) AS one_ {laterals}"
        return _Compiled(operation, roots, sql, st.getters, self)

    def _role_gate(self, field_def: Any, caller: Any) -> GraphQLError | None:
        """The field's permission classes, asked with the resolved caller (they
        answer without I/O once the caller is known)."""
        definition = field_def.extensions.get("strawberry-definition")
        for permission_class in getattr(definition, "permission_classes", None) or []:
            context = SimpleNamespace(principal=caller)
            info = SimpleNamespace(context=context)
            steps = permission_class().has_permission(None, info)  # type: ignore[arg-type]
            try:
                steps.send(None)
            except StopIteration as done:
                if not done.value:
                    return GraphQLError(permission_class.message or "permission denied")
                continue
            except GraphQLError as refusal:
                return refusal
            steps.close()
            raise NotCompiled(f"{permission_class.__name__} waits for I/O")
        return None

    # --- answering -----------------------------------------------------------------------------

    def assemble(self, compiled: _Compiled, row: Any, run: Run) -> CompiledAnswer | Fallback:
        parts: list[str] = []
        errors: list[dict[str, Any]] = []
        reads: list[tuple[Any, ...]] = []
        null_data = False
        for index, plan in enumerate(compiled.roots):
            if plan.static is not None:
                parts.append(f'"{plan.key}":{plan.static}')
                continue
            if plan.error is not None:
                errors.append(plan.error)
                if not plan.nullable:
                    null_data = True
                parts.append(f'"{plan.key}":null')
                continue
            assert row is not None
            assert plan.root is not None
            problem = row[f"p{index}"]
            if problem is not None:
                refusal = plan.root.refuse(problem, run.values[plan.key])
                if refusal is None:
                    return self.fallback(f"{plan.key}: {problem}")
                errors.append(dict(located_error(refusal, plan.nodes, [plan.key]).formatted))
                if not plan.nullable:
                    null_data = True
                parts.append(f'"{plan.key}":null')
                continue
            data = row[f"d{index}"]
            if data is not None and REDACT_MARK_JSON in data:
                return self.fallback(f"{plan.key}: free text to redact")
            if data is not None and MARKED_JSON in data:
                data, refused, marked_reads = unmark(data, plan.key, plan.root.marks)
                errors.extend(refused)
                reads.extend(marked_reads)
            parts.append(f'"{plan.key}":{data if data is not None else "null"}')
            audited = row[f"a{index}"]
            if audited is not None and plan.root.action is not None:
                for school_id, object_id in json.loads(audited):
                    reads.append(
                        (
                            school_id,
                            plan.root.action,
                            plan.root.object_type,
                            None if object_id is None else str(object_id),
                        )
                    )
        data_text = "null" if null_data else "{" + ",".join(parts) + "}"
        return CompiledAnswer(data_text, errors, reads)


def _operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    found = None
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            if name is None:
                if found is not None:
                    return None
                found = definition
            elif definition.name is not None and definition.name.value == name:
                return definition
    return found


def _declared(document: DocumentNode) -> list[str]:
    """The variables the document's operations declare (others cannot shape a plan)."""
    return [
        variable.variable.name.value
        for definition in document.definitions
        if isinstance(definition, OperationDefinitionNode)
        for variable in definition.variable_definitions or ()
    ]


def _shape(value: Any) -> Any:
    """What of the variables decides a plan: which are null, and booleans."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, dict):
        return tuple(sorted((k, _shape(v)) for k, v in value.items()))
    if isinstance(value, list):
        if any(isinstance(v, dict | list) for v in value):
            return ("list", tuple(_shape(v) for v in value))
        return ("list", len(value) > 0)
    if isinstance(value, str):
        return "text" if value else "empty"  # an empty string is no filter
    return 1
