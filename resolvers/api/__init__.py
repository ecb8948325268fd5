"""The GraphQL API: the root types composed from one class per capability (the
modules of this package, whose fields call `resolvers/`), over the object types of
`schema/`. `schema` is the default build (what `schema.graphql` is exported from);
`build_schema(...)` adds the BSN guard and error masking, and the validation rules
and extensions the caller passes (the gateway's limits: `gateway.limits.gateway_schema`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import strawberry
from graphql import ASTValidationRule, GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    MaskErrors,
    ParserCache,
    SchemaExtension,
    ValidationCache,
)

from resolvers.api.activation import ActivationMutation, ActivationQuery
from resolvers.api.consent import ConsentMutation, ConsentQuery
from resolvers.api.dashboard import DashboardQuery
from resolvers.api.delivery import DeliveryMutation, DeliveryQuery
from resolvers.api.live import LiveSubscription
from resolvers.api.privacy import PrivacyMutation, PrivacyQuery
from resolvers.api.push import PushMutation, PushQuery
from resolvers.api.query import ReadQuery
from resolvers.api.roster import RosterMutation
from resolvers.privacy import RefusePgnInput
from schema import conversion
from schema.errors import GatewayError

# The roots are composed from one class per capability, so each capability keeps
# its fields in its own module; the order fixes the order in GraphiQL.
QUERY_PARTS: tuple[type, ...] = (
    ReadQuery,
    DeliveryQuery,
    ActivationQuery,
    ConsentQuery,
    PrivacyQuery,
    DashboardQuery,
    PushQuery,
)
MUTATION_PARTS: tuple[type, ...] = (
    DeliveryMutation,
    RosterMutation,
    ActivationMutation,
    ConsentMutation,
    PrivacyMutation,
    PushMutation,
)
SUBSCRIPTION_PARTS: tuple[type, ...] = (LiveSubscription,)

#: A schema extension: its class, or a function that makes one.
Extension = type[SchemaExtension] | Callable[[], SchemaExtension]


def _root(name: str, parts: tuple[type, ...], description: str) -> type:
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


def build_schema(
    *,
    validation_rules: Sequence[type[ASTValidationRule]] = (),
    extensions: Sequence[Extension] = (),
) -> strawberry.Schema:
    """The schema with the BSN guard and error masking; `validation_rules` and
    `extensions` are the limits the transport applies (made once per schema, so
    that a repeated operation text has the same rules every time and its
    validation is answered from the cache)."""
    rules = list(validation_rules)
    chain: list[Extension] = [
        # Integrations send the same few operations again and again (a licence office
        # sends one licenceActivate text for every click): parse and validate each
        # text once. Bounded, so unique texts cannot grow memory.
        lambda: ParserCache(maxsize=256),
        lambda: ValidationCache(maxsize=256),
        lambda: AddValidationRules(rules),
        *extensions,
        RefusePgnInput,
        lambda: MaskErrors(
            should_mask_error=lambda error: not _visible(error),
            error_message="Unexpected error; it has been logged.",
        ),
    ]
    schema = strawberry.Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=chain,
    )
    # Input objects built through a table per type, not re-derived per call.
    conversion.install(schema._schema)
    return schema


schema = build_schema()
