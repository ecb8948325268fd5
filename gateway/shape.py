"""The shape of a document, measured in one pass: depth, aliases, cost and width.

Every limit on a document's shape is checked here in time linear in the document,
whatever its fragments. A fragment may be spread many times, and fragments may
spread each other (two spreads per level double the expanded size per level: 30
levels of a 3 KB document expand to a billion fields). So each fragment is measured
once, in topological order of the spread graph, and a spread adds its fragment's
measure (times the multiplier where it stands) instead of walking it again. A
fragment that spreads itself, directly or not, is graphql-core's error
(NoFragmentCycles); here a spread that closes a cycle counts nothing, so nothing
loops. Sums are saturated (`SATURATED`), so numbers stay small however far the
document expands.

The measures (per operation, fragments followed):

- depth: the nesting of fields, as strawberry's QueryDepthLimiter counts it
  (introspection fields `__…` do not count);
- aliases: aliased fields, every spread counted (as strawberry's MaxAliasesLimiter);
- cost: every field (introspection fields and `__typename` too) costs 1 for each
  time it will be resolved; a connection multiplies what is below it by its page
  size (`first`, the default page, or the maximum page for a variable), a plain
  list by the bound its resolver applies, an introspection list by the size of
  this schema (`introspection_bounds`);
- width: graphql-core's OverlappingFieldsCanBeMerged compares fields of one
  selection set pairwise (quadratic in fields sharing a response name, and in the
  fragments spread together). A selection set may hold at most `MAX_SAME_NAME`
  fields with one response name (inline fragments merged) and spread at most
  `MAX_SPREADS` distinct fragments, which bounds that rule's work by a constant
  per field (tests/gateway/test_shape.py counts its comparisons).

`DocumentShape` reports what exceeds a limit when validation enters the document
and then aborts validation (graphql-core's ValidationAbortedError): the other
rules, the quadratic one included, never see a refused document.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationRule,
    get_named_type,
    is_list_type,
    is_non_null_type,
)
from graphql.type.introspection import SchemaMetaFieldDef, TypeMetaFieldDef, TypeNameMetaFieldDef
from graphql.validation.validate import ValidationAbortedError

#: Counts stop growing here (an expanded document can be astronomically big).
SATURATED = 1 << 62

#: A plain nested list (not a connection) counts as the bound its resolver applies
#: where there is one (Entitlement.licences: 50), otherwise a typical size
#: (identifiers, boards, recipients, components are a handful).
NESTED_LIST_BOUND = {"licences": 50, "history": 50, "entitlements": 50, "candidates": 20}
NESTED_LIST = 10

#: Fields with one response name in one selection set, and distinct fragments spread
#: in one selection set: what keeps OverlappingFieldsCanBeMerged linear.
MAX_SAME_NAME = 30
MAX_SPREADS = 30

#: `__schema` fields per operation (fragments followed): one answers everything.
MAX_SCHEMAS = 1

_META = {
    "__schema": SchemaMetaFieldDef,
    "__type": TypeMetaFieldDef,
    "__typename": TypeNameMetaFieldDef,
}


def _sat(value: int) -> int:
    return value if value < SATURATED else SATURATED


def _is_list(graphql_type: Any) -> bool:
    if is_non_null_type(graphql_type):
        graphql_type = graphql_type.of_type
    return is_list_type(graphql_type)


def introspection_bounds(schema: GraphQLSchema) -> dict[str, int]:
    """What an introspection list holds in this schema, on average per parent over
    all types (a list only some kinds have, `enumValues` say, averages over every
    type, since `types { enumValues }` asks every type): the cost of a whole
    introspection is then close to the fields it really answers."""
    from graphql import (
        GraphQLEnumType,
        GraphQLInputObjectType,
        GraphQLUnionType,
    )

    types = list(schema.type_map.values())
    objects = [t for t in types if isinstance(t, GraphQLObjectType | GraphQLInterfaceType)]
    inputs = [t for t in types if isinstance(t, GraphQLInputObjectType)]
    fields = [f for t in objects for f in t.fields.values()]

    def average(total: int, count: int) -> int:
        return max(1, -(-total // max(count, 1)))

    abstract = [t for t in types if isinstance(t, GraphQLUnionType | GraphQLInterfaceType)]
    return {
        "types": len(types),
        "directives": len(schema.directives),
        "fields": average(len(fields), len(types)),
        "inputFields": average(sum(len(t.fields) for t in inputs), len(types)),
        "args": average(sum(len(f.args) for f in fields), len(fields)),
        "enumValues": average(
            sum(len(t.values) for t in types if isinstance(t, GraphQLEnumType)), len(types)
        ),
        "interfaces": average(sum(len(getattr(t, "interfaces", ())) for t in objects),
                              len(types)),
        "possibleTypes": average(
            sum(len(schema.get_possible_types(t)) for t in abstract), len(types)
        ),
        "locations": 4,
    }


@dataclass
class Measure:
    """Depth, aliases and cost of a selection set (cost at multiplier 1)."""

    depth: int = 0
    aliases: int = 0
    cost: int = 0
    schemas: int = 0  # `__schema` fields (each resolves the whole schema again)


@dataclass
class Shape:
    """What `measure` found: per operation (by its node), the widest selection set,
    and the work done (nodes visited, for the tests: linear in the document)."""

    operations: dict[int, tuple[OperationDefinitionNode, Measure]] = field(default_factory=dict)
    too_wide: tuple[str, int, SelectionSetNode] | None = None
    work: int = 0


@dataclass
class Limits:
    max_depth: int
    max_aliases: int
    max_cost: int
    default_page: int
    max_page: int


class _Measurer:
    def __init__(self, schema: GraphQLSchema, limits: Limits, bounds: dict[str, int]) -> None:
        self.schema = schema
        self.limits = limits
        self.bounds = bounds
        self.fragments: dict[str, FragmentDefinitionNode] = {}
        self.measures: dict[str, Measure] = {}
        self.shape = Shape()

    # --- fragments in topological order -------------------------------------------------

    def _spreads(self, selection_set: SelectionSetNode) -> Iterator[str]:
        """The fragment names spread anywhere inside `selection_set` (once per spread)."""
        stack = [selection_set]
        while stack:
            current = stack.pop()
            for selection in current.selections:
                self.shape.work += 1
                if isinstance(selection, FragmentSpreadNode):
                    yield selection.name.value
                elif (
                    isinstance(selection, FieldNode | InlineFragmentNode)
                    and selection.selection_set is not None
                ):
                    stack.append(selection.selection_set)

    def measure_fragments(self) -> None:
        """Every fragment measured once, each after the fragments it spreads (an
        iterative depth-first search; a spread closing a cycle counts nothing)."""
        state: dict[str, int] = {}  # 1: on the search path, 2: measured
        for root in self.fragments:
            if root in state:
                continue
            state[root] = 1
            stack = [(root, iter(set(self._spreads(self.fragments[root].selection_set))))]
            while stack:
                name, children = stack[-1]
                for child in children:
                    if child in self.fragments and child not in state:
                        state[child] = 1
                        spreads = set(self._spreads(self.fragments[child].selection_set))
                        stack.append((child, iter(spreads)))
                        break
                else:
                    stack.pop()
                    fragment = self.fragments[name]
                    parent = self.schema.get_type(fragment.type_condition.name.value)
                    self.measures[name] = self.selection(fragment.selection_set, parent)
                    state[name] = 2

    # --- one selection set, its spreads measured already -----------------------------------

    def _factor(self, field_node: FieldNode, definition: Any, parent: Any) -> int:
        named = get_named_type(definition.type)
        name = field_node.name.value
        if named.name.endswith("Connection"):
            first = next((a.value for a in field_node.arguments or () if a.name.value == "first"),
                         None)
            if isinstance(first, IntValueNode) and len(first.value) <= 6:
                return max(int(first.value), 1)
            # A variable counts as the largest page; an absurd literal is refused by
            # the resolver (and never converted here).
            return self.limits.max_page if first is not None else self.limits.default_page
        if _is_list(definition.type) and not getattr(parent, "name", "").endswith("Connection"):
            # A connection's `nodes`/`edges` are the page already counted above.
            if getattr(parent, "name", "").startswith("__"):
                return self.bounds.get(name, NESTED_LIST)
            return NESTED_LIST_BOUND.get(name, NESTED_LIST)
        return 1

    def selection(self, selection_set: SelectionSetNode, parent: Any) -> Measure:
        """The measure of `selection_set` under `parent`, walked with a stack (post
        order): each node once; a spread adds its fragment's measure."""
        # Frames: [selection set, parent type, iterator over its selections, measure
        # so far, the field that owns it (None at the top) and its factor].
        result = Measure()
        frames: list[list[Any]] = []

        def open_frame(node: SelectionSetNode, of: Any, owner: Any, factor: int) -> None:
            frames.append([node, of, iter(node.selections), Measure(), owner, factor])
            if owner is not None or len(frames) == 1:
                # An inline fragment's fields count with its parent's (checked there).
                self._check_width(node)

        open_frame(selection_set, parent, None, 1)
        while frames:
            frame = frames[-1]
            node, of, selections, acc, _owner, _factor = frame
            for selection in selections:
                self.shape.work += 1
                if isinstance(selection, FieldNode):
                    if selection.alias is not None:
                        acc.aliases = _sat(acc.aliases + 1)
                    name = selection.name.value
                    if name == "__schema":
                        acc.schemas = _sat(acc.schemas + 1)
                    definition = _META.get(name)
                    if definition is None and isinstance(
                        of, GraphQLObjectType | GraphQLInterfaceType
                    ):
                        definition = of.fields.get(name)
                    factor = 1 if definition is None else self._factor(selection, definition, of)
                    acc.cost = _sat(acc.cost + factor)
                    if selection.selection_set is not None:
                        child = get_named_type(definition.type) if definition else None
                        if name == "ofType" and _owner is not None and _owner.name.value == name:
                            # A type reference's chain ends after a level or two (null):
                            # what is below a second `ofType` counts nothing.
                            factor = 0
                        open_frame(selection.selection_set, child, selection, factor)
                        break
                elif isinstance(selection, InlineFragmentNode):
                    target = (
                        self.schema.get_type(selection.type_condition.name.value)
                        if selection.type_condition
                        else of
                    )
                    open_frame(selection.selection_set, target, None, 1)
                    break
                elif isinstance(selection, FragmentSpreadNode):
                    found = self.measures.get(selection.name.value)
                    if found is not None:
                        acc.depth = max(acc.depth, found.depth)
                        acc.aliases = _sat(acc.aliases + found.aliases)
                        acc.cost = _sat(acc.cost + found.cost)
                        acc.schemas = _sat(acc.schemas + found.schemas)
            else:
                frames.pop()
                if not frames:
                    result = acc
                    break
                outer = frames[-1][3]
                owner, factor = frame[4], frame[5]
                if owner is not None:  # a field's selection: one level deeper
                    introspection = owner.name.value.startswith("__")
                    outer.depth = max(outer.depth, 0 if introspection else 1 + acc.depth)
                    outer.cost = _sat(outer.cost + _sat(factor * acc.cost))
                else:  # an inline fragment: the same level
                    outer.depth = max(outer.depth, acc.depth)
                    outer.cost = _sat(outer.cost + acc.cost)
                outer.aliases = _sat(outer.aliases + acc.aliases)
                outer.schemas = _sat(outer.schemas + acc.schemas)
        return result

    def _check_width(self, selection_set: SelectionSetNode) -> None:
        """Fields per response name and distinct spreads in one selection set, inline
        fragments merged (what OverlappingFieldsCanBeMerged compares pairwise)."""
        if self.shape.too_wide is not None:
            return
        names: dict[str, int] = {}
        spreads: set[str] = set()
        stack = [selection_set]
        while stack:
            current = stack.pop()
            for selection in current.selections:
                self.shape.work += 1
                if isinstance(selection, FieldNode):
                    key = (selection.alias or selection.name).value
                    names[key] = names.get(key, 0) + 1
                    if names[key] > MAX_SAME_NAME:
                        self.shape.too_wide = (f"field {key!r}", MAX_SAME_NAME, selection_set)
                        return
                elif isinstance(selection, InlineFragmentNode):
                    stack.append(selection.selection_set)
                elif isinstance(selection, FragmentSpreadNode):
                    spreads.add(selection.name.value)
                    if len(spreads) > MAX_SPREADS:
                        self.shape.too_wide = ("distinct fragment", MAX_SPREADS, selection_set)
                        return


