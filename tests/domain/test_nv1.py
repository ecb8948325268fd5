"""Rule NV-1 (DOMAIN.md §9): known answers, validation first, and parallel streaming.

A real NV-1 hash costs about two seconds, so only the known-answer tests use the
real parameters (one hash, shared); everything about ordering and streaming runs
with tiny scrypt parameters through the same code.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from itertools import count, cycle, islice

import pytest

from domain.identifiers import IdentifierError, Problem
from domain.nv1 import (
    NV1_PARAMS,
    SaltError,
    ScryptParams,
    decode_salt,
    hash_identifier,
    hash_many,
    nv1_input,
)

# Kennisnet's published test salt and its two reference inputs, a pupil's pgn and a
# teacher's identifier, from its Java reference client
# (Nummervoorziening-JavaReferenceImplementation, ScryptUtilTest / AbstractUnitTest).
KENNISNET_TEST_SALT = "rktYml0MIp9TC9u6Ny6uqw=="
KENNISNET_TEST_PGN = "063138219"
KENNISNET_TEST_TEACHER = "20DP teacher@school.com"
KENNISNET_TEACHER_HASH = "0b870ff044775ef0360655c40d5b284b7e3ae2b72207a6894794d787eb019e60"
# That client's published answer for the older SchoolID parameters N=16384, r=8, p=1.
KENNISNET_SCHOOLID_PARAMS = ScryptParams(n=16384, r=8, p=1)
KENNISNET_SCHOOLID_HASH = "95237cd20963e630034620324550809a3df98bbe0774a36c356bf5dbc8a65e7b"
# Computed once with the NV-1 parameters and pasted, so any change of parameters,
# encoding or salt handling fails here.
NV1_EXPECTED_HASH = "9735dfd2235eaeb5f0300886bcc99c82ffc1d6420c4e0bde8de7218def2135fa"

CHEAP = ScryptParams(n=16, r=1, p=1)
PGNS = ["111222333", "101222331", "063138219", "999993653", "999990019"]


@pytest.fixture(scope="module")
def nv1_hash_of_test_pgn() -> str:
    return hash_identifier(KENNISNET_TEST_PGN, KENNISNET_TEST_SALT)


def test_nv1_parameters_are_those_of_the_rule() -> None:
    assert (NV1_PARAMS.n, NV1_PARAMS.r, NV1_PARAMS.p, NV1_PARAMS.dklen) == (131072, 8, 4, 32)


def test_nv1_memory_ceiling_covers_what_openssl_needs() -> None:
    needed = 128 * NV1_PARAMS.r * (NV1_PARAMS.n + 2) + 128 * NV1_PARAMS.r * NV1_PARAMS.p
    assert NV1_PARAMS.maxmem >= needed
    assert NV1_PARAMS.maxmem < 2**31  # hashlib refuses larger values


def test_nv1_hash_matches_the_pasted_known_answer(nv1_hash_of_test_pgn: str) -> None:
    assert nv1_hash_of_test_pgn == NV1_EXPECTED_HASH


def test_nv1_hashes_kennisnets_teacher_reference_input() -> None:
    # No pgn for teachers: NV-1 hashes their identifier, lower-cased, as it is.
    assert hash_identifier(KENNISNET_TEST_TEACHER, KENNISNET_TEST_SALT) == KENNISNET_TEACHER_HASH


@pytest.mark.parametrize(
    ("written", "hashed"),
    [
        ("20DP teacher@school.com", "20DP teacher@school.com"),
        ("  20DP Teacher@School.com\n", "20DP Teacher@School.com"),
        ("juf.jansen@school.nl", "juf.jansen@school.nl"),
        ("Ünïcode-leraar@school.nl", "Ünïcode-leraar@school.nl"),
        ("0631.38.219", "063138219"),
        ("063 138 219", "063138219"),
    ],
)
def test_nv1_input_is_any_identifier_trimmed_and_a_pgn_in_nine_digits(
    written: str, hashed: str
) -> None:
    assert nv1_input(written) == hashed


def test_nv1_lower_cases_and_utf8_encodes_any_identifier() -> None:
    upper = hash_identifier("Ünïcode-LERAAR@school.nl", KENNISNET_TEST_SALT, params=CHEAP)
    expected = hashlib.scrypt(
        "ünïcode-leraar@school.nl".encode(),
        salt=base64.b64decode(KENNISNET_TEST_SALT),
        n=CHEAP.n,
        r=CHEAP.r,
        p=CHEAP.p,
        dklen=32,
    ).hex()
    assert upper == expected


def test_nv1_hash_matches_scrypt_computed_independently(nv1_hash_of_test_pgn: str) -> None:
    expected = hashlib.scrypt(
        KENNISNET_TEST_PGN.lower().encode("utf-8"),
        salt=base64.b64decode(KENNISNET_TEST_SALT),
        n=131072,
        r=8,
        p=4,
        dklen=32,
        maxmem=2**30,
    ).hex()
    assert nv1_hash_of_test_pgn == expected


def test_nv1_hash_is_64_lowercase_hex(nv1_hash_of_test_pgn: str) -> None:
    assert len(nv1_hash_of_test_pgn) == 64
    assert set(nv1_hash_of_test_pgn) <= set("0123456789abcdef")


def test_hashing_reproduces_kennisnets_published_vector() -> None:
    assert (
        hash_identifier(KENNISNET_TEST_PGN, KENNISNET_TEST_SALT, params=KENNISNET_SCHOOLID_PARAMS)
        == KENNISNET_SCHOOLID_HASH
    )


@pytest.mark.parametrize("written", ["0631.38.219", " 063-138-219 ", "063 138 219\n"])
def test_formatted_pgn_hashes_like_its_nine_digits(written: str) -> None:
    assert (
        hash_identifier(written, KENNISNET_TEST_SALT, params=KENNISNET_SCHOOLID_PARAMS)
        == KENNISNET_SCHOOLID_HASH
    )


@pytest.mark.parametrize(
    ("pgn", "problem"),
    [
        ("063138218", Problem.CHECK_DIGIT),
        ("63138219", Problem.LENGTH),
        ("063-138-218", Problem.CHECK_DIGIT),
        ("", Problem.EMPTY),
        ("   ", Problem.EMPTY),
    ],
)
def test_invalid_pgn_is_refused_before_hashing(
    pgn: str, problem: Problem, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hashlib, "scrypt", _must_not_be_called)
    with pytest.raises(IdentifierError) as caught:
        hash_identifier(pgn, KENNISNET_TEST_SALT)
    assert caught.value.problem == problem


def _must_not_be_called(*args: object, **kwargs: object) -> bytes:
    raise AssertionError("scrypt ran for an invalid pgn")


@pytest.mark.parametrize("salt", ["", "   ", "not base64!", "abc"])
def test_salt_that_is_not_base64_is_refused(salt: str) -> None:
    with pytest.raises(SaltError):
        decode_salt(salt)


def test_salt_is_base64_decoded_before_use() -> None:
    assert decode_salt(KENNISNET_TEST_SALT) == base64.b64decode(KENNISNET_TEST_SALT)


@pytest.mark.parametrize("workers", [1, 2])
def test_hash_many_keeps_input_order(workers: int) -> None:
    expected = [hash_identifier(pgn, KENNISNET_TEST_SALT, params=CHEAP) for pgn in PGNS]
    got = list(hash_many(PGNS, KENNISNET_TEST_SALT, workers, params=CHEAP))
    assert got == expected


def test_hash_many_with_batches_keeps_input_order() -> None:
    expected = [hash_identifier(pgn, KENNISNET_TEST_SALT, params=CHEAP) for pgn in PGNS * 3]
    got = hash_many(PGNS * 3, KENNISNET_TEST_SALT, 2, params=CHEAP, batch_size=4)
    assert list(got) == expected


def test_hash_many_streams_an_endless_input() -> None:
    pulled = count()

    def endless() -> Iterator[str]:
        for pgn in cycle(PGNS):
            next(pulled)
            yield pgn

    stream = hash_many(endless(), KENNISNET_TEST_SALT, 2, params=CHEAP)
    first = list(islice(stream, 7))
    stream.close()
    expected = [hash_identifier(pgn, KENNISNET_TEST_SALT, params=CHEAP) for pgn in PGNS]
    assert first == list(islice(cycle(expected), 7))
    # Only a window of two tasks per worker is read ahead.
    assert next(pulled) <= 7 + 2 * 2 + 1


def test_hash_many_raises_when_the_stream_reaches_an_invalid_pgn() -> None:
    stream = hash_many([PGNS[0], "123"], KENNISNET_TEST_SALT, 1, params=CHEAP)
    assert next(stream) == hash_identifier(PGNS[0], KENNISNET_TEST_SALT, params=CHEAP)
    with pytest.raises(IdentifierError):
        next(stream)


def test_hash_many_refuses_a_bad_salt_before_reading_input() -> None:
    with pytest.raises(SaltError):
        next(hash_many(PGNS, "not base64!", 1, params=CHEAP))


def test_hash_many_refuses_an_empty_batch_size() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        next(hash_many(PGNS, KENNISNET_TEST_SALT, 1, params=CHEAP, batch_size=0))
