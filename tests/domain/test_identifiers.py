"""Identifier validation: valid and invalid examples of every scheme (DOMAIN.md §3)."""

from __future__ import annotations

from datetime import date

import pytest

from domain.identifiers import (
    ECK_ID_PREFIXES,
    PRIMARY_SCHEME,
    SECONDARY_SCHEMES,
    EckIdEnvironment,
    IdentifierError,
    OrgIdScheme,
    OrgLevel,
    PeriodError,
    PersonIdScheme,
    Problem,
    ProductIdKind,
    Sector,
    guess_org_scheme,
    is_production_eck_id,
    is_school_scoped,
    levels_for_scheme,
    looks_like_pgn,
    parse_eck_id,
    refuse_pgn,
    validate_org_identifier,
    validate_period,
    validate_person_identifier,
    validate_pgn,
    validate_product_id,
)

HEX = "1a5c9c7203901866532c2d72ce056e1d29cacc70836fe2bc3a517f3f9a53eed3" * 2
PRODUCTION = "https://ketenid.nl/201703/"
PILOT = "https://ketenid.nl/pilot/"
SPPILOT = "https://ketenid.nl/sppilot/"
# The example in seed 002 ("Identiteiten").
SEED_ECK_ID = (
    "https://ketenid.nl/201703/1a5c9c7203901866532c2d72ce056e1d29cacc70836fe2bc3a517f3f9a53eed3"
    "d77ef370ad6dcf80b3f34ced1c547c7d2e679e8e47002355f938213b3656b206"
)
VALID_BSN = "111222333"
VALID_ONDERWIJSNUMMER = "101222331"


# ------------------------------------------------------------------------------ ECK iD


@pytest.mark.parametrize(
    ("raw", "environment"),
    [
        (SEED_ECK_ID, EckIdEnvironment.PRODUCTION),
        (PRODUCTION + HEX, EckIdEnvironment.PRODUCTION),
        (PILOT + HEX, EckIdEnvironment.PILOT),
        (SPPILOT + HEX, EckIdEnvironment.SPPILOT),
    ],
)
def test_eck_id_with_a_known_prefix_and_128_hex_is_valid(
    raw: str, environment: EckIdEnvironment
) -> None:
    eck_id = parse_eck_id(raw)
    assert eck_id.value == raw
    assert eck_id.environment is environment
    assert eck_id.hex == raw[len(ECK_ID_PREFIXES[environment]) :]
    assert str(eck_id) == raw


def test_eck_id_with_uppercase_hex_is_normalised() -> None:
    assert parse_eck_id(PRODUCTION + HEX.upper()).value == PRODUCTION + HEX


def test_eck_id_with_surrounding_whitespace_is_trimmed() -> None:
    assert parse_eck_id(f"  {PRODUCTION}{HEX}\r\n").value == PRODUCTION + HEX


@pytest.mark.parametrize(
    "prefix",
    ["HTTPS://KETENID.NL/201703/", "https://KetenID.nl/201703/", "HTTPS://ketenid.nl/PILOT/"],
)
def test_eck_id_scheme_host_and_environment_case_is_normalised(prefix: str) -> None:
    assert parse_eck_id(prefix + HEX).value == prefix.lower() + HEX


