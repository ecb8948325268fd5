"""The gateway's one logging set-up: plain text for development, one JSON object
per line for production (`Settings.log_format`), and the request line.

Every record made while a request is handled carries its request id (a context
variable set by gateway/observe.py), so an error's traceback can be found from the
request line. The request line itself is written by `request_line`: request id,
supplier, role, operation name, duration, outcome, status code; never the query
text, its variables or a token. uvicorn's access log, where it is on, gets the
path without the query string (`PathOnly`).

The request line is written on every request, so it does not go through the
logging machinery (a LogRecord, the caller's frame, the handler's lock, a write and
flush per line: about a sixth of a small read's CPU) when the logging set-up is
ours alone: it is formatted here, exactly as the formatter would (tested), and the
lines of one turn of the event loop are written together. Any other set-up (a
handler or filter added to `ketenpoort.request` or to the root, as tests do) gets
the record through `logging` as before.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import os
import sys
import time
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

REQUEST_ID: ContextVar[str | None] = ContextVar("ketenpoort_request_id", default=None)

request_log = logging.getLogger("ketenpoort.request")

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the request id, the
    record's extra fields, and the traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or REQUEST_ID.get()
        if request_id:
            entry["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if "request_id" in record.__dict__:  # the request line names its id itself
            return f"{text} [{record.__dict__['request_id']}]"
        request_id = REQUEST_ID.get()
        return f"{text} [{request_id}]" if request_id else text


_configured: tuple[str, str] | None = None
#: The handler `configure` installed on the root logger.
_handler: logging.StreamHandler[Any] | None = None


def configure(log_format: str, level: str) -> None:
    """Once per process (the app factory calls it): one handler on the root logger,
    to standard error; uvicorn's loggers go through it too."""
    global _configured, _handler
    if _configured == (log_format, level):
        return
    _configured = (log_format, level)
    _flush()
    handler = _handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.set_name("ketenpoort")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "ketenpoort"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    # uvicorn's own access log (on unless `ketenpoort serve`, which uses the request
    # line instead) keeps its handler, but never a query string.
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, PathOnly) for f in access.filters):
        access.addFilter(PathOnly())


class PathOnly(logging.Filter):
    """Cuts the query string from uvicorn's access-log lines: a GraphiQL URL carries a
    bearer token there (`?headers=`), a GET request its query and variables."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple):
            record.args = tuple(
                arg.split("?", 1)[0] if isinstance(arg, str) and "?" in arg else arg
                for arg in args
            )
        elif isinstance(record.msg, str) and "?" in record.msg and not args:
            record.msg = record.msg.split("?", 1)[0]
        return True


def request_line(
    *,
    request_id: str,
    method: str,
    path: str,
    status: int,
    duration_ms: float,
    outcome: str,
    code: str | None,
    supplier: str | None,
    role: str | None,
    operation: str | None,
) -> None:
    """The one line per request, at info."""
    if not request_log.isEnabledFor(logging.INFO):
        return
    fields = {
        "request_id": request_id,
        "method": method,
        "path": path,
        "status": status,
        "duration_ms": round(duration_ms, 2),
        "outcome": outcome,
        "code": code,
        "supplier": supplier,
        "role": role,
        "operation": operation,
    }
    arguments = (
        method,
        path,
        status,
        outcome if code is None else f"{outcome} {code}",
        duration_ms,
    )
    handler = _direct()
    if handler is None:
        request_log.info(_REQUEST_MESSAGE, *arguments, extra=fields)
        return
    _write(handler, formatted(time.time(), arguments, fields))


_REQUEST_MESSAGE = "%s %s %s %s %.1f ms"


def _direct() -> logging.StreamHandler[Any] | None:
    """The handler `configure` installed, when a request line would reach it and only
    it, unfiltered; None otherwise."""
    handler = _handler
    if (
        handler is None
        or logging.root.handlers != [handler]
        or logging.root.filters
        or handler.filters
        or handler.level > logging.INFO
    ):
        return None
    logger: logging.Logger | None = request_log
    while logger is not None and logger is not logging.root:
        if logger.handlers or logger.filters or not logger.propagate:
            return None
        logger = logger.parent
    return handler


def formatted(now: float, arguments: tuple[Any, ...], fields: dict[str, Any]) -> str:
    """The request line as the installed formatter writes a record created at `now`
    (JSON or text), with its newline."""
    message = _REQUEST_MESSAGE % arguments
    if _configured is not None and _configured[0] == "json":
        moment = datetime.fromtimestamp(now, UTC)
        entry: dict[str, Any] = {
            "time": moment.isoformat(timespec="milliseconds"),
            "level": "info",
            "logger": request_log.name,
            "pid": os.getpid(),
            "message": message,
            **fields,
        }
        return json.dumps(entry, default=str, ensure_ascii=False) + "\n"
    seconds = int(now)
    if _stamp[0] != seconds:
        _stamp[:] = [seconds, time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))]
    stamp = _stamp[1]
    return (
        f"{stamp},{int((now - seconds) * 1000):03d} INFO {request_log.name} {message} "
        f"[{fields['request_id']}]\n"
    )


#: The text line's time to the second, for the second it was made in.
_stamp: list[Any] = [None, ""]
_pending: list[str] = []
#: Lines kept for one write at most.
_MOST_PENDING = 256


def _write(handler: logging.StreamHandler[Any], line: str) -> None:
    """Queue the line; the lines of one turn of the event loop go out in one write (at
    once outside an event loop)."""
    _pending.append(line)
    if len(_pending) > 1:
        if len(_pending) >= _MOST_PENDING:
            _flush()  # (should the due write never come, lines still go out)
        return  # a write is due already
    try:
        asyncio.get_running_loop().call_soon(_flush)
    except RuntimeError:
        _flush()


def _flush() -> None:
    if not _pending or _handler is None:
        return
    text = "".join(_pending)
    _pending.clear()
    stream = _handler.stream
    try:
        stream.write(text)
        stream.flush()
    except Exception:  # as logging does: a log that cannot be written stops nothing
        pass


atexit.register(_flush)
