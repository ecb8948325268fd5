"""Sending one batch to a receiver's `POST /events`, safely, and reading its answer.

Safety (issue 18.7): in production an endpoint (and its token server) must be an
https URL whose host resolves only to public addresses; the address checked is
the address connected to (the request goes to that IP, with the host name in
`Host` and in TLS SNI), so a name that later resolves elsewhere cannot turn the
gateway against its own network. `KETENPOORT_PUSH_ALLOW_PRIVATE_ADDRESSES`
lifts this (it is lifted outside production). Redirects are never followed; a
whole exchange is bounded by `push_timeout_seconds`; at most
`push_max_response_bytes` of an answer are read.

What an answer means (SEM Events API; see push/schedule.py for the waits):

* 2xx: delivered; each event's answer `{id, status, statusMessage}` is kept
  (status 0: accepted; another status: refused by the receiver, recorded);
* 400, 401 or 403 with answers per event: those answers are kept (refusals:
  1 schema invalid, 2 version not supported, 3 scope required, 4 consent
  required, 5 school unknown) and the stream moves on;
* 400 or 403 without answers per event: every event of the batch is recorded as
  refused (status 1 or 4);
* 401 without answers: the OAuth token is fetched anew and the batch sent once
  more at once; if that fails too, the receiver counts as unavailable (bad
  credentials lose nothing: the batch waits);
* anything else (connection refused, a timeout, 5xx, 429, 408, 404, a
  redirect, an answer too large): unavailable, retried on the schedule.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import certifi
import httpx

from db.push import AuthKind
from domain.endpoints import AddressRefused, check_url, is_public
from settings import Settings

#: Statuses of the chain for a whole request refused without answers per event.
_REFUSAL_STATUS = {400: 1, 401: 3, 403: 4}

SIGNATURE_HEADER = "X-Ketenpoort-Signature"
TIMESTAMP_HEADER = "X-Ketenpoort-Timestamp"


@dataclass(frozen=True)
class Target:
    """Where and how to send: the endpoint's settings with its secret decrypted."""

    endpoint_id: int
    url: str
    auth: AuthKind
    secret: str
    token_url: str | None = None
    client_id: str | None = None
    scope: str | None = None


@dataclass
class Outcome:
    """What came of one attempt."""

    #: True: the receiver answered (accepted and/or refused events); the batch is done.
    answered: bool
    http_status: int | None = None
    #: The answer per envelope id: (status, statusMessage).
    answers: dict[str, tuple[int | None, str | None]] = field(default_factory=dict)
    #: Status for events without an answer of their own (None on 2xx).
    default_status: int | None = None
    default_message: str | None = None
    error: str | None = None
    retry_after: timedelta | None = None


# --- addresses ---------------------------------------------------------------------------


async def resolve_public(host: str, port: int) -> str:
    """The address to connect to: every address the name resolves to must be
    public (else AddressRefused); the first is used."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=0, proto=6)
    except OSError as error:
        raise AddressRefused(f"{host} cannot be resolved: {error}") from error
    addresses = [info[4][0] for info in infos]
    if not addresses:
        raise AddressRefused(f"{host} resolves to no address")
    bad = [a for a in addresses if not is_public(a)]
    if bad:
        raise AddressRefused(
            f"{host} resolves to {bad[0]}, a loopback, private or reserved address, "
            "not allowed in production"
        )
    return str(addresses[0])


def pinned(url: str, address: str) -> tuple[str, str]:
    """The URL to connect to the checked `address` itself, and the Host header that
    keeps the name (TLS SNI gets the name too)."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    shown = f"[{address}]" if ":" in address else address
    return parts._replace(netloc=f"{shown}:{port}").geturl(), parts.netloc


# --- the client ----------------------------------------------------------------------------


class _TooLarge(Exception):
    pass


@dataclass
class _Token:
    value: str
    expires: float


#: Origins with a connection pool of their own kept open at once (least recently
#: used closed first).
MAX_ORIGINS = 1000


