"""The shape limits cost work linear in the document, whatever its fragments
(issue 12.1): measured by counting the nodes visited and the comparisons
graphql-core's OverlappingFieldsCanBeMerged makes, never by wall time."""

from __future__ import annotations

from typing import Any

import pytest
from graphql import parse, specified_rules, validate
from graphql.language import Visitor, visit
from graphql.validation.rules import overlapping_fields_can_be_merged as overlapping

from gateway.limits import gateway_schema, validation_rules
from gateway.shape import MAX_SAME_NAME, MAX_SPREADS, Limits, introspection_bounds, measure
from tests.conftest import TEST_SETTINGS

SCHEMA = gateway_schema(TEST_SETTINGS)._schema
LIMITS = Limits(
    max_depth=TEST_SETTINGS.max_query_depth,
    max_aliases=TEST_SETTINGS.max_aliases,
    max_cost=TEST_SETTINGS.max_query_cost,
    default_page=TEST_SETTINGS.default_page_size,
    max_page=TEST_SETTINGS.max_page_size,
)
RULES = [*specified_rules, *validation_rules(TEST_SETTINGS)]


def attack(levels: int) -> str:
    """Two fragments per level, each spreading both of the level below: the
    expanded document doubles per level (the review's attack)."""
    parts = ["fragment A0 on Product { id }", "fragment B0 on Product { name }"]
    for level in range(1, levels + 1):
        below = f"...A{level - 1} ...B{level - 1}"
        parts += [f"fragment A{level} on Product {{ {below} }}",
                  f"fragment B{level} on Product {{ {below} }}"]
    top = f"...A{levels} ...B{levels}"
    return "\n".join(parts) + f"\n{{ products(first: 1) {{ nodes {{ {top} }} }} }}"


def nodes_in(source: str) -> int:
    count = 0

    class Count(Visitor):
        def enter(self, *_: Any) -> None:
            nonlocal count
            count += 1

    visit(parse(source), Count())
    return count


def codes(errors: list[Any]) -> list[str]:
    return [str((e.extensions or {}).get("code")) for e in errors]


