"""GraphQL over websockets at /graphql: both protocols implemented here, strawberry
used only to parse, validate, execute and subscribe (`Schema.stream`,
`Schema.execute`).

* `graphql-transport-ws` (graphql-ws library, Apollo 3+, gql): connection_init →
  connection_ack, ping/pong, subscribe → next… complete | error, complete from the
  client. Protocol errors close the socket: 4400 bad message, 4401 subscribe before
  the acknowledgement, 4403 connection_init refused, 4406 no known subprotocol,
  4408 no connection_init in time, 4409 an id already in use, 4429 a second
  connection_init.
* legacy `graphql-ws` (subscriptions-transport-ws): connection_init →
  connection_ack (then `ka` every `ws_keep_alive_seconds`) | connection_error,
  start → data… complete | error, stop, connection_terminate. Queries and mutations
  are answered like subscriptions (data, then complete).

Every operation is one GraphQL request: its own context (live/context.py), the
caller resolved and rate-limited as on HTTP (`resolvers.auth.principal`), the same
validation rules and limits (the schema's extensions). The token travels in
`connection_init` (`{"Authorization": "Bearer <jwt>"}` or `{"token": "<jwt>"}`; the
upgrade request's Authorization header is accepted too) and is checked once there;
its expiry is checked before every operation and the connection is closed with
4401 when it expires, whether events flow or not.

Live subscriptions leave the per-operation pipeline once their replay or initial
state has been sent (live/streams.py): the operation's task waits on its broker
queue, and each event is executed and encoded once per (operation, variables,
caller) and the same text sent to every subscription sharing them, with only the
operation id in front (`Operation.render`), through the server's own ASGI `send`.

Close codes besides the protocols' own: 4008 subscriber too slow and 1012 gateway
restart (the reason says where to resume), 4401 token expired.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import jwt
from graphql import GraphQLError
from strawberry.types.execution import ExecutionResult, PreExecutionError
from strawberry.types.graphql import OperationType

from live.context import LiveContext
from live.eager import Pending, run_eagerly
from live.streams import CLOSE_TOKEN_EXPIRED, observed, resume_hint
from resolvers.auth import principal
from schema.errors import GatewayError
from settings import Settings

log = logging.getLogger("ketenpoort.live")

TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"

CLOSE_NORMAL = 1000
CLOSE_BAD_MESSAGE = 4400
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_SUBPROTOCOL = 4406
CLOSE_INIT_TIMEOUT = 4408
CLOSE_DUPLICATE_ID = 4409
CLOSE_TOO_MANY_INITS = 4429
CLOSE_INTERNAL = 1011


class Gone(Exception):
    """The peer has left, or the socket is closing: nothing more can be sent."""


def _encode(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _utf8_prefix(text: str, limit: int = 123) -> str:
    """A close reason may hold at most 123 bytes."""
    encoded = text.encode()
    if len(encoded) <= limit:
        return text
    return encoded[: limit - 3].decode(errors="ignore") + "..."


def _payload(result: ExecutionResult) -> dict[str, Any]:
    payload: dict[str, Any] = {"data": result.data}
    if result.errors:
        payload["errors"] = [error.formatted for error in result.errors]
    if result.extensions:
        payload["extensions"] = result.extensions
    return payload


@dataclass(frozen=True)
class Dialect:
    """What differs between the two protocols."""

    subprotocol: str
    result: str  # the message that carries a result: next | data
    #: A message that ends an operation with errors, both protocols' shapes.
    legacy: bool

    def error(self, operation_id: str, errors: list[dict[str, Any]]) -> dict[str, Any]:
        if self.legacy:  # subscriptions-transport-ws: one error object
            return {"id": operation_id, "type": "error", "payload": errors[0]}
        return {"id": operation_id, "type": "error", "payload": errors}


TRANSPORT = Dialect(TRANSPORT_WS, "next", legacy=False)
LEGACY = Dialect(LEGACY_WS, "data", legacy=True)
DIALECTS = {TRANSPORT_WS: TRANSPORT, LEGACY_WS: LEGACY}


class Operation:
    """One operation on a connection: a query, a mutation or a subscription, run in
    a task of its own. A live subscription's stream is handed over to it
    (`hand_over`) once its replay or initial state has been sent; it then renders
    each event once for every subscription that shares its shape and caller."""

    __slots__ = (
        "connection",
        "context",
        "head",
        "id",
        "in_flight",
        "live",
        "operation_name",
        "query",
        "shape",
        "subscriber",
        "task",
        "variables",
    )

    def __init__(
        self,
        connection: Connection,
        operation_id: str,
        query: str,
        variables: dict[str, Any] | None,
        operation_name: str | None,
    ) -> None:
        self.connection = connection
        self.id = operation_id
        self.query = query
        self.variables = variables
        self.operation_name = operation_name
        self.task: asyncio.Task[None] | None = None
        self.context: LiveContext | None = None
        #: The live part of a subscription, once handed over (live/streams.py).
        self.live: Coroutine[Any, Any, None] | None = None
        #: Its broker subscriber while live (for the resume cursor on expiry).
        self.subscriber: Any = None
        #: A send begun in the broker's pass that had to wait for the peer's socket.
        self.in_flight: asyncio.Task[Any] | None = None
        variables_key = json.dumps(variables, sort_keys=True, default=str)
        #: What rendering an event depends on besides the caller.
        self.shape = (query, operation_name, variables_key)
        head = _encode({"id": operation_id, "type": connection.dialect.result})
        self.head = head[:-1] + ',"payload":'

    # --- running ---------------------------------------------------------------------------

    async def run(self) -> None:
        connection = self.connection
        try:
            self.context = context = connection.operation_context(self)
            source = await connection.endpoint.schema.stream(
                self.query,
                variable_values=self.variables,
                context_value=context,
                operation_name=self.operation_name,
            )
            first = True
            try:
                async for result in source:
                    if first and isinstance(result, PreExecutionError):
                        errors: list[dict[str, Any]] = [
                            dict(error.formatted) for error in result.errors or []
                        ]
                        if _masked(errors):  # strawberry masks "no such operation"
                            why = self.connection.endpoint.errors.explain_refused_choice(
                                self.query, self.operation_name
                            )
                            if why is not None:
                                errors = [
                                    _error(why, self.connection.endpoint.errors.REQUEST_ERROR)
                                ]
                        await self.end(errors or [{"message": "the operation was refused"}])
                        return
                    if not isinstance(result, ExecutionResult):  # @defer / @stream frames
                        await self.end([{"message": "incremental delivery is not supported"}])
                        return
                    first = False
                    await self.send(self.head + _encode(_payload(result)) + "}")
            finally:
                await source.aclose()
            if self.live is not None:
                live, self.live = self.live, None
                await live
            else:
                await self.end()
        except Gone:
            pass
        except asyncio.CancelledError:
            if self.live is not None:
                self.live.close()  # never started: nothing to clean up but the coroutine
            raise
        except Exception as error:
            self.connection.endpoint.errors.unexpected(
                "websocket operation %s failed", self.id, error=error
            )
            with contextlib.suppress(Gone):
                await self.end([{"message": "Unexpected error; it has been logged."}])
        finally:
            self.connection.forget(self)

    def hand_over(self, live: Coroutine[Any, Any, None]) -> None:
        """The subscription's stream goes on in `live`, in this operation's task,
        after what the stream has yielded so far has been sent."""
        self.live = live

    # --- live events -----------------------------------------------------------------------

    def rendered(self, shared: dict[Any, Any], caller: Any) -> str | None:
        """The message if another subscription has rendered it already."""
        found = shared.get((self.shape, caller))
        if found is None or not found.done():
            return None
        return self.head + found.result() + "}"  # type: ignore[no-any-return]

    async def render(self, node: Any, shared: dict[Any, Any], caller: Any) -> str:
        """The message for `node`: executed and encoded once for every subscription
        with the same operation, variables and caller (the caller counts because
        nested fields are read with its consent); `shared` is where the node keeps
        what has been rendered of it.

        The first subscription to get here executes it where it is (the broker's
        pass, or its own task): when the fields need no database read that is done
        at once, and the others find it done (`rendered`) instead of each waiting
        for it."""
        key = (self.shape, caller)
        while True:
            found: asyncio.Future[str] | None = shared.get(key)
            if found is None:
                found = shared[key] = asyncio.get_running_loop().create_future()
                try:
                    body = await self._execute(node)
                except BaseException as error:
                    if isinstance(error, asyncio.CancelledError):
                        del shared[key]  # not rendered: the next one tries
                        found.cancel()
                    elif not found.done():
                        found.set_exception(error)
                    raise
                if not found.done():
                    found.set_result(body)
                return self.head + body + "}"
            if not found.done():
                try:
                    await asyncio.shield(found)
                except asyncio.CancelledError:
                    if not found.cancelled():
                        raise  # this subscription was cancelled
            if not found.cancelled():
                return self.head + found.result() + "}"

    async def _execute(self, node: Any) -> str:
        context = self.context
        assert context is not None
        context.fresh_loaders()
        result = await self.connection.endpoint.schema.execute(
            self.query,
            variable_values=self.variables,
            context_value=context,
            root_value=node,
            operation_name=self.operation_name,
            allowed_operation_types=(OperationType.SUBSCRIPTION,),
        )
        return _encode(_payload(result))

    @property
    def busy(self) -> bool:
        return self.in_flight is not None and not self.in_flight.done()

    def send_now(self, text: str) -> None:
        """`send`, begun at once; if the peer's socket is full it goes on in
        `in_flight`, and the next message waits for it."""
        outcome = run_eagerly(self.send(text))
        if isinstance(outcome, Pending):
            self.in_flight = outcome.task
            outcome.task.add_done_callback(observed)

    async def send(self, text: str) -> None:
        """Straight to the server (uvicorn waits while the peer's socket is full,
        which is what fills a slow subscriber's queue), after a send in flight.
        `Connection.send_text`, inlined: this runs once per subscriber per event."""
        flight, self.in_flight = self.in_flight, None
        if flight is not None:
            await flight
        connection = self.connection
        if connection.closing:
            raise Gone
        try:
            await connection.raw_send({"type": "websocket.send", "text": text})
        except (OSError, RuntimeError) as gone:  # the peer left, or the socket is closing
            raise Gone from gone

    async def end(self, errors: list[dict[str, Any]] | None = None) -> None:
        """End the operation with `complete`, or with its errors (after a send still
        in flight), unless the client completed it or the connection is closing."""
        flight, self.in_flight = self.in_flight, None
        if flight is not None:
            with contextlib.suppress(Exception):
                await flight
        connection = self.connection
        if connection.operations.get(self.id) is not self or connection.closing:
            return
        connection.forget(self)
        if errors is None:
            message: dict[str, Any] = {"id": self.id, "type": "complete"}
        elif connection.dialect.legacy:
            # Legacy clients surface errors of a running operation from `data`.
            await connection.send_text(
                _encode(
                    {"id": self.id, "type": "data", "payload": {"data": None, "errors": errors}}
                )
            )
            message = {"id": self.id, "type": "complete"}
        else:
            message = connection.dialect.error(self.id, errors)
        await connection.send_text(_encode(message))

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()
        if self.in_flight is not None:
            self.in_flight.cancel()


class Connection:
    """One websocket: its protocol, its caller, its operations."""

    def __init__(
        self, endpoint: LiveEndpoint, scope: dict[str, Any], send: Any, dialect: Dialect
    ) -> None:
        self.endpoint = endpoint
        self.settings: Settings = endpoint.settings
        self.dialect = dialect
        self.raw_send = send
        self._headers: list[tuple[bytes, bytes]] = scope.get("headers") or []
        self.operations: dict[str, Operation] = {}
        self.caller: Any = None
        self.token_expires_at: float | None = None
        self.init_received = False
        self.acknowledged = False
        self.closing = False
        self._timer: asyncio.TimerHandle | None = None
        self._keep_alive: asyncio.Task[None] | None = None
        self._closers: set[asyncio.Task[Any]] = set()

    # --- the receive loop --------------------------------------------------------------------

    async def serve(self, receive: Callable[[], Awaitable[dict[str, Any]]]) -> None:
        loop = asyncio.get_running_loop()
        if not self.dialect.legacy:
            self._timer = loop.call_later(
                self.settings.ws_init_timeout_seconds, self._init_timed_out
            )
        try:
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    return
                if message["type"] != "websocket.receive" or self.closing:
                    continue
                text = message.get("text")
                if text is None:
                    await self.refuse("WebSocket message type must be text")
                    continue
                if len(text) > self.settings.max_body_bytes:
                    await self.refuse(f"message larger than {self.settings.max_body_bytes} bytes")
                    continue
                try:
                    data = json.loads(text)
                except ValueError:
                    await self.refuse("WebSocket message must be valid JSON")
                    continue
                if not isinstance(data, dict) or not isinstance(data.get("type"), str):
                    await self.refuse("a message is a JSON object with a string `type`")
                    continue
                await self.dispatch(data)
        finally:
            await self.shutdown()

    async def dispatch(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        legacy = self.dialect.legacy
        if kind == "connection_init":
            await self.connection_init(message.get("payload"))
        elif kind in ("subscribe", "start") and (kind == "start") == legacy:
            await self.start(message)
        elif kind in ("complete", "stop") and (kind == "stop") == legacy:
            await self.stop(message.get("id"))
        elif kind == "ping" and not legacy:
            await self.send_text(_encode({"type": "pong"}))
        elif kind == "pong" and not legacy:
            return
        elif kind == "connection_terminate" and legacy:
            await self.close(CLOSE_NORMAL, "")
        elif legacy:
            await self.send_text(
                _encode({"type": "error", "payload": {"message": f"unknown message type {kind!r}"}})
            )
        else:
            await self.refuse(f"Unknown message type: {kind[:40]}")

    async def refuse(self, reason: str) -> None:
        """A message the protocol does not allow: graphql-transport-ws closes with
        4400; graphql-ws answers an error and goes on."""
        if self.dialect.legacy:
            await self.send_text(_encode({"type": "error", "payload": {"message": reason}}))
        else:
            await self.close(CLOSE_BAD_MESSAGE, reason)

    # --- connection_init ------------------------------------------------------------------

    async def connection_init(self, payload: Any) -> None:
        if self.init_received and not self.dialect.legacy:
            await self.close(CLOSE_TOO_MANY_INITS, "Too many initialisation requests")
            return
        self.init_received = True
        self._cancel_timer()
        if payload is not None and not isinstance(payload, dict):
            await self._reject("connection_init payload must be a JSON object")
            return
        problem = await self.endpoint.authenticate(self, payload or {})
        if problem is not None:
            await self._reject(problem)
            return
        self.acknowledged = True
        await self.send_text(_encode({"type": "connection_ack"}))
        if self.token_expires_at is not None:
            delay = max(0.0, self.token_expires_at - time.time())
            self._timer = asyncio.get_running_loop().call_later(delay, self.token_expired)
        if self.dialect.legacy and self.settings.ws_keep_alive_seconds > 0:
            self._keep_alive = asyncio.create_task(self._send_keep_alive())

    async def _reject(self, message: str) -> None:
        if self.dialect.legacy:
            error = {"message": message, "code": "UNAUTHENTICATED"}
            await self.send_text(_encode({"type": "connection_error", "payload": error}))
            await self.close(CLOSE_INTERNAL, "")
        else:
            await self.close(CLOSE_FORBIDDEN, f"Forbidden: {message}")

    def authorization(self, payload: dict[str, Any]) -> str | None:
        for key in ("Authorization", "authorization"):
            value = payload.get(key)
            if isinstance(value, str) and value:
                return value
        token = payload.get("token")
        if isinstance(token, str) and token:
            return f"Bearer {token}"
        for name, value in self._headers:
            if name == b"authorization":
                return value.decode("latin-1")
        return None

    async def _send_keep_alive(self) -> None:
        with contextlib.suppress(Gone):
            while not self.closing:
                await self.send_text('{"type":"ka"}')
                await asyncio.sleep(self.settings.ws_keep_alive_seconds)

    def _init_timed_out(self) -> None:
        self._timer = None
        if not self.init_received:
            self.close_soon(CLOSE_INIT_TIMEOUT, "Connection initialisation timeout")

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # --- operations -----------------------------------------------------------------------

    async def start(self, message: dict[str, Any]) -> None:
        if not self.acknowledged:
            await self.close(CLOSE_UNAUTHORIZED, "Unauthorized")
            return
        operation_id = message.get("id")
        payload = message.get("payload")
        if not isinstance(operation_id, str) or not operation_id or len(operation_id) > 128:
            await self.refuse("an operation needs an `id`: a string of 1 to 128 characters")
            return
        if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
            await self.refuse(f"operation {operation_id[:40]}: `payload.query` must be a string")
            return
        variables = payload.get("variables")
        name = payload.get("operationName")
        if variables is not None and not isinstance(variables, dict):
            await self.refuse("`payload.variables` must be a JSON object")
            return
        if name is not None and not isinstance(name, str):
            await self.refuse("`payload.operationName` must be a string")
            return
        if operation_id in self.operations:
            if not self.dialect.legacy:
                await self.close(
                    CLOSE_DUPLICATE_ID, f"Subscriber for {operation_id} already exists"
                )
                return
            await self.stop(operation_id)  # subscriptions-transport-ws: the new one replaces it
        if self.expired():
            self.token_expired()
            return
        operation = Operation(self, operation_id, payload["query"], variables, name)
        if len(self.operations) >= self.settings.ws_max_operations:
            error = f"at most {self.settings.ws_max_operations} operations at once on a connection"
            await self.send_text(_encode(self.dialect.error(operation_id, [_error(error)])))
            return
        self.operations[operation_id] = operation
        operation.task = asyncio.create_task(operation.run())
        operation.task.add_done_callback(observed)

    async def stop(self, operation_id: Any) -> None:
        operation = self.operations.get(operation_id) if isinstance(operation_id, str) else None
        if operation is None:
            return
        self.forget(operation)
        operation.cancel()
        if self.dialect.legacy:
            with contextlib.suppress(Gone):
                await self.send_text(_encode({"id": operation_id, "type": "complete"}))

    def forget(self, operation: Operation) -> None:
        if self.operations.get(operation.id) is operation:
            del self.operations[operation.id]

    def operation_context(self, operation: Operation) -> LiveContext:
        endpoint = self.endpoint
        context = LiveContext(
            self.settings,
            endpoint.sessionmaker,
            broker=endpoint.broker,
            connection=self,
            operation=operation,
            token_expires_at=self.token_expires_at,
        )
        context.caller = self.caller
        context.limiter = endpoint.limiter
        context.supplier_cache = endpoint.supplier_cache
        context.audit_buffer = endpoint.audit_buffer
        return context

    # --- expiry -----------------------------------------------------------------------------

    def expired(self) -> bool:
        return self.token_expires_at is not None and time.time() > self.token_expires_at

    def token_expired(self) -> None:
        """The token has expired: every subscription is told where to resume, then the
        connection is closed with 4401."""
        self._timer = None
        if self.closing:
            return
        if not self.expired():  # the timer fired early (clock adjustment): look again
            delay = max(0.05, (self.token_expires_at or 0) - time.time())
            self._timer = asyncio.get_running_loop().call_later(delay, self.token_expired)
            return
        self._run(self._expire())

    async def _expire(self) -> None:
        with contextlib.suppress(Gone):
            for operation in list(self.operations.values()):
                subscriber = operation.subscriber
                if subscriber is None:
                    continue
                operation.cancel()
                await operation.end(
                    [
                        _error(
                            f"token expired; reconnect with a new token and "
                            f"{resume_hint(subscriber.last)}",
                            "UNAUTHENTICATED",
                        )
                    ]
                )
        await self.close(CLOSE_TOKEN_EXPIRED, "token expired; reconnect with a new token")

    # --- sending and closing ----------------------------------------------------------------

    async def send_text(self, text: str) -> None:
        if self.closing:
            raise Gone
        try:
            await self.raw_send({"type": "websocket.send", "text": text})
        except (OSError, RuntimeError) as gone:  # the peer left, or the socket is closing
            raise Gone from gone

    async def close(self, code: int, reason: str) -> None:
        """Close once, whatever state the connection is in."""
        if self.closing:
            return
        self.closing = True
        self._cancel_timer()
        with contextlib.suppress(OSError, RuntimeError):
            await self.raw_send(
                {"type": "websocket.close", "code": code, "reason": _utf8_prefix(reason)}
            )

    def close_soon(self, code: int, reason: str) -> None:
        """`close`, from code that cannot wait (a timer, the broker's pass)."""
        self._run(self.close(code, reason))

    def _run(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(work)
        self._closers.add(task)
        task.add_done_callback(self._closers.discard)
        task.add_done_callback(observed)

    async def shutdown(self) -> None:
        """The socket is gone: end every operation and let them unsubscribe."""
        self.closing = True
        self._cancel_timer()
        if self._keep_alive is not None:
            self._keep_alive.cancel()
        tasks = [op.task for op in self.operations.values() if op.task is not None]
        for operation in list(self.operations.values()):
            operation.cancel()
        self.operations.clear()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        if self._keep_alive is not None:
            with contextlib.suppress(BaseException):
                await self._keep_alive
            self._keep_alive = None


def _masked(errors: list[dict[str, Any]]) -> bool:
    return len(errors) == 1 and str(errors[0].get("message", "")).startswith("Unexpected error")


def _error(message: str, code: str = "BAD_REQUEST") -> dict[str, Any]:
    return GraphQLError(message, extensions={"code": code}).formatted  # type: ignore[return-value]


class LiveEndpoint:
    """The ASGI endpoint for websockets at /graphql. The app gives it the schema and
    the gateway's token verifier (with the error it raises), rate limiter and
    supplier cache; the lifespan sets the broker and the audit buffer."""

    def __init__(
        self,
        settings: Settings,
        schema: Any,
        sessionmaker: Callable[[], Any],
        *,
        verifier: Any,
        token_error: type[Exception],
        errors: Any,
        limiter: Any = None,
        supplier_cache: Any = None,
    ) -> None:
        self.settings = settings
        #: How errors are classified and logged (gateway/errors.py), from the app.
        self.errors = errors
        self.schema = schema
        self.sessionmaker = sessionmaker
        self.verifier = verifier
        self.token_error = token_error
        self.limiter = limiter
        self.supplier_cache = supplier_cache
        self.audit_buffer: Any = None
        self.broker: Any = None
        #: The process's activation resources (gateway/resources.py), from the lifespan.
        self.activation: Any = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "websocket"
        if (await receive())["type"] != "websocket.connect":
            return
        offered = list(scope.get("subprotocols") or [])
        chosen = next((p for p in offered if p in DIALECTS), None)
        if chosen is None:
            await send({"type": "websocket.accept"})
            await send(
                {
                    "type": "websocket.close",
                    "code": CLOSE_SUBPROTOCOL,
                    "reason": "Subprotocol not acceptable: use graphql-transport-ws or graphql-ws",
                }
            )
            return
        await send({"type": "websocket.accept", "subprotocol": chosen})
        await Connection(self, scope, send, DIALECTS[chosen]).serve(receive)

    async def authenticate(self, connection: Connection, payload: dict[str, Any]) -> str | None:
        """The same token check as HTTP, and the supplier resolved once to refuse an
        unregistered one at once; the reason when refused, None when accepted."""
        authorization = connection.authorization(payload)
        try:
            connection.caller = self.verifier.verify(authorization)
        except self.token_error as error:
            if authorization is None:
                return f'{error} (send it in connection_init: {{"Authorization": "Bearer <jwt>"}})'
            return str(error)
        context = LiveContext(self.settings, self.sessionmaker)
        context.caller = connection.caller
        context.supplier_cache = self.supplier_cache
        try:
            await principal(context)
        except GatewayError as error:
            return error.message
        assert authorization is not None
        token = authorization.partition(" ")[2].strip()
        claims = jwt.decode(token, options={"verify_signature": False})  # verified above
        expires = claims.get("exp")
        connection.token_expires_at = float(expires) if isinstance(expires, int | float) else None
        return None


class WebSocketsAt:
    """ASGI middleware: websockets at `path` go to `endpoint` with the server's own
    `send` and `receive` (a live event goes out to thousands of subscriptions at
    once; the routing's per-message wrappers would cost a coroutine each); every
    other request passes on."""

    def __init__(self, app: Any, endpoint: LiveEndpoint, path: str = "/graphql") -> None:
        self.app = app
        self.endpoint = endpoint
        self.path = path

    def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Awaitable[None]:
        if scope["type"] == "websocket" and scope["path"] == self.path:
            return self.endpoint(scope, receive, send)
        return self.app(scope, receive, send)  # type: ignore[no-any-return]
