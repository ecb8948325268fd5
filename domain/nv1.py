"""Rule NV-1: how a school's administration system hashes an identifier before it
leaves the school.

The Nummervoorziening never sees a BSN or onderwijsnummer. The administration
system first computes scrypt over the identifier with N=131072, r=8, p=4 and a
32-byte key, using the salt Kennisnet hands out as Base64 (decoded before use; the
salt differs per Nummervoorziening environment), the input lower-cased and UTF-8
encoded, and sends the result as 64 lower-case hex characters (DOMAIN.md §9,
seed 002 step 3). The same parameters are in Kennisnet's Java reference client
(``EckID/.../scrypter/Constants.java``).

The input is any identifier: a pupil's pgn, or a teacher's identifier (Kennisnet's
reference clients hash ``20DP teacher@school.com`` the same way; there is no pgn
for teachers).

This module only implements that first step. The stampseudonym and the ECK iD are
made from the hash inside the Nummervoorziening with secret keys; see
``domain.sandbox`` for the gateway's own, clearly different, test ids.

What is hashed (``nv1_input``): surrounding whitespace is trimmed. A value made
only of digits and the separators ``.``, ``-`` and space is a pgn: it is validated
and brought to its 9-digit form (``identifiers.validate_pgn``), because hashing
``1112.22.333`` verbatim would give a different hash than ``111222333`` and
therefore a different ECK iD, and a number that fails the 11-test is a typing
error, not an identifier. Anything else (a teacher's identifier) is hashed as
given; lower-casing is part of the hash.

Cost: one hash needs about 128 MiB (128 * r * N bytes) and about two seconds of
one core on the benchmark machine (bench/RESULTS_nv1.md); OpenSSL runs the p=4
lanes one after another, so a single hash does not use more cores.
``hash_many`` therefore spreads the work over processes. ``hashlib.scrypt``
releases the GIL while OpenSSL runs, so threads would scale as well; processes
keep the work isolated from whatever else the caller's interpreter is doing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import multiprocessing
import os
import signal
from collections import deque
from collections.abc import Generator, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from itertools import islice
from typing import Final

from domain.identifiers import IdentifierError, Problem, validate_pgn


@dataclass(frozen=True, slots=True)
class ScryptParams:
    n: int
    r: int
    p: int
    dklen: int = 32

    @property
    def maxmem(self) -> int:
        """The memory ceiling to pass to ``hashlib.scrypt``.

        OpenSSL refuses to run when its working memory, 128*r*(N+2) bytes for the
        V array plus 128*r*p bytes for B, exceeds ``maxmem``; Python's default of
        32 MiB is far below the 128 MiB NV-1 needs. The ceiling is not an
        allocation, so 1 MiB of headroom guards against OpenSSL versions that
        count a few more bytes.
        """
        return 128 * self.r * (self.n + 2) + 128 * self.r * self.p + 2**20


NV1_PARAMS: Final = ScryptParams(n=131072, r=8, p=4, dklen=32)


class SaltError(ValueError):
    """The NV-1 salt is missing or is not valid Base64."""


def decode_salt(salt_b64: str) -> bytes:
    try:
        salt = base64.b64decode(salt_b64.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SaltError("the NV-1 salt must be Base64, as Kennisnet hands it out") from None
    if not salt:
        raise SaltError("the NV-1 salt is empty")
    return salt


_PGN_CHARACTERS: Final = frozenset("0123456789 .-")


def nv1_input(identifier: str) -> str:
    """What NV-1 hashes for `identifier` (module docstring): a pgn's 9-digit form,
    or any other identifier trimmed. Raises ``IdentifierError`` for an empty value
    and for a number that is not a valid pgn (never repeating it)."""
    text = identifier.strip()
    if not text:
        raise IdentifierError("NV1", "", Problem.EMPTY, "the identifier is empty")
    if set(text) <= _PGN_CHARACTERS:
        return validate_pgn(text)
    return text


def _scrypt_hex(text: str, salt: bytes, params: ScryptParams) -> str:
    derived = hashlib.scrypt(
        text.lower().encode("utf-8"),
        salt=salt,
        n=params.n,
        r=params.r,
        p=params.p,
        dklen=params.dklen,
        maxmem=params.maxmem,
    )
    return derived.hex()


def hash_identifier(
    identifier: str, salt_b64: str, *, params: ScryptParams = NV1_PARAMS
) -> str:
    """The NV-1 hash of a pgn or any other identifier: 64 lower-case hex characters.

    Raises ``IdentifierError`` (``nv1_input``) and ``SaltError`` for a bad salt.
    ``params`` exists for tests and for Kennisnet's older published vectors;
    production code leaves it alone.
    """
    return _scrypt_hex(nv1_input(identifier), decode_salt(salt_b64), params)


def _hash_batch(batch: list[str], salt: bytes, params: ScryptParams) -> list[str]:
    return [_scrypt_hex(text, salt, params) for text in batch]


def _ignore_interrupts() -> None:
    # Ctrl-C reaches the whole process group. Only the parent decides what happens
    # next (it cancels what has not started); a worker killed half-way would break
    # the pool and bury the interrupt under a BrokenProcessPool traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _batched(items: Iterable[str], size: int) -> Iterator[list[str]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def hash_many(
    identifiers: Iterable[str],
    salt_b64: str,
    workers: int | None = None,
    *,
    params: ScryptParams = NV1_PARAMS,
    batch_size: int = 1,
) -> Generator[str, None, None]:
    """Hash identifiers across ``workers`` processes (default: all cores), in input order.

    The input is read lazily and only a small window of batches is in flight, so a
    file of any size streams with bounded memory (``Executor.map`` would submit the
    whole input up front). Each identifier goes through ``nv1_input`` in this
    process before it is sent; an invalid one raises ``IdentifierError`` when the
    stream reaches it.
    Workers are spawned rather than forked, so they inherit no threads or locks.
    One identifier per task is the default: a hash costs seconds and a task round trip
    well under a millisecond, and single tasks keep the cores evenly loaded to
    the last line; larger batches only pay off with cheap test parameters.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    salt = decode_salt(salt_b64)
    workers = workers or os.cpu_count() or 1
    batches = _batched((nv1_input(text) for text in identifiers), batch_size)
    if workers == 1:
        for batch in batches:
            yield from _hash_batch(batch, salt, params)
        return

    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_ignore_interrupts,
    )
    # Two batches per worker: one running, one queued, so no worker waits on us.
    window = 2 * workers
    pending: deque[Future[list[str]]] = deque()
    try:
        for batch in batches:
            pending.append(pool.submit(_hash_batch, batch, salt, params))
            if len(pending) >= window:
                yield from pending.popleft().result()
        while pending:
            yield from pending.popleft().result()
    finally:
        # A consumer that stops early (or an invalid identifier) must not wait for the
        # rest of the window to be hashed.
        pool.shutdown(wait=True, cancel_futures=True)