@pytest.fixture
def comparisons(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How often OverlappingFieldsCanBeMerged compares two fields or two fragments."""
    counts = {"fields": 0, "fragments": 0}
    find_conflict = overlapping.find_conflict
    between_fragments = overlapping.collect_conflicts_between_fragments

    def counted_conflict(*args: Any, **kw: Any) -> Any:
        counts["fields"] += 1
        return find_conflict(*args, **kw)

    def counted_fragments(*args: Any, **kw: Any) -> Any:
        counts["fragments"] += 1
        return between_fragments(*args, **kw)

    monkeypatch.setattr(overlapping, "find_conflict", counted_conflict)
    monkeypatch.setattr(overlapping, "collect_conflicts_between_fragments", counted_fragments)
    return counts


@pytest.mark.parametrize("levels", [10, 20, 30])
def test_the_fragment_attack_is_measured_in_linear_work(levels: int) -> None:
    source = attack(levels)
    assert len(source.encode()) < 3 * 1024
    shape = measure(parse(source), SCHEMA, LIMITS, introspection_bounds(SCHEMA))
    # Each node a handful of times (spread graph, measure, width): not per path.
    assert shape.work <= 4 * nodes_in(source)
    (_, found), = shape.operations.values()
    assert found.cost >= 2**levels  # every expanded field, counted without expanding


def test_the_fragment_attack_is_refused_before_the_other_rules(
    comparisons: dict[str, int],
) -> None:
    errors = validate(SCHEMA, parse(attack(30)), RULES)
    assert codes(errors) == ["QUERY_TOO_COSTLY"]
    assert comparisons == {"fields": 0, "fragments": 0}  # aborted before they ran


def test_work_grows_with_the_document_not_with_its_expansion() -> None:
    def work(levels: int) -> int:
        source = attack(levels)
        return measure(parse(source), SCHEMA, LIMITS, introspection_bounds(SCHEMA)).work

    # 10 more levels double the expanded size 1,024 times; the work grows by the
    # nodes added, the same for each 10 levels.
    assert work(30) - work(20) == work(20) - work(10)


def test_a_fragment_cycle_does_not_loop() -> None:
    source = """fragment A on Product { id ...B } fragment B on Product { name ...A }
    { products(first: 1) { nodes { ...A } } }"""
    errors = validate(SCHEMA, parse(source), RULES)
    assert any("cannot spread fragment" in e.message.lower() for e in errors)


def test_depth_counts_through_fragments() -> None:
    inner = "id"
    for _ in range(6):
        inner = f"licences {{ entitlement {{ {inner} }} }}"
    source = f"""fragment Deep on Entitlement {{ {inner} }}
    query Deep {{ entitlements(first: 1) {{ nodes {{ ...Deep }} }} }}"""
    errors = validate(SCHEMA, parse(source), RULES)
    assert codes(errors)[0] == "QUERY_TOO_DEEP"
    assert errors[0].message == "'Deep' exceeds maximum operation depth of 10"


def test_aliases_in_a_fragment_count_for_every_spread() -> None:
    source = """fragment Named on Product { a: id b: name c: id d: name }
    { products(first: 1) { nodes { ...Named ... on Product { ...Named } } }
      other: products(first: 1) { nodes { ...Named ...Named } } }"""
    errors = validate(SCHEMA, parse(source), RULES)
    assert codes(errors) == ["TOO_MANY_ALIASES"]
    assert errors[0].message == "17 aliases found. Allowed: 15"


def test_a_wide_selection_is_refused_before_the_quadratic_rule(
    comparisons: dict[str, int],
) -> None:
    same = " ".join(["products(first: 1) { nodes { id } }"] * 150)
    errors = validate(SCHEMA, parse(f"{{ {same} }}"), RULES)
    assert codes(errors) == ["QUERY_TOO_WIDE"]
    assert comparisons == {"fields": 0, "fragments": 0}
    fragments = " ".join(f"fragment F{i} on Product {{ id }}" for i in range(MAX_SPREADS + 1))
    spreads = " ".join(f"...F{i}" for i in range(MAX_SPREADS + 1))
    source = f"{fragments} {{ products(first: 1) {{ nodes {{ {spreads} }} }} }}"
    assert codes(validate(SCHEMA, parse(source), RULES)) == ["QUERY_TOO_WIDE"]


def _widest_allowed_documents() -> dict[str, str]:
    """Worst cases for OverlappingFieldsCanBeMerged that pass the width limit, each
    within the token limit (2,000)."""
    same = " ".join(["p: products(first: 1) { nodes { id } }"] * MAX_SAME_NAME)
    fragments = " ".join(
        f"fragment F{i} on Product {{ id name ...G{i} }} fragment G{i} on Product {{ id }}"
        for i in range(MAX_SPREADS)
    )
    spreads = " ".join(f"...F{i}" for i in range(MAX_SPREADS))
    nested_same = " ".join(["id"] * MAX_SAME_NAME)
    nested = "{ products(first: 1) { nodes { " + " ".join(
        [f"... on Product {{ {nested_same} }}"] * 1) + " } } }"
    return {
        "same name": f"{{ {same} }}",
        "many fragments": f"{fragments} {{ products(first: 1) {{ nodes {{ {spreads} }} }} }}",
        "inline": nested,
        "attack": attack(4),
    }


@pytest.mark.parametrize("name", list(_widest_allowed_documents()))
def test_the_widest_allowed_documents_validate_in_bounded_comparisons(
    name: str, comparisons: dict[str, int]
) -> None:
    source = _widest_allowed_documents()[name]
    assert len(source.split()) <= 2000 * 2  # roughly within the token limit
    validate(SCHEMA, parse(source), RULES)
    # Bounded by the width limit times the document: linear, with a constant.
    assert comparisons["fields"] + comparisons["fragments"] <= (
        MAX_SAME_NAME * nodes_in(source)
    )


def test_a_whole_introspection_fits_and_counts() -> None:
    from graphql import get_introspection_query

    source = get_introspection_query()
    shape = measure(parse(source), SCHEMA, LIMITS, introspection_bounds(SCHEMA))
    (_, found), = shape.operations.values()
    assert 1000 < found.cost <= LIMITS.max_cost
    assert validate(SCHEMA, parse(source), RULES) == []


def test_aliased_schema_introspection_is_refused() -> None:
    fifteen = " ".join(
        f"s{i}: __schema {{ types {{ name fields {{ name }} }} }}" for i in range(15)
    )
    errors = validate(SCHEMA, parse(f"{{ {fifteen} }}"), RULES)
    assert codes(errors) == ["QUERY_TOO_COSTLY"]
    assert "__schema 15 times" in errors[0].message
    # Through a fragment spread twice, too.
    twice = "fragment S on Query { __schema { types { name } } } { ...S a: __typename ...S }"
    assert codes(validate(SCHEMA, parse(twice), RULES)) == ["QUERY_TOO_COSTLY"]


def test_introspection_lists_count_in_the_cost() -> None:
    source = "{ __type(name: \"Query\") { fields { name type { name } } } }"
    shape = measure(parse(source), SCHEMA, LIMITS, introspection_bounds(SCHEMA))
    (_, found), = shape.operations.values()
    assert found.cost > 3