@pytest.mark.parametrize(
    ("raw", "problem", "fragment"),
    [
        ("", Problem.EMPTY, "empty"),
        ("   ", Problem.EMPTY, "empty"),
        ("http://ketenid.nl/201703/" + HEX, Problem.PREFIX, "https://, not http://"),
        ("https://ketenid.nl/2017/" + HEX, Problem.PREFIX, "unknown environment segment '2017'"),
        ("https://ketenid.nl/" + HEX, Problem.PREFIX, "unknown environment segment"),
        ("https://example.org/201703/" + HEX, Problem.PREFIX, "must start with one of"),
        (HEX, Problem.PREFIX, "must start with one of"),
        (
            PRODUCTION + HEX[:-1],
            Problem.LENGTH,
            "ECK iD has 127 hex characters after the prefix; 128 are required",
        ),
        (PRODUCTION + HEX + "a", Problem.LENGTH, "129 hex characters"),
        (PRODUCTION, Problem.LENGTH, "0 hex characters"),
        (PRODUCTION + HEX[:-1] + "g", Problem.ALPHABET, "'g' at position 128"),
        (PRODUCTION + HEX[:10] + " " + HEX[11:], Problem.ALPHABET, "' ' at position 11"),
        (PRODUCTION + "é" + HEX[1:], Problem.ALPHABET, "non-ASCII character 'é'"),
        ("https://\u212aetenid.nl/201703/" + HEX, Problem.ALPHABET, "non-ASCII"),
        (PRODUCTION + HEX + "/", Problem.FORMAT, "no trailing slash"),
        (PRODUCTION + HEX + "?x=1", Problem.FORMAT, "nothing may follow"),
        (PRODUCTION + HEX + "#top", Problem.FORMAT, "nothing may follow"),
    ],
)
def test_invalid_eck_id_names_the_wrong_part(raw: str, problem: Problem, fragment: str) -> None:
    with pytest.raises(IdentifierError) as caught:
        parse_eck_id(raw)
    assert caught.value.problem == problem
    assert caught.value.scheme == "ECK_ID"
    assert caught.value.value == raw
    assert fragment in caught.value.message
    assert str(caught.value) == caught.value.message


@pytest.mark.parametrize("prefix", [PILOT, SPPILOT])
def test_production_can_refuse_pilot_eck_ids(prefix: str) -> None:
    assert parse_eck_id(prefix + HEX).environment is not EckIdEnvironment.PRODUCTION
    with pytest.raises(IdentifierError) as caught:
        parse_eck_id(prefix + HEX, allow_pilot=False)
    assert caught.value.problem == Problem.ENVIRONMENT


def test_production_eck_id_passes_when_pilot_ids_are_refused() -> None:
    assert parse_eck_id(PRODUCTION + HEX, allow_pilot=False).is_production


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (PRODUCTION + HEX, True),
        (PRODUCTION.upper() + HEX, True),
        (PILOT + HEX, False),
        (SPPILOT + HEX, False),
        (PRODUCTION + HEX[:-1], False),
        ("not an eck id", False),
    ],
)
def test_is_production_eck_id_is_true_only_for_valid_production_ids(
    raw: str, expected: bool
) -> None:
    assert is_production_eck_id(raw) is expected


def test_sectors_are_the_four_categories_of_the_regulation() -> None:
    assert [s.value for s in Sector] == ["po", "vo", "mbo", "ho"]


# --------------------------------------------------------------------------------- pgn


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (VALID_BSN, VALID_BSN),
        ("1112.22.333", VALID_BSN),
        ("111-222-333", VALID_BSN),
        (" 111 222 333\n", VALID_BSN),
        ("063138219", "063138219"),
        (VALID_ONDERWIJSNUMMER, VALID_ONDERWIJSNUMMER),
        ("1012.22.331", VALID_ONDERWIJSNUMMER),
    ],
)
def test_valid_pgn_is_reduced_to_nine_digits(raw: str, expected: str) -> None:
    assert validate_pgn(raw) == expected


@pytest.mark.parametrize(
    ("raw", "problem", "fragment"),
    [
        ("", Problem.EMPTY, "empty"),
        ("111252333", Problem.CHECK_DIGIT, "11-test"),
        ("101222332", Problem.CHECK_DIGIT, "11-test"),
        ("63138219", Problem.LENGTH, "leading zero"),
        ("12", Problem.LENGTH, "2 digits"),
        ("1112223334", Problem.LENGTH, "10 digits"),
        ("11122233A", Problem.ALPHABET, "only contain digits"),
        ("١١١٢٢٢٣٣٣", Problem.ALPHABET, "only contain digits"),
    ],
)
def test_invalid_pgn_is_refused_with_the_reason(raw: str, problem: Problem, fragment: str) -> None:
    with pytest.raises(IdentifierError) as caught:
        validate_pgn(raw)
    assert caught.value.problem == problem
    assert fragment in caught.value.message


