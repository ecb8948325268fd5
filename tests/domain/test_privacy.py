"""The pgn rule for text (domain/privacy.py), branch by branch, and its cost."""

from __future__ import annotations

import pytest
from stdnum.nl import bsn

from domain import privacy
from domain.privacy import (
    REDACTED,
    contains_pgn,
    is_pgn,
    number_holds_pgn,
    redact,
    redact_pgns,
)

BSN = "111222333"  # passes the BSN 11-test
ONDERWIJSNUMMER = "101222331"  # passes the onderwijsnummer variant
FAILS = "111252333"  # nine digits, fails both
ECK_ID_WITH_A_BSN_INSIDE = "https://ketenid.nl/201703/" + "a" * 60 + BSN + "b" * 59


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # a number that is, as a whole, nine digits passing the test
        (BSN, True),
        (ONDERWIJSNUMMER, True),
        (f"leerling bsn {BSN} onbekend", True),
        ("1112.22.333", True),  # python-stdnum's format
        ("111 222 333", True),
        ("111-222-333", True),
        ("11 12 22 333", True),
        ("111 - 222 . 333", True),  # several separators between groups
        # ...but only in groups of two to four, the ways a BSN is written
        ("1 1 1 2 2 2 3 3 3", False),
        ("2026-00002", False),  # a year and a sequence number (202600002 passes the test)
        ("REF 2026 00002", False),
        ("ORDER 1112-22333", False),
        ("11-1222333", False),
        (f"bsn:{BSN}.", True),
        (f"bsn{BSN}", True),  # letters around do not make it a word
        (f"ORD-{BSN}", True),
        ("１１１２２２３３３", True),  # full-width digits
        ("١١١٢٢٢٣٣٣", True),  # Arabic-Indic digits
        # one group of a longer number is on its own nine digits passing the test
        (f"klas 3 {BSN}", True),
        (f"{BSN} 4", True),
        # not a pgn
        (FAILS, False),
        ("12345678", False),  # eight digits: not flagged (a leading zero is not guessed)
        ("1112223334", False),  # ten digits in one run
        ("3 111 222 333", False),  # ten digits, no group of nine
        ("9789001123456", False),  # an EAN
        ("978-90-01-12345-6", False),  # a hyphenated ISBN
        ("06-12345678", False),  # a phone number
        ("NL91ABNA0417164300", False),
        ("2026-08-01", False),
        ("", False),
        ("   ", False),
        ("geen nummer", False),
        # digits inside hex identifiers are not numbers
        (ECK_ID_WITH_A_BSN_INSIDE, False),
        ("a" * 10 + BSN + "c" * 13, False),  # 32 hex characters in a row
        (f"12345678-{BSN[:4]}-{BSN[4:8]}-{BSN[8]}abc-def012345678", False),  # a UUID
        (f"leerling {ECK_ID_WITH_A_BSN_INSIDE} onbekend", False),
        # ...but a short hex-looking word is not an identifier
        (f"ab{BSN}", True),
    ],
)
def test_contains_pgn(text: str, expected: bool) -> None:
    assert contains_pgn(text) is expected


def test_is_pgn_needs_nine_ascii_digits_passing_a_test() -> None:
    assert is_pgn(BSN)
    assert is_pgn(ONDERWIJSNUMMER)
    assert not is_pgn(FAILS)
    assert not is_pgn(BSN + "0")
    assert not is_pgn("１１１２２２３３３")  # only after the scan maps digits to ASCII


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"leerling bsn {BSN} onbekend", f"leerling bsn {REDACTED} onbekend"),
        (f"{BSN} en 1112.22.333", f"{REDACTED} en {REDACTED}"),
        (f"klas 3 {BSN}", f"klas 3 {REDACTED}"),
        (f"bsn {BSN}.", f"bsn {REDACTED}."),
        ("niets te zien", "niets te zien"),
        (FAILS, FAILS),
        (ECK_ID_WITH_A_BSN_INSIDE, ECK_ID_WITH_A_BSN_INSIDE),
    ],
)
def test_redact_pgns_replaces_only_the_number(text: str, expected: str) -> None:
    assert redact_pgns(text) == expected
    assert not contains_pgn(redact_pgns(text))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (111222333, True),
        (-111222333, True),
        (111222333.0, True),
        (101222331, True),
        (111252333, False),
        (12345678, False),
        (1112223334, False),
        (10**4000, False),  # never printed: only nine-digit numbers can be one
        (1e300, False),
        (float("inf"), False),
        (float("nan"), False),
        (0.5, False),
        (True, False),
    ],
)
def test_number_holds_pgn(value: float, expected: bool) -> None:
    assert number_holds_pgn(value) is expected


def test_redact_walks_stored_json() -> None:
    stored = {
        "code": 7,
        "message": f"leerling {BSN} onbekend",
        "quantity": 111222333,
        "recipients": [{"supplierId": 3, "note": BSN}],
        "flag": True,
        "nothing": None,
    }
    assert redact(stored) == {
        "code": 7,
        "message": f"leerling {REDACTED} onbekend",
        "quantity": REDACTED,
        "recipients": [{"supplierId": 3, "note": REDACTED}],
        "flag": True,
        "nothing": None,
    }
    assert redact(None) is None


@pytest.mark.parametrize(
    "text",
    [
        "1 " * 500_000,  # a million characters, one number of 500,000 groups
        "1" * 1_000_000,  # one run of a million digits
        "a1" * 500_000,  # digits between letters
        "1-" * 500_000,
        "f" * 31 + "1" * 9 + "-" * 1_000_000,
        ("0123456789abcdef" * 2 + " ") * 30_000,  # many 32-character hex words
    ],
    ids=["groups", "run", "alternating", "hyphens", "separators", "hex-words"],
)
def test_hostile_shapes_are_one_pass_over_the_text(
    text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The 11-test runs at most once per digit group and once per number: the work
    # is linear in the text whatever its shape.
    calls = 0
    real = privacy.is_pgn

    def counting(digits: str) -> bool:
        nonlocal calls
        calls += 1
        return real(digits)

    monkeypatch.setattr(privacy, "is_pgn", counting)
    assert contains_pgn(text) is False
    assert calls <= len(text) // 2 + 2


def test_every_valid_test_bsn_of_the_sandbox_range_is_caught() -> None:
    numbers = [f"9999{n:05d}" for n in range(0, 100_000, 7)]
    for number in numbers:
        assert contains_pgn(f"bsn {number}") is bsn.is_valid(number)


def test_is_pgn_agrees_with_python_stdnum() -> None:
    import random

    from stdnum.nl import onderwijsnummer

    rng = random.Random(12)
    numbers = [f"{rng.randrange(10**9):09d}" for _ in range(20_000)]
    numbers += [f"10{rng.randrange(10**7):07d}" for _ in range(20_000)]
    numbers += ["000000000", "100000005"]
    for number in numbers:
        assert is_pgn(number) is (bsn.is_valid(number) or onderwijsnummer.is_valid(number))
