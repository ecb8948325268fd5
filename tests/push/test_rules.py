"""Pure rules of the push: the retry schedule, which endpoint URLs are allowed,
registration checks, the meaning of an HTTP answer, the envelope's types."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime, timedelta

import pytest

from db.secrets import SecretBox, SecretUnreadable
from domain.endpoints import AddressRefused, check_registration, check_url
from domain.errors import ValidationFailed
from domain.events import EventKind
from push.client import interpret, resolve_public
from push.envelope import KINDS_OF, TYPE_OF, message_id
from push.schedule import PAUSE, after_failure, due

T0 = datetime(2026, 9, 1, 8, 30, tzinfo=UTC)
KINDS = frozenset(k.value for k in EventKind)


# --- the retry rule ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failures_before", "wait", "paused"),
    [
        (0, timedelta(minutes=1), False),
        (1, timedelta(minutes=5), False),
        (2, timedelta(hours=1), False),
        (3, timedelta(hours=24), True),
        # After the pause the rule starts again.
        (4, timedelta(minutes=1), False),
        (5, timedelta(minutes=5), False),
        (6, timedelta(hours=1), False),
        (7, timedelta(hours=24), True),
    ],
)
def test_retry_waits_after_each_failure(
    failures_before: int, wait: timedelta, paused: bool
) -> None:
    found = after_failure(failures_before, T0)
    assert found.failures == failures_before + 1
    assert found.at == T0 + wait
    assert (found.paused_until is not None) is paused
    if paused:
        assert found.paused_until == T0 + PAUSE


def test_a_longer_retry_after_is_honoured_but_never_beyond_the_pause() -> None:
    assert after_failure(0, T0, timedelta(seconds=30)).at == T0 + timedelta(minutes=1)
    assert after_failure(0, T0, timedelta(minutes=10)).at == T0 + timedelta(minutes=10)
    assert after_failure(0, T0, timedelta(days=9)).at == T0 + PAUSE
    # The pause itself is not shortened or lengthened by it.
    assert after_failure(3, T0, timedelta(minutes=2)).at == T0 + PAUSE


def test_due() -> None:
    assert due(None, T0)
    assert due(T0, T0)
    assert not due(T0 + timedelta(seconds=1), T0)


# --- addresses -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/events",
        "https://127.8.9.10/events",
        "https://10.0.0.5/events",
        "https://172.16.0.1/events",
        "https://192.168.1.1/events",
        "https://169.254.169.254/latest/meta-data",
        "https://0.0.0.0/events",
        "https://100.64.0.1/events",
        "https://[::1]/events",
        "https://[fd00::1]/events",
        "https://[fe80::1]/events",
        "https://[::ffff:127.0.0.1]/events",
        "https://224.0.0.1/events",
        "https://localhost/events",
        "https://LOCALHOST./events",
        "https://api.localhost/events",
    ],
)
def test_loopback_and_private_addresses_are_refused_in_production(url: str) -> None:
    with pytest.raises(AddressRefused):
        check_url(url, private_allowed=False)
    check_url(url.replace("https://", "http://"), private_allowed=True)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://receiver.example.nl/events", "https"),
        ("ftp://receiver.example.nl/events", "http or https"),
        ("/events", "http or https"),
        ("https://user:pw@receiver.example.nl/events", "credentials"),
        ("https://receiver.example.nl/events#x", "fragment"),
        ("https://receiver.example.nl:99999/events", "parsed"),
        ("https://receiver.example.nl/" + "x" * 2000, "longer than"),
    ],
)
def test_malformed_or_unsafe_urls_are_refused(url: str, reason: str) -> None:
    with pytest.raises(AddressRefused, match=reason):
        check_url(url, private_allowed=False)


def test_public_addresses_and_names_pass() -> None:
    check_url("https://93.184.216.34/events", private_allowed=False)
    check_url("https://receiver.example.nl/api/events", private_allowed=False)
    check_url("https://[2606:4700::1111]/events", private_allowed=False)


async def test_a_name_that_resolves_to_a_private_address_is_refused_at_connection() -> None:
    # This machine's own name resolves to a loopback or private address.
    with pytest.raises(AddressRefused, match="not allowed"):
        await resolve_public(socket.gethostname(), 443)
    with pytest.raises(AddressRefused, match="not allowed"):
        await resolve_public("127.1", 443)  # a shorthand that is not an IP literal to urlsplit
    with pytest.raises(AddressRefused, match="cannot be resolved"):
        await asyncio.wait_for(resolve_public("no-such-host.invalid", 443), 30)


# --- registration ----------------------------------------------------------------------------


def _register(**overrides: object) -> None:
    values: dict[str, object] = {
        "url": "https://receiver.example.nl/events",
        "auth": "SIGNED",
        "secret": "s" * 32,
        "token_url": None,
        "client_id": None,
        "scope": None,
        "batch_size": 100,
        "kinds": None,
        "known_kinds": KINDS,
        "private_allowed": False,
    }
    values.update(overrides)
    check_registration(**values)  # type: ignore[arg-type]


def test_a_registration_reports_every_problem_at_once() -> None:
    with pytest.raises(ValidationFailed) as raised:
        _register(
            url="http://10.1.1.1/events",
            auth="OAUTH2",
            token_url="https://127.0.0.1/token",
            client_id=None,
            batch_size=501,
            kinds=["ENTITLEMENT_CREATED", "NO_SUCH_KIND"],
        )
    fields = [e.field for e in raised.value.errors]
    assert fields == ["url", "tokenUrl", "clientId", "batchSize", "kinds.1"]


def test_a_signing_secret_must_be_long_and_a_secret_bounded() -> None:
    with pytest.raises(ValidationFailed, match="at least 32"):
        _register(secret="short")
    with pytest.raises(ValidationFailed, match="1 to 1000"):
        _register(secret="s" * 1001)
    with pytest.raises(ValidationFailed, match="at least one"):
        _register(kinds=[])
    _register()


def test_production_refuses_the_development_push_key() -> None:
    from settings import Environment, Settings

    production = {
        "environment": Environment.PRODUCTION,
        "jwt_secret": "p" * 40,
        "graphiql": False,
        "introspection": False,
        "metrics_token": "m" * 32,  # production also wants /metrics protected
    }
    with pytest.raises(ValueError, match="KETENPOORT_PUSH_SECRET_KEY"):
        Settings(**production).check()
    Settings(**production, push_secret_key="k" * 40).check()
    assert not Settings(**production, push_secret_key="k" * 40).push_private_allowed
    assert Settings(environment=Environment.TEST).push_private_allowed


# --- secrets ------------------------------------------------------------------------------------


def test_secrets_are_sealed_and_only_the_right_key_opens_them() -> None:
    box = SecretBox("one key")
    sealed = box.seal("the secret")
    assert "the secret" not in sealed
    assert box.open(sealed) == "the secret"
    assert box.seal("the secret") != sealed  # a fresh IV every time
    with pytest.raises(SecretUnreadable):
        SecretBox("another key").open(sealed)


# --- what an answer means -------------------------------------------------------------------


def test_answers_of_a_receiver() -> None:
    none: dict[str, str] = {}
    ok = interpret(200, none, b'[{"id": "a", "status": 0}, {"id": "b", "status": 2}]')
    assert ok.answered
    assert ok.answers == {"a": (0, None), "b": (2, None)}
    assert interpret(204, none, b"").answered
    refused = interpret(403, none, b'[{"id": "a", "status": 4, "statusMessage": "consent"}]')
    assert refused.answered
    assert refused.answers == {"a": (4, "consent")}
    whole = interpret(400, none, b"bad request")
    assert whole.answered
    assert whole.default_status == 1
    assert not interpret(401, none, b"").answered  # bad credentials lose nothing
    for status in (500, 502, 503, 504, 429, 408, 404, 405, 413):
        assert not interpret(status, none, b"").answered, status
    slow = interpret(429, {"retry-after": "120"}, b"")
    assert slow.retry_after == timedelta(seconds=120)
    moved = interpret(301, {"location": "https://elsewhere"}, b"")
    assert not moved.answered
    assert "not followed" in (moved.error or "")


# --- the envelope's types ---------------------------------------------------------------------


def test_every_event_kind_has_a_chain_type() -> None:
    assert set(TYPE_OF) == set(EventKind)
    assert set(KINDS_OF) == {
        "mp.Entitlement",
        "mp.EntitlementConfirmation",
        "la.InitialActivation",
        "mp.ChangeLicenseStatus",
    }
    assert message_id(7) == message_id(7) != message_id(8)
