"""Data minimisation: the gateway never accepts, stores or repeats a pgn (a BSN or
an onderwijsnummer), whole or inside free text (DOMAIN.md §3 and §9).

The rule for text
    A *number* in a text is a run of decimal digits (ASCII or any other script's
    decimal digits), possibly in groups separated by spaces, dots or hyphens. A
    text holds a pgn when

    * a number is exactly nine digits passing the 11-test of a BSN or of an
      onderwijsnummer, written in one run or in groups of two to four digits, the
      ways a BSN is written (``123456782``, ``1234.56.782``, ``123 456 782``,
      ``12 34 56 782``), or
    * one run of a longer number is on its own exactly nine digits passing it (so
      ``klas 3 123456782`` is caught, although the whole number has ten digits).

    Other numbers are not pgns: a 13-digit EAN or a hyphenated ISBN has five 9-digit
    windows, and refusing those would refuse a good part of the catalogue; a
    reference such as ``2026-12345`` is a year and a sequence number, not a BSN
    written with a hyphen. About one in eleven 9-digit numbers passes the 11-test,
    so a 9-digit order number is sometimes refused; that is the price of never
    storing a pgn.

    Digits inside a hexadecimal identifier (a UUID, or 32 or more hex characters
    in a row: the 128 of an ECK iD, a hash) are not a number: about one ECK iD in
    forty has nine decimal digits in a row somewhere in its hex characters.

Checks are regular-expression scans without backtracking (time linear in the
text's length, run by the `re` engine, not a Python loop) and never put
the number in an error, so an error can be logged safely. The same functions
serve the transport (query text, operation and variable names, logs):
``contains_pgn`` to refuse or drop, ``redact_pgns`` to print text that may hold one.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterator
from typing import Any, Final

from stdnum.nl import bsn

#: What a redacted number is replaced with.
REDACTED: Final = "[pgn redacted]"

_PGN_DIGITS: Final = 9

# A number: decimal digits (any script: `\d` is Unicode's Nd), with spaces, dots or
# hyphens between them. No part can match in two ways, so the scan is linear.
_NUMBER: Final = re.compile(r"\d(?:[ \u00a0.\-]*\d)*")
# Nine digits with at most separators between them: a text without this holds no
# pgn (the quick test most texts stop at).
_NINE_DIGITS: Final = re.compile(r"\d(?:[ \u00a0.\-]*\d){8}")
# A value that is as a whole an ECK iD, a UUID or a hash: the most common long
# input (thousands of ECK iDs in one delivery) is answered by one match.
_WHOLE_HEX_IDENTIFIER: Final = re.compile(
    r"(?:https://ketenid\.nl/(?:201703|pilot|sppilot)/)?[0-9a-fA-F]{32,}"
    r"|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
_NOT_DIGIT: Final = re.compile(r"\D+")
_DIGITS: Final = re.compile(r"\d+")
_GROUP_OF_NINE: Final = re.compile(r"(?<!\d)\d{9}(?!\d)")
_HEX_IDENTIFIER: Final = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|[0-9a-fA-F]{32,}"
)


def is_pgn(digits: str) -> bool:
    """Nine ASCII digits that pass the BSN 11-test (remainder 0) or, starting with
    10, the onderwijsnummer's (remainder 5): python-stdnum's checksum, without its
    exception-raising validation (this runs once per 9-digit group of any text)."""
    if len(digits) != _PGN_DIGITS or not (digits.isascii() and digits.isdigit()):
        return False
    if digits == "000000000":
        return False
    remainder = bsn.checksum(digits)
    return remainder == 0 or (remainder == 5 and digits.startswith("10"))


def _ascii(digits: str) -> str:
    if digits.isascii():
        return digits
    return "".join(str(unicodedata.decimal(char)) for char in digits)


def _pgn_spans(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of every stretch of `text` that is a pgn by the rule above."""
    if len(text) < _PGN_DIGITS:  # (most names and values: no room for nine digits)
        return
    if _WHOLE_HEX_IDENTIFIER.fullmatch(text) or not _NINE_DIGITS.search(text):
        return
    # Hex identifiers are blanked out first (same length, so positions hold).
    scanned = _HEX_IDENTIFIER.sub(lambda match: "x" * len(match[0]), text)
    for number in _NUMBER.finditer(scanned):
        digits = _NOT_DIGIT.sub("", number[0])
        if len(digits) == _PGN_DIGITS:
            runs = _DIGITS.findall(number[0])
            written_as_bsn = len(runs) == 1 or all(2 <= len(run) <= 4 for run in runs)
            if written_as_bsn and is_pgn(_ascii(digits)):
                yield number.span()
        elif len(digits) > _PGN_DIGITS:
            for group in _GROUP_OF_NINE.finditer(number[0]):
                if is_pgn(_ascii(group[0])):
                    yield number.start() + group.start(), number.start() + group.end()


def contains_pgn(text: str) -> bool:
    """Does `text` hold a BSN or onderwijsnummer (module docstring)?"""
    return next(_pgn_spans(text), None) is not None


def redact_pgns(text: str) -> str:
    """`text` with every pgn in it replaced by ``[pgn redacted]``."""
    parts: list[str] = []
    at = 0
    for start, end in _pgn_spans(text):
        parts += [text[at:start], REDACTED]
        at = end
    if not parts:
        return text
    parts.append(text[at:])
    return "".join(parts)


def number_holds_pgn(value: int | float) -> bool:
    """An Int or Float input whose digits are a pgn (``111222333``, ``111222333.0``).
    Only a 9-digit integer part can be one, so huge numbers are never printed."""
    if isinstance(value, bool):
        return False
    if isinstance(value, float):
        if not math.isfinite(value):
            return False
        if not value.is_integer():
            return contains_pgn(repr(value))
        if abs(value) >= 1e9:
            return False
        value = int(value)
    return 10**8 <= abs(value) < 10**9 and is_pgn(str(abs(value)))


def redact(value: Any) -> Any:
    """Stored JSON (an event's detail, an audit row) with every pgn in its strings
    and numbers redacted; keys are kept (the gateway writes them itself)."""
    if isinstance(value, str):
        return redact_pgns(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return REDACTED if number_holds_pgn(value) else value
    if isinstance(value, dict):
        return {key: redact(item) for key, item in value.items()}
    if isinstance(value, list):
        return [redact(item) for item in value]
    return value
