"""The schema documents itself and guards itself: every type, field and argument
has a description (GraphiQL is the users' manual), every root field checks the
caller, and the committed schema.graphql is what the code exports."""

from __future__ import annotations

from pathlib import Path

from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLUnionType,
)

from resolvers.api import schema

ROOT = Path(__file__).resolve().parents[2]


def _own_types():  # type: ignore[no-untyped-def]
    for name, graphql_type in schema._schema.type_map.items():
        if not name.startswith("__") and name not in {"String", "Int", "Boolean", "ID", "Float"}:
            yield name, graphql_type


def test_every_type_field_and_argument_has_a_description() -> None:
    missing: list[str] = []
    for name, graphql_type in _own_types():
        if not graphql_type.description:
            missing.append(name)
        if isinstance(graphql_type, GraphQLObjectType | GraphQLInterfaceType):
            for field_name, field in graphql_type.fields.items():
                if not field.description:
                    missing.append(f"{name}.{field_name}")
                for arg_name, arg in field.args.items():
                    if not arg.description:
                        missing.append(f"{name}.{field_name}({arg_name})")
        elif isinstance(graphql_type, GraphQLInputObjectType):
            for field_name, field in graphql_type.fields.items():
                if not field.description:
                    missing.append(f"{name}.{field_name}")
        elif isinstance(graphql_type, GraphQLUnionType | GraphQLEnumType):
            pass
    assert not missing, f"undocumented: {missing}"


def test_every_root_field_checks_the_caller() -> None:
    unguarded = []
    for root in (schema.query, schema.mutation, schema.subscription):
        if root is None:
            continue
        for field in root.__strawberry_definition__.fields:
            if not field.permission_classes:
                unguarded.append(f"{root.__name__}.{field.python_name}")
    assert not unguarded, f"root fields without a permission check: {unguarded}"


def test_committed_schema_graphql_is_current() -> None:
    committed = (ROOT / "schema.graphql").read_text()
    assert committed == schema.as_str() + "\n", "run `make schema` and commit schema.graphql"