@pytest.mark.parametrize("raw", ["111252333", "11122233", VALID_BSN + "4"])
def test_pgn_error_never_repeats_the_number(raw: str) -> None:
    with pytest.raises(IdentifierError) as caught:
        validate_pgn(raw)
    for text in (caught.value.value, caught.value.message, repr(caught.value)):
        assert raw[:8] not in text


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (VALID_BSN, True),
        ("1112.22.333", True),
        (VALID_ONDERWIJSNUMMER, True),
        ("111252333", False),
        ("063138219", True),
        ("63138219", False),
        ("LL100001", False),
        ("", False),
    ],
)
def test_looks_like_pgn_recognises_bsn_and_onderwijsnummer(raw: str, expected: bool) -> None:
    assert looks_like_pgn(raw) is expected


def test_refuse_pgn_raises_forbidden_without_repeating_the_number() -> None:
    with pytest.raises(IdentifierError) as caught:
        refuse_pgn(VALID_BSN, "ASI")
    assert caught.value.problem == Problem.FORBIDDEN
    assert caught.value.scheme == "ASI"
    assert VALID_BSN not in caught.value.value
    assert VALID_BSN not in caught.value.message


def test_refuse_pgn_lets_other_values_pass() -> None:
    refuse_pgn("LL100001")
    refuse_pgn("111252333")


# -------------------------------------------------------------- secondary person ids


@pytest.mark.parametrize(
    ("scheme", "raw", "expected"),
    [
        (PersonIdScheme.ECK_ID, PRODUCTION + HEX.upper(), PRODUCTION + HEX),
        (PersonIdScheme.ECK_ID, PILOT + HEX, PILOT + HEX),
        (
            PersonIdScheme.NEPRI,
            "pietjepukkelen@petteflatcollege",
            "pietjepukkelen@petteflatcollege",
        ),
        (PersonIdScheme.NEPRI, " Jan.Jansen@School-A.nl ", "Jan.Jansen@School-A.nl"),
        (PersonIdScheme.NEPPI, "95312@1.kennisnet.nl", "95312@1.kennisnet.nl"),
        (PersonIdScheme.NEPPI, "L95312@12.school.example.nl", "L95312@12.school.example.nl"),
        (PersonIdScheme.BPI, "12345678", "12345678"),
        (PersonIdScheme.BPI, "0012", "0012"),
        (PersonIdScheme.ASI, "LL100001", "LL100001"),
        (PersonIdScheme.ASI, " Ab-12/x ", "Ab-12/x"),
        (
            PersonIdScheme.EDUID,
            "5D0B8A3E-2F7B-4C55-9E51-3B8C6A0F1D22",
            "5d0b8a3e-2f7b-4c55-9e51-3b8c6a0f1d22",
        ),
        (PersonIdScheme.EDUID, "xyz123@EduID.NL", "xyz123@eduid.nl"),
        ("NEPRI", "user@realm", "user@realm"),
    ],
)
def test_valid_person_identifier_is_normalised(
    scheme: PersonIdScheme | str, raw: str, expected: str
) -> None:
    assert validate_person_identifier(scheme, raw) == expected


