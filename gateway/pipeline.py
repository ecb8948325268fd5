"""The HTTP handler's fast path: per request only what depends on the request.

strawberry's `Schema.execute` builds the schema's nine extension instances per
request and runs their hooks (parse and validation caches, limits, the BSN guard,
the door's input checks, the observer, the deadline, masking) around graphql-core.
Most of what they do depends on the document alone, so it is done here once per
(query text, operationName) and kept in a bounded LRU (`Prepared`):

- parse (with the token limit) and validation with every rule of the schema (the
  limits of gateway/limits.py included);
- the rules about the document: one operation chosen (`HttpRules`), the BSN guard
  on its names and literals (`pgn_in_document`), the door's checks on its literals
  (`Checker.document`, which also answers where each variable is used);
- the observer's operation name and the operation's type;
- the answer of an operation that selects `__typename` only (`{ __typename }`, a
  client's or a balancer's liveness check): the same `data` for every request, so
  neither graphql-core nor the compiled front runs for it (the resolvers ask
  nothing of the caller for it either).

Per request: the BSN guard and the door's checks on the variables, their
coercion (flat values with the document's variable signatures, `_coerced`; others
by graphql-core), then the deadline and graphql-core's executor on those coerced
values (or the compiled statement, `CompiledReads`), the schema's `process_errors`
(refusal logging), its `MaskErrors`, and the observer's note on the request's
context. The executor's reference cycle is broken when it ends, so a request
leaves nothing for the garbage collector.

A request the fast path does not take runs through `Schema.execute` as before, so
every refusal keeps its one source: a document that does not parse or validate,
holds a BSN, fails a door check, asks for introspection, is a subscription or
not an allowed type; variables that hold a BSN, fail a check or do not coerce;
tracing switched on (the observer's span). The fast path answers only requests
the extensions would have let through to execution.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    OperationDefinitionNode,
    default_field_resolver,
    default_type_resolver,
    get_operation_ast,
    is_input_type,
    parse,
)
from graphql import ExecutionResult as GraphQLExecutionResult
from graphql.execution.executor import UNEXPECTED_MULTIPLE_PAYLOADS
from graphql.execution.get_variable_signature import get_variable_signature
from graphql.execution.values import VariableValues, VariableValueSource, get_variable_values
from graphql.pyutils import Undefined
from graphql.utilities import coerce_input_value, type_from_ast
from graphql.validation import specified_rules
from strawberry.execution import optimized_is_awaitable
from strawberry.extensions import MaskErrors
from strawberry.schema.schema import validate_document
from strawberry.types.graphql import OperationType
from strawberry.utils.await_maybe import await_maybe

from gateway import tracing
from gateway.inputs import Checker, InputRefused, Path
from gateway.limits import asks_for_introspection, timed_out
from gateway.observe import note_outcome, operation_label
from resolvers.privacy import pgn_in_document, pgn_in_variables

#: Texts kept (each with its parsed document); longer texts are not kept.
CACHE_SIZE = 256
MAX_CACHED_TEXT = 100_000


#: `Pipeline.ready`'s answer for variables the extensions must answer.
NOT_READY: Any = object()


class RawJSON(str):
    """JSON text to be put into the answer as it is (PostgreSQL's `data`, a constant
    answer's)."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Prepared:
    """A document ready to execute (every per-document rule passed), or `None` in
    the cache for one the fast path leaves to `Schema.execute`."""

    document: DocumentNode
    operation: OperationDefinitionNode
    kind: OperationType
    #: The observer's operation name (redaction needless: the document holds no BSN).
    name: str | None
    #: Where each variable is used (its cap), from the door's document check.
    usages: dict[str, Path]
    #: `data` when the operation selects `__typename` only (the same every time).
    constant: RawJSON | None = None
    #: Each declared variable's input type, by name (for the door's checks); None when
    #: one's type is not an input type (graphql-core says why).
    declared: dict[str, Any] | None = None
    #: graphql-core's fragment definitions and details of the document, kept from the
    #: first executor built for it (`Pipeline._execute`).
    fragments: list[Any] = field(default_factory=list)
    #: graphql-core's signature of each declared variable (for `_coerced`).
    signatures: tuple[Any, ...] = ()


class _Execution:
    """What `CompiledFront.answer` and `process_errors` read of strawberry's
    ExecutionContext, and the variables already coerced (`Pipeline.ready`)."""

    __slots__ = ("coerced", "context", "graphql_document", "operation_name", "variables")

    def __init__(
        self, context: Any, prepared: Prepared, variables: dict[str, Any] | None, coerced: Any
    ):
        self.context = context
        self.graphql_document = prepared.document
        self.operation_name = prepared.name
        self.variables = variables
        self.coerced = coerced


class Pipeline:
    """The fast path for one schema built by `gateway.limits.gateway_schema`;
    `Pipeline.of(schema)` is None for any other schema (it always runs through
    `Schema.execute`)."""

    def __init__(self, schema: Any, spec: Any, known: tuple[Any, ...]) -> None:
        self.schema = schema
        self.graphql_schema = schema._schema
        self.settings = spec.settings
        self.rules = (*specified_rules, *spec.rules)
        self.max_tokens = spec.settings.max_query_tokens
        self.default_cap = spec.settings.max_input_string_length
        self.deadline = spec.settings.request_timeout_seconds
        self.executor_class = schema.execution_context_class
        #: The schema's own masking (one source for what a client may read).
        self.masker: MaskErrors | None = None
        for instance in schema.get_extensions():
            if isinstance(instance, MaskErrors):
                self.masker = instance
        self._cache: OrderedDict[tuple[str, str | None], Prepared | None] = OrderedDict()

    @classmethod
    def of(cls, schema: Any, known: tuple[Any, ...] = ()) -> Pipeline | None:
        """The pipeline for `schema` when its extensions are exactly those of
        `gateway_schema` plus `known` (the handler's own), none of them a resolver
        middleware; None otherwise."""
        spec = getattr(schema, "gateway_spec", None)
        if spec is None or schema.execution_context_class is None:
            return None
        extensions = list(schema.extensions)
        if extensions[: len(spec.extensions)] != list(spec.extensions):
            return None
        if any(extension not in known for extension in extensions[len(spec.extensions):]):
            return None
        for instance in schema.get_extensions():
            if instance._implements_resolve():  # a resolver middleware: not ours to skip
                return None
        return cls(schema, spec, known)

    # --- once per document ---------------------------------------------------------------

    def prepared(self, query: str, operation_name: str | None) -> Prepared | None:
        key = (query, operation_name)
        cache = self._cache
        try:
            found = cache[key]
        except KeyError:
            pass
        else:
            cache.move_to_end(key)
            return found
        found = self._prepare(query, operation_name)
        if len(query) <= MAX_CACHED_TEXT:
            cache[key] = found
            if len(cache) > CACHE_SIZE:
                cache.popitem(last=False)
        return found

    def _prepare(self, query: str, operation_name: str | None) -> Prepared | None:
        try:
            document = parse(query, max_tokens=self.max_tokens)
        except GraphQLError:
            return None
        operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        if operation_name is None and len(operations) > 1:
            return None  # HttpRules: a name is needed
        operation = get_operation_ast(document, operation_name)
        if operation is None:
            return None
        kind = OperationType(operation.operation.value)
        if kind is OperationType.SUBSCRIPTION:
            return None
        if pgn_in_document(document) is not None:
            return None
        if validate_document(self.graphql_schema, document, self.rules):
            return None
        if asks_for_introspection(document):
            return None  # the token rule for introspection: the extensions answer
        try:
            usages = Checker(self.default_cap).document(self.graphql_schema, document)
        except InputRefused:
            return None
        name = operation_name or (operation.name.value if operation.name else None)
        root = self.graphql_schema.get_root_type(operation.operation)
        constant = _typename_only(operation, root.name) if root is not None else None
        signatures = tuple(
            get_variable_signature(self.graphql_schema, definition)
            for definition in operation.variable_definitions or ()
        )
        return Prepared(
            document, operation, kind, operation_label(name), usages, constant,
            _declared(self.graphql_schema, operation),
            signatures=signatures,
        )

    # --- per request -----------------------------------------------------------------------

    def ready(self, prepared: Prepared, variables: dict[str, Any] | None) -> Any:
        """The variables as graphql-core coerces them when they pass every rule (None
        for an operation without any), `NOT_READY` otherwise (the extensions answer)."""
        if tracing.tracer is not None:
            return NOT_READY
        definitions = prepared.operation.variable_definitions
        if not definitions and not variables:
            return None
        variables = variables or {}
        if pgn_in_variables(variables) is not None:
            return NOT_READY
        try:
            Checker(self.default_cap).variables(
                self.graphql_schema, prepared.operation, variables, prepared.usages,
                prepared.declared,
            )
        except InputRefused:
            return NOT_READY
        coerced = _coerced(prepared.signatures, variables)
        if coerced is None:
            coerced = get_variable_values(self.graphql_schema, definitions or (), variables)
        return NOT_READY if isinstance(coerced, list) else coerced

    async def execute(
        self,
        prepared: Prepared,
        variables: dict[str, Any] | None,
        context: Any,
        compiled: Any,
        coerced: Any = None,
    ) -> GraphQLExecutionResult:
        """Run `prepared` (`coerced`: what `ready` answered for these variables)."""
        if prepared.constant is not None:
            result = GraphQLExecutionResult(data=prepared.constant)  # type: ignore[arg-type]
            note_outcome(context, prepared.name, result)
            return result
        execution = _Execution(context, prepared, variables, coerced)
        try:
            if self.deadline > 0:
                try:
                    async with asyncio.timeout(self.deadline):
                        result = await self._execute(prepared, execution, compiled)
                except TimeoutError:
                    raise timed_out(self.deadline) from None
            else:
                result = await self._execute(prepared, execution, compiled)
        except GraphQLError as error:
            result = GraphQLExecutionResult(data=None, errors=[error])
        except Exception as error:  # as strawberry: the error, masked below
            result = GraphQLExecutionResult(
                data=None, errors=[GraphQLError(str(error), original_error=error)]
            )
        if result.errors:
            self.schema.process_errors(result.errors, execution)
            if self.masker is not None:
                result.errors = self.masker._process_errors(result.errors)
        note_outcome(context, prepared.name, result)
        return result

    async def _execute(
        self, prepared: Prepared, execution: _Execution, compiled: Any
    ) -> GraphQLExecutionResult:
        if compiled is not None and prepared.kind is OperationType.QUERY:
            answer = await compiled.answer(execution)
            if answer is not None:
                return answer
        # graphql-core's executor, as `graphql.execute` builds it, except that the
        # variables `ready` coerced are not coerced again: the first request of a
        # document builds it from the raw variables (`Executor.build`), and later
        # ones reuse its fragments with their own coerced variables.
        parts = prepared.fragments
        coerced = execution.coerced
        if coerced is not None and parts:
            executor = self.executor_class(
                self.graphql_schema, parts[0], parts[1], None, execution.context,
                prepared.operation, coerced, default_field_resolver, default_type_resolver,
                default_field_resolver, is_awaitable=optimized_is_awaitable,
                operation_extensions=None,  # as strawberry passes it
            )
        else:
            built = self.executor_class.build(
                self.graphql_schema, prepared.document, None, execution.context,
                execution.variables,
                prepared.operation.name.value if prepared.operation.name else None,
                is_awaitable=optimized_is_awaitable, operation_extensions=None,
            )
            if isinstance(built, list):
                return GraphQLExecutionResult(data=None, errors=built)
            executor = built
            if not parts:
                parts[:] = (executor.fragment_definitions, executor.fragments)
        try:
            result = await await_maybe(executor.execute_operation())
        finally:
            # Its helpers hold its own bound methods: without this cycle broken, each
            # request's executor (and all it collected) would wait for the collector,
            # whose young-generation passes then stall the event loop for tens of ms.
            executor.async_helpers = None
        if not isinstance(result, GraphQLExecutionResult):
            raise GraphQLError(UNEXPECTED_MULTIPLE_PAYLOADS)  # no @defer or @stream here
        return result


def _typename_only(operation: OperationDefinitionNode, type_name: str) -> RawJSON | None:
    """The JSON text of `data` for an operation whose selection is `__typename` fields
    only (aliases allowed; no directive, no fragment); None for any other."""
    if operation.directives:
        return None
    keys = []
    for selection in operation.selection_set.selections:
        if (
            not isinstance(selection, FieldNode)
            or selection.name.value != "__typename"
            or selection.directives
        ):
            return None
        keys.append((selection.alias or selection.name).value)
    data = dict.fromkeys(keys, type_name)
    return RawJSON(json.dumps(data, separators=(",", ":"), ensure_ascii=False))


# --- variables ---------------------------------------------------------------------------

#: The values `_coerced` takes: no nesting (graphql-core's guard against input nested
#: beyond the interpreter's recursion limit is needless for them).
_FLAT = frozenset({str, int, float, bool, type(None)})


def _coerced(signatures: tuple[Any, ...], variables: dict[str, Any]) -> Any:
    """graphql-core's `get_variable_values` for the common case of every declared
    variable given a flat value that coerces (an id, a name, a page size), with the
    signatures found once per document; None for anything else (a missing variable
    and its default, an input object or list, a value that does not coerce, a
    variable whose type is unknown): graphql-core then coerces and says why."""
    sources: dict[str, VariableValueSource] = {}
    coerced: dict[str, Any] = {}
    for signature in signatures:
        if isinstance(signature, GraphQLError):
            return None
        name = signature.name
        value = variables.get(name, Undefined)
        if value is Undefined or type(value) not in _FLAT:
            return None
        found = coerce_input_value(value, signature.type)
        if found is Undefined:
            return None
        sources[name] = VariableValueSource(signature, value)
        coerced[name] = found
    return VariableValues(sources, coerced)


def _declared(schema: Any, operation: OperationDefinitionNode) -> dict[str, Any] | None:
    """The operation's variables' input types, found once per document instead of on
    every request."""
    declared = {}
    for definition in operation.variable_definitions or ():
        of = type_from_ast(schema, definition.type)
        if of is None or not is_input_type(of):
            return None
        declared[definition.variable.name.value] = of
    return declared
