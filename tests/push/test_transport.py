"""The push's HTTP/1.1 client (push/transport.py) against a raw server on loopback
that answers exactly the bytes a test gives it: keep-alive, framing, limits, a
receiver that closes, the address connected to."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest

from push.transport import Origin, ProtocolError, TooLarge, Transport

LIMIT = 1024


@dataclass
class Raw:
    """Answers each request with `answer(request_head)`; counts connections."""

    answer: Callable[[bytes], bytes]
    port: int = 0
    connections: int = 0
    heads: list[bytes] = field(default_factory=list)
    close_after_answer: bool = False
    writers: list[asyncio.StreamWriter] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                self.heads.append(head)
                writer.write(self.answer(head))
                await writer.drain()
                if self.close_after_answer:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def raw(answer: Callable[[bytes], bytes]) -> AsyncIterator[Raw]:
    found = Raw(answer)
    server = await asyncio.start_server(found.handle, "127.0.0.1", 0)
    found.port = server.sockets[0].getsockname()[1]
    try:
        yield found
    finally:
        server.close()
        for writer in found.writers:
            writer.close()


def ok(body: bytes = b"[]") -> Callable[[bytes], bytes]:
    return lambda _head: b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


def origin(port: int, name: str = "127.0.0.1") -> Origin:
    return Origin("http", name, port, f"{name}:{port}")


async def send(transport: Transport, where: Origin, body: bytes = b"[]") -> tuple[int, bytes]:
    async with asyncio.timeout(30):
        answer = await transport.request(
            where, "POST", "/events", {"Content-Type": "application/json"}, body, limit=LIMIT
        )
    return answer.status, answer.body


async def test_one_kept_alive_connection_carries_every_request_in_turn() -> None:
    transport = Transport(ssl.create_default_context())
    async with raw(ok(b'[{"id": "a"}]')) as server:
        for _ in range(5):
            assert await send(transport, origin(server.port)) == (200, b'[{"id": "a"}]')
        assert server.connections == 1
        assert len(server.heads) == 5
    transport.close()


async def test_a_connection_the_receiver_closed_is_replaced() -> None:
    transport = Transport(ssl.create_default_context())
    async with raw(ok()) as server:
        server.close_after_answer = True
        for _ in range(3):
            assert (await send(transport, origin(server.port)))[0] == 200
        assert server.connections == 3
    transport.close()


async def test_connection_close_in_the_answer_is_honoured() -> None:
    answer = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n[]"
    transport = Transport(ssl.create_default_context())
    async with raw(lambda _head: answer) as server:
        for _ in range(2):
            assert await send(transport, origin(server.port)) == (200, b"[]")
        assert server.connections == 2
    transport.close()


async def test_chunked_answers_are_read_whole() -> None:
    answer = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\n[{\"\r\n6\r\nid\": 1\r\n2\r\n}]\r\n0\r\n\r\n"
    )
    transport = Transport(ssl.create_default_context())
    async with raw(lambda _head: answer) as server:
        assert await send(transport, origin(server.port)) == (200, b'[{"id": 1}]')
        assert await send(transport, origin(server.port)) == (200, b'[{"id": 1}]')
        assert server.connections == 1
    transport.close()


async def test_an_answer_over_the_limit_is_refused_declared_or_not() -> None:
    declared = ok(b"x" * (LIMIT + 1))
    chunk = b"%x\r\n%s\r\n" % (LIMIT + 1, b"y" * (LIMIT + 1))
    undeclared = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk + b"0\r\n\r\n"
    huge_headers = b"HTTP/1.1 200 OK\r\nX-Big: " + b"z" * 70_000 + b"\r\nContent-Length: 0\r\n\r\n"
    for answer in (declared, lambda _h: undeclared, lambda _h: huge_headers):
        transport = Transport(ssl.create_default_context())
        async with raw(answer) as server:
            with pytest.raises(TooLarge):
                await send(transport, origin(server.port))
        transport.close()


async def test_an_answer_that_is_not_http_is_a_protocol_error() -> None:
    transport = Transport(ssl.create_default_context())
    async with raw(lambda _head: b"SSH-2.0-OpenSSH_9.6\r\n\r\n") as server:
        with pytest.raises(ProtocolError):
            await send(transport, origin(server.port))
    transport.close()


async def test_an_answer_cut_off_is_a_protocol_error_not_a_short_body() -> None:
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n[{\"id\""
    transport = Transport(ssl.create_default_context())
    async with raw(lambda _head: answer) as server:
        server.close_after_answer = True
        with pytest.raises(ProtocolError, match="before the answer was complete"):
            await send(transport, origin(server.port))
    transport.close()


async def test_an_answer_ended_by_closing_the_connection_is_read() -> None:
    answer = b"HTTP/1.0 200 OK\r\n\r\n[]"
    transport = Transport(ssl.create_default_context())
    async with raw(lambda _head: answer) as server:
        server.close_after_answer = True
        assert await send(transport, origin(server.port)) == (200, b"[]")
    transport.close()


async def test_a_redirect_is_an_answer_not_followed() -> None:
    answer = b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/x\r\nContent-Length: 0\r\n\r\n"
    transport = Transport(ssl.create_default_context())
    async with raw(lambda _head: answer) as server:
        found = await transport.request(
            origin(server.port), "POST", "/events", {}, b"[]", limit=LIMIT
        )
        assert (found.status, found.headers["location"]) == (302, "http://127.0.0.1:1/x")
        assert len(server.heads) == 1
    transport.close()


async def test_the_request_goes_to_the_address_resolved_with_the_name_in_host() -> None:
    asked: list[tuple[str, int]] = []

    async def resolve(name: str, port: int) -> str:
        asked.append((name, port))
        return "127.0.0.1"

    transport = Transport(ssl.create_default_context(), resolve)
    async with raw(ok()) as server:
        where = Origin("http", "receiver.example.nl", server.port, "receiver.example.nl")
        for _ in range(3):
            assert (await send(transport, where))[0] == 200
        # Resolved (and so checked) when the connection opened; kept on that address.
        assert asked == [("receiver.example.nl", server.port)]
        assert b"\r\nHost: receiver.example.nl\r\n" in server.heads[0]
        assert server.heads[0].startswith(b"POST /events HTTP/1.1\r\n")
    transport.close()


async def test_a_header_with_a_line_break_is_never_written() -> None:
    transport = Transport(ssl.create_default_context())
    async with raw(ok()) as server:
        with pytest.raises(ProtocolError, match="line break"):
            await transport.request(
                origin(server.port),
                "POST",
                "/events",
                {"Authorization": "Bearer x\r\nX-Injected: 1"},
                b"[]",
                limit=LIMIT,
            )
        assert server.heads == []
    transport.close()


async def test_a_slow_answer_is_cut_by_the_callers_timeout_and_not_reused() -> None:
    release = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await release.wait()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport = Transport(ssl.create_default_context())
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await transport.request(origin(port), "POST", "/events", {}, b"[]", limit=LIMIT)
    assert transport._take_idle(origin(port)) is None
    release.set()
    server.close()
    transport.close()
