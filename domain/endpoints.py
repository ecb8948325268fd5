"""What a supplier's events endpoint must look like before the gateway pushes to
it (issue 18.1 and 18.7), as pure checks.

* The URL is an absolute http(s) URL of at most 2,000 characters, without
  credentials or a fragment. In production (unless the operator allows private
  addresses) it must be https, and its host must not be a loopback, private,
  link-local or otherwise non-public address: the gateway must never be turned
  against its own network. A host *name* is checked again against every
  address it resolves to, at every connection (push/client.py).
* OAuth 2.0 client credentials need the token server's URL (same rules), a
  client id and a secret; a signing secret needs at least 32 characters.
* A batch holds 1 to 500 events.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

from domain.errors import FieldError, StatusCode, ValidationFailed

MAX_URL = 2000
MAX_SECRET = 1000
MIN_SIGNING_SECRET = 32
MAX_BATCH = 500


class AddressRefused(ValueError):
    """The URL may not be used (scheme, host, or an address that is not public)."""


def is_public(address: str) -> bool:
    """A routable public unicast address (IPv4-mapped IPv6 judged as IPv4)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check_url(url: str, *, private_allowed: bool) -> None:
    """Raise AddressRefused for a URL that can never be used."""
    if len(url) > MAX_URL:
        raise AddressRefused(f"the URL is longer than {MAX_URL:,} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise AddressRefused(f"the URL cannot be parsed: {error}") from error
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise AddressRefused("the URL must be an absolute http or https URL")
    if parts.username is not None or parts.password is not None:
        raise AddressRefused("the URL must not carry credentials")
    if parts.fragment:
        raise AddressRefused("the URL must not have a fragment")
    if port == 0:
        raise AddressRefused("the URL's port must not be 0")
    if private_allowed:
        return
    if parts.scheme != "https":
        raise AddressRefused("an endpoint must use https (private addresses are not allowed)")
    host = parts.hostname.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        raise AddressRefused("loopback addresses are not allowed")
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        return  # a name: checked against what it resolves to, at every connection
    if not is_public(str(literal)):
        raise AddressRefused(f"{literal} is a loopback, private or reserved address")


def check_registration(
    *,
    url: str | None,
    auth: str | None,
    secret: str | None,
    token_url: str | None,
    client_id: str | None,
    scope: str | None,
    batch_size: int | None,
    kinds: Iterable[str] | None,
    known_kinds: frozenset[str],
    private_allowed: bool,
) -> None:
    """Every problem of a registration or change at once (ValidationFailed). For a
    change, a None is a field left as it is; `auth` and `secret` are then the
    resulting values."""
    problems: list[FieldError] = []

    def problem(field: str, message: str, code: StatusCode = StatusCode.FIELD_MISSING) -> None:
        problems.append(FieldError(code, field, message))

    if url is not None:
        try:
            check_url(url, private_allowed=private_allowed)
        except AddressRefused as error:
            problem("url", str(error), StatusCode.OTHER)
    if secret is not None and not (0 < len(secret) <= MAX_SECRET):
        problem("secret", f"the secret must have 1 to {MAX_SECRET} characters")
    if auth == "OAUTH2":
        if not token_url:
            problem("tokenUrl", "OAuth 2.0 client credentials need the token server's URL")
        else:
            try:
                check_url(token_url, private_allowed=private_allowed)
            except AddressRefused as error:
                problem("tokenUrl", str(error), StatusCode.OTHER)
        if not client_id:
            problem("clientId", "OAuth 2.0 client credentials need a client id")
        elif len(client_id) > 200:
            problem("clientId", "the client id has more than 200 characters")
        if scope is not None and len(scope) > 500:
            problem("scope", "the scope has more than 500 characters")
    elif auth == "SIGNED" and secret is not None and len(secret) < MIN_SIGNING_SECRET:
        problem("secret", f"a signing secret needs at least {MIN_SIGNING_SECRET} characters")
    if batch_size is not None and not (1 <= batch_size <= MAX_BATCH):
        problem("batchSize", f"a batch holds 1 to {MAX_BATCH} events", StatusCode.OTHER)
    if kinds is not None:
        kinds = list(kinds)
        if not kinds:
            problem("kinds", "name at least one event kind, or leave kinds out for all")
        for index, kind in enumerate(kinds):
            if kind not in known_kinds:
                problem(f"kinds.{index}", "unknown event kind", StatusCode.OTHER)
    if problems:
        raise ValidationFailed(problems)
