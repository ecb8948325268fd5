"""Sending one batch to a receiver's `POST /events`, safely, and reading its answer.

Safety (issue 18.7): in production an endpoint (and its token server) must be an
https URL whose host resolves only to public addresses; the address checked is
the address connected to (checked each time a connection opens; the request goes
to that IP, with the host name in `Host` and in TLS SNI, and a kept-alive
connection stays on it), so a name that later resolves elsewhere cannot turn the
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
import base64
import hashlib
import hmac
import json
import ssl
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import quote_plus, urlencode, urlsplit

import certifi

from db.push import AuthKind
from domain.endpoints import AddressRefused, check_url, is_public
from push.transport import Answer, Origin, TooLarge, Transport, as_given
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
    addresses = [str(info[4][0]) for info in infos]
    if not addresses:
        raise AddressRefused(f"{host} resolves to no address")
    bad = [a for a in addresses if not is_public(a)]
    if bad:
        raise AddressRefused(
            f"{host} resolves to {bad[0]}, a loopback, private or reserved address, "
            "not allowed in production"
        )
    return str(addresses[0])


# --- the client ----------------------------------------------------------------------------


@dataclass
class _Token:
    value: str
    expires: float


#: Parsed endpoint URLs kept (an endpoint's URL is parsed once, not per request).
MAX_PARSED = 4096


@dataclass(frozen=True)
class _Url:
    origin: Origin
    target: str  # path and query


class PushClient:
    """The HTTP side of one gateway process: kept-alive connections per origin
    (push/transport.py) and the OAuth tokens of the endpoints."""

    def __init__(self, settings: Settings, *, clock: Any = time.monotonic) -> None:
        self.settings = settings
        self._clock = clock
        # One TLS context for every connection: loading the CA bundle is the costly part.
        self._tls = ssl.create_default_context(cafile=certifi.where())
        self._transport = Transport(
            self._tls, as_given if settings.push_private_allowed else resolve_public
        )
        self._tokens: dict[tuple[str, str, str | None], _Token] = {}
        self._parsed: dict[str, _Url] = {}

    async def close(self) -> None:
        self._transport.close()

    def _url(self, url: str) -> _Url:
        """The URL checked (domain/endpoints.check_url) and taken apart, once."""
        found = self._parsed.get(url)
        if found is None:
            check_url(url, private_allowed=self.settings.push_private_allowed)
            parts = urlsplit(url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
            found = _Url(
                origin=Origin(parts.scheme, parts.hostname or "", port, parts.netloc),
                target=(parts.path or "/") + (f"?{parts.query}" if parts.query else ""),
            )
            if len(self._parsed) >= MAX_PARSED:
                self._parsed.clear()
            self._parsed[url] = found
        return found

    # --- one request, within every limit ---

    async def _request(
        self, method: str, url: str, *, content: bytes, headers: dict[str, str]
    ) -> Answer:
        parts = self._url(url)
        # Raw bytes are what is counted and read: no compressed answers.
        headers["Accept-Encoding"] = "identity"
        async with asyncio.timeout(self.settings.push_timeout_seconds):
            return await self._transport.request(
                parts.origin,
                method,
                parts.target,
                headers,
                content,
                limit=self.settings.push_max_response_bytes,
            )

    # --- OAuth 2.0 client credentials ---

    async def _token(self, target: Target, *, fresh: bool = False) -> str:
        key = (target.token_url or "", target.client_id or "", target.scope)
        cached = self._tokens.get(key)
        if cached is not None and not fresh and cached.expires > self._clock():
            return cached.value
        form = {"grant_type": "client_credentials"}
        if target.scope:
            form["scope"] = target.scope
        # RFC 6749 2.3.1: client id and secret form-encoded, then HTTP Basic.
        pair = f"{quote_plus(target.client_id or '')}:{quote_plus(target.secret)}"
        authorization = "Basic " + base64.b64encode(pair.encode()).decode()
        response = await self._request(
            "POST",
            target.token_url or "",
            content=urlencode(form).encode(),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json",
                "Authorization": authorization,
            },
        )
        if response.status != 200:
            raise _TokenFailed(f"token server answered HTTP {response.status}")
        try:
            answer = json.loads(response.body)
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
        except TooLarge:
            return Outcome(
                False,
                error=f"answer larger than {self.settings.push_max_response_bytes} bytes",
            )
        except TimeoutError:
            return Outcome(False, error=f"timeout after {self.settings.push_timeout_seconds} s")
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
        response = await self._request("POST", target.url, content=body, headers=headers)
        return interpret(response.status, response.headers, response.body)


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


def _retry_after(headers: Mapping[str, str]) -> timedelta | None:
    value = headers.get("retry-after")
    if value is not None and value.strip().isdigit():
        return timedelta(seconds=int(value.strip()))
    return None


def interpret(status: int, headers: Mapping[str, str], body: bytes) -> Outcome:
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
