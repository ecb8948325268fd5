"""Input objects built from graphql-core's coerced values with a table made once per type.

strawberry converts every argument on every call by walking its input type: per
field it resolves the field's annotation and converts its Python name to the GraphQL
name again, which for one `licenceActivate` click costs more CPU than the click's own
decision. Neither changes for a type, so `install` gives each input type of a schema
the hook strawberry offers for input types that build their own value
(`StrawberryObjectDefinition.from_input`), backed by a table of (GraphQL name, Python
name, how to convert) made at the type's first use. The values are strawberry's: a
field not sent is None unless it has a default, scalars and enums are graphql-core's
values as they are, nested input objects are built the same way, and everything else
(lists, GlobalID, lazy types) goes through strawberry's own `InputContext.convert`.
Types with a `Maybe` field keep strawberry's conversion (its check of nulls in the
document skips types with the hook). A table is kept per class, for every schema of
the process: they all name fields with strawberry's default name converter.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from strawberry.relay import GlobalID
from strawberry.scalars import is_scalar
from strawberry.types.arguments import InputContext
from strawberry.types.base import (
    StrawberryMaybe,
    StrawberryObjectDefinition,
    StrawberryOptional,
    has_object_definition,
)
from strawberry.types.enum import StrawberryEnumDefinition, has_enum_definition
from strawberry.types.unset import UNSET

#: How a field's value becomes its Python value.
AS_IS, INPUT, STRAWBERRY = "as is", "input", "strawberry"


class _Table:
    """One input type's conversion: the fields' defaults and, per field, (GraphQL
    name, Python name, how, the type to build or convert to)."""

    __slots__ = ("defaults", "fields")

    def __init__(self, definition: StrawberryObjectDefinition, context: InputContext) -> None:
        self.defaults = {
            field.python_name: None
            for field in definition.fields
            if field.default_value is dataclasses.MISSING
            and field.default_factory is dataclasses.MISSING
        }
        fields = []
        for field in definition.fields:
            type_ = field.resolve_type(type_definition=definition)
            name = context.config.name_converter.from_field(field)
            how, target = _how(type_, context)
            fields.append((name, field.python_name, how, target))
        self.fields = tuple(fields)


def _how(type_: Any, context: InputContext) -> tuple[str, Any]:
    inner = type_
    while isinstance(inner, StrawberryOptional) and not isinstance(inner, StrawberryMaybe):
        inner = inner.of_type
    if isinstance(inner, StrawberryMaybe) or inner is GlobalID:
        return STRAWBERRY, type_
    if isinstance(inner, StrawberryEnumDefinition) or has_enum_definition(inner):
        return AS_IS, inner
    if is_scalar(inner, context.scalar_registry):
        return AS_IS, inner
    if has_object_definition(inner) and inner.__strawberry_definition__.from_input is from_input:
        return INPUT, inner
    return STRAWBERRY, type_


_tables: dict[type, _Table] = {}


def from_input(cls: type, value: Mapping[str, Any], context: InputContext) -> Any:
    """strawberry's `from_input` hook: an instance of `cls` from its input value."""
    table = _tables.get(cls)
    if table is None:
        definition = cls.__strawberry_definition__  # type: ignore[attr-defined]
        table = _tables[cls] = _Table(definition, context)
    kwargs: dict[str, Any] = dict(table.defaults)
    for name, python_name, how, target in table.fields:
        if name not in value:
            continue
        found = value[name]
        if how is STRAWBERRY:
            kwargs[python_name] = context.convert(found, target, name)
        elif how is AS_IS or found is None or found is UNSET:
            kwargs[python_name] = found
        else:  # INPUT
            kwargs[python_name] = from_input(target, found, context)
    return cls(**kwargs)


def install(graphql_schema: Any) -> None:
    """Give every input type of `graphql_schema` (graphql-core's schema of a
    strawberry schema) the table's conversion, unless it has a `Maybe` field or a
    hook of its own."""
    for named in graphql_schema.type_map.values():
        definition = (getattr(named, "extensions", None) or {}).get("strawberry-definition")
        if not isinstance(definition, StrawberryObjectDefinition) or not definition.is_input:
            continue
        if definition.from_input is None and not any(
            isinstance(field.type, StrawberryMaybe) for field in definition.fields
        ):
            definition.from_input = from_input
