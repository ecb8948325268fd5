"""The gateway's ASGI app: Starlette (routes, middleware, lifespan) with HTTP requests
for /graphql served ahead of it.

Every request to /graphql over HTTP goes straight to the GraphQL handler
(gateway/http.py) instead of through Starlette's middleware stack and router: the
request observer's duties are done here through the observer's own `Observation`
(request id, request line, metrics, span; gateway/observe.py), the body-size limit
where the handler reads the body (gateway/middleware.py's 413), and an unexpected
failure is answered 500 before it is raised to the server, as Starlette's
`ServerErrorMiddleware` does. Everything else (other paths, websockets, the
lifespan, an app mounted under a root path) goes through Starlette as it is.
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send

from gateway.observe import Observation

PATH = "/graphql"
SERVER_ERROR = b"Internal Server Error"


class Gateway(Starlette):
    """Starlette with `graphql` (the HTTP handler at /graphql) served ahead of it."""

    graphql: Any = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] != PATH
            or scope.get("root_path")
            or self.graphql is None
        ):
            await super().__call__(scope, receive, send)
            return
        scope["app"] = self
        observation = Observation(scope, send)
        try:
            await self.graphql(scope, receive, observation.send)
        except Exception:
            if not observation.status:
                await observation.send(
                    {
                        "type": "http.response.start",
                        "status": 500,
                        "headers": [
                            (b"content-length", str(len(SERVER_ERROR)).encode()),
                            (b"content-type", b"text/plain; charset=utf-8"),
                        ],
                    }
                )
                await observation.send({"type": "http.response.body", "body": SERVER_ERROR})
            raise
        finally:
            observation.finish(scope)