class PushClient:
    """The HTTP side of one gateway process: a small connection pool per origin
    (httpcore looks through every connection of a pool on each request, so one
    pool for hundreds of endpoints costs time linear in their number), and the
    OAuth tokens of the endpoints."""

    def __init__(self, settings: Settings, *, clock: Any = time.monotonic) -> None:
        self.settings = settings
        self._clock = clock
        self._pools: dict[str, httpx.AsyncClient] = {}
        # One TLS context for every pool: loading the CA bundle is the costly part.
        self._tls = ssl.create_default_context(cafile=certifi.where())
        self._tokens: dict[tuple[str, str, str | None], _Token] = {}

    def _pool(self, origin: str) -> httpx.AsyncClient:
        pool = self._pools.pop(origin, None)
        if pool is None:
            pool = httpx.AsyncClient(
                follow_redirects=False,
                timeout=httpx.Timeout(self.settings.push_timeout_seconds),
                limits=httpx.Limits(max_connections=4, max_keepalive_connections=2),
                verify=self._tls,
                trust_env=False,
            )
            if len(self._pools) >= MAX_ORIGINS:
                oldest = next(iter(self._pools))
                closing = self._pools.pop(oldest)
                asyncio.get_running_loop().create_task(closing.aclose())
        self._pools[origin] = pool  # most recently used last
        return pool

    async def close(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            await pool.aclose()

    # --- one request, within every limit ---

    async def _request(
        self, method: str, url: str, *, content: bytes, headers: dict[str, str]
    ) -> tuple[httpx.Response, bytes]:
        check_url(url, private_allowed=self.settings.push_private_allowed)
        parts = urlsplit(url)
        extensions: dict[str, Any] = {}
        target = url
        if not self.settings.push_private_allowed:
            port = parts.port or (443 if parts.scheme == "https" else 80)
            address = await resolve_public(parts.hostname or "", port)
            target, host = pinned(url, address)
            headers = {**headers, "Host": host}
            extensions["sni_hostname"] = parts.hostname
        limit = self.settings.push_max_response_bytes
        # Raw bytes are what is counted and read: no compressed answers.
        headers = {**headers, "Accept-Encoding": "identity"}
        pool = self._pool(urlsplit(target).netloc)
        async with asyncio.timeout(self.settings.push_timeout_seconds):
            request = pool.build_request(
                method, target, content=content, headers=headers, extensions=extensions
            )
            response = await pool.send(request, stream=True)
            try:
                declared = response.headers.get("content-length")
                if declared is not None and declared.isdigit() and int(declared) > limit:
                    raise _TooLarge
                body = bytearray()
                async for chunk in response.aiter_raw():
                    body += chunk
                    if len(body) > limit:
                        raise _TooLarge
            finally:
                await response.aclose()
        return response, bytes(body)

    # --- OAuth 2.0 client credentials ---

    async def _token(self, target: Target, *, fresh: bool = False) -> str:
        key = (target.token_url or "", target.client_id or "", target.scope)
        cached = self._tokens.get(key)
        if cached is not None and not fresh and cached.expires > self._clock():
            return cached.value
        form = {"grant_type": "client_credentials"}
        if target.scope:
            form["scope"] = target.scope
        basic = httpx.BasicAuth(target.client_id or "", target.secret)
        request = httpx.Request("POST", target.token_url or "", data=form)
        authorization = next(basic.auth_flow(request)).headers["Authorization"]
        response, body = await self._request(
            "POST",
            target.token_url or "",
            content=request.content,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json",
                "Authorization": authorization,
            },
        )
        if response.status_code != 200:
            raise _TokenFailed(f"token server answered HTTP {response.status_code}")
        try:
            answer = json.loads(body)
            token = answer["access_token"]
            lifetime = float(answer.get("expires_in", 300))
        except (ValueError, KeyError, TypeError) as error:
            raise _TokenFailed("token server's answer has no access_token") from error
        if not isinstance(token, str) or not token:
            raise _TokenFailed("token server's answer has no access_token")
        # Renew 30 seconds (or a tenth of a short lifetime) before it expires.
        self._tokens[key] = _Token(token, self._clock() + lifetime - min(30.0, lifetime / 10))
        return token

    # --- one batch ---

    async def send(self, target: Target, envelopes: Sequence[dict[str, Any]]) -> Outcome:
        body = json.dumps(list(envelopes), separators=(",", ":"), ensure_ascii=False).encode()
        try:
            outcome = await self._send_once(target, body, fresh_token=False)
            if outcome.http_status == 401 and not outcome.answered and target.auth == "OAUTH2":
                outcome = await self._send_once(target, body, fresh_token=True)
            return outcome
        except AddressRefused as error:
            return Outcome(False, error=f"address refused: {error}")
        except _TokenFailed as error:
            return Outcome(False, error=str(error))
        except _TooLarge:
            return Outcome(
                False,
                error=f"answer larger than {self.settings.push_max_response_bytes} bytes",
            )
        except (TimeoutError, httpx.TimeoutException):
            return Outcome(False, error=f"timeout after {self.settings.push_timeout_seconds} s")
        except httpx.HTTPError as error:
            return Outcome(False, error=f"{type(error).__name__}: {error}"[:500])
        except OSError as error:
            return Outcome(False, error=f"{type(error).__name__}: {error}"[:500])

    async def _send_once(self, target: Target, body: bytes, *, fresh_token: bool) -> Outcome:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if target.auth == AuthKind.OAUTH2:
            headers["Authorization"] = f"Bearer {await self._token(target, fresh=fresh_token)}"
        else:
            stamp = str(int(time.time()))
            headers[TIMESTAMP_HEADER] = stamp
            headers[SIGNATURE_HEADER] = "sha256=" + sign(target.secret, stamp, body)
        response, answer = await self._request("POST", target.url, content=body, headers=headers)
        return interpret(response.status_code, response.headers, answer)


