"""Sandbox ECK iDs: realistic-looking test identifiers made by the gateway itself.

This is NOT the Nummervoorziening's algorithm. The real chain hashes the pgn with
NV-1 (``domain.nv1``), turns the hash into a stampseudonym and then, with a chain
id and a sector id, into the ECK iD, using secret keys held by Kennisnet
(DOMAIN.md §9, seed 002). Those steps cannot be reproduced outside the
Nummervoorziening, so a sandbox cannot produce the ECK iD a real pupil has; it
can only produce ids of the same shape and with the same properties:

* Same shape: 128 lower-case hex characters behind a ketenid.nl prefix, so every
  validator, column width and GraphQL example behaves as with real data.
* Always the pilot prefix ``https://ketenid.nl/pilot/``, never ``/201703/``: a
  sandbox id can never be mistaken for, or stored as, a production id, and
  ``parse_eck_id(..., allow_pilot=False)`` refuses it.
* Sector-bound and stable: the same (pgn, sector, key) always gives the same id,
  another sector or another key gives an unrelated one, as in the real chain.
* Keyed: HMAC-SHA-512 over a domain-separated message of the 9-digit pgn and the
  sector. There are fewer than 10^9 pgns, so any unkeyed function of a pgn can be
  inverted by trying them all; only the key (``KETENPOORT_SANDBOX_KEY``) stops
  someone who sees a sandbox id from finding the number behind it. The 64-byte
  digest is exactly the 128 hex characters an ECK iD needs.
* Fast: no scrypt. Demo data creates thousands of pupils, and NV-1's scrypt costs
  about two seconds each; its slowness protects nothing here that the key does
  not already protect.

``test_pgns`` makes the BSNs to feed it. They are drawn from numbers beginning
with 9999, the range of the public BRP test persons (the Haal Centraal test data
uses e.g. 999993653), to keep demo data away from numbers likely to belong to a
real child. That is a precaution, not a guarantee: nothing reserves the range in
law, which is one more reason sandbox ids are pilot ids.
"""

from __future__ import annotations

import hashlib
import hmac
import random
from functools import cache
from typing import Final

from domain.identifiers import ECK_ID_PREFIXES, EckIdEnvironment, Sector, validate_pgn

SANDBOX_PREFIX: Final = ECK_ID_PREFIXES[EckIdEnvironment.PILOT]
MIN_KEY_BYTES: Final = 16

# Versioned so that a future change of construction cannot collide with old ids.
_DOMAIN_TAG: Final = b"ketenpoort/sandbox-eck-id/v1"
_TEST_PGN_PREFIX: Final = "9999"


def sandbox_eck_id(pgn: str, sector: Sector | str, key: bytes) -> str:
    """A pilot-prefixed test ECK iD for (pgn, sector), keyed with the gateway's key."""
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"the sandbox key must be at least {MIN_KEY_BYTES} bytes")
    sector = Sector(sector)
    normalised = validate_pgn(pgn).lower()
    # NUL cannot occur in the tag, a sector value or a pgn, so the fields cannot
    # run into each other.
    message = b"\x00".join((_DOMAIN_TAG, sector.value.encode(), normalised.encode("utf-8")))
    return SANDBOX_PREFIX + hmac.new(key, message, hashlib.sha512).hexdigest()


@cache
def _test_pgn_pool() -> tuple[str, ...]:
    pool = []
    for suffix in range(10_000):
        body = f"{_TEST_PGN_PREFIX}{suffix:04d}"
        # 11-test: sum(weights 9..2 * first eight digits) - check digit ≡ 0 (mod 11).
        check = sum((9 - i) * int(d) for i, d in enumerate(body)) % 11
        if check < 10:
            pool.append(f"{body}{check}")
    return tuple(pool)


def test_pgns(n: int, seed: int) -> list[str]:
    """``n`` distinct valid test BSNs, the same list for the same seed.

    About 9,000 numbers exist in the test range; asking for more raises ValueError.
    """
    pool = _test_pgn_pool()
    if not 0 <= n <= len(pool):
        raise ValueError(f"n must be between 0 and {len(pool)} (the size of the test range)")
    return random.Random(seed).sample(pool, n)


# The name starts with "test_"; keep pytest from collecting it when a test imports it.
test_pgns.__test__ = False  # type: ignore[attr-defined]
