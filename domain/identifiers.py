"""Identifiers of the Edu-V chain: what a valid one looks like, and its one stored form.

Every identifier that enters the gateway passes through this module, so that two
parties who mean the same pupil, school or product end up with the same string in
the database (DOMAIN.md §3, seed 002 "Identiteiten").

Persons
    The ECK iD is the primary pupil identifier: ``https://ketenid.nl/201703/``
    (production), ``https://ketenid.nl/pilot/`` (the Nummervoorziening's test
    environment) or ``https://ketenid.nl/sppilot/`` (its stampseudonym pilot),
    followed by exactly 128 hex characters. Secondary identifiers (NEPRI, NEPPI,
    Basispoort id, LAS-key, eduID) are used where no ECK iD exists and always for
    teachers; they are only unique together with their scheme, and the LAS-key
    (ASI) only within one school.

Organisations
    RIO's three levels (board, provider, location) each have a primary scheme and
    secondary schemes. Most suppliers still send a BRIN6, so lookups accept any of
    them and ``guess_org_scheme`` recognises the formats that cannot be confused.

Products
    A 13-digit EAN/ISBN with a valid check digit, otherwise a UUID.

The gateway never stores a pgn (BSN or onderwijsnummer). ``refuse_pgn`` is applied
to every free-form secondary identifier, and an error about a pgn never repeats
the number in its message or ``value`` so that logging the error cannot leak it.

Normalisation rule
    Variants that carry no information and that common tools produce by accident
    are normalised; anything that changes an identifier's structure is refused
    with a message that names the part, so the sending system gets fixed instead
    of the gateway silently disagreeing with the rest of the chain.

    ECK iD, normalised:
      * surrounding whitespace is trimmed (spreadsheet cells, ``echo`` output);
      * the whole string is lower-cased. The 128 characters are a hash written in
        hex, so case carries nothing (Java's ``printHexBinary`` emits upper case,
        which is why Kennisnet's reference client lower-cases explicitly); URL
        scheme and host are case-insensitive (RFC 3986 §3.1, §3.2.2); and the
        environment segment is one of three fixed words.
    ECK iD, refused:
      * ``http://`` instead of ``https://``: a different URI, not a different
        spelling. Parties compare ECK iDs as exact strings, so a supplier that
        builds ``http://`` ids by hand would fail everywhere else in the chain;
      * a trailing slash, query, fragment or anything else after the 128 hex
        characters, for the same reason;
      * any non-ASCII character, checked before lower-casing so that look-alikes
        (the Kelvin sign lower-cases to ``k``) cannot turn into a valid id;
      * with ``allow_pilot=False``, the pilot and stampseudonym-pilot prefixes, so
        production can refuse test identifiers (including this gateway's own
        sandbox ids, which use the pilot prefix).

    Secondary person identifiers are opaque strings issued by someone else (an
    IdP, Basispoort, a LAS): only surrounding whitespace is trimmed and case is
    kept, because we cannot know that the issuer compares case-insensitively.
    The exception is an eduID UUID, which is lower-cased like every UUID here.

    RIO codes are trimmed and their letters upper-cased (DUO writes ``104A158``,
    ``09QQ00``); the DigiDelivery id is kept exactly as given because it is
    case-sensitive.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Final

from stdnum import ean, isbn
from stdnum.nl import bsn, onderwijsnummer

from domain.privacy import contains_pgn


class Problem(StrEnum):
    """What is wrong with a value; stable strings that API errors can map to codes."""

    EMPTY = "empty"
    PREFIX = "prefix"
    ENVIRONMENT = "environment"
    LENGTH = "length"
    ALPHABET = "alphabet"
    FORMAT = "format"
    CHECK_DIGIT = "check_digit"
    FORBIDDEN = "forbidden"
    SCHEME = "scheme"


class IdentifierError(ValueError):
    """An identifier that the gateway refuses, with the part that is wrong.

    ``scheme`` names the identifier kind (``ECK_ID``, ``OA_ID``, ``PRODUCT_ID``,
    ``PGN``, ...), ``problem`` a ``Problem`` value, ``value`` what was received
    (redacted when it may be a pgn) and ``message`` an English sentence for users.
    """

    def __init__(self, scheme: str, value: str, problem: str, message: str) -> None:
        super().__init__(message)
        self.scheme = str(scheme)
        self.value = value
        self.problem = problem
        self.message = message

    def __repr__(self) -> str:
        return (
            f"IdentifierError(scheme={self.scheme!r}, problem={self.problem!r}, "
            f"message={self.message!r})"
        )


def _redacted(raw: str) -> str:
    return f"<{len(raw)} characters redacted>"


# --------------------------------------------------------------------------- persons


class Sector(StrEnum):
    """The four categories of the pseudonymisation regulation; an ECK iD is bound to one."""

    PO = "po"
    VO = "vo"
    MBO = "mbo"
    HO = "ho"


class EckIdEnvironment(StrEnum):
    PRODUCTION = "production"
    PILOT = "pilot"
    SPPILOT = "sppilot"


ECK_ID_PREFIXES: Final[dict[EckIdEnvironment, str]] = {
    EckIdEnvironment.PRODUCTION: "https://ketenid.nl/201703/",
    EckIdEnvironment.PILOT: "https://ketenid.nl/pilot/",
    EckIdEnvironment.SPPILOT: "https://ketenid.nl/sppilot/",
}
ECK_ID_HEX_LENGTH: Final = 128
_HEX_DIGITS: Final = frozenset("0123456789abcdef")
_HEX_128: Final = re.compile(r"[0-9a-f]{128}")
_ECK_HOST: Final = "ketenid.nl/"


@dataclass(frozen=True, slots=True)
class EckId:
    """A valid ECK iD in its stored form (see the module docstring for the normalisation)."""

    value: str
    environment: EckIdEnvironment

    @property
    def hex(self) -> str:
        return self.value[len(ECK_ID_PREFIXES[self.environment]) :]

    @property
    def is_production(self) -> bool:
        return self.environment is EckIdEnvironment.PRODUCTION

    def __str__(self) -> str:
        return self.value


def _eck_error(raw: str, problem: Problem, message: str) -> IdentifierError:
    return IdentifierError("ECK_ID", raw, problem, message)


def _eck_prefix_error(raw: str, lowered: str) -> IdentifierError:
    expected = ", ".join(f"{prefix} ({env.value})" for env, prefix in ECK_ID_PREFIXES.items())
    if lowered.startswith("http://" + _ECK_HOST):
        return _eck_error(
            raw,
            Problem.PREFIX,
            "ECK iD must start with https://, not http://; ECK iDs are compared as exact "
            "strings across the chain, so the sending system must use the issued form",
        )
    if lowered.startswith("https://" + _ECK_HOST):
        segment = lowered[len("https://" + _ECK_HOST) :].split("/", 1)[0]
        return _eck_error(
            raw,
            Problem.PREFIX,
            f"ECK iD has unknown environment segment {segment!r} after https://ketenid.nl/; "
            "expected 201703 (production), pilot or sppilot",
        )
    return _eck_error(raw, Problem.PREFIX, f"ECK iD must start with one of: {expected}")


def parse_eck_id(raw: str, allow_pilot: bool = True) -> EckId:
    """Validate and normalise an ECK iD; raise ``IdentifierError`` naming the wrong part."""
    text = raw.strip()
    if not text:
        raise _eck_error(raw, Problem.EMPTY, "ECK iD is empty")
    if not text.isascii():
        # Checked before lower-casing: the Kelvin sign U+212A lower-cases to "k".
        char = next(c for c in text if not c.isascii())
        raise _eck_error(raw, Problem.ALPHABET, f"ECK iD contains the non-ASCII character {char!r}")
    lowered = text.lower()
    environment = next(
        (env for env, prefix in ECK_ID_PREFIXES.items() if lowered.startswith(prefix)), None
    )
    if environment is None:
        raise _eck_prefix_error(raw, lowered)
    prefix = ECK_ID_PREFIXES[environment]

    rest = lowered[len(prefix) :]
    if _HEX_128.fullmatch(rest):
        # The common case, checked in one C-level match (bulk deliveries and rosters
        # parse thousands); the loop below only runs to explain what is wrong.
        if environment is EckIdEnvironment.PRODUCTION or allow_pilot:
            return EckId(value=lowered, environment=environment)
    for position, char in enumerate(rest, start=1):
        if char in _HEX_DIGITS:
            continue
        if char in "/?#":
            raise _eck_error(
                raw,
                Problem.FORMAT,
                f"ECK iD has {char!r} after {position - 1} hex characters; nothing may "
                "follow the 128 hex characters (no trailing slash, query or fragment)",
            )
        raise _eck_error(
            raw,
            Problem.ALPHABET,
            f"ECK iD has {char!r} at position {position} after the prefix; only the hex "
            "characters 0-9 and a-f are allowed",
        )
    if len(rest) != ECK_ID_HEX_LENGTH:
        raise _eck_error(
            raw,
            Problem.LENGTH,
            f"ECK iD has {len(rest)} hex characters after the prefix; "
            f"{ECK_ID_HEX_LENGTH} are required",
        )
    if environment is not EckIdEnvironment.PRODUCTION and not allow_pilot:
        raise _eck_error(
            raw,
            Problem.ENVIRONMENT,
            f"ECK iD is from the {environment.value} environment ({prefix}); "
            "only production ECK iDs (https://ketenid.nl/201703/) are accepted here",
        )
    return EckId(value=lowered, environment=environment)


def is_production_eck_id(raw: str) -> bool:
    """True only for a valid production ECK iD; pilot ids and invalid strings give False."""
    try:
        return parse_eck_id(raw).is_production
    except IdentifierError:
        return False


# ------------------------------------------------------------------------------ pgn

_PGN_SEPARATORS: Final = str.maketrans("", "", " .-")


def validate_pgn(raw: str) -> str:
    """Return the 9-digit form of a BSN or onderwijsnummer, or raise ``IdentifierError``.

    The separators python-stdnum prints (``1112.22.333``) and spaces or hyphens are
    removed. Exactly nine digits are required: python-stdnum would zero-pad shorter
    input, which turns ``12`` into the valid BSN ``000000012``; a number whose
    leading zero a spreadsheet dropped gets a hint instead of a guess. A 9-digit
    number starting with 10 is an onderwijsnummer if it passes the onderwijsnummer
    variant of the 11-test (remainder 5), otherwise a BSN (remainder 0).
    """
    redacted = _redacted(raw)
    digits = raw.strip().translate(_PGN_SEPARATORS)
    if not digits:
        raise IdentifierError("PGN", redacted, Problem.EMPTY, "pgn is empty")
    if not (digits.isascii() and digits.isdigit()):
        raise IdentifierError(
            "PGN",
            redacted,
            Problem.ALPHABET,
            "pgn may only contain digits (and the separators '.', '-' or spaces)",
        )
    if len(digits) != 9:
        hint = " (did a spreadsheet drop a leading zero?)" if len(digits) == 8 else ""
        raise IdentifierError(
            "PGN",
            redacted,
            Problem.LENGTH,
            f"pgn has {len(digits)} digits; a BSN or onderwijsnummer has 9{hint}",
        )
    if bsn.is_valid(digits) or onderwijsnummer.is_valid(digits):
        return digits
    raise IdentifierError(
        "PGN",
        redacted,
        Problem.CHECK_DIGIT,
        "pgn fails the 11-test: it is neither a valid BSN nor a valid onderwijsnummer",
    )


def looks_like_pgn(raw: str) -> bool:
    """True if the value is, after removing separators, a valid BSN or onderwijsnummer.

    About one in eleven random 9-digit numbers passes the 11-test, so a numeric key
    of 9 digits can be refused although it is not a pgn. That is the price of never
    storing one; 8-digit and shorter numbers are not flagged, to keep that price low.
    """
    try:
        validate_pgn(raw)
    except IdentifierError:
        return False
    return True


def refuse_pgn(raw: str, scheme: str = "PGN") -> None:
    """Raise ``IdentifierError(problem="forbidden")`` if the value is or holds a pgn
    (``domain.privacy.contains_pgn``: ``LAS-111222333`` is refused like ``111222333``)."""
    if contains_pgn(raw):
        raise IdentifierError(
            scheme,
            _redacted(raw),
            Problem.FORBIDDEN,
            f"{scheme} value holds a BSN or onderwijsnummer (9 digits passing the "
            "11-test); the gateway never stores a pgn, send an ECK iD or another "
            "identifier instead",
        )


# ----------------------------------------------------------- secondary person ids


class PersonIdScheme(StrEnum):
    """Person identifier schemes (seed 002); a secondary id is unique only with its scheme."""

    ECK_ID = "ECK_ID"
    NEPRI = "NEPRI"
    NEPPI = "NEPPI"
    BPI = "BPI"
    ASI = "ASI"
    EDUID = "EDUID"

    @property
    def school_scoped(self) -> bool:
        return is_school_scoped(self)


_SCHOOL_SCOPED_PERSON_SCHEMES: Final = frozenset({PersonIdScheme.ASI})


def is_school_scoped(scheme: PersonIdScheme | str) -> bool:
    """True if an identifier of this scheme is only unique within one school.

    The LAS-key is generated by one school's administration system. NEPPI also names
    the administration and school domain, but inside the value itself, so the value
    alone is unique; NEPRI carries its realm the same way.
    """
    return PersonIdScheme(scheme) in _SCHOOL_SCOPED_PERSON_SCHEMES


MAX_SECONDARY_ID_LENGTH: Final = 255
_LABEL: Final = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_NEPRI_RE: Final = re.compile(rf"(?P<user>[^\s@]+)@(?P<realm>{_LABEL}(?:\.{_LABEL})*)")
_NEPPI_RE: Final = re.compile(
    rf"(?P<pupil>[^\s@]+)@(?P<admin>[A-Za-z0-9]+)\.(?P<domain>{_LABEL}(?:\.{_LABEL})+)"
)
_UUID_RE: Final = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
_NIL_UUID: Final = "00000000-0000-0000-0000-000000000000"
_EDUID_EPPN_RE: Final = re.compile(r"(?P<local>[^\s@]+)@eduid\.nl", re.IGNORECASE)
_DIGITS_RE: Final = re.compile(r"[0-9]{1,20}")
_WHITESPACE_RE: Final = re.compile(r"\s")


def _check_opaque(scheme: str, raw: str, text: str) -> None:
    if not text:
        raise IdentifierError(scheme, raw, Problem.EMPTY, f"{scheme} is empty")
    if len(text) > MAX_SECONDARY_ID_LENGTH:
        raise IdentifierError(
            scheme,
            raw,
            Problem.LENGTH,
            f"{scheme} has {len(text)} characters; at most {MAX_SECONDARY_ID_LENGTH} are allowed",
        )
    if _WHITESPACE_RE.search(text) or not text.isprintable():
        raise IdentifierError(
            scheme,
            raw,
            Problem.ALPHABET,
            f"{scheme} may not contain whitespace or control characters",
        )


def _validate_nepri(raw: str, text: str) -> str:
    match = _NEPRI_RE.fullmatch(text)
    if match is None:
        raise IdentifierError(
            "NEPRI",
            raw,
            Problem.FORMAT,
            "NEPRI (nlEduPersonRealId) must look like user@realm with one '@', a "
            "non-empty user and a domain-like realm, e.g. pietjepukkelen@petteflatcollege",
        )
    refuse_pgn(match["user"], "NEPRI")
    return text


def _validate_neppi(raw: str, text: str) -> str:
    match = _NEPPI_RE.fullmatch(text)
    if match is None:
        raise IdentifierError(
            "NEPPI",
            raw,
            Problem.FORMAT,
            "NEPPI (nlEduPersonProfileId) must look like "
            "pupilnumber@adminnumber.schooldomain, e.g. 95312@1.kennisnet.nl",
        )
    refuse_pgn(match["pupil"], "NEPPI")
    return text


def _validate_eduid(raw: str, text: str) -> str:
    if _UUID_RE.fullmatch(text):
        lowered = text.lower()
        if lowered == _NIL_UUID:
            raise IdentifierError("EDUID", raw, Problem.FORMAT, "eduID may not be the nil UUID")
        return lowered
    match = _EDUID_EPPN_RE.fullmatch(text)
    if match is None:
        raise IdentifierError(
            "EDUID",
            raw,
            Problem.FORMAT,
            "eduID must be a UUID (the identifier SURF eduID releases to a service) or "
            "an eduID principal name ending in @eduid.nl",
        )
    refuse_pgn(match["local"], "EDUID")
    # The domain is DNS and therefore case-free; the local part belongs to SURF.
    return f"{match['local']}@eduid.nl"


def validate_person_identifier(
    scheme: PersonIdScheme | str, raw: str, *, allow_pilot: bool = True
) -> str:
    """Validate a person identifier of the given scheme and return its stored form.

    * ECK_ID: ``parse_eck_id``.
    * NEPRI: ``user@realm``; the seed's own example realm ``petteflatcollege`` has no
      dot, so a realm is one or more DNS labels, not necessarily a full domain.
    * NEPPI: ``pupilnumber@adminnumber.schooldomain`` (``95312@1.kennisnet.nl``).
    * BPI: digits generated by Basispoort, at most 20 (any 64-bit number).
    * ASI: the LAS-key, opaque, at most 255 characters, no whitespace.
    * EDUID: neither DOMAIN.md nor seed 002 fixes a format (the seed points to
      SURF's documentation). SURF eduID releases a per-service pseudonymous UUID,
      and its principal name has the form ``...@eduid.nl``; both are accepted.

    Every free-form part is also checked with ``refuse_pgn``.
    """
    try:
        scheme = PersonIdScheme(scheme)
    except ValueError:
        known = ", ".join(s.value for s in PersonIdScheme)
        raise IdentifierError(
            str(scheme), raw, Problem.SCHEME, f"unknown person identifier scheme; use {known}"
        ) from None
    if scheme is PersonIdScheme.ECK_ID:
        return parse_eck_id(raw, allow_pilot=allow_pilot).value

    text = raw.strip()
    _check_opaque(scheme.value, raw, text)
    if scheme is PersonIdScheme.NEPRI:
        return _validate_nepri(raw, text)
    if scheme is PersonIdScheme.NEPPI:
        return _validate_neppi(raw, text)
    if scheme is PersonIdScheme.EDUID:
        return _validate_eduid(raw, text)
    if scheme is PersonIdScheme.BPI and not _DIGITS_RE.fullmatch(text):
        raise IdentifierError(
            "BPI", raw, Problem.FORMAT, "BPI (Basispoort id) must be 1 to 20 digits"
        )
    refuse_pgn(text, scheme.value)
    return text


# ---------------------------------------------------------------------- organisations


class OrgLevel(StrEnum):
    BOARD = "BOARD"
    PROVIDER = "PROVIDER"
    LOCATION = "LOCATION"


class OrgIdScheme(StrEnum):
    """RIO identifier schemes (seed 002); OIE_CODE is the BRIN4, VE_CODE the BRIN6."""

    OB_ID = "OB_ID"
    BGE_CODE = "BGE_CODE"
    OA_ID = "OA_ID"
    OIE_CODE = "OIE_CODE"
    VE_CODE = "VE_CODE"
    BP_ID = "BP_ID"
    DD_ID = "DD_ID"
    AS_ID = "AS_ID"
    OL_CODE = "OL_CODE"


BRIN4: Final = OrgIdScheme.OIE_CODE
BRIN6: Final = OrgIdScheme.VE_CODE

PRIMARY_SCHEME: Final[dict[OrgLevel, OrgIdScheme]] = {
    OrgLevel.BOARD: OrgIdScheme.OB_ID,
    OrgLevel.PROVIDER: OrgIdScheme.OA_ID,
    OrgLevel.LOCATION: OrgIdScheme.OL_CODE,
}

SECONDARY_SCHEMES: Final[dict[OrgLevel, frozenset[OrgIdScheme]]] = {
    OrgLevel.BOARD: frozenset({OrgIdScheme.BGE_CODE}),
    OrgLevel.PROVIDER: frozenset(
        {
            OrgIdScheme.OIE_CODE,
            OrgIdScheme.VE_CODE,
            OrgIdScheme.BP_ID,
            OrgIdScheme.DD_ID,
            OrgIdScheme.AS_ID,
        }
    ),
    OrgLevel.LOCATION: frozenset({OrgIdScheme.VE_CODE}),
}


def levels_for_scheme(scheme: OrgIdScheme | str) -> frozenset[OrgLevel]:
    """The levels an identifier of this scheme can point at (a BRIN6 can name both a
    provider and a location, so a lookup by VE_CODE must search both)."""
    scheme = OrgIdScheme(scheme)
    return frozenset(
        level
        for level in OrgLevel
        if PRIMARY_SCHEME[level] is scheme or scheme in SECONDARY_SCHEMES[level]
    )


# (pattern, description) for the schemes with a fixed shape; letters upper-cased first.
_ORG_FORMATS: Final[dict[OrgIdScheme, tuple[re.Pattern[str], str]]] = {
    OrgIdScheme.OB_ID: (re.compile(r"[0-9]{3}B[0-9]{3}"), "3 digits, 'B', 3 digits, e.g. 106B996"),
    OrgIdScheme.OA_ID: (re.compile(r"[0-9]{3}A[0-9]{3}"), "3 digits, 'A', 3 digits, e.g. 104A158"),
    OrgIdScheme.OL_CODE: (
        re.compile(r"[0-9]{3}X[0-9]{3}"),
        "3 digits, 'X', 3 digits, e.g. 112X995",
    ),
    OrgIdScheme.OIE_CODE: (
        re.compile(r"[0-9]{2}[A-Z]{2}"),
        "BRIN4: 2 digits and 2 letters, e.g. 09QQ",
    ),
    OrgIdScheme.VE_CODE: (
        re.compile(r"[0-9]{2}[A-Z]{2}[0-9]{2}"),
        "BRIN6: 2 digits, 2 letters, 2 digits, e.g. 09QQ00",
    ),
    # DUO's bevoegd-gezag numbers are five digits (seed 002's example is 41645).
    OrgIdScheme.BGE_CODE: (re.compile(r"[0-9]{5}"), "5 digits, e.g. 41645"),
    OrgIdScheme.BP_ID: (re.compile(r"[0-9]{1,20}"), "1 to 20 digits (generated by Basispoort)"),
    OrgIdScheme.DD_ID: (
        _UUID_RE,
        "a GUID, e.g. 3F2504E0-4F89-11D3-9A0C-0305E82C3301 (kept exactly as given)",
    ),
}
_UPPERCASED_ORG_SCHEMES: Final = frozenset(
    {
        OrgIdScheme.OB_ID,
        OrgIdScheme.OA_ID,
        OrgIdScheme.OL_CODE,
        OrgIdScheme.OIE_CODE,
        OrgIdScheme.VE_CODE,
    }
)
# The schemes whose shapes cannot be confused with each other or with free text.
_GUESSABLE_ORG_SCHEMES: Final = (
    OrgIdScheme.OB_ID,
    OrgIdScheme.OA_ID,
    OrgIdScheme.OL_CODE,
    OrgIdScheme.OIE_CODE,
    OrgIdScheme.VE_CODE,
)


def guess_org_scheme(raw: str) -> OrgIdScheme | None:
    """The scheme of an organisation id pasted without one, if its shape is unambiguous.

    Only OB_ID, OA_ID, OL_CODE, BRIN4 and BRIN6 have shapes of their own; digits
    alone could be a BGE_CODE or a Basispoort id, so they give None.
    """
    text = raw.strip().upper()
    for scheme in _GUESSABLE_ORG_SCHEMES:
        if _ORG_FORMATS[scheme][0].fullmatch(text):
            return scheme
    return None


def validate_org_identifier(scheme: OrgIdScheme | str, raw: str) -> str:
    """Validate an organisation identifier of the given scheme; return its stored form."""
    try:
        scheme = OrgIdScheme(scheme)
    except ValueError:
        known = ", ".join(s.value for s in OrgIdScheme)
        raise IdentifierError(
            str(scheme),
            raw,
            Problem.SCHEME,
            f"unknown organisation identifier scheme; use {known}",
        ) from None
    text = raw.strip()
    if not text:
        raise IdentifierError(scheme.value, raw, Problem.EMPTY, f"{scheme.value} is empty")
    if scheme is OrgIdScheme.AS_ID:
        _check_opaque(scheme.value, raw, text)
        return text
    if scheme in _UPPERCASED_ORG_SCHEMES:
        text = text.upper()
    pattern, description = _ORG_FORMATS[scheme]
    if not pattern.fullmatch(text):
        guessed = guess_org_scheme(text)
        hint = f"; it looks like a {guessed.value}" if guessed and guessed is not scheme else ""
        raise IdentifierError(
            scheme.value,
            raw,
            Problem.FORMAT,
            f"{scheme.value} must be {description}{hint}",
        )
    return text


# ---------------------------------------------------------------------------- products


class ProductIdKind(StrEnum):
    EAN = "EAN"
    UUID = "UUID"


_NUMBERISH_RE: Final = re.compile(r"[0-9][0-9 -]*[0-9Xx]")


@functools.lru_cache(maxsize=4096)
def validate_product_id(raw: str) -> tuple[str, ProductIdKind]:
    """A productId is a 13-digit EAN/ISBN-13 (products for sale) or else a UUID.

    Hyphenated ISBNs are accepted and stored as 13 compact digits. An ISBN-10 is
    refused rather than converted: the shop must send the id it sells under, but
    the message names the ISBN-13 to use. UUIDs are stored in lower-case canonical
    form; only the hyphenated 8-4-4-4-12 spelling is accepted.
    """
    text = raw.strip()
    if not text:
        raise IdentifierError("PRODUCT_ID", raw, Problem.EMPTY, "productId is empty")
    if _UUID_RE.fullmatch(text):
        lowered = text.lower()
        if lowered == _NIL_UUID:
            raise IdentifierError(
                "PRODUCT_ID", raw, Problem.FORMAT, "productId may not be the nil UUID"
            )
        return lowered, ProductIdKind.UUID
    if not _NUMBERISH_RE.fullmatch(text):
        raise IdentifierError(
            "PRODUCT_ID",
            raw,
            Problem.FORMAT,
            "productId must be a 13-digit EAN/ISBN or a UUID (8-4-4-4-12 hex)",
        )
    digits = ean.compact(text)
    if len(digits) == 10 and isbn.is_valid(text):
        raise IdentifierError(
            "PRODUCT_ID",
            raw,
            Problem.FORMAT,
            f"productId is an ISBN-10; send the 13-digit ISBN {isbn.to_isbn13(digits)}",
        )
    if not digits.isdigit() or len(digits) != 13:
        raise IdentifierError(
            "PRODUCT_ID",
            raw,
            Problem.FORMAT,
            f"productId has {len(digits)} characters where an EAN/ISBN has 13 digits",
        )
    if not ean.is_valid(digits):
        expected = ean.calc_check_digit(digits[:-1])
        raise IdentifierError(
            "PRODUCT_ID",
            raw,
            Problem.CHECK_DIGIT,
            f"productId {digits} has check digit {digits[-1]}; a valid EAN ends in {expected}",
        )
    return digits, ProductIdKind.EAN


# ------------------------------------------------------------------------------ periods


class PeriodError(ValueError):
    """A period whose end lies before its start; ``field`` names the end field."""

    def __init__(self, field_start: str, field_end: str, start: date, end: date) -> None:
        self.field_start = field_start
        self.field_end = field_end
        self.field = field_end
        self.start = start
        self.end = end
        self.message = (
            f"{field_end} ({end.isoformat()}) lies before {field_start} ({start.isoformat()})"
        )
        super().__init__(self.message)


def validate_period(
    start: date,
    end: date,
    *,
    field_start: str = "startDate",
    field_end: str = "activationUntilDate",
) -> None:
    """Both dates are inclusive, so a one-day period (start == end) is valid."""
    if end < start:
        raise PeriodError(field_start, field_end, start, end)