@pytest.mark.parametrize(
    ("scheme", "raw", "problem"),
    [
        (PersonIdScheme.ECK_ID, PRODUCTION + HEX[:-1], Problem.LENGTH),
        (PersonIdScheme.NEPRI, "pietjepukkelen", Problem.FORMAT),
        (PersonIdScheme.NEPRI, "a@b@c", Problem.FORMAT),
        (PersonIdScheme.NEPRI, "@realm", Problem.FORMAT),
        (PersonIdScheme.NEPRI, "user@", Problem.FORMAT),
        (PersonIdScheme.NEPRI, "user@-realm", Problem.FORMAT),
        (PersonIdScheme.NEPRI, "user@realm..nl", Problem.FORMAT),
        (PersonIdScheme.NEPRI, "us er@realm", Problem.ALPHABET),
        (PersonIdScheme.NEPRI, f"{VALID_BSN}@school.nl", Problem.FORBIDDEN),
        (PersonIdScheme.NEPPI, "95312@kennisnet", Problem.FORMAT),
        (PersonIdScheme.NEPPI, "95312@1.kennisnet", Problem.FORMAT),
        (PersonIdScheme.NEPPI, "@1.kennisnet.nl", Problem.FORMAT),
        (PersonIdScheme.NEPPI, f"{VALID_BSN}@1.kennisnet.nl", Problem.FORBIDDEN),
        (PersonIdScheme.BPI, "12ab", Problem.FORMAT),
        (PersonIdScheme.BPI, "1" * 21, Problem.FORMAT),
        (PersonIdScheme.BPI, VALID_BSN, Problem.FORBIDDEN),
        (PersonIdScheme.ASI, "", Problem.EMPTY),
        (PersonIdScheme.ASI, "LL 100001", Problem.ALPHABET),
        (PersonIdScheme.ASI, "LL\x00100001", Problem.ALPHABET),
        (PersonIdScheme.ASI, "x" * 256, Problem.LENGTH),
        (PersonIdScheme.ASI, "1112.22.333", Problem.FORBIDDEN),
        (PersonIdScheme.EDUID, "00000000-0000-0000-0000-000000000000", Problem.FORMAT),
        (PersonIdScheme.EDUID, "xyz123@example.org", Problem.FORMAT),
        (PersonIdScheme.EDUID, "5d0b8a3e2f7b4c559e513b8c6a0f1d22", Problem.FORMAT),
        (PersonIdScheme.EDUID, f"{VALID_BSN}@eduid.nl", Problem.FORBIDDEN),
        ("BSN", VALID_BSN, Problem.SCHEME),
    ],
)
def test_invalid_person_identifier_is_refused(
    scheme: PersonIdScheme | str, raw: str, problem: Problem
) -> None:
    with pytest.raises(IdentifierError) as caught:
        validate_person_identifier(scheme, raw)
    assert caught.value.problem == problem


def test_person_eck_id_can_refuse_pilot_ids() -> None:
    with pytest.raises(IdentifierError) as caught:
        validate_person_identifier(PersonIdScheme.ECK_ID, PILOT + HEX, allow_pilot=False)
    assert caught.value.problem == Problem.ENVIRONMENT


@pytest.mark.parametrize(
    ("scheme", "scoped"),
    [
        (PersonIdScheme.ECK_ID, False),
        (PersonIdScheme.NEPRI, False),
        (PersonIdScheme.NEPPI, False),
        (PersonIdScheme.BPI, False),
        (PersonIdScheme.ASI, True),
        (PersonIdScheme.EDUID, False),
    ],
)
def test_only_the_las_key_is_scoped_to_a_school(scheme: PersonIdScheme, scoped: bool) -> None:
    assert is_school_scoped(scheme) is scoped
    assert is_school_scoped(scheme.value) is scoped
    assert scheme.school_scoped is scoped


# ----------------------------------------------------------------------- organisations


@pytest.mark.parametrize(
    ("scheme", "raw", "expected"),
    [
        (OrgIdScheme.OB_ID, "106B996", "106B996"),
        (OrgIdScheme.OB_ID, " 106b996 ", "106B996"),
        (OrgIdScheme.BGE_CODE, "41645", "41645"),
        (OrgIdScheme.OA_ID, "104a158", "104A158"),
        (OrgIdScheme.OIE_CODE, "09qq", "09QQ"),
        (OrgIdScheme.VE_CODE, "09QQ00", "09QQ00"),
        (OrgIdScheme.VE_CODE, "09qq00", "09QQ00"),
        (OrgIdScheme.BP_ID, "123456", "123456"),
        (
            OrgIdScheme.DD_ID,
            "3f2504e0-4F89-11d3-9A0C-0305e82c3301",
            "3f2504e0-4F89-11d3-9A0C-0305e82c3301",
        ),
        (OrgIdScheme.AS_ID, "school-42", "school-42"),
        (OrgIdScheme.AS_ID, "Vestiging/A", "Vestiging/A"),
        (OrgIdScheme.OL_CODE, "112x995", "112X995"),
        ("OA_ID", "104A158", "104A158"),
    ],
)
def test_valid_org_identifier_is_normalised(
    scheme: OrgIdScheme | str, raw: str, expected: str
) -> None:
    assert validate_org_identifier(scheme, raw) == expected


