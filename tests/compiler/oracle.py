"""The oracle: one operation through the resolvers and compiled, compared.

Used by the test client of `tests/conftest.py` for every operation a test runs on
PostgreSQL, and by the property test."""

from __future__ import annotations

import json
from typing import Any

from graphql import GraphQLError, parse, validate

from resolvers.clock import today


def resolver_answer(result: Any) -> dict[str, Any]:
    return {
        "data": result.data,
        "errors": sorted(
            (error.formatted for error in result.errors or []),
            key=lambda e: (json.dumps(e.get("path")), e["message"]),
        ),
    }


async def raw_connection(session: Any) -> Any:
    connection = await session.connection()
    return (await connection.get_raw_connection()).driver_connection


async def check_compiled(
    compiler: Any, session: Any, context: Any, query: str, variables: Any, result: Any
) -> str:
    """Run `query` compiled on the session's connection and assert that it answers
    as the resolvers did (`result`, `context.reads`): "compiled" or "fallback"."""
    from compiler import Fallback

    caller = context.principal
    if caller is None:  # not authenticated: the gateway never asks the compiler
        return "fallback"
    try:
        document = parse(query)
    except GraphQLError:
        return "fallback"
    if validate(compiler.graphql_schema, document):
        return "fallback"
    plan = compiler.plan(document, None, caller, variables)
    if isinstance(plan, Fallback):
        return "fallback"
    connection = await raw_connection(session)
    try:
        async with connection.transaction():  # a savepoint: a failing statement spoils nothing
            answer = await plan.execute(connection, variables, caller, today())
    except Exception as error:
        raise AssertionError(
            f"the compiled statement failed for {query!r} {variables!r}: {error!r}\nSQL: {plan.sql}"
        ) from error
    if isinstance(answer, Fallback):
        # A statement that failed is a compiler bug, whatever the resolvers answer.
        assert answer.reason != "compiled statement failed", (
            f"the compiled statement failed for {query!r} {variables!r} (see the log)\n"
            f"SQL: {plan.sql}"
        )
        return "fallback"
    compiled = {
        "data": json.loads(answer.data),
        "errors": sorted(answer.errors, key=lambda e: (json.dumps(e.get("path")), e["message"])),
    }
    expected = resolver_answer(result)
    assert compiled == expected, (
        f"compiled answer differs from the resolvers' for {query!r} {variables!r}\nSQL: {plan.sql}"
    )
    reads = {(r[0], r[1], r[2], None if r[3] is None else str(r[3])) for r in answer.reads}
    assert reads == set(context.reads), (reads, context.reads)
    return "compiled"
