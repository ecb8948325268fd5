"""The plan cache and the fallbacks of `compiler.ReadCompiler` (no database)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from graphql import parse

from compiler import Fallback, Plan, ReadCompiler
from domain.roles import Role
from resolvers.auth import Principal
from tests.conftest import _SCHEMA, TEST_SETTINGS

PAGE = """query ($school: OrganisationIdentifierInput, $first: Int) {
  entitlements(first: $first, filter: {school: $school}) { nodes { id status } }
}"""
PORTAL = Principal(3, frozenset({Role.PORTAL}), supplier_code="demo-portal")
SHOP = Principal(1, frozenset({Role.SELLER}), supplier_code="demo-shop")


def compiler(**kw: Any) -> ReadCompiler:
    return ReadCompiler(_SCHEMA, TEST_SETTINGS, **kw)


def test_a_plan_is_built_once_per_text_roles_and_shape_of_the_variables() -> None:
    reads = compiler()
    first = reads.plan(parse(PAGE), None, PORTAL, {"school": {"value": "104A158"}, "first": 5})
    again = reads.plan(parse(PAGE), None, PORTAL, {"school": {"value": "104A160"}, "first": 9})
    assert isinstance(first, Plan)
    assert isinstance(again, Plan)
    # Other values, same statement: values are parameters, never part of the plan.
    assert first._compiled is again._compiled
    assert first.sql == again.sql
    without_school = reads.plan(parse(PAGE), None, PORTAL, {"school": None, "first": 5})
    as_shop = reads.plan(parse(PAGE), None, SHOP, {"school": {"value": "104A158"}, "first": 5})
    assert isinstance(without_school, Plan)
    assert isinstance(as_shop, Plan)
    assert len({id(p._compiled) for p in (first, without_school, as_shop)}) == 3


def test_the_plan_cache_is_bounded() -> None:
    reads = compiler(cache_size=3)
    for n in range(10):
        reads.plan(parse(f"{{ a{n}: products(first: {n + 1}) {{ totalCount }} }}"), None, SHOP, {})
    assert len(reads._cache) == 3


def test_skip_and_include_follow_their_variables() -> None:
    reads = compiler()
    query = "query ($more: Boolean!) { products { nodes { id name @include(if: $more) } } }"
    with_name = reads.plan(parse(query), None, SHOP, {"more": True})
    without = reads.plan(parse(query), None, SHOP, {"more": False})
    assert isinstance(with_name, Plan)
    assert isinstance(without, Plan)
    assert "'name'" in (with_name.sql or "")
    assert "'name'" not in (without.sql or "")


@pytest.mark.parametrize(
    ("query", "variables", "reason"),
    [
        (
            'mutation { personErase(input: {identifier: {scheme: ECK_ID, value: "x"}, '
            'reason: "r"}) { __typename } }',
            {},
            "mutation",
        ),
        ("subscription { licenceActivations { cursor } }", {}, "subscription"),
        ("{ __schema { queryType { name } } }", {}, "Query.__schema"),
        (
            '{ dashboard(schoolPeriod: "2026-2027") { schools { rioId } } }',
            {},
            "dashboard(schoolPeriod) without a school",
        ),
        (
            "query ($v: String!) { products(filter: {nameContains: $v}) { totalCount } }",
            {"v": "123456782"},
            "input refused by RefusePgnInput",
        ),
        ('{ products(filter: {nameContains: "123456782"}) { totalCount } }', {}, "refused"),
    ],
)
def test_what_does_not_compile_falls_back_counted_and_logged(
    query: str, variables: dict[str, Any], reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    reads = compiler()
    operator = Principal(0, frozenset({Role.OPERATOR}), supplier_code="operator")
    with caplog.at_level(logging.DEBUG, logger="ketenpoort.compiler"):
        found = reads.plan(parse(query), None, operator, variables)
    assert isinstance(found, Fallback)
    assert reason in found.reason
    assert sum(reads.fallbacks.values()) == 1
    assert any(found.reason in record.getMessage() for record in caplog.records)


def test_typename_alone_needs_no_statement() -> None:
    found = compiler().plan(parse("{ __typename }"), None, SHOP, {})
    assert isinstance(found, Plan)
    assert not found.needs_connection


async def test_a_failing_statement_hands_the_request_to_the_resolvers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken:
        async def fetchrow(self, sql: str, *args: Any) -> Any:
            raise RuntimeError("connection lost")

    from datetime import date

    reads = compiler()
    plan = reads.plan(parse("{ products { totalCount } }"), None, SHOP, {})
    assert isinstance(plan, Plan)
    with caplog.at_level(logging.ERROR, logger="ketenpoort.compiler"):
        answer = await plan.execute(Broken(), {}, SHOP, date(2026, 11, 30))
    assert isinstance(answer, Fallback)
    assert reads.fallbacks["compiled statement failed"] == 1
    assert "connection lost" in caplog.text


def test_variables_the_operation_does_not_declare_make_no_new_plan() -> None:
    reads = compiler()
    query = "query ($first: Int) { products(first: $first) { totalCount } }"
    for n in range(5):
        found = reads.plan(parse(query), None, SHOP, {"first": 3, f"junk{n}": {"x": n}})
        assert isinstance(found, Plan)
    assert len(reads._cache) == 1
