"""Every refusal of a mutation answers a type its payload union lists.

A `MutationError` whose type the union does not list cannot be resolved by
strawberry and reaches the caller as a masked "Unexpected error". The resolvers
answer through `resolvers.writes.refusal`, which keeps the error's own type where
the union lists it and otherwise gives the union's general refusal
(`schema.payloads.admitted`). The first tests hold that for every mutation of the
schema and every kind of refusal; the others go through the API where a use case
raises a refusal its union has no own type for.
"""

from __future__ import annotations

from typing import Annotated, Any, get_origin

import pytest
from graphql import get_named_type

import schema.activation
import schema.consent
import schema.delivery
import schema.privacy
import schema.push
import schema.roster
import services.delivery
import services.licences
from db.idempotency import ReferenceConflict
from domain.errors import (
    DomainError,
    FieldError,
    StatusCode,
    TransitionNotAllowed,
    ValidationFailed,
)
from resolvers.api import schema as api_schema
from resolvers.writes import refusal
from schema.payloads import ReferenceConflictError, members
from tests.conftest import GraphQLClient

#: Every mutation payload union, by its GraphQL name.
PAYLOADS: dict[str, Any] = {
    name: value
    for module in (
        schema.activation,
        schema.consent,
        schema.delivery,
        schema.privacy,
        schema.push,
        schema.roster,
    )
    for name, value in vars(module).items()
    if name.endswith("Payload") and get_origin(value) is Annotated
}

#: One refusal of each kind a use case raises.
REFUSALS: dict[str, DomainError | ReferenceConflict] = {
    "validation": ValidationFailed([FieldError(StatusCode.FIELD_MISSING, "a", "a is required")]),
    "transition": TransitionNotAllowed("BLOCKED", "CANCEL"),
    "not found": DomainError(StatusCode.ENTITLEMENT_UNKNOWN, "unknown", field="id"),
    "rule": DomainError(StatusCode.QUANTITY_NOT_ALLOWED, "too few", field="quantity"),
    "conflict": ReferenceConflict("referenceId 'r' was already used"),
}


def test_every_mutation_answers_one_of_these_unions() -> None:
    mutation = api_schema._schema.mutation_type
    assert mutation is not None
    answered = {get_named_type(field.type).name for field in mutation.fields.values()}
    assert answered == set(PAYLOADS)


@pytest.mark.parametrize("kind", sorted(REFUSALS))
@pytest.mark.parametrize("payload", sorted(PAYLOADS))
def test_a_refusal_answers_a_type_the_union_lists(payload: str, kind: str) -> None:
    error = REFUSALS[kind]
    answer = refusal(error, "r", PAYLOADS[payload])
    assert type(answer) in members(PAYLOADS[payload])
    if isinstance(error, DomainError):
        assert (answer.code, answer.field) == (int(error.code), error.field)
    elif not isinstance(answer, ReferenceConflictError):
        assert (answer.code, answer.field) == (int(StatusCode.OTHER), "referenceId")


SUBMIT = """
mutation ($input: DeliveryInput!) {
  deliverySubmit(input: $input) {
    __typename
    ... on ValidationError { code field message problems { code field message } }
  }
}
"""

BLOCK = """
mutation ($input: LicenceStepInput!) {
  licenceBlock(input: $input) {
    __typename
    ... on MutationError { code field message }
  }
}
"""


async def test_a_rule_violation_under_delivery_submit_is_a_validation_error(
    gql: GraphQLClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No rule of the delivery use case raises one today; its union lists no
    # RuleViolationError, so the refusal is the message refused with one problem.
    async def refused(*_args: Any, **_kwargs: Any) -> Any:
        raise DomainError(StatusCode.CONTRACT_RESTRICTED, "contract restricted", field="contract")

    monkeypatch.setattr(services.delivery, "submit", refused)
    body = {"referenceId": "ref-union", "orderLines": []}
    result = await gql.execute(SUBMIT, {"input": body}, as_=("demo-shop", "seller"))
    assert result.errors is None, [e.formatted for e in result.errors]
    assert result.data["deliverySubmit"] == {
        "__typename": "ValidationError",
        "code": 21,
        "field": "contract",
        "message": "contract restricted",
        "problems": [{"code": 21, "field": "contract", "message": "contract restricted"}],
    }


async def test_a_rule_violation_under_licence_block_is_a_rule_violation_error(
    gql: GraphQLClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def refused(*_args: Any, **_kwargs: Any) -> Any:
        raise DomainError(StatusCode.OTHER, "not now", field="licenceId")

    monkeypatch.setattr(services.licences, "change", refused)
    result = await gql.execute(
        BLOCK, {"input": {"licenceId": "1"}}, as_=("demo-shop", "seller")
    )
    assert result.errors is None, [e.formatted for e in result.errors]
    assert result.data["licenceBlock"] == {
        "__typename": "RuleViolationError",
        "code": 99,
        "field": "licenceId",
        "message": "not now",
    }
