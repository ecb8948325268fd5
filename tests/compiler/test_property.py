"""Random valid queries, run as every role, answer the same compiled and through
the resolvers (the comparison is the test client's: `tests/compiler/oracle.py`).

The selections are drawn from the schema by hypothesis-graphql; the root fields'
arguments are replaced by meaningful ones (random strings would only exercise the
refusals, which the resolvers answer anyway). The seed is in every failure
message; set KETENPOORT_PROPERTY_SEED to repeat a run.
"""

from __future__ import annotations

import os
import random
from dataclasses import replace
from typing import Any

import pytest
from graphql import ArgumentNode, parse, print_ast
from graphql.language import FieldNode, OperationDefinitionNode, parse_value
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from hypothesis_graphql import strategies as gql_strategies

from resolvers.api import schema
from tests.api.test_permission_matrix import CALLERS, SCHOOL
from tests.conftest import COMPILED_READS, GraphQLClient

SEED = int(os.environ.get("KETENPOORT_PROPERTY_SEED") or random.randrange(2**32))
EXAMPLES = 25

#: Arguments a real caller sends, per root field (one is drawn for each query).
ARGUMENTS: dict[str, list[str]] = {
    "entitlements": [
        "{first: 5}",
        '{first: 3, filter: {school: {value: "104A158"}}}',
        '{filter: {school: {value: "09QQ", scheme: OIE_CODE}, status: [LINK_READY, ENDED]}}',
        '{first: 2, filter: {productId: "9789000000012"}}',
        "{first: 4, filter: {variant: SCHOOL}}",
    ],
    "licences": [
        "{first: 5}",
        '{first: 3, filter: {school: {value: "104A158"}, status: ACTIVATED}}',
        "{filter: {status: EXPIRED}}",
    ],
    "organisations": [
        "{first: 4}",
        '{filter: {level: PROVIDER, board: {value: "100B001"}}}',
        '{filter: {nameContains: "college"}}',
    ],
    "products": [
        "{first: 3}",
        "{filter: {type: SET}}",
        '{filter: {publisherCode: "demo-publisher"}}',
    ],
    "organisation": [
        '{identifier: {value: "104A158"}}',
        '{identifier: {value: "09qq"}}',
        '{identifier: {value: "100B001", scheme: OB_ID}}',
    ],
    "entitlement": ['{id: "1"}', '{id: "3"}', '{id: "7"}'],
}


def _with_arguments(query: str, choice: int, arguments: dict[str, list[str]]) -> str:
    document = parse(query)
    operation = document.definitions[0]
    assert isinstance(operation, OperationDefinitionNode)
    selections = []
    for selection in operation.selection_set.selections:
        if isinstance(selection, FieldNode) and selection.name.value in arguments:
            options = arguments[selection.name.value]
            value = parse_value(options[choice % len(options)])
            arguments = tuple(
                ArgumentNode(name=field.name, value=field.value)
                for field in value.fields  # type: ignore[attr-defined]
            )
            selection = replace(selection, arguments=arguments)
        selections.append(selection)
    selection_set = replace(operation.selection_set, selections=tuple(selections))
    return print_ast(
        replace(document, definitions=(replace(operation, selection_set=selection_set),))
    )


def queries(arguments: dict[str, list[str]], examples: int = EXAMPLES) -> list[str]:
    """`examples` queries, each of one root field of `arguments` with one of its
    argument sets and a selection drawn from the schema."""
    drawn: list[str] = []

    @settings(
        max_examples=examples,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @seed(SEED)
    # One root field per query: when graphql-core stops a request at a refused
    # non-null root field it cancels its siblings' statements, which spoils the test's
    # connection (the resolvers' behaviour, not the compiler's).
    @given(
        st.sampled_from(sorted(arguments)).flatmap(
            lambda name: gql_strategies.queries(schema._schema, fields=[name])
        ),
        st.integers(min_value=0, max_value=100),
    )
    def draw(query: str, choice: int) -> None:
        drawn.append(_with_arguments(query, choice, arguments))

    draw()
    return drawn


@pytest.mark.slow
async def test_random_queries_answer_the_same_compiled_for_every_role(
    gql: GraphQLClient, backend: Any
) -> None:
    if not backend.is_postgres:
        pytest.skip("compiled reads run on PostgreSQL")
    await run_as_every_role(gql, queries(ARGUMENTS), CALLERS, SCHOOL)


async def run_as_every_role(
    gql: GraphQLClient, drawn: list[str], callers: dict[str, tuple[str, ...]], school: str
) -> None:
    before = COMPILED_READS["compiled"]
    for query in drawn:
        for role, caller in callers.items():
            try:
                await gql.execute(query, as_=caller, school=school if role == "school" else None)
            except AssertionError as failure:
                raise AssertionError(
                    f"seed {SEED} (KETENPOORT_PROPERTY_SEED={SEED}), role {role}: {failure}"
                ) from None
    # Most of them really ran compiled (not all: some roles are refused some fields).
    assert COMPILED_READS["compiled"] - before > len(drawn), f"seed {SEED}"
