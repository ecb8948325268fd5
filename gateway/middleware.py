"""The request body's size limit (`Settings.max_body_bytes`): a body declared or
received over it is refused with 413 before it is parsed. The gateway's front
(gateway/front.py) applies it where the GraphQL handler reads the body; this
middleware applies it to every other HTTP request."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send


def declared_too_large(content_length: bytes | None, max_bytes: int) -> bool:
    """Whether the declared `Content-Length` is over the limit."""
    if content_length is None or not content_length.isdigit():
        return False
    return int(content_length) > max_bytes


async def refuse_too_large(send: Send, max_bytes: int) -> None:
    """The one 413 answer, from the middleware and from the GraphQL handler alike."""
    body = json.dumps(
        {
            "errors": [
                {
                    "message": f"request body exceeds {max_bytes} bytes",
                    "extensions": {"code": "PAYLOAD_TOO_LARGE"},
                }
            ]
        },
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-length", str(len(body)).encode()),
                (b"content-type", b"application/json"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodySizeLimit:
    """Refuse request bodies over the configured size before parsing them."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared_too_large(declared, self.max_bytes):
            await refuse_too_large(send, self.max_bytes)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise _TooLarge
            return message

        try:
            await self.app(scope, counting_receive, send)
        except _TooLarge:
            await refuse_too_large(send, self.max_bytes)


class _TooLarge(Exception):
    pass
