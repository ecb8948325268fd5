"""The push's HTTP/1.1 client: kept-alive connections per origin, one request at a
time on each, the response parsed by httptools (the C parser uvicorn uses).

Why not httpx here: the push sends many small requests (a few events each) to
many origins, and httpx/httpcore spent about 300 µs of CPU per request on that
(bench/RESULTS.md, push section, before and after); this client does what the
push needs and nothing else:

* `POST` with a body we built, `Content-Length` framing; the response framed by
  `Content-Length`, chunked transfer coding or the end of the connection;
* a connection to the address the caller's `resolve` chose when it opened
  (push/client.py checks it), with the URL's host in `Host` and, for https, in
  TLS SNI and the certificate check; a kept-alive connection stays on that
  address;
* every exchange bounded by the caller's timeout, the answer by a byte limit
  (read raw: `Accept-Encoding: identity` is sent), redirects never followed (a
  3xx is an answer like any other);
* a connection goes back to its origin's idle list only after a complete
  response that allows keep-alive; one that the receiver closed while idle is
  noticed at once (connection_lost) and dropped. A request that fails on a
  reused connection before any answer arrived is sent once more on a new one
  (the receiver may have closed it just as we wrote).
"""

from __future__ import annotations

import asyncio
import ssl
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import httptools

#: Idle connections kept per origin.
IDLE_PER_ORIGIN = 2
#: Origins whose idle connections are kept at once (least recently used closed first).
MAX_ORIGINS = 1000
#: The most header bytes of one answer.
MAX_HEADER_BYTES = 64 * 1024


class TooLarge(Exception):
    """The answer is larger than the limit."""


class ProtocolError(OSError):
    """The answer is not HTTP/1.1, or the connection ended in the middle of it."""


@dataclass(frozen=True)
class Answer:
    status: int
    #: Header names in lower case (the last one of a repeated header).
    headers: Mapping[str, str]
    body: bytes


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection; one exchange at a time."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[Answer] | None = None
        self._reset()

    def _reset(self) -> None:
        self._headers: dict[str, str] = {}
        self._header_bytes = 0
        self._body = bytearray()
        self._started = False
        self._headers_done = False
        self._complete = False
        self._failure: BaseException | None = None

    # --- asyncio.Protocol ---

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():
            self._abort()  # bytes nobody asked for: the connection is not reusable
            return
        self._started = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(ProtocolError("the receiver switched protocols"))
        except httptools.HttpParserError as error:
            cause = error.__context__ if isinstance(error.__context__, TooLarge) else None
            self._fail(cause or ProtocolError(f"the answer is not HTTP/1.1: {error}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        framed = "content-length" in self._headers or "chunked" in self._headers.get(
            "transfer-encoding", ""
        )
        if self._headers_done and not framed and self._failure is None:
            self._finish(keep=False)  # an answer delimited by the end of the connection
        else:
            waiter.set_exception(
                ProtocolError(f"the connection ended before the answer was complete: {exc}")
            )

    # --- httptools callbacks ---

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > MAX_HEADER_BYTES:
            raise TooLarge
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self._headers_done = True
        declared = self._headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            raise TooLarge

    def on_body(self, body: bytes) -> None:
        self._body += body
        if len(self._body) > self.limit:
            raise TooLarge

    def on_message_complete(self) -> None:
        self._finish(keep=self._parser.should_keep_alive())

    # --- the exchange ---

    def _finish(self, *, keep: bool) -> None:
        self._complete = True
        waiter = self._waiter
        if not keep:
            self._abort()
        if waiter is not None and not waiter.done():
            status = self._parser.get_status_code()
            waiter.set_result(Answer(status, self._headers, bytes(self._body)))

    def _fail(self, error: BaseException) -> None:
        self._failure = error
        self._abort()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(error)

    def _abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    async def exchange(self, request: bytes) -> Answer:
        assert self.transport is not None
        self._reset()
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        try:
            return await self._waiter
        except BaseException:
            self._abort()  # a timeout or a failure mid-answer: never reuse it
            raise
        finally:
            self._waiter = None

    @property
    def answered_nothing(self) -> bool:
        return not self._started

    @property
    def reusable(self) -> bool:
        return self._complete and not self.closed

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


@dataclass(frozen=True)
class Origin:
    """What to connect to: `server_name` at `port` (resolved by the transport's
    `resolve` when a connection opens), with `host` in the Host header and
    `server_name` in TLS SNI (https only)."""

    scheme: str
    server_name: str
    port: int
    host: str


#: Finds the address to connect to for (name, port); may raise OSError.
Resolve = Callable[[str, int], Awaitable[str]]


async def as_given(name: str, _port: int) -> str:
    """Connect to the name as given (the system resolver picks the address)."""
    return name


class Transport:
    """Kept-alive HTTP/1.1 connections of one gateway process, per origin."""

    def __init__(self, tls: ssl.SSLContext, resolve: Resolve = as_given) -> None:
        self._tls = tls
        self._resolve = resolve
        self._idle: OrderedDict[Origin, list[_Connection]] = OrderedDict()

    async def _connect(self, origin: Origin, limit: int) -> _Connection:
        loop = asyncio.get_running_loop()
        secure = origin.scheme == "https"
        address = await self._resolve(origin.server_name, origin.port)
        _, connection = await loop.create_connection(
            lambda: _Connection(limit),
            address,
            origin.port,
            ssl=self._tls if secure else None,
            server_hostname=origin.server_name if secure else None,
        )
        return connection

    def _take_idle(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        while idle:
            connection = idle.pop()
            if not connection.closed:
                return connection
        return None

    def _give_back(self, origin: Origin, connection: _Connection) -> None:
        if not connection.reusable:
            connection.close()
            return
        idle = self._idle.pop(origin, None) or []
        if len(idle) >= IDLE_PER_ORIGIN:
            connection.close()
        else:
            idle.append(connection)
        self._idle[origin] = idle  # most recently used last
        while len(self._idle) > MAX_ORIGINS:
            _, dropped = self._idle.popitem(last=False)
            for old in dropped:
                old.close()

    async def request(
        self,
        origin: Origin,
        method: str,
        target: str,
        headers: Mapping[str, str],
        body: bytes,
        *,
        limit: int,
    ) -> Answer:
        """One exchange (the caller bounds its time); raises OSError, TooLarge or
        ProtocolError."""
        head = [f"{method} {target} HTTP/1.1", f"Host: {origin.host}"]
        for name, value in headers.items():
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
                raise ProtocolError(f"header {name!r} holds a line break")
            head.append(f"{name}: {value}")
        head.append(f"Content-Length: {len(body)}")
        request = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        connection = self._take_idle(origin)
        if connection is not None:
            try:
                answer = await connection.exchange(request)
            except (OSError, ProtocolError):
                if not connection.answered_nothing:
                    raise
                connection = None  # closed by the receiver as we wrote: a new one
            else:
                self._give_back(origin, connection)
                return answer
        connection = await self._connect(origin, limit)
        try:
            answer = await connection.exchange(request)
        except BaseException:
            connection.close()
            raise
        self._give_back(origin, connection)
        return answer

    def close(self) -> None:
        idle, self._idle = self._idle, OrderedDict()
        for connections in idle.values():
            for connection in connections:
                connection.close()
