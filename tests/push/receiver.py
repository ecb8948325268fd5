"""A real events receiver for the tests: a Starlette app served by uvicorn on a
loopback port inside the test's event loop. It records every request and can
be told to fail (N times, with a status), to be
slow, to refuse single events, to answer 401/403, to redirect, to answer too
much, and to act as an OAuth 2.0 token server."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    events: list[dict[str, Any]]


@dataclass
class Receiver:
    """Behaviour is set by the test between requests."""

    port: int = 0
    requests: list[Received] = field(default_factory=list)
    #: Fail this many next requests with `fail_status`.
    fail_next: int = 0
    fail_status: int = 503
    retry_after: str | None = None
    #: Answer every request with this status and these per-event statuses.
    status_code: int = 200
    refuse: dict[str, tuple[int, str]] = field(default_factory=dict)
    #: Refuse every event of this type (status 1).
    refuse_type: str | None = None
    answer_per_event: bool = True
    delay: float = 0.0
    #: While set to an unset event, requests wait for it (a request in flight).
    hold: asyncio.Event | None = None
    redirect_to: str | None = None
    oversize: int = 0
    #: OAuth: client id and secret the token server accepts; tokens issued.
    client_id: str = "gateway"
    client_secret: str = "oauth-client-secret-0123456789"
    tokens: list[str] = field(default_factory=list)
    token_requests: int = 0
    #: Reject bearer tokens issued before this index (a rotated key).
    valid_from_token: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/events"

    @property
    def token_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def events(self) -> list[dict[str, Any]]:
        return [e for r in self.requests for e in r.events]

    def ids(self) -> list[str]:
        return [e["id"] for e in self.events()]

    async def _events(self, request: Request) -> Response:
        body = await request.body()
        try:
            batch = json.loads(body)
        except ValueError:
            batch = []
        self.requests.append(Received(dict(request.headers), body, batch))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.hold is not None:
            await self.hold.wait()
        if self.fail_next > 0:
            self.fail_next -= 1
            headers = {"Retry-After": self.retry_after} if self.retry_after else None
            return JSONResponse({"error": "unavailable"}, self.fail_status, headers=headers)
        if self.redirect_to:
            return RedirectResponse(self.redirect_to, status_code=307)
        if self.oversize:
            return Response(b"[" + b" " * self.oversize + b"]", media_type="application/json")
        authorization = request.headers.get("authorization", "")
        if authorization.startswith("Bearer "):
            token = authorization[7:]
            if token not in self.tokens[self.valid_from_token :]:
                return JSONResponse({"error": "invalid token"}, 401)
        answers = []
        for event in batch:
            status, message = self.refuse.get(event.get("id"), (0, "OK"))
            if self.refuse_type is not None and event.get("type") == self.refuse_type:
                status, message = 1, "schema invalid"
            answers.append({"id": event.get("id"), "status": status, "statusMessage": message})
        if not self.answer_per_event:
            return Response(status_code=self.status_code)
        return JSONResponse(answers, self.status_code)

    async def _token(self, request: Request) -> Response:
        self.token_requests += 1
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        if request.headers.get("authorization") != f"Basic {expected}":
            return JSONResponse({"error": "invalid_client"}, 401)
        if form.get("grant_type") != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type"}, 400)
        token = f"token-{len(self.tokens)}"
        self.tokens.append(token)
        return JSONResponse({"access_token": token, "token_type": "Bearer", "expires_in": 3600})

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/events", self._events, methods=["POST"]),
                Route("/token", self._token, methods=["POST"]),
            ]
        )


@contextlib.asynccontextmanager
async def serve(receiver: Receiver | None = None) -> AsyncIterator[Receiver]:
    receiver = receiver or Receiver()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    receiver.port = sock.getsockname()[1]
    config = uvicorn.Config(receiver.app(), log_level="critical", lifespan="off", access_log=False)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(400):
        if server.started:
            break
        await asyncio.sleep(0.01)
    try:
        yield receiver
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)
        sock.close()