def measure(
    document: DocumentNode, schema: GraphQLSchema, limits: Limits, bounds: dict[str, int]
) -> Shape:
    """Depth, aliases and cost of every operation of `document`, and its widest
    selection set, in time linear in the document (fragments measured once)."""
    measurer = _Measurer(schema, limits, bounds)
    for definition in document.definitions:
        if isinstance(definition, FragmentDefinitionNode):
            measurer.fragments.setdefault(definition.name.value, definition)
    measurer.measure_fragments()
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            root = schema.get_root_type(definition.operation)
            found = measurer.selection(definition.selection_set, root)
            measurer.shape.operations[id(definition)] = (definition, found)
    return measurer.shape


def _bounds_of(schema: GraphQLSchema, cache: dict[int, dict[str, int]]) -> dict[str, int]:
    found = cache.get(id(schema))
    if found is None:
        found = cache[id(schema)] = introspection_bounds(schema)
    return found


def shape_rule(limits: Limits) -> type[ValidationRule]:
    """The validation rule for `limits`: one measure of the document, every excess
    reported, validation aborted when there is one."""
    bounds_cache: dict[int, dict[str, int]] = {}

    class DocumentShape(ValidationRule):
        def enter_document(self, node: DocumentNode, *_: Any) -> None:
            schema = self.context.schema
            shape = measure(node, schema, limits, _bounds_of(schema, bounds_cache))
            errors = refusals(shape, limits)
            if not errors:
                return
            for error in errors[:-1]:
                self.report_error(error)
            last = errors[-1]
            # Abort: no other rule (OverlappingFieldsCanBeMerged above all) walks a
            # document that is refused already.
            raise ValidationAbortedError(
                last.message, last.nodes, extensions=last.extensions
            )

    return DocumentShape


