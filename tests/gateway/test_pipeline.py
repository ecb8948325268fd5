"""The HTTP handler's pipeline (gateway/pipeline.py): the same answers, status codes,
media types and observer notes as strawberry's `Schema.execute` with every extension
(the pipeline switched off on a second app over the same database), for requests it
takes and for every refusal it leaves to the extensions; its cache is bounded."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app import create_app
from db.engine import create_sessionmaker
from gateway import pipeline as pipeline_module
from tests.conftest import TEST_SETTINGS, Backend, token_for

SPEC = "application/graphql-response+json"
PGN = "123456782"  # passes the 11-test
#: A fragment and variables: the first request of the document builds graphql-core's
#: executor, later ones reuse its fragments with their own variables.
FRAGMENTED = (
    "query F($n: Int, $with: Boolean!) { products(first: $n) { ...Page } } "
    "fragment Page on ProductConnection { totalCount nodes { productId name @include(if: $with) } }"
)
PAGE = "query Page($n: Int, $name: String) { products(first: $n, filter: {nameContains: $name}) { totalCount nodes { productId } } }"  # noqa: E501


def bearer(*who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for(*who)}"}


OPERATOR = bearer("operator", "operator")
SHOP = bearer("demo-shop", "seller")

#: (method, json body or query params, headers): requests the pipeline takes and
#: requests it leaves to the extensions, each refused the same way either path.
REQUESTS: list[tuple[str, dict[str, Any], dict[str, str]]] = [
    ("POST", {"query": "{ __typename }"}, OPERATOR),
    ("POST", {"query": "{ __typename }"}, {}),  # no token: a typename needs none
    ("POST", {"query": "{ products(first: 2) { nodes { productId } } }"}, {}),  # 401
    ("POST", {"query": PAGE, "variables": {"n": 2}}, OPERATOR),
    ("POST", {"query": PAGE, "variables": {"n": 2, "name": "x"}}, OPERATOR),
    ("POST", {"query": PAGE, "variables": {"n": "many"}}, OPERATOR),  # no coercion
    ("POST", {"query": FRAGMENTED, "variables": {"n": 1, "with": True}}, OPERATOR),
    ("POST", {"query": FRAGMENTED, "variables": {"n": 3, "with": False}}, OPERATOR),
    ("POST", {"query": FRAGMENTED, "variables": {"n": 2}}, OPERATOR),  # $with missing
    ("POST", {"query": PAGE, "variables": {"name": "x" * 201}}, OPERATOR),  # too long
    ("POST", {"query": PAGE, "variables": {"name": f"a {PGN} b"}}, OPERATOR),  # BSN
    ("POST", {"query": PAGE, "variables": {"name": "a\x00b"}}, OPERATOR),  # NUL
    ("POST", {"query": "query Q($n: Int!) { products(first: $n) { totalCount } }"}, OPERATOR),
    ("POST", {"query": f'{{ products(filter: {{nameContains: "{PGN}"}}) {{ totalCount }} }}'},
     OPERATOR),
    ("POST", {"query": '{ products(filter: {nameContains: "' + "y" * 300 + '"}) { totalCount } }'},
     OPERATOR),
    ("POST", {"query": "{ products { noSuchField } }"}, OPERATOR),  # validation
    ("POST", {"query": "{ products { nodes { productId } "}, OPERATOR),  # syntax
    ("POST", {"query": "query A { __typename } query B { __typename }"}, OPERATOR),
    ("POST", {"query": "query A { __typename } query B { __typename }", "operationName": "B"},
     OPERATOR),
    ("POST", {"query": "query A { __typename }", "operationName": "C"}, OPERATOR),
    ("POST", {"query": "{ __schema { queryType { name } } }"}, {}),  # introspection
    ("POST", {"query": '{ auditTrail(school: {value: "104A158"}) { totalCount } }'}, SHOP),
    ("POST", {"query": "subscription { __typename }"}, OPERATOR),
    ("POST", {"query": "{ " + "a: __typename " * 200 + "}"}, OPERATOR),  # aliases
    ("GET", {"query": "{ __typename }"}, OPERATOR),
    ("GET", {"query": "mutation { __typename }"}, OPERATOR),
    # Typename only: a constant answer (aliases, a mutation); not with a directive or a
    # fragment (graphql-core runs those).
    ("POST", {"query": "query T { a: __typename __typename a: __typename }"}, SHOP),
    ("POST", {"query": "mutation { __typename }"}, OPERATOR),
    ("POST", {"query": "{ __typename @skip(if: true) a: __typename }"}, OPERATOR),
    ("POST", {"query": "{ ... on Query { __typename } }"}, OPERATOR),
]


@pytest.fixture
async def clients(backend: Backend) -> AsyncIterator[tuple[Any, httpx.AsyncClient, Any]]:
    """(the app with the pipeline, a client of it, the app without the pipeline)."""
    sessionmaker = create_sessionmaker(backend.engine)
    fast = create_app(TEST_SETTINGS, sessionmaker=sessionmaker)
    slow = create_app(TEST_SETTINGS, sessionmaker=sessionmaker)
    assert fast.state.graphql.pipeline is not None
    slow.state.graphql.pipeline = None
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=fast), base_url="http://gateway"
    ) as client:
        yield fast, client, slow


async def _ask(
    client: httpx.AsyncClient, method: str, body: dict[str, Any], headers: dict[str, str]
) -> httpx.Response:
    if method == "GET":
        return await client.get("/graphql", params=body, headers=headers)
    return await client.post("/graphql", json=body, headers=headers)


@pytest.mark.parametrize("accept", ["application/json", SPEC])
async def test_the_pipeline_answers_as_the_extensions_do(
    clients: tuple[Any, httpx.AsyncClient, Any],
    monkeypatch: pytest.MonkeyPatch,
    accept: str,
) -> None:
    fast, client, slow = clients
    lines: list[dict[str, Any]] = []
    monkeypatch.setattr(
        "gateway.observe.request_logging.request_line", lambda **line: lines.append(line)
    )
    taken = 0
    original = pipeline_module.Pipeline.execute

    async def counted(self: Any, *args: Any) -> Any:
        nonlocal taken
        taken += 1
        return await original(self, *args)

    monkeypatch.setattr(pipeline_module.Pipeline, "execute", counted)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=slow), base_url="http://gateway"
    ) as reference:
        for method, body, headers in REQUESTS:
            asked = {**headers, "Accept": accept}
            before = taken
            ours = await _ask(client, method, body, asked)
            took = taken > before
            theirs = await _ask(reference, method, body, asked)
            assert taken == before + took  # the reference never takes the pipeline
            what = (method, str(body)[:120], took)
            assert ours.status_code == theirs.status_code, what
            assert ours.headers["content-type"] == theirs.headers["content-type"], what
            assert ours.headers.get("www-authenticate") == theirs.headers.get(
                "www-authenticate"
            ), what
            assert ours.json() == theirs.json(), what
            mine, reference_line = lines[-2], lines[-1]
            for key in ("status", "outcome", "code", "supplier", "role", "operation"):
                assert mine[key] == reference_line[key], (what, key)
    # The requests every rule lets through ran on the pipeline; the refusals did not.
    assert taken == 14, taken


async def test_a_typename_only_operation_is_answered_without_executing(
    clients: tuple[Any, httpx.AsyncClient, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    fast, client, _ = clients
    executed = _record_executions(fast, monkeypatch)
    constant = await client.post(
        "/graphql", json={"query": "{ __typename b: __typename }"}, headers=OPERATOR
    )
    assert constant.json() == {"data": {"__typename": "Query", "b": "Query"}}
    assert executed == []
    skipped = await client.post(
        "/graphql", json={"query": "{ __typename @skip(if: true) }"}, headers=OPERATOR
    )
    assert skipped.json() == {"data": {}}
    assert len(executed) == 1


def _record_executions(app: Any, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The operations graphql-core's executor runs on the pipeline of `app`."""
    pipeline = app.state.graphql.pipeline
    executed: list[Any] = []

    class Recorded(pipeline.executor_class):  # type: ignore[name-defined,misc]
        def execute_operation(self, *args: Any, **kwargs: Any) -> Any:
            executed.append(type(self))  # not the executor: that would keep it alive
            return super().execute_operation(*args, **kwargs)

    monkeypatch.setattr(pipeline, "executor_class", Recorded)
    return executed


