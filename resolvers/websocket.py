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

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import jwt
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler

from resolvers.context import Context, Database
from resolvers.tokens import TokenError, TokenVerifier

T = TypeVar("T")

CLOSE_TOO_SLOW = 4008
CLOSE_TOKEN_EXPIRED = 4401
CLOSE_FORBIDDEN = 4403  # graphql-transport-ws: connection_init refused


class ShortSessions(Database):
    """Every read in its own short session: nothing stays open between events."""

    async def run(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        async with self._sessionmaker() as session:
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

    async def close(self, code: int, reason: str) -> None:
        override = getattr(self.ws.state, "close_reason", None)
        if code == CLOSE_FORBIDDEN and override:
            reason = f"Forbidden: {override}"
        await close_websocket(self.ws, code, reason)


class TransportWSHandler(BaseGraphQLTransportWSHandler):  # type: ignore[type-arg]
    """graphql-transport-ws, lean per connection (thousands are open at once): the
    finished connection_init timer and the init payload (the token) are let go
    after the acknowledgement."""

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