def refusals(shape: Shape, limits: Limits) -> list[GraphQLError]:
    errors: list[GraphQLError] = []
    if shape.too_wide is not None:
        what, bound, where = shape.too_wide
        errors.append(
            GraphQLError(
                f"a selection set holds more than {bound} {what}s; merge them or ask for "
                "fewer at once",
                where,
                extensions={"code": "QUERY_TOO_WIDE", "limit": bound},
            )
        )
    aliases = 0
    for operation, found in shape.operations.values():
        name = operation.name.value if operation.name else "anonymous"
        if found.depth > limits.max_depth:
            errors.append(
                GraphQLError(
                    f"'{name}' exceeds maximum operation depth of {limits.max_depth}",
                    operation,
                    extensions={"code": "QUERY_TOO_DEEP", "limit": limits.max_depth},
                )
            )
        if found.cost > limits.max_cost:
            shown = f"{found.cost}" if found.cost < SATURATED else f"over {SATURATED}"
            errors.append(
                GraphQLError(
                    f"query cost {shown} exceeds the limit of {limits.max_cost}: ask for "
                    "smaller pages or fewer nested lists",
                    operation,
                    extensions={
                        "code": "QUERY_TOO_COSTLY",
                        "cost": found.cost,
                        "limit": limits.max_cost,
                    },
                )
            )
        if found.schemas > MAX_SCHEMAS:
            errors.append(
                GraphQLError(
                    f"'{name}' asks for __schema {found.schemas} times; at most "
                    f"{MAX_SCHEMAS} per operation",
                    operation,
                    extensions={"code": "QUERY_TOO_COSTLY", "limit": MAX_SCHEMAS},
                )
            )
        aliases = _sat(aliases + found.aliases)
    if aliases > limits.max_aliases:
        errors.append(
            GraphQLError(
                f"{aliases} aliases found. Allowed: {limits.max_aliases}",
                extensions={"code": "TOO_MANY_ALIASES", "limit": limits.max_aliases},
            )
        )
    return errors