class _TokenFailed(Exception):
    pass


def sign(secret: str, stamp: str, body: bytes) -> str:
    """The signature of a request: HMAC-SHA256 over `<timestamp>.<body>`, hex."""
    return hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def _answers(body: bytes) -> dict[str, tuple[int | None, str | None]] | None:
    """The per-event answers in a body, or None when it holds none."""
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        return None
    if isinstance(parsed, dict):
        parsed = [parsed]
    if not isinstance(parsed, list):
        return None
    found: dict[str, tuple[int | None, str | None]] = {}
    for item in parsed:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            continue
        status = item.get("status")
        message = item.get("statusMessage")
        found[item["id"]] = (
            status if isinstance(status, int) and not isinstance(status, bool) else None,
            str(message)[:500] if message is not None else None,
        )
    return found or None


def _retry_after(headers: httpx.Headers) -> timedelta | None:
    value = headers.get("retry-after")
    if value is not None and value.strip().isdigit():
        return timedelta(seconds=int(value.strip()))
    return None


def interpret(status: int, headers: httpx.Headers, body: bytes) -> Outcome:
    """What an HTTP answer means for the batch (see the module docstring)."""
    if 200 <= status < 300:
        return Outcome(True, status, _answers(body) or {})
    if status in _REFUSAL_STATUS:
        answers = _answers(body)
        if answers is not None:
            return Outcome(
                True,
                status,
                answers,
                default_status=_REFUSAL_STATUS[status],
                default_message=f"HTTP {status} without an answer for this event",
            )
        if status != 401:
            return Outcome(
                True,
                status,
                {},
                default_status=_REFUSAL_STATUS[status],
                default_message=f"the receiver refused the whole request (HTTP {status})",
            )
        return Outcome(False, status, error="HTTP 401: the receiver refused the credentials")
    if 300 <= status < 400:
        location = headers.get("location", "")[:200]
        return Outcome(False, status, error=f"HTTP {status}: redirect to {location!r} not followed")
    return Outcome(False, status, error=f"HTTP {status}", retry_after=_retry_after(headers))