def test_digidelivery_id_keeps_its_case() -> None:
    raw = "AbCdEf01-2345-6789-abCD-ef0123456789"
    assert validate_org_identifier(OrgIdScheme.DD_ID, raw) == raw


@pytest.mark.parametrize(
    ("scheme", "raw", "problem", "fragment"),
    [
        (OrgIdScheme.OB_ID, "106A996", Problem.FORMAT, "looks like a OA_ID"),
        (OrgIdScheme.OB_ID, "1066996", Problem.FORMAT, "106B996"),
        (OrgIdScheme.BGE_CODE, "4164", Problem.FORMAT, "5 digits"),
        (OrgIdScheme.BGE_CODE, "41645a", Problem.FORMAT, "5 digits"),
        (OrgIdScheme.OA_ID, "09QQ00", Problem.FORMAT, "looks like a VE_CODE"),
        (OrgIdScheme.OA_ID, "1044158", Problem.FORMAT, "104A158"),
        (OrgIdScheme.OIE_CODE, "9QQ", Problem.FORMAT, "BRIN4"),
        (OrgIdScheme.OIE_CODE, "09QQ00", Problem.FORMAT, "looks like a VE_CODE"),
        (OrgIdScheme.VE_CODE, "09QQ0", Problem.FORMAT, "BRIN6"),
        (OrgIdScheme.VE_CODE, "09QQ", Problem.FORMAT, "looks like a OIE_CODE"),
        (OrgIdScheme.BP_ID, "12a", Problem.FORMAT, "digits"),
        (OrgIdScheme.DD_ID, "not-a-guid", Problem.FORMAT, "GUID"),
        (OrgIdScheme.AS_ID, "a b", Problem.ALPHABET, "whitespace"),
        (OrgIdScheme.AS_ID, "x" * 256, Problem.LENGTH, "255"),
        (OrgIdScheme.OL_CODE, "1123995", Problem.FORMAT, "112X995"),
        (OrgIdScheme.OL_CODE, "  ", Problem.EMPTY, "empty"),
        ("BRIN", "09QQ", Problem.SCHEME, "unknown"),
    ],
)
def test_invalid_org_identifier_is_refused_with_the_expected_shape(
    scheme: OrgIdScheme | str, raw: str, problem: Problem, fragment: str
) -> None:
    with pytest.raises(IdentifierError) as caught:
        validate_org_identifier(scheme, raw)
    assert caught.value.problem == problem
    assert fragment in caught.value.message


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("106B996", OrgIdScheme.OB_ID),
        ("104a158", OrgIdScheme.OA_ID),
        ("112X995", OrgIdScheme.OL_CODE),
        ("09QQ", OrgIdScheme.OIE_CODE),
        (" 09qq00 ", OrgIdScheme.VE_CODE),
        ("41645", None),
        ("123456", None),
        ("3f2504e0-4f89-11d3-9a0c-0305e82c3301", None),
        ("09QQ000", None),
        ("", None),
    ],
)
def test_guess_org_scheme_recognises_only_unambiguous_formats(
    raw: str, expected: OrgIdScheme | None
) -> None:
    assert guess_org_scheme(raw) is expected


def test_each_level_has_its_rio_primary_scheme() -> None:
    assert PRIMARY_SCHEME == {
        OrgLevel.BOARD: OrgIdScheme.OB_ID,
        OrgLevel.PROVIDER: OrgIdScheme.OA_ID,
        OrgLevel.LOCATION: OrgIdScheme.OL_CODE,
    }


def test_secondary_schemes_follow_the_rio_table() -> None:
    assert SECONDARY_SCHEMES[OrgLevel.BOARD] == {OrgIdScheme.BGE_CODE}
    assert SECONDARY_SCHEMES[OrgLevel.PROVIDER] == {
        OrgIdScheme.OIE_CODE,
        OrgIdScheme.VE_CODE,
        OrgIdScheme.BP_ID,
        OrgIdScheme.DD_ID,
        OrgIdScheme.AS_ID,
    }
    assert SECONDARY_SCHEMES[OrgLevel.LOCATION] == {OrgIdScheme.VE_CODE}


