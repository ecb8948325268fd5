"""Cursor connections (`edges`, `nodes`, `pageInfo`, `totalCount`) as SQL, cut as
`db.pagination.fetch_page` cuts a page."""

from __future__ import annotations

from typing import Any, cast

from graphql import GraphQLObjectType, get_named_type
from graphql.execution.collect_fields import collect_subfields

from compiler.objects import Compiler, Details
from compiler.sql import NotCompiled, cursor, json_object, quote


def connection(
    c: Compiler,
    root: str,
    details: Details,
    *,
    node_type: str,
    table: str,
    where: str,
    kind: str,
    with_school: bool,
    setup: str = "",
) -> str:
    """A cursor connection over `table` rows matching `where` (written on the base
    table name), as `db.pagination.fetch_page` cuts it: ordered by id, after the
    cursor, one row more to tell whether a page follows. The statement reads at most
    the largest page and one row (a constant: PostgreSQL then keeps one generic plan
    for the prepared statement instead of planning each request) and cuts the page
    to `first`. The connection type is the root field's (`details`)."""
    root_field = c.schema.query_type.fields[details[0].node.name.value]  # type: ignore[union-attr]
    connection_type = cast(GraphQLObjectType, get_named_type(root_field.type))
    first = c.st.value(root, "first", "int")
    after = c.st.value(root, "after", "bigint")
    collected = collect_subfields(
        c.schema, c.fragments, c.variables, c.operation, connection_type, details
    )
    pairs: list[tuple[str, str]] = []
    edge_type = get_named_type(connection_type.fields["edges"].type)
    page_info_type = get_named_type(connection_type.fields["pageInfo"].type)
    for key, field_details in collected.grouped_field_set.items():
        name = field_details[0].node.name.value
        if name == "__typename":
            pairs.append((key, quote(connection_type.name)))
        elif name == "nodes":
            b = c.st.alias()
            pairs.append((key, c.many(node_type, f"rows_ AS {b}", b, f"{b}.id", field_details)))
        elif name == "edges":
            b = c.st.alias()

            def edge(b: str = b, field_details: Details = field_details) -> str:
                return _edge(c, edge_type, node_type, b, kind, field_details)

            pairs.append((key, c.aggregate(b, f"rows_ AS {b}", f"{b}.id", edge)))
        elif name == "pageInfo":
            pairs.append((key, _page_info(c, page_info_type, kind, first, field_details)))
        elif name == "totalCount":
            pairs.append((key, f"(SELECT count(*) FROM {table} WHERE {where})"))
        else:
            raise NotCompiled(f"{connection_type.name}.{name}")
    reads = (
        "(SELECT json_agg(json_build_array(s.school_id, NULL)) FROM "
        "(SELECT DISTINCT school_id FROM rows_) AS s)"
        if with_school
        else "NULL::json"
    )
    return (
        f"(WITH {setup}page_ AS (SELECT {table}.* FROM {table} WHERE {where} "
        f"AND {table}.id > {after} ORDER BY {table}.id LIMIT {c.max_page + 1}), "
        f"rows_ AS (SELECT * FROM page_ ORDER BY id LIMIT {first}) "
        f"SELECT {json_object(pairs)} AS data, {{problem}} AS problem, {reads} AS reads)"
    )


def _edge(c: Compiler, edge_type: Any, node_type: str, b: str, kind: str, details: Details) -> str:
    collected = collect_subfields(
        c.schema, c.fragments, c.variables, c.operation, edge_type, details
    )
    pairs = []
    for key, field_details in collected.grouped_field_set.items():
        name = field_details[0].node.name.value
        if name == "__typename":
            pairs.append((key, quote(edge_type.name)))
        elif name == "cursor":
            pairs.append((key, cursor(kind, f"{b}.id")))
        elif name == "node":
            pairs.append((key, c.object(node_type, b, field_details)))
        else:
            raise NotCompiled(f"{edge_type.name}.{name}")
    return json_object(pairs)


def _page_info(c: Compiler, page_info_type: Any, kind: str, first: str, details: Details) -> str:
    collected = collect_subfields(
        c.schema, c.fragments, c.variables, c.operation, page_info_type, details
    )
    pairs = []
    for key, field_details in collected.grouped_field_set.items():
        name = field_details[0].node.name.value
        if name == "__typename":
            pairs.append((key, quote(page_info_type.name)))
        elif name == "hasNextPage":
            pairs.append((key, f"((SELECT count(*) FROM page_) > {first})"))
        elif name == "endCursor":
            pairs.append(
                (key, f"(SELECT {cursor(kind, 'max(id)')} FROM rows_ HAVING count(*) > 0)")
            )
        else:
            raise NotCompiled(f"PageInfo.{name}")
    return json_object(pairs)