async def test_the_variables_are_coerced_once_and_the_executor_is_freed_at_once(
    clients: tuple[Any, httpx.AsyncClient, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The door coerces the variables; graphql-core's executor takes them as they are
    (the fragments of the document's first executor reused), and leaves no reference
    cycle behind (which would wait for the collector's passes over the heap)."""
    import gc

    from graphql.execution import values

    fast, client, _ = clients
    executed = _record_executions(fast, monkeypatch)
    coercions: list[Any] = []
    original = values.coerce_variable_values

    def counted(*args: Any, **kwargs: Any) -> Any:
        coercions.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(values, "coerce_variable_values", counted)
    for n in (1, 2, 3):
        coercions.clear()
        answer = await client.post(
            "/graphql",
            json={"query": FRAGMENTED, "variables": {"n": n, "with": n != 2}},
            headers=OPERATOR,
        )
        nodes = answer.json()["data"]["products"]["nodes"]
        assert len(nodes) == n
        assert all(("name" in node) is (n != 2) for node in nodes)
        # The door coerces these flat values itself (`_coerced`); graphql-core coerces
        # them again only when it builds the document's first executor.
        assert len(coercions) == (1 if n == 1 else 0)
    assert len(executed) == 3
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        await client.post(
            "/graphql", json={"query": FRAGMENTED, "variables": {"n": 2, "with": True}},
            headers=OPERATOR,
        )
        gc.collect()
        cyclic = {type(found) for found in gc.garbage}
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    from starlette.requests import Request

    from resolvers.context import Context, Database

    assert not cyclic & {executed[0], Context, Database, Request}


async def test_the_document_cache_is_bounded(
    clients: tuple[Any, httpx.AsyncClient, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    fast, client, _slow = clients
    monkeypatch.setattr(pipeline_module, "CACHE_SIZE", 8)
    pipeline = fast.state.graphql.pipeline
    for number in range(30):
        answer = await client.post(
            "/graphql", json={"query": f"{{ n{number}: __typename }}"}, headers=OPERATOR
        )
        assert answer.json() == {"data": {f"n{number}": "Query"}}
    assert len(pipeline._cache) == 8
    # A text over the kept size is answered, not kept.
    monkeypatch.setattr(pipeline_module, "MAX_CACHED_TEXT", 10)
    answer = await client.post(
        "/graphql", json={"query": "{ longer: __typename }"}, headers=OPERATOR
    )
    assert answer.json() == {"data": {"longer": "Query"}}
    assert ("{ longer: __typename }", None) not in pipeline._cache


def test_a_schema_with_other_extensions_is_not_taken() -> None:
    from strawberry.extensions import SchemaExtension

    from gateway.limits import gateway_schema
    from gateway.pipeline import Pipeline
    from resolvers.api import build_schema

    schema = gateway_schema(TEST_SETTINGS)
    assert Pipeline.of(schema) is not None

    class Resolving(SchemaExtension):
        def resolve(self, _next: Any, root: Any, info: Any, *args: Any, **kw: Any) -> Any:
            return _next(root, info, *args, **kw)

    built = list(schema.extensions)
    schema.extensions = [*built, Resolving]  # a resolver middleware
    assert Pipeline.of(schema) is None
    schema.extensions = built[1:]  # one of the gateway's extensions left out
    assert Pipeline.of(schema) is None
    schema.extensions = built
    assert Pipeline.of(build_schema()) is None  # not the gateway's schema


@pytest.mark.parametrize(
    "variables",
    [
        {"id": "17", "n": 5, "s": "x", "b": True, "e": "LINK_READY", "d": "2026-09-01", "j": 3},
        {"id": 17, "n": None, "s": None, "b": None, "e": None, "d": None, "j": None},
        {"id": "17", "n": 5.0, "s": "", "b": False, "e": "ENDED", "d": "2026-02-29", "j": "x"},
        {"id": "17", "n": 5.5, "s": "x", "b": True, "e": "LINK_READY", "d": None, "j": 1},
        {"id": "17", "n": "5", "s": "x", "b": True, "e": "LINK_READY", "d": None, "j": 1},
        {"id": "17", "n": 5, "s": 3, "b": 1, "e": "NOPE", "d": "soon", "j": 1},
        {"id": None, "n": 5, "s": "x", "b": True, "e": "ENDED", "d": None, "j": 1},
        {"n": 5, "s": "x", "b": True, "e": "ENDED", "d": None, "j": 1},  # $id missing
        {"id": "1", "s": "x", "b": True, "e": "ENDED", "d": None, "j": 1},  # $n: its default
        {"id": ["1"], "n": 5, "s": "x", "b": True, "e": "ENDED", "d": None, "j": {"a": 1}},
        {"id": "1", "n": 2**40, "s": "x", "b": True, "e": "ENDED", "d": None, "j": 1},
    ],
)
def test_the_variables_coerced_without_graphql_core_are_what_it_coerces(
    variables: dict[str, Any],
) -> None:
    """`_coerced` (flat values, signatures found once) answers exactly what graphql-core's
    `get_variable_values` answers, or leaves the variables to it."""
    from graphql import parse
    from graphql.execution.get_variable_signature import get_variable_signature
    from graphql.execution.values import get_variable_values

    from gateway.limits import gateway_schema
    from gateway.pipeline import _coerced

    schema = gateway_schema(TEST_SETTINGS)._schema
    document = parse(
        "query Q($id: ID!, $n: Int = 3, $s: String, $b: Boolean, $e: EntitlementStatus, "
        "$d: Date, $j: JSON) { __typename }"
    )
    definitions = document.definitions[0].variable_definitions  # type: ignore[attr-defined]
    signatures = tuple(get_variable_signature(schema, d) for d in definitions)
    theirs = get_variable_values(schema, definitions, variables)
    ours = _coerced(signatures, variables)
    if ours is not None:
        assert not isinstance(theirs, list)
        assert ours.coerced == theirs.coerced

        def sources(found: Any) -> dict[str, Any]:  # (a default is a new object per call)
            return {
                name: (source.signature.name, str(source.signature.type), source.value)
                for name, source in found.sources.items()
            }

        assert sources(ours) == sources(theirs)
    flat = all(type(v) in (str, int, float, bool, type(None)) for v in variables.values())
    if flat and "id" in variables and "n" in variables and not isinstance(theirs, list):
        assert ours is not None  # the common case is taken
