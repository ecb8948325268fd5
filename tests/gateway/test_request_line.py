"""The request line written directly (gateway/logging.py): the same text the installed
formatter writes for the record, JSON and plain; the lines of one turn of the event
loop in one write; through `logging` whenever another handler listens."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from gateway import logging as request_logging

FIELDS: dict[str, Any] = {
    "request_id": "5d3d3b08e5edf8d3000000000000012c",
    "method": "POST",
    "path": "/graphql",
    "status": 200,
    "duration_ms": 1.23,
    "outcome": "refused",
    "code": "FORBIDDEN",
    "supplier": "démo-shop",
    "role": "seller",
    "operation": "Page",
}
LINE = {**FIELDS, "duration_ms": 1.234}


@pytest.fixture
def configured(request: pytest.FixtureRequest) -> Iterator[str]:
    """The gateway's logging set up in the format asked for, at info; put back after."""
    previous = request_logging._configured
    others = logging.root.handlers[:]
    request_logging.configure(request.param, "INFO")
    yield request.param
    request_logging._flush()
    logging.root.handlers = others
    request_logging._configured = None
    if previous is not None:
        request_logging.configure(*previous)


def _alone() -> None:
    """The gateway's handler the root's only one: pytest adds its own for each phase of
    a test (the fixture puts the root's handlers back)."""
    logging.root.handlers = [request_logging._handler]  # type: ignore[list-item]
    log = request_logging.request_log
    assert request_logging._direct() is request_logging._handler, (
        log.handlers, log.filters, log.propagate, log.parent, logging.root.filters,
        request_logging._handler.filters,  # type: ignore[union-attr]
    )


@pytest.mark.parametrize("configured", ["text", "json"], indirect=True)
def test_a_line_written_directly_is_the_formatters_line(configured: str) -> None:
    handler = request_logging._handler
    assert handler is not None
    arguments = ("POST", "/graphql", 200, "refused FORBIDDEN", 1.234)
    for now in (1796064331.0, 1796064331.0004, 1796064331.9996, 1796064331.4567891):
        record = request_logging.request_log.makeRecord(
            request_logging.request_log.name, logging.INFO, __file__, 1,
            request_logging._REQUEST_MESSAGE, arguments, None, extra=FIELDS,
        )
        record.created = now
        record.msecs = int((now - int(now)) * 1000) + 0.0
        assert request_logging.formatted(now, arguments, FIELDS) == handler.format(record) + "\n"


@pytest.mark.parametrize("configured", ["json"], indirect=True)
async def test_the_lines_of_one_turn_go_out_together(
    configured: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    handler = request_logging._handler
    assert handler is not None
    writes: list[str] = []
    monkeypatch.setattr(handler, "stream", type("Stream", (), {
        "write": lambda self, text: writes.append(text), "flush": lambda self: None,
    })())
    _alone()
    for number in range(3):
        request_logging.request_line(**{**LINE, "request_id": f"r{number}"})
    assert writes == []  # not yet: at the end of this turn of the event loop
    await asyncio.sleep(0)
    assert len(writes) == 1
    lines = [json.loads(line) for line in writes[0].splitlines()]
    assert [line["request_id"] for line in lines] == ["r0", "r1", "r2"]
    assert lines[0]["supplier"] == "démo-shop"
    assert lines[0]["message"].endswith("1.2 ms")


@pytest.mark.parametrize("configured", ["text"], indirect=True)
async def test_lines_go_out_without_waiting_for_the_turn_once_many_wait(
    configured: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _alone()
    handler = request_logging._handler
    writes: list[str] = []
    monkeypatch.setattr(handler, "stream", type("Stream", (), {
        "write": lambda self, text: writes.append(text), "flush": lambda self: None,
    })())
    for number in range(request_logging._MOST_PENDING):
        request_logging.request_line(**{**LINE, "request_id": f"r{number}"})
    assert len(writes) == 1  # at the limit, before the end of the turn
    assert writes[0].count("\n") == request_logging._MOST_PENDING
    await asyncio.sleep(0)
    assert len(writes) == 1  # nothing left for the turn's write


@pytest.mark.parametrize("configured", ["text"], indirect=True)
@pytest.mark.parametrize("listening", ["ketenpoort.request", "ketenpoort"])
def test_another_handler_gets_the_record_through_logging(configured: str, listening: str) -> None:
    _alone()
    records: list[logging.LogRecord] = []

    class Kept(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    kept = Kept()
    logging.getLogger(listening).addHandler(kept)
    try:
        assert request_logging._direct() is None
        request_logging.request_line(**LINE)
    finally:
        logging.getLogger(listening).removeHandler(kept)
    (record,) = records
    assert record.getMessage() == "POST /graphql 200 refused FORBIDDEN 1.2 ms"
    assert record.__dict__["operation"] == "Page"