@pytest.mark.parametrize(
    ("scheme", "levels"),
    [
        (OrgIdScheme.VE_CODE, {OrgLevel.PROVIDER, OrgLevel.LOCATION}),
        (OrgIdScheme.OB_ID, {OrgLevel.BOARD}),
        (OrgIdScheme.BGE_CODE, {OrgLevel.BOARD}),
        (OrgIdScheme.OIE_CODE, {OrgLevel.PROVIDER}),
        (OrgIdScheme.OL_CODE, {OrgLevel.LOCATION}),
    ],
)
def test_brin6_points_at_both_provider_and_location(
    scheme: OrgIdScheme, levels: set[OrgLevel]
) -> None:
    assert levels_for_scheme(scheme) == levels


def test_every_org_scheme_belongs_to_some_level() -> None:
    assert all(levels_for_scheme(scheme) for scheme in OrgIdScheme)


# ---------------------------------------------------------------------------- products


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("9780306406157", ("9780306406157", ProductIdKind.EAN)),
        ("978-0-306-40615-7", ("9780306406157", ProductIdKind.EAN)),
        (" 978 0 306 40615 7 ", ("9780306406157", ProductIdKind.EAN)),
        ("4006381333931", ("4006381333931", ProductIdKind.EAN)),
        (
            "5D0B8A3E-2F7B-4C55-9E51-3B8C6A0F1D22",
            ("5d0b8a3e-2f7b-4c55-9e51-3b8c6a0f1d22", ProductIdKind.UUID),
        ),
    ],
)
def test_valid_product_id_is_an_ean_or_a_uuid(
    raw: str, expected: tuple[str, ProductIdKind]
) -> None:
    assert validate_product_id(raw) == expected


@pytest.mark.parametrize(
    ("raw", "problem", "fragment"),
    [
        ("9780306406158", Problem.CHECK_DIGIT, "ends in 7"),
        ("978-0-306-40615-8", Problem.CHECK_DIGIT, "check digit 8"),
        ("0306406152", Problem.FORMAT, "13-digit ISBN 9780306406157"),
        ("978030640615", Problem.FORMAT, "13"),
        ("12345", Problem.FORMAT, "13"),
        ("hello", Problem.FORMAT, "EAN/ISBN or a UUID"),
        ("5d0b8a3e2f7b4c559e513b8c6a0f1d22", Problem.FORMAT, "UUID"),
        ("00000000-0000-0000-0000-000000000000", Problem.FORMAT, "nil UUID"),
        ("", Problem.EMPTY, "empty"),
    ],
)
def test_invalid_product_id_is_refused(raw: str, problem: Problem, fragment: str) -> None:
    with pytest.raises(IdentifierError) as caught:
        validate_product_id(raw)
    assert caught.value.problem == problem
    assert caught.value.scheme == "PRODUCT_ID"
    assert fragment in caught.value.message


# ----------------------------------------------------------------------------- periods


@pytest.mark.parametrize(
    ("start", "end"),
    [(date(2025, 8, 1), date(2026, 7, 31)), (date(2025, 8, 1), date(2025, 8, 1))],
)
def test_period_ending_on_or_after_its_start_is_valid(start: date, end: date) -> None:
    validate_period(start, end)


def test_period_ending_before_its_start_names_the_end_field() -> None:
    with pytest.raises(PeriodError) as caught:
        validate_period(date(2025, 8, 2), date(2025, 8, 1))
    assert caught.value.field == "activationUntilDate"
    assert (
        caught.value.message
        == "activationUntilDate (2025-08-01) lies before startDate (2025-08-02)"
    )


def test_period_error_uses_the_callers_field_names() -> None:
    with pytest.raises(PeriodError) as caught:
        validate_period(
            date(2025, 8, 2),
            date(2025, 8, 1),
            field_start="startDate",
            field_end="minExpirationDate",
        )
    assert caught.value.field == "minExpirationDate"
    assert isinstance(caught.value, ValueError)
