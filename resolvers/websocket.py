"""GraphQL over websockets: authentication in `connection_init`, the context of a
long-lived connection, keep-alive, and closing with a code that says why.

Both protocols are served at /graphql: `graphql-transport-ws` (graphql-ws library,
Apollo 3+, gql) and the legacy `graphql-ws` (subscriptions-transport-ws).

* The bearer token travels in the `connection_init` payload, as
  `{"Authorization": "Bearer <jwt>"}` or `{"token": "<jwt>"}` (the upgrade
  request's Authorization header is accepted too). A missing or invalid token, or
  an unregistered supplier, is refused: graphql-transport-ws closes with 4403 and
  the reason; graphql-ws answers `connection_error` with the message and closes.
* A connection lives for hours, so its context never holds a database session:
  every read opens and closes its own (`ShortSessions`).
* Keep-alive: graphql-ws sends `ka` every `ws_keep_alive_seconds`;
  graphql-transport-ws answers a client's `ping` with `pong`. Under both, uvicorn
  sends websocket ping frames (every 20 s, `--ws-ping-interval`) and drops a peer
  that does not answer within `--ws-ping-timeout`: no task per connection for it.

Close codes the gateway uses besides the protocols' own: 4008 subscriber too slow
(resume with the cursor in the reason), 4401 token expired, 1012 gateway restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

import jwt
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
    _OperationStreamClosed,
)
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.types.graphql import OperationType

from db.engine import read_only
from gateway.tokens import TokenError, TokenVerifier
from resolvers.broker import SubscriptionEnded
from resolvers.context import Context, Database
from resolvers.eager import Pending, run_eagerly

T = TypeVar("T")

#: Scope key under which app.KeepWebSocketSend files the server's own `send`.
RAW_SEND = "ketenpoort.websocket_send"

CONNECTION_CLOSED = "connection closed"
CLOSE_TOO_SLOW = 4008
CLOSE_TOKEN_EXPIRED = 4401
CLOSE_FORBIDDEN = 4403  # graphql-transport-ws: connection_init refused


class ShortSessions(Database):
    """Every read in its own short session: nothing stays open between events."""

    async def run(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        async with self._sessionmaker() as session:
            await read_only(session)
            return await work(session)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        async with self._sessionmaker() as session, session.begin():
            yield session

    async def close(self) -> None:
        return None


@dataclass
class LiveContext(Context):
    """The context of one websocket connection (shared by its operations)."""

    connection_params: dict[str, Any] | None = None
    broker: Any = None
    token_expires_at: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self.db = ShortSessions(self.sessionmaker)


def _authorization(context: LiveContext) -> str | None:
    params = context.connection_params or {}
    for key in ("Authorization", "authorization"):
        value = params.get(key)
        if isinstance(value, str) and value:
            return value
    token = params.get("token")
    if isinstance(token, str) and token:
        return f"Bearer {token}"
    request = context.request
    if isinstance(request, WebSocket):
        return request.headers.get("authorization")
    return None


def _reject(context: LiveContext, message: str) -> ConnectionRejectionError:
    request = context.request
    if isinstance(request, WebSocket):
        request.state.close_reason = message
    return ConnectionRejectionError({"message": message, "code": "UNAUTHENTICATED"})


async def authenticate(verifier: TokenVerifier, context: LiveContext) -> None:
    """`on_ws_connect`: the same token check as HTTP, and the supplier resolved once
    for the connection. Raises ConnectionRejectionError to refuse."""
    # Imported here: app.py imports this module before the schema package exists.
    from resolvers.auth import principal
    from schema.errors import GatewayError

    authorization = _authorization(context)
    try:
        context.caller = verifier.verify(authorization)
    except TokenError as error:
        raise _reject(
            context,
            f'{error} (send it in connection_init: {{"Authorization": "Bearer <jwt>"}})'
            if authorization is None
            else str(error),
        ) from error
    try:
        await principal(context)
    except GatewayError as error:
        raise _reject(context, error.message) from error
    assert authorization is not None
    token = authorization.partition(" ")[2].strip()
    claims = jwt.decode(token, options={"verify_signature": False})  # verified above
    expires = claims.get("exp")
    context.token_expires_at = float(expires) if isinstance(expires, int | float) else None


def _utf8_prefix(text: str, limit: int = 123) -> str:
    """A close reason may hold at most 123 bytes."""
    encoded = text.encode()
    if len(encoded) <= limit:
        return text
    return encoded[: limit - 3].decode(errors="ignore") + "..."


async def close_websocket(websocket: Any, code: int, reason: str) -> None:
    """Close once, whatever state the connection is in."""
    if not isinstance(websocket, WebSocket):
        return
    if websocket.application_state == WebSocketState.DISCONNECTED:
        return
    with contextlib.suppress(RuntimeError, WebSocketDisconnect, OSError):
        await websocket.close(code=code, reason=_utf8_prefix(reason))


class LiveWebSocketAdapter(ASGIWebSocketAdapter):
    """Strawberry's adapter, made safe to use after the gateway closed the socket
    (a dropped subscriber, an expired token): late messages are discarded instead
    of failing the operation's task, and the refusal reason replaces "Forbidden"."""

    async def send_json(self, message: Mapping[str, object]) -> None:
        if self.ws.application_state == WebSocketState.DISCONNECTED:
            return
        with contextlib.suppress(WebSocketDisconnect):
            await super().send_json(message)

    async def send_text(self, text: str) -> None:
        if self.ws.application_state == WebSocketState.DISCONNECTED:
            return
        with contextlib.suppress(WebSocketDisconnect):
            await self.ws.send_text(text)

    async def close(self, code: int, reason: str) -> None:
        override = getattr(self.ws.state, "close_reason", None)
        if code == CLOSE_FORBIDDEN and override:
            reason = f"Forbidden: {override}"
        await close_websocket(self.ws, code, reason)


