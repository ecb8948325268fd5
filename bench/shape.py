"""Validation CPU of hostile documents (issue 12, item 1), in-process: the fragment
attack (two fragments per level, each spreading both of the level below) at a range
of levels, the widest selection the width limit allows, and an ordinary page query,
through the gateway's whole rule set (graphql-core's rules and gateway/shape.py);
for comparison, the rules they replaced (strawberry's QueryDepthLimiter and
MaxAliasesLimiter) on the attack, up to the level where they still end in time.
CPU time of this process (time.process_time), best of `--rounds`; the machine is
shared, so the best round is the figure. No database is involved.

    .venv/bin/python -m bench.shape --rounds 5
"""

from __future__ import annotations

import argparse
import os

from graphql import parse, specified_rules, validate
from strawberry.extensions import MaxAliasesLimiter, QueryDepthLimiter

from bench.support import best
from gateway.limits import gateway_schema, validation_rules
from settings import Settings

PAGE = """query ($first: Int, $after: String) {
  entitlements(first: $first, after: $after, filter: {school: {value: "09QQ"}}) {
    totalCount pageInfo { hasNextPage endCursor }
    nodes { id variant status quantity licencesUsed licencesAvailable startDate
      activationUntilDate product { productId name } school { rioId name }
      recipients { role state failureCode failureMessage supplier { code } } } } }"""


def attack(levels: int) -> str:
    parts = ["fragment A0 on Product { id }", "fragment B0 on Product { name }"]
    for level in range(1, levels + 1):
        below = f"...A{level - 1} ...B{level - 1}"
        parts += [f"fragment A{level} on Product {{ {below} }}",
                  f"fragment B{level} on Product {{ {below} }}"]
    top = f"...A{levels} ...B{levels}"
    return "\n".join(parts) + f"\n{{ products(first: 1) {{ nodes {{ {top} }} }} }}"


def widest() -> str:
    fragments = " ".join(
        f"fragment F{i} on Product {{ id name ...G{i} }} fragment G{i} on Product {{ id }}"
        for i in range(30)
    )
    spreads = " ".join(f"...F{i}" for i in range(30))
    return f"{fragments} {{ products(first: 1) {{ nodes {{ {spreads} }} }} }}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--old-up-to", type=int, default=16,
                        help="the highest attack level to run the replaced rules on")
    args = parser.parse_args()
    settings = Settings()
    schema = gateway_schema(settings)._schema
    rules = [*specified_rules, *validation_rules(settings)]
    old = [
        *specified_rules,
        *QueryDepthLimiter(max_depth=settings.max_query_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=settings.max_aliases).validation_rules,
    ]
    print(f"load average {os.getloadavg()}")
    print("| document | bytes | gateway rules (CPU) | replaced rules (CPU) |")
    print("|---|---|---|---|")
    for levels in (10, 12, 14, 16, 20, 30):
        source = attack(levels)
        document = parse(source)
        new = best(lambda d=document: validate(schema, d, rules), args.rounds)
        before = (
            f"{best(lambda d=document: validate(schema, d, old), 1) * 1000:.1f} ms"
            if levels <= args.old_up_to
            else "not run (doubles per level)"
        )
        print(f"| attack, {levels} levels | {len(source)} | {new * 1000:.2f} ms | {before} |")
    for name, source in (("widest allowed (30 spreads)", widest()), ("100-row page", PAGE)):
        document = parse(source)
        new = best(lambda d=document: validate(schema, d, rules), args.rounds)
        print(f"| {name} | {len(source)} | {new * 1000:.2f} ms | |")
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
