"""schema/conversion.py: input objects built through a table per type are the values
strawberry's own conversion builds, for nested inputs, lists of inputs, enums, dates,
defaults, nulls and fields not sent; every input type of the schema has the table."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from graphql import GraphQLInputObjectType, Undefined
from graphql.utilities import coerce_input_value
from strawberry.types.arguments import convert_argument

from resolvers.api import schema
from schema import conversion
from schema.activation import LicenceActivateInput
from schema.delivery import DeliveryInput
from schema.filters import ProductFilter

INPUTS: list[tuple[type, dict[str, Any]]] = [
    (
        LicenceActivateInput,
        {
            "productId": "9789000000012",
            "school": {"value": "104A158"},
            "person": {"eckId": "https://ketenid.nl/pilot/abc"},
        },
    ),
    (
        LicenceActivateInput,
        {
            "productId": "9789000000012",
            "school": {"value": "09QQ", "scheme": "OIE_CODE"},
            "person": {"eckId": "https://ketenid.nl/pilot/abc"},
            "activationCode": None,
            "referenceId": "r-1",
        },
    ),
    (
        DeliveryInput,
        {
            "referenceId": "d-1",
            "buyer": {"schoolId": "104A158", "privatePerson": False},
            "orderLines": [
                {
                    "productId": "9789000000012",
                    "variant": "SCHOOL_PUPIL",
                    "quantity": 2,
                    "entitlees": [
                        {"eckId": "https://ketenid.nl/pilot/a"},
                        {"userId": {"value": "x", "scheme": "NEPRI"}, "activationCode": None},
                    ],
                    "eckIds": ["https://ketenid.nl/pilot/b"],
                    "startDate": "2026-08-01",
                    "licenceTerm": {"durationMonths": 12},
                },
                {"productId": None, "eckIds": None},
            ],
        },
    ),
    (DeliveryInput, {}),
    (ProductFilter, {"nameContains": "wiskunde"}),
]


def _graphql_type(cls: type) -> GraphQLInputObjectType:
    found = schema._schema.get_type(cls.__strawberry_definition__.name)  # type: ignore[attr-defined]
    assert isinstance(found, GraphQLInputObjectType)
    return found


def _convert(cls: type, raw: dict[str, Any]) -> Any:
    coerced = coerce_input_value(raw, _graphql_type(cls))
    assert coerced is not Undefined, raw  # the sample is a valid input
    return convert_argument(
        coerced, cls, schema.schema_converter.scalar_registry, schema.config
    )


@contextmanager
def strawberrys_own() -> Iterator[None]:
    """strawberry's conversion: the hook taken off every input type for a moment."""
    installed = [
        definition
        for named in schema._schema.type_map.values()
        if (definition := (getattr(named, "extensions", None) or {}).get("strawberry-definition"))
        is not None
        and getattr(definition, "from_input", None) is conversion.from_input
    ]
    for definition in installed:
        definition.from_input = None
    try:
        yield
    finally:
        for definition in installed:
            definition.from_input = conversion.from_input


@pytest.mark.parametrize(("cls", "raw"), INPUTS)
def test_the_table_builds_what_strawberry_builds(cls: type, raw: dict[str, Any]) -> None:
    ours = _convert(cls, raw)
    with strawberrys_own():
        theirs = _convert(cls, raw)
    assert type(ours) is type(theirs) is cls
    assert ours == theirs
    assert repr(ours) == repr(theirs)  # nested values and their types alike


def test_every_input_type_of_the_schema_has_the_table() -> None:
    inputs = [
        named.extensions["strawberry-definition"]
        for named in schema._schema.type_map.values()
        if isinstance(named, GraphQLInputObjectType)
        and "strawberry-definition" in (named.extensions or {})
    ]
    assert len(inputs) > 20
    assert all(definition.from_input is conversion.from_input for definition in inputs)
