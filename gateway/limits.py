"""Limits against hostile or careless queries: depth, aliases, tokens, a cost
limit on list fields, introspection off where configured, and a per-client rate
limit. `gateway_schema(settings)` is the schema with these limits applied.

Cost: every field costs 1 for each time it will be resolved. A connection or list
field multiplies what is below it by its page size (`first`, or the default page
size; a variable counts as the maximum page size, because validation runs before
variables are known) or, for a plain nested list, by the bound the resolver
applies. Fragments are followed, so spreading a fragment does not hide its cost.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import strawberry
from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLObjectType,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationRule,
    get_named_type,
    is_list_type,
    is_non_null_type,
)
from strawberry.extensions import MaxAliasesLimiter, MaxTokensLimiter, QueryDepthLimiter
from strawberry.extensions.disable_introspection import DisableIntrospection

from gateway.observe import ObserveOperation
from schema import build_schema
from settings import Settings

# What a plain nested list (not a connection) is counted as: the bound its resolver
# applies where there is one (Entitlement.licences: 50), otherwise a typical size
# (identifiers, boards, recipients, components are a handful).
NESTED_LIST_BOUND = {"licences": 50, "history": 50, "entitlements": 50, "candidates": 20}
NESTED_LIST = 10


def _is_list(graphql_type: Any) -> bool:
    if is_non_null_type(graphql_type):
        graphql_type = graphql_type.of_type
    return is_list_type(graphql_type)


def query_cost(
    selection_set: SelectionSetNode,
    parent: Any,
    multiplier: int,
    fragments: dict[str, FragmentDefinitionNode],
    schema: Any,
    default_page: int,
    max_page: int,
    seen: frozenset[str] = frozenset(),
) -> int:
    total = 0
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            name = selection.name.value
            fields = (
                parent.fields
                if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType)
                else {}
            )
            definition = fields.get(name)
            if definition is None:  # __typename and introspection
                continue
            named = get_named_type(definition.type)
            factor = multiplier
            arguments = {a.name.value: a.value for a in selection.arguments or []}
            if named.name.endswith("Connection"):
                first = arguments.get("first")
                size = (
                    int(first.value)
                    if isinstance(first, IntValueNode)
                    else (max_page if first is not None else default_page)
                )
                factor = multiplier * max(size, 1)
            elif _is_list(definition.type) and not getattr(parent, "name", "").endswith(
                "Connection"
            ):
                # A connection's `nodes`/`edges` are the page already counted above.
                factor = multiplier * NESTED_LIST_BOUND.get(name, NESTED_LIST)
            total += factor
            if selection.selection_set:
                total += query_cost(
                    selection.selection_set,
                    named,
                    factor,
                    fragments,
                    schema,
                    default_page,
                    max_page,
                    seen,
                )
        elif isinstance(selection, InlineFragmentNode):
            target = (
                schema.get_type(selection.type_condition.name.value)
                if selection.type_condition
                else parent
            )
            total += query_cost(
                selection.selection_set,
                target,
                multiplier,
                fragments,
                schema,
                default_page,
                max_page,
                seen,
            )
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = fragments.get(name)
            if fragment is None or name in seen:
                continue
            target = schema.get_type(fragment.type_condition.name.value)
            total += query_cost(
                fragment.selection_set,
                target,
                multiplier,
                fragments,
                schema,
                default_page,
                max_page,
                seen | {name},
            )
    return total


def cost_limit_rule(limit: int, default_page: int, max_page: int) -> type[ValidationRule]:
    class QueryCostLimit(ValidationRule):
        def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
            schema = self.context.schema
            root = schema.get_root_type(node.operation)
            fragments = {
                d.name.value: d
                for d in self.context.document.definitions
                if isinstance(d, FragmentDefinitionNode)
            }
            cost = query_cost(
                node.selection_set, root, 1, fragments, schema, default_page, max_page
            )
            if cost > limit:
                self.report_error(
                    GraphQLError(
                        f"query cost {cost} exceeds the limit of {limit}: ask for smaller pages "
                        "or fewer nested lists",
                        node,
                        extensions={"code": "QUERY_TOO_COSTLY", "cost": cost, "limit": limit},
                    )
                )

    return QueryCostLimit


@dataclass
class RateLimiter:
    """A token bucket per client (supplier code), in this process: `rate` requests
    per second sustained, `burst` at once. Several gateway processes each keep
    their own buckets, so the effective limit is per process."""

    rate: float
    burst: int
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)

    def allow(self, client: str, now: float | None = None) -> float:
        """0 when allowed; otherwise the seconds to wait before the next request."""
        if self.rate <= 0:
            return 0.0
        moment = time.monotonic() if now is None else now
        tokens, last = self._buckets.get(client, (float(self.burst), moment))
        tokens = min(float(self.burst), tokens + (moment - last) * self.rate)
        if tokens >= 1:
            self._buckets[client] = (tokens - 1, moment)
            return 0.0
        self._buckets[client] = (tokens, moment)
        return (1 - tokens) / self.rate

    async def acquire(self, client: str) -> float:
        """`allow` with the interface of the shared limiter (gateway/shared.py)."""
        return self.allow(client)


def validation_rules(settings: Settings) -> list[type[ValidationRule]]:
    """The configured limits, as validation rules."""
    rules = [
        *QueryDepthLimiter(max_depth=settings.max_query_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=settings.max_aliases).validation_rules,
        cost_limit_rule(
            settings.max_query_cost, settings.default_page_size, settings.max_page_size
        ),
    ]
    if not settings.introspection:
        rules += DisableIntrospection().validation_rules
    return rules


def gateway_schema(settings: Settings) -> strawberry.Schema:
    """The schema as the gateway serves it: every limit of `settings` applied."""
    return build_schema(
        validation_rules=validation_rules(settings),
        extensions=[
            lambda: MaxTokensLimiter(max_token_count=settings.max_query_tokens),
            ObserveOperation,  # operation name and outcome for logs, metrics, spans
        ],
    )
