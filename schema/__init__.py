"""The GraphQL schema of the gateway. `schema` is the default build (what
`schema.graphql` is exported from); `build_schema(settings)` applies the
configured limits (depth, tokens, aliases, introspection, error masking)."""

from __future__ import annotations

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
)
from strawberry.extensions.disable_introspection import DisableIntrospection

from schema.delivery import DeliveryMutation, DeliveryQuery
from schema.errors import GatewayError
from schema.query import ReadQuery
from schema.roster import RosterMutation
from settings import Settings

# The roots are composed from one class per capability, so each capability keeps
# its fields in its own module; the order fixes the order in GraphiQL.
QUERY_PARTS: tuple[type, ...] = (ReadQuery, DeliveryQuery)
MUTATION_PARTS: tuple[type, ...] = (DeliveryMutation, RosterMutation)
SUBSCRIPTION_PARTS: tuple[type, ...] = ()


def _root(name: str, parts: tuple[type, ...], description: str) -> type | None:
    if not parts:
        return None
    return strawberry.type(type(name, parts, {}), description=description)


Query = _root(
    "Query",
    QUERY_PARTS,
    "Read the chain: organisations, pupils, products, entitlements, licences, deliveries.",
)
Mutation = _root(
    "Mutation",
    MUTATION_PARTS,
    "Change the chain: every mutation is one transaction, idempotent by referenceId where "
    "the chain sends messages, and answers refusals with typed errors and agreed codes.",
)
Subscription = _root(
    "Subscription",
    SUBSCRIPTION_PARTS,
    "Live delivery progress over websockets (graphql-transport-ws and graphql-ws).",
)


def _visible(error: GraphQLError) -> bool:
    """Errors the caller is meant to read; everything else is masked."""
    original = error.original_error
    if isinstance(error, GatewayError) or isinstance(original, GatewayError):
        return True
    # Validation and parse errors (no original error, no path) are about the query.
    return original is None and not error.path


def build_schema(settings: Settings | None = None) -> strawberry.Schema:
    settings = settings or Settings()
    extensions: list[object] = [
        lambda: QueryDepthLimiter(max_depth=settings.max_query_depth),
        lambda: MaxTokensLimiter(max_token_count=settings.max_query_tokens),
        lambda: MaxAliasesLimiter(max_alias_count=settings.max_aliases),
        lambda: MaskErrors(
            should_mask_error=lambda error: not _visible(error),
            error_message="Unexpected error; it has been logged.",
        ),
    ]
    if not settings.introspection:
        extensions.append(DisableIntrospection)
    return strawberry.Schema(
        query=Query, mutation=Mutation, subscription=Subscription, extensions=extensions
    )  # type: ignore[arg-type]


schema = build_schema()
