"""The rules of the HTTP front hold over websockets too, on both protocols (issue 12
items 13 and 15): a document with several operations needs a name, an unknown name
or no operation is named as such (never a masked "Unexpected error"), and a BSN in
the name is never repeated."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.conftest import Gateway
from tests.e2e.test_subscriptions import LEGACY_WS, TRANSPORT_WS, ws_url
from tests.e2e.test_subscriptions import live_gateway as live_gateway  # noqa: F401
from tests.e2e.test_websocket_protocols import acknowledged, answers, errors_in

TWO = "query A { __typename } query B { products(first: 1) { totalCount } }"
PGN = "123456782"


async def send(ws: Any, id_: str, protocol: str, payload: dict[str, Any]) -> None:
    kind = "subscribe" if protocol == TRANSPORT_WS else "start"
    await ws.send(json.dumps({"id": id_, "type": kind, "payload": payload}))


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_choosing_the_operation_is_answered_plainly_over_both_protocols(
    live_gateway: Gateway,  # noqa: F811
    protocol: str,
) -> None:
    ws = await acknowledged(ws_url(live_gateway), protocol)
    cases = {
        "ambiguous": ({"query": TWO}, "operation name"),
        "unknown": ({"query": TWO, "operationName": "C"}, "no operation named 'C'"),
        "pgn": ({"query": TWO, "operationName": f"Q{PGN}"}, "no operation named"),
        "none": ({"query": "fragment F on Query { __typename }"}, None),
        "empty": ({"query": ""}, None),
    }
    for id_, (payload, expected) in cases.items():
        await send(ws, id_, protocol, payload)
        messages = await answers(ws, id_)
        text = json.dumps(messages)
        errors = errors_in(messages)
        assert errors, (id_, messages)
        assert "Unexpected error" not in text, (id_, text)
        assert PGN not in text
        if expected:
            assert expected in text, (id_, text)
    # Named, it runs.
    await send(ws, "named", protocol, {"query": TWO, "operationName": "B"})
    messages = await answers(ws, "named")
    assert messages[0]["payload"]["data"]["products"]["totalCount"] > 0
    await ws.close()