class EncodedPayloads:
    """Result payloads already encoded as JSON, by the identity of their data: a
    live event's result is shared by every subscriber with the same operation
    (schema.live.LiveExecutionContext), so it is encoded once, not per subscriber.
    A few recent ones are kept; each entry holds its data, so the id stays valid."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._entries: OrderedDict[int, tuple[object, str]] = OrderedDict()

    def encode(self, data: object, encode: Callable[[object], str]) -> str:
        key = id(data)
        found = self._entries.get(key)
        if found is not None and found[0] is data:
            return found[1]
        text = encode({"data": data})
        self._entries[key] = (data, text)
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return text


PAYLOADS = EncodedPayloads()


async def send_result(adapter: LiveWebSocketAdapter, message: Mapping[str, Any], kind: str) -> bool:
    """Send a data-only result message with its payload encoded once for all
    subscribers; False when the message is of another shape (send it as usual)."""
    payload = message.get("payload")
    if message.get("type") != kind or not isinstance(payload, dict) or payload.keys() != {"data"}:
        return False
    body = PAYLOADS.encode(payload["data"], adapter.view.encode_json)
    head = adapter.view.encode_json({"id": message["id"], "type": kind})
    await adapter.send_text(head[:-1] + ',"payload":' + body + "}")
    return True


class Handoff:
    """One graphql-transport-ws subscription, taken out of strawberry's per-operation
    pipeline once its replay or initial state has been sent (resolvers/live.py).

    Strawberry runs every subscription as a chain of async generators, extension
    hooks and an execution per event, per subscriber: at thousands of subscribers
    one event costs seconds. A handed-off subscription is one small task that waits
    on its broker queue; each event is executed and encoded once per (operation,
    variables, caller) and the same text is sent to every subscriber sharing them,
    with only the operation id in front. While the task waits on an empty queue,
    the broker delivers in its own pass (`resolvers.live._handed_off`, `direct`):
    no wake-up per subscriber, unless the message needs a read to render or the
    peer's socket is full. The operation stays registered with the
    handler, so `complete`, a duplicate id and the subscription limit behave as
    before, and closing the connection cancels the task."""

    __slots__ = ("_send", "handler", "head", "in_flight", "operation", "shape", "task")

    def __init__(self, handler: TransportWSHandler, operation: Operation[Any, Any]) -> None:
        self.handler = handler
        self.operation = operation
        self.task: asyncio.Task[None] | None = None
        #: A send begun in the broker's pass that had to wait for the peer's socket.
        self.in_flight: asyncio.Task[Any] | None = None
        variables = json.dumps(operation.variables, sort_keys=True, default=str)
        #: What the rendering depends on besides the caller.
        self.shape = (operation.query, operation.operation_name, variables)
        head = handler.view.encode_json({"id": operation.id, "type": "next"})
        self.head = head[:-1] + ',"payload":'
        websocket = handler.websocket.ws  # type: ignore[attr-defined]
        self._send = websocket.scope.get(RAW_SEND) or websocket.send

    def start(self, work: Coroutine[Any, Any, None]) -> None:
        """Go on in `work`, a task of its own; the strawberry operation then ends
        without `complete` (TransportWSHandler._send_result_stream)."""
        self.task = asyncio.create_task(work)
        self.handler.handed_off[self.operation.id] = self

    def finished(self) -> None:
        if self.handler.handed_off.get(self.operation.id) is self:
            del self.handler.handed_off[self.operation.id]

    def rendered(self, shared: dict[Any, Any], caller: Any) -> str | None:
        """The `next` message if another subscription has rendered it already."""
        found = shared.get((self.shape, caller))
        if found is None or not found.done():
            return None
        return self.head + found.result() + "}"  # type: ignore[no-any-return]

    async def render(self, node: Any, shared: dict[Any, Any], caller: Any) -> str:
        """The `next` message for `node`: executed and encoded once for every
        subscription with the same operation, variables and caller (the caller
        counts because nested fields are read with its consent); `shared` is
        where the node keeps what has been rendered of it.

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
        handler, operation = self.handler, self.operation
        context = handler.context
        context.fresh_loaders()
        result = await handler.schema.execute(
            operation.query,
            variable_values=operation.variables,
            context_value=context,
            root_value=node,
            operation_name=operation.operation_name,
            allowed_operation_types=(OperationType.SUBSCRIPTION,),
        )
        payload: dict[str, Any] = {"data": result.data}
        if result.errors:
            payload["errors"] = [error.formatted for error in result.errors]
        if result.extensions:
            payload["extensions"] = result.extensions
        return handler.view.encode_json(payload)

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

    async def settle(self) -> None:
        """Wait for a send still in flight (whatever became of it)."""
        flight, self.in_flight = self.in_flight, None
        if flight is not None:
            with contextlib.suppress(Exception):
                await flight

    async def send(self, text: str) -> None:
        """Straight to the server (uvicorn waits while the peer's socket is full,
        which is what fills a slow subscriber's queue), after a send in flight."""
        flight, self.in_flight = self.in_flight, None
        if flight is not None:
            await flight
        try:
            await self._send({"type": "websocket.send", "text": text})
        except (OSError, RuntimeError) as gone:  # the peer left, or the socket is closing
            raise SubscriptionEnded(CONNECTION_CLOSED) from gone

    async def end(self, errors: list[dict[str, Any]] | None = None) -> None:
        """End the operation with `complete`, or `error` and what went wrong."""
        await self.settle()
        if self.operation.id not in self.handler.operations:
            return  # the client completed it, or the connection is closing
        message: dict[str, Any] = {"id": self.operation.id, "type": "complete"}
        if errors is not None:
            message = {"id": self.operation.id, "type": "error", "payload": errors}
        await self.operation.send_operation_message(message)  # type: ignore[arg-type]


