"""Cost of the BSN check (resolvers.privacy.RefusePgnInput) per request, in-process:
the variables of a 5,000-pupil delivery, a 100-row list query's document, and
hostile text of 1 MiB. CPU time of this process (time.process_time), best of
`--rounds`; the machine is shared, so the best round is the figure.

    .venv/bin/python bench/pgn_check.py --rounds 20
"""

from __future__ import annotations

import argparse
import secrets

import resolvers.api  # noqa: F401  (it imports resolvers.privacy; import order)
from bench.support import best
from domain.privacy import contains_pgn
from resolvers.privacy import pgn_in_document, pgn_in_variables

PAGE = """query ($first: Int, $after: String) {
  entitlements(first: $first, after: $after, filter: {school: {value: "09QQ"}}) {
    totalCount pageInfo { hasNextPage endCursor }
    nodes { id variant status quantity licencesUsed licencesAvailable startDate
      activationUntilDate product { productId name } school { rioId name }
      recipients { role state failureCode failureMessage supplier { code } } } } }"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=20)
    rounds = parser.parse_args().rounds
    from graphql import parse

    eck_ids = ["https://ketenid.nl/pilot/" + secrets.token_hex(64) for _ in range(5000)]
    delivery = {
        "input": {
            "referenceId": "order-2026-000123",
            "orderNumber": "ORD-2026001",
            "orderLines": [
                {"productId": "9789001123456", "variant": "SCHOOL_PUPIL", "eckIds": eck_ids}
            ],
        }
    }
    page = parse(PAGE)
    hostile = {
        "digits and spaces": "1 " * (2**19),
        "nine-digit numbers": "123456789 " * (2**20 // 10),
        "plain text": "leerling " * (2**20 // 9),
    }
    print("| input | CPU per check |")
    print("|---|---|")
    print(
        f"| variables of a 5,000-pupil delivery (eckIds) | "
        f"{best(lambda: pgn_in_variables(delivery), rounds) * 1000:.1f} ms |"
    )
    print(
        f"| document of a 100-row entitlements page | "
        f"{best(lambda: pgn_in_document(page), rounds * 10) * 1e6:.0f} µs |"
    )
    for name, text in hostile.items():
        print(
            f"| 1 MiB of {name} | "
            f"{best(lambda t=text: contains_pgn(t), max(3, rounds // 4)) * 1000:.0f} ms |"
        )


if __name__ == "__main__":
    main()
