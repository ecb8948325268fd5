"""Sandbox ECK iDs: pilot-prefixed, keyed, sector-bound, stable, and cheap."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from stdnum.nl import bsn

from domain import sandbox
from domain.identifiers import (
    EckIdEnvironment,
    IdentifierError,
    Problem,
    Sector,
    is_production_eck_id,
    parse_eck_id,
)

KEY = b"ketenpoort-test-sandbox-key"
PGN = "999993653"
# Computed once and pasted: a change of construction would silently re-key all demo data.
EXPECTED_VO = (
    "https://ketenid.nl/pilot/8042ce757f70cbd4c08f89b9e40ca31c926364687960b94408f6b35561da0ed2"
    "63e44daf82ea3a8a1f4055fd14b731a85c7c3a46de7375b8aa29050919e8398f"
)


def test_sandbox_eck_id_matches_the_pasted_known_answer() -> None:
    assert sandbox.sandbox_eck_id(PGN, Sector.VO, KEY) == EXPECTED_VO


def test_sandbox_eck_id_is_hmac_sha512_over_a_domain_separated_message() -> None:
    message = b"ketenpoort/sandbox-eck-id/v1\x00vo\x00" + PGN.encode()
    digest = hmac.new(KEY, message, hashlib.sha512).hexdigest()
    assert sandbox.sandbox_eck_id(PGN, Sector.VO, KEY) == "https://ketenid.nl/pilot/" + digest


@pytest.mark.parametrize("sector", list(Sector))
def test_sandbox_eck_id_is_a_valid_pilot_id_never_a_production_one(sector: Sector) -> None:
    value = sandbox.sandbox_eck_id(PGN, sector, KEY)
    assert parse_eck_id(value).environment is EckIdEnvironment.PILOT
    assert not is_production_eck_id(value)
    with pytest.raises(IdentifierError):
        parse_eck_id(value, allow_pilot=False)


def test_sandbox_eck_id_is_stable_for_the_same_pgn_sector_and_key() -> None:
    first = sandbox.sandbox_eck_id(PGN, Sector.PO, KEY)
    assert sandbox.sandbox_eck_id(PGN, "po", KEY) == first
    assert sandbox.sandbox_eck_id("9999.93.653", Sector.PO, KEY) == first


def test_sandbox_eck_id_differs_per_sector() -> None:
    ids = {sandbox.sandbox_eck_id(PGN, sector, KEY) for sector in Sector}
    assert len(ids) == len(Sector)


def test_sandbox_eck_id_differs_per_key() -> None:
    other = b"another-sandbox-key-of-the-gateway"
    assert sandbox.sandbox_eck_id(PGN, Sector.PO, KEY) != sandbox.sandbox_eck_id(
        PGN, Sector.PO, other
    )


def test_sandbox_eck_id_differs_per_pgn() -> None:
    assert sandbox.sandbox_eck_id(PGN, Sector.PO, KEY) != sandbox.sandbox_eck_id(
        "999990019", Sector.PO, KEY
    )


def test_sandbox_refuses_a_short_key() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        sandbox.sandbox_eck_id(PGN, Sector.PO, b"short")


def test_sandbox_refuses_an_invalid_pgn() -> None:
    with pytest.raises(IdentifierError) as caught:
        sandbox.sandbox_eck_id("999993654", Sector.PO, KEY)
    assert caught.value.problem == Problem.CHECK_DIGIT


def test_sandbox_refuses_an_unknown_sector() -> None:
    with pytest.raises(ValueError, match="wo"):
        sandbox.sandbox_eck_id(PGN, "wo", KEY)


def test_sandbox_never_runs_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    def scrypt(*args: object, **kwargs: object) -> bytes:
        raise AssertionError("the sandbox must stay fast enough for demo data")

    monkeypatch.setattr(hashlib, "scrypt", scrypt)
    pgns = sandbox.test_pgns(1000, seed=7)
    ids = [sandbox.sandbox_eck_id(pgn, Sector.VO, KEY) for pgn in pgns]
    assert len(set(ids)) == 1000


def test_test_pgns_are_reproducible_for_the_same_seed() -> None:
    assert sandbox.test_pgns(50, seed=7) == sandbox.test_pgns(50, seed=7)


def test_test_pgns_differ_between_seeds() -> None:
    assert sandbox.test_pgns(50, seed=7) != sandbox.test_pgns(50, seed=8)


def test_test_pgns_are_distinct_valid_bsns_in_the_test_range() -> None:
    pgns = sandbox.test_pgns(2000, seed=1)
    assert len(set(pgns)) == 2000
    assert all(bsn.is_valid(pgn) and pgn.startswith("9999") for pgn in pgns)


@pytest.mark.parametrize("n", [-1, 100_000])
def test_test_pgns_refuses_more_than_the_test_range_holds(n: int) -> None:
    with pytest.raises(ValueError, match="test range"):
        sandbox.test_pgns(n, seed=1)


def test_test_pgns_of_zero_is_empty() -> None:
    assert sandbox.test_pgns(0, seed=1) == []