def observed(task: asyncio.Task[Any]) -> None:
    """A send or a rendering carried on in a task that nobody may wait for must not
    log "exception never retrieved": whoever needs it meets the failure itself
    (the subscription's task sends again, or renders again from the shared
    result)."""
    if not task.cancelled():
        task.exception()


#: The handoff of the graphql-transport-ws operation being run (set in its task).
HANDOFF: ContextVar[Handoff | None] = ContextVar("ketenpoort_handoff", default=None)


class TransportWSHandler(BaseGraphQLTransportWSHandler):  # type: ignore[type-arg]
    """graphql-transport-ws, lean per connection (thousands are open at once): the
    finished connection_init timer and the init payload (the token) are let go
    after the acknowledgement; live subscriptions are handed off (`Handoff`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.handed_off: dict[str, Handoff] = {}

    async def run_operation(self, operation: Operation[Any, Any]) -> None:
        HANDOFF.set(Handoff(self, operation))  # this operation's own task context
        await super().run_operation(operation)

    async def _send_result_stream(self, operation: Operation[Any, Any], result_source: Any) -> None:
        await super()._send_result_stream(operation, result_source)
        handoff = HANDOFF.get()
        if handoff is not None and handoff.task is not None:
            raise _OperationStreamClosed  # it goes on in the handoff's task: no complete

    async def cleanup_operation(self, operation_id: str) -> None:
        handoff = self.handed_off.pop(operation_id, None)
        if handoff is not None and handoff.task is not None:
            handoff.task.cancel()
            if handoff.in_flight is not None:
                handoff.in_flight.cancel()
        await super().cleanup_operation(operation_id)

    async def shutdown(self) -> None:
        tasks = [h.task for h in self.handed_off.values() if h.task is not None]
        await super().shutdown()
        for task in tasks:  # let them unsubscribe before the connection is gone
            with contextlib.suppress(BaseException):
                await task

    async def send_message(self, message: Any) -> None:
        if not await send_result(self.websocket, message, "next"):  # type: ignore[arg-type]
            await super().send_message(message)

    async def handle_connection_init(self, message: Any) -> None:
        await super().handle_connection_init(message)
        if self.connection_acknowledged:
            # Cancelled above; the loop finishes it. Kept, the task would hold its
            # CancelledError and that exception's frames for the connection's life.
            self.connection_init_timeout_task = None
            if isinstance(self.context, LiveContext):
                self.context.connection_params = None


class WSHandler(BaseGraphQLWSHandler):  # type: ignore[type-arg]
    """Legacy graphql-ws; strawberry sends `ka` every keep-alive interval."""

    async def send_message(self, message: Any) -> None:
        if not await send_result(self.websocket, message, "data"):  # type: ignore[arg-type]
            await super().send_message(message)
