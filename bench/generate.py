"""A national-scale data set for the benchmarks: one large board by default (100
schools, 100,000 pupils, 1,000,000 entitlements, 2,000,000 licences), written into
a migrated PostgreSQL database with COPY.

Reproducible: one seeded `random.Random` decides everything, and dates are placed
relative to the school year of `today` (the same seed on the same day gives the
same rows). Sized by arguments; every school gets the same profile, so the quick
size (a tenth) has the same shape per school as the full one.

What it looks like, per school (1,000 pupils at the default sizes):

* pupils in groups of 25, each with an ECK iD, enrolled in the current school
  period; a catalogue of 120 products from four publishers, sold by three shops
  (each product at a school through one shop);
* 90% individual SCHOOL_PUPIL entitlements (one pupil each, nine per pupil) and
  10% open SCHOOL_GROUP entitlements (25 per group, quantity 25 to 32): about a
  dozen products per pupil;
* statuses mostly LINK_READY; some ENTITLED and PROVISIONED that still wait for the
  licence office or the portal (a part of them failed with an agreed code),
  CANCELLED, BLOCKED, and 3% of last year's (ENDED, their licences expired);
* licences on 80% of the individual entitlements that can be activated and on the
  open ones up to the licence total, activated mostly in the first school week
  (around 08:30) and the rest of late August and September, a tail until today;
* the dashboard provider `bench-dashboard` activated in full by 85% of the schools;
  5% gave it ENTITLEMENTS only and 10% nothing (so a board summary lists the
  schools it leaves out); the portal `bench-portal` by all.

ECK iDs are the pilot prefix plus 128 hex digits from the seeded generator, not
`domain.sandbox.sandbox_eck_id`: the benchmark needs only their shape and
uniqueness, and 100,000 HMACs plus a key buy nothing here (ids are never derived
from a pgn, so nothing about a real child can leak).

The load bypasses triggers and foreign-key checks (`session_replication_role =
replica`, the standard bulk-load switch; needs a superuser, otherwise the load
runs with them, slower), then rebuilds the dashboard summaries in two grouped
statements, sets the sequences and runs VACUUM ANALYZE. No events or audit rows
are written: the benchmarks read the current state.

    .venv/bin/python -m bench.generate --schools 100 --pupils 100000 \\
        --entitlements 1000000 --licences 2000000 [--seed 2026] [--url postgresql://…]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
from stdnum import ean

from bench.support import raw_url

ECK_PREFIX = "https://ketenid.nl/pilot/"
GROUP_SIZE = 25
PRODUCTS = 120  # half for individual entitlements, half for groups
SHOPS = 3
PUBLISHERS = 4
OPEN_SHARE = 0.10
INDIVIDUAL_ACTIVATED = 0.8
BOARD_RIO = "900B001"

# (status, share, from last year) in the order they are drawn.
STATUSES: list[tuple[str, float, bool]] = [
    ("LINK_READY", 0.880, False),
    ("PROVISIONED", 0.035, False),
    ("ENTITLED", 0.025, False),
    ("CANCELLED", 0.020, False),
    ("BLOCKED", 0.010, False),
    ("LINK_READY", 0.030, True),  # last year's: ENDED
]
ACTIVATABLE = {"LINK_READY", "CANCELLED", "BLOCKED"}


@dataclass(frozen=True)
class Size:
    schools: int
    pupils: int
    entitlements: int
    licences: int

    def describe(self) -> str:
        return (
            f"{self.schools:,} schools, {self.pupils:,} pupils, "
            f"{self.entitlements:,} entitlements, {self.licences:,} licences"
        )


QUICK = Size(10, 10_000, 100_000, 200_000)
FULL = Size(100, 100_000, 1_000_000, 2_000_000)


@dataclass
class Generated:
    """What the benchmarks need to know about the data set."""

    size: Size
    board_rio: str
    school_rios: list[str]
    consenting_rios: list[str]
    dashboard: str
    shops: list[str]
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    bypassed_triggers: bool = True


def product_code(n: int) -> str:
    body = f"97895{n:07d}"
    return body + ean.calc_check_digit(body)


def school_rio(i: int) -> str:
    return f"{900 + i // 1000}A{i % 1000:03d}"


def consent_of(i: int, types: list[str]) -> list[str]:
    """What school `i` activated for the dashboard: every tenth nothing, every
    twentieth (from the ninth) ENTITLEMENTS only, the rest everything."""
    if i % 10 == 9:
        return []
    if i % 20 == 8:
        return ["ENTITLEMENTS"]
    return types


def school_year(today: date) -> tuple[date, date]:
    start = date(today.year if today.month >= 8 else today.year - 1, 8, 1)
    return start, date(start.year + 1, 7, 31)


def _first_monday(after: date) -> date:
    return after + timedelta(days=(7 - after.weekday()) % 7)


class Plan:
    """Everything drawn from the seed, with helpers for timestamps."""

    def __init__(self, size: Size, seed: int, today: date) -> None:
        self.size = size
        self.rng = random.Random(seed)
        self.today = today
        self.now = datetime.now(UTC)
        self.year_start, self.year_end = school_year(today)
        self.last_start = date(self.year_start.year - 1, 8, 1)
        self.last_end = date(self.year_start.year, 7, 31)
        pupils_per_school = size.pupils // size.schools
        if pupils_per_school < GROUP_SIZE:
            raise ValueError("at least 25 pupils per school")
        per_school = size.entitlements // size.schools
        individual = per_school - round(per_school * OPEN_SHARE)
        if individual > pupils_per_school * (PRODUCTS // 2):
            raise ValueError("more individual entitlements per pupil than products: more pupils")

    def activation_moment(self, last_year: bool) -> datetime:
        """When a licence was activated: the first school week around 08:30 for most,
        the rest of late August and September, then a tail until today."""
        rng = self.rng
        start = self.last_start if last_year else self.year_start
        first_day = _first_monday(date(start.year, 8, 28))
        draw = rng.random()
        if draw < 0.55:
            day = first_day + timedelta(days=rng.randrange(5))
        elif draw < 0.80:
            day = date(start.year, 8, 20) + timedelta(days=rng.randrange(42))
        else:
            end = date(start.year + 1, 6, 30) if last_year else self.today
            span = max(1, (end - date(start.year, 10, 1)).days)
            day = date(start.year, 10, 1) + timedelta(days=rng.randrange(span))
        if rng.random() < 0.7:
            minutes = max(420, min(1080, int(rng.gauss(510, 20))))  # around 08:30
        else:
            minutes = rng.randrange(420, 1320)
        # Amsterdam is UTC+2 in late summer; a rough offset keeps the day right.
        moment = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(
            minutes=minutes - 120, seconds=rng.randrange(60)
        )
        return min(moment, self.now - timedelta(hours=1))


# --- reference data (small, plain INSERTs) ----------------------------------------------------


async def _reference(conn: asyncpg.Connection, plan: Plan) -> dict[str, Any]:
    size, rng = plan.size, plan.rng
    suppliers: dict[str, tuple[str, list[str]]] = {
        **{f"bench-shop-{n}": (f"Bench shop {n}", ["seller"]) for n in range(1, SHOPS + 1)},
        **{
            f"bench-publisher-{n}": (f"Bench publisher {n}", ["licensor"])
            for n in range(1, PUBLISHERS + 1)
        },
        "bench-portal": ("Bench portal", ["portal"]),
        "bench-dashboard": ("Bench dashboard", ["dashboard"]),
        "bench-school-admin": ("Bench school administrator", ["school"]),
        "operator": ("Operator", ["operator"]),
    }
    ids: dict[str, int] = {}
    for code, (name, roles) in suppliers.items():
        ids[code] = await conn.fetchval(
            "INSERT INTO supplier (code, name) VALUES ($1, $2) RETURNING id", code, name
        )
        await conn.executemany(
            "INSERT INTO supplier_role (supplier_id, role) VALUES ($1, $2)",
            [(ids[code], role) for role in roles],
        )
    board = await conn.fetchval(
        "INSERT INTO organisation (level, rio_id, name) VALUES ('BOARD', $1, $2) RETURNING id",
        BOARD_RIO,
        "Stichting Groot Bestuur (benchmark)",
    )
    schools = []
    for i in range(size.schools):
        schools.append(
            await conn.fetchval(
                "INSERT INTO organisation (level, rio_id, name) VALUES ('PROVIDER', $1, $2) "
                "RETURNING id",
                school_rio(i),
                f"Benchmark school {i + 1}",
            )
        )
    await conn.executemany(
        "INSERT INTO organisation_relation (parent_id, child_id) VALUES ($1, $2)",
        [(board, s) for s in schools],
    )
    await conn.executemany(
        "INSERT INTO organisation_identifier (organisation_id, scheme, value) "
        "VALUES ($1, 'OIE_CODE', $2)",
        [
            (s, f"{i % 100:02d}{chr(65 + i // 100 % 26)}{chr(65 + i % 26)}")
            for i, s in enumerate(schools)
        ],
    )
    periods, last_periods = {}, {}
    for s in schools:
        periods[s] = await conn.fetchval(
            "INSERT INTO school_period (school_id, code, start_date, end_date) "
            "VALUES ($1, $2, $3, $4) RETURNING id",
            s,
            f"{plan.year_start.year}-{plan.year_start.year + 1}",
            plan.year_start,
            plan.year_end,
        )
        last_periods[s] = await conn.fetchval(
            "INSERT INTO school_period (school_id, code, start_date, end_date) "
            "VALUES ($1, $2, $3, $4) RETURNING id",
            s,
            f"{plan.last_start.year}-{plan.last_start.year + 1}",
            plan.last_start,
            plan.last_end,
        )
    publishers = [ids[f"bench-publisher-{n}"] for n in range(1, PUBLISHERS + 1)]
    products = []
    for n in range(PRODUCTS):
        products.append(
            await conn.fetchval(
                "INSERT INTO product (code, name, type, publisher_id, first_publication_date, "
                "sale_start_date) VALUES ($1, $2, 'DIGITAL', $3, $4, $4) RETURNING id",
                product_code(n),
                f"Benchmark method {n + 1} (digital)",
                publishers[n % PUBLISHERS],
                plan.last_start - timedelta(days=365),
            )
        )
    # Consent: the portal everywhere; the dashboard at 90% in full, 5% ENTITLEMENTS only.
    exchanges, agreements, consent = [], [], {}
    for i, s in enumerate(schools):
        types = ["ENTITLEMENTS", "ACTIVATIONS", "SCHOOL_INFO", "SCHOOL_ORGANISATION"]
        exchanges += [(s, ids["bench-portal"], "portal", t) for t in types]
        agreements.append((s, ids["bench-portal"]))
        dashboard_types = consent_of(i, types)
        consent[s] = dashboard_types
        exchanges += [(s, ids["bench-dashboard"], "dashboard", t) for t in dashboard_types]
        if dashboard_types:
            agreements.append((s, ids["bench-dashboard"]))
    await conn.executemany(
        "INSERT INTO data_exchange (school_id, supplier_id, role, data_type, activated_by) "
        "VALUES ($1, $2, $3, $4, 'bench')",
        exchanges,
    )
    await conn.executemany(
        "INSERT INTO processing_agreement (school_id, supplier_id, reference, valid_from) "
        "VALUES ($1, $2, 'bench', $3)",
        [(s, supplier, plan.last_start) for s, supplier in agreements],
    )
    rng.random()  # keep the stream stable if reference data grows
    return {
        "suppliers": ids,
        "schools": schools,
        "periods": periods,
        "last_periods": last_periods,
        "products": products,
        "publishers": {products[n]: publishers[n % PUBLISHERS] for n in range(PRODUCTS)},
        "consent": consent,
    }


# --- the bulk rows ------------------------------------------------------------------------------


@dataclass
class Counters:
    person: int = 0
    identifier: int = 0
    enrolment: int = 0
    group: int = 0
    delivery: int = 0
    entitlement: int = 0
    entitlee: int = 0
    licence: int = 0


@dataclass
class SchoolRows:
    person: list[tuple[Any, ...]] = field(default_factory=list)
    person_identifier: list[tuple[Any, ...]] = field(default_factory=list)
    enrolment: list[tuple[Any, ...]] = field(default_factory=list)
    teaching_group: list[tuple[Any, ...]] = field(default_factory=list)
    group_membership: list[tuple[Any, ...]] = field(default_factory=list)
    delivery: list[tuple[Any, ...]] = field(default_factory=list)
    entitlement: list[tuple[Any, ...]] = field(default_factory=list)
    entitlement_recipient: list[tuple[Any, ...]] = field(default_factory=list)
    entitlee: list[tuple[Any, ...]] = field(default_factory=list)
    licence: list[tuple[Any, ...]] = field(default_factory=list)


COLUMNS = {
    "person": ("id", "kind", "sector"),
    "person_identifier": ("id", "person_id", "scheme", "scope", "value"),
    "enrolment": ("id", "person_id", "school_id", "period_id"),
    "teaching_group": ("id", "school_id", "period_id", "code", "name"),
    "group_membership": ("person_id", "group_id"),
    "delivery": (
        "id",
        "seller_id",
        "reference_id",
        "request_hash",
        "buyer_school_id",
        "order_number",
        "created_at",
    ),
    "entitlement": (
        "id",
        "delivery_id",
        "product_id",
        "variant",
        "school_id",
        "group_id",
        "quantity",
        "licences_used",
        "start_date",
        "activation_until_date",
        "min_expiration_date",
        "status",
        "status_before_block",
        "created_at",
        "updated_at",
    ),
    "entitlement_recipient": (
        "entitlement_id",
        "supplier_id",
        "role",
        "state",
        "failure_code",
        "failure_message",
        "updated_at",
    ),
    "entitlee": ("id", "entitlement_id", "person_id"),
    "licence": (
        "id",
        "entitlement_id",
        "person_id",
        "product_id",
        "school_id",
        "status",
        "activated_at",
        "expiration_date",
        "updated_at",
    ),
}


def _draw_status(rng: random.Random) -> tuple[str, bool]:
    draw = rng.random()
    for status, share, last_year in STATUSES:
        if draw < share:
            return status, last_year
        draw -= share
    return "LINK_READY", False


def _school(plan: Plan, ref: dict[str, Any], index: int, n: Counters) -> SchoolRows:
    """All rows of one school."""
    rng, size = plan.rng, plan.size
    rows = SchoolRows()
    school = ref["schools"][index]
    period = ref["periods"][school]
    suppliers = ref["suppliers"]
    shops = [suppliers[f"bench-shop-{k}"] for k in range(1, SHOPS + 1)]
    portal, dashboard = suppliers["bench-portal"], suppliers["bench-dashboard"]
    watches = "ENTITLEMENTS" in ref["consent"][school]
    pupils_n = size.pupils // size.schools
    per_school = size.entitlements // size.schools + (
        1 if index < size.entitlements % size.schools else 0
    )
    licences_target = size.licences // size.schools + (
        1 if index < size.licences % size.schools else 0
    )
    open_n = round(per_school * OPEN_SHARE)
    individual_n = per_school - open_n

    # Pupils, their ECK iDs, groups of 25 and enrolments.
    pupils = list(range(n.person + 1, n.person + pupils_n + 1))
    n.person += pupils_n
    groups = []
    for g in range((pupils_n + GROUP_SIZE - 1) // GROUP_SIZE):
        n.group += 1
        groups.append(n.group)
        rows.teaching_group.append((n.group, school, period, f"{g // 10 + 1}{g % 10}", f"Klas {g}"))
    for k, person in enumerate(pupils):
        rows.person.append((person, "PUPIL", "vo"))
        n.identifier += 1
        rows.person_identifier.append(
            (n.identifier, person, "ECK_ID", "", ECK_PREFIX + f"{rng.getrandbits(512):0128x}")
        )
        n.enrolment += 1
        rows.enrolment.append((n.enrolment, person, school, period))
        rows.group_membership.append((person, groups[k // GROUP_SIZE]))

    # Deliveries: per shop a handful of orders, in July and August.
    deliveries: dict[int, list[int]] = {}
    for shop in shops:
        deliveries[shop] = []
        for k in range(20):
            n.delivery += 1
            created = datetime(plan.year_start.year, 7, 1, tzinfo=UTC) + timedelta(
                days=rng.randrange(45), minutes=rng.randrange(1440)
            )
            rows.delivery.append(
                (
                    n.delivery,
                    shop,
                    f"bench-{school}-{shop}-{k}",
                    "bench",
                    school,
                    f"ORD-{school}-{shop}-{k}",
                    created,
                )
            )
            deliveries[shop].append(n.delivery)
    created_of = {row[0]: row[6] for row in rows.delivery}

    # The entitlements: (product, variant, group, pupil) first, statuses drawn.
    products = ref["products"]
    half = PRODUCTS // 2
    plans: list[tuple[int, str, int | None, int | None, str, bool]] = []
    for j in range(individual_n):
        k = j % pupils_n
        product = products[(k * 7 + j // pupils_n) % half]
        status, last_year = _draw_status(rng)
        plans.append((product, "SCHOOL_PUPIL", None, pupils[k], status, last_year))
    for j in range(open_n):
        g = j % len(groups)
        product = products[half + (g * 11 + j // len(groups)) % half]
        status, last_year = _draw_status(rng)
        plans.append((product, "SCHOOL_GROUP", g, None, status, last_year))

    # Licences: 80% of the activatable individual ones, the rest spread over the open ones.
    individual_ok = [
        i for i, p in enumerate(plans) if p[1] == "SCHOOL_PUPIL" and p[4] in ACTIVATABLE
    ]
    open_ok = [i for i, p in enumerate(plans) if p[1] == "SCHOOL_GROUP" and p[4] in ACTIVATABLE]
    chosen = set(rng.sample(individual_ok, round(len(individual_ok) * INDIVIDUAL_ACTIVATED)))
    licences = {i: 1 for i in chosen}
    left = max(0, licences_target - len(chosen))
    if open_ok:
        base, extra = divmod(left, len(open_ok))
        for rank, i in enumerate(open_ok):
            licences[i] = base + (1 if rank < extra else 0)

    year_end, last_end = plan.year_end, plan.last_end
    for i, (product, variant, g, pupil, status, last_year) in enumerate(plans):
        n.entitlement += 1
        entitlement = n.entitlement
        shop = shops[(product * 31 + school) % SHOPS]
        delivery = deliveries[shop][rng.randrange(20)]
        created = created_of[delivery]
        used = licences.get(i, 0)
        if last_year:
            start, until, expires = plan.last_start, plan.last_end - timedelta(days=30), last_end
            created = created - timedelta(days=365)
        else:
            start = plan.year_start - timedelta(days=rng.choice((0, 0, 0, 17)))
            until = year_end if rng.random() < 0.9 else year_end - timedelta(days=31)
            expires = year_end
        quantity = None
        if variant == "SCHOOL_GROUP":
            quantity = max(GROUP_SIZE + rng.randrange(8), used)
        rows.entitlement.append(
            (
                entitlement,
                delivery,
                product,
                variant,
                school,
                groups[g] if g is not None else None,
                quantity,
                used,
                start,
                until,
                expires,
                status,
                "LINK_READY" if status == "BLOCKED" else None,
                created,
                created + timedelta(hours=rng.randrange(1, 72)),
            )
        )
        if pupil is not None:
            n.entitlee += 1
            rows.entitlee.append((n.entitlee, entitlement, pupil))

        # Recipients: licence office and portal answer; the dashboard only watches.
        publisher = ref["publishers"][product]
        answered = created + timedelta(hours=rng.randrange(1, 48))
        licensor_state, licensor_code = "CONFIRMED", None
        portal_state, portal_code = "CONFIRMED", None
        if status == "ENTITLED":
            licensor_state, portal_state = "PENDING", "PENDING"
            if rng.random() < 0.2:
                licensor_state, licensor_code = "FAILED", rng.choice((11, 21, 99))
        elif status == "PROVISIONED":
            portal_state = "PENDING"
            if rng.random() < 0.3:
                portal_state, portal_code = "FAILED", rng.choice((7, 3))
        for supplier, role, state, code in (
            (publisher, "LICENSOR", licensor_state, licensor_code),
            (portal, "PORTAL", portal_state, portal_code),
        ):
            rows.entitlement_recipient.append(
                (
                    entitlement,
                    supplier,
                    role,
                    state,
                    code,
                    "benchmark failure" if code else None,
                    created if state == "PENDING" else answered,
                )
            )
        if watches:
            rows.entitlement_recipient.append(
                (entitlement, dashboard, "DASHBOARD", "PENDING", None, None, created)
            )

        # The licences themselves.
        if used:
            if pupil is not None:
                holders = [pupil]
            else:
                first = (g or 0) * GROUP_SIZE
                holders = [pupils[(first + h) % pupils_n] for h in range(used)]
            for holder in holders:
                n.licence += 1
                moment = plan.activation_moment(last_year)
                blocked = status == "BLOCKED" or rng.random() < 0.005
                rows.licence.append(
                    (
                        n.licence,
                        entitlement,
                        holder,
                        product,
                        school,
                        "BLOCKED" if blocked else "ACTIVATED",
                        moment,
                        expires,
                        moment,
                    )
                )
    return rows


async def _copy(conn: asyncpg.Connection, rows: SchoolRows, totals: dict[str, int]) -> None:
    for table, columns in COLUMNS.items():
        records = getattr(rows, table)
        if records:
            await conn.copy_records_to_table(table, records=records, columns=columns)
            totals[table] = totals.get(table, 0) + len(records)


SEQUENCES = [
    "person",
    "person_identifier",
    "enrolment",
    "teaching_group",
    "delivery",
    "entitlement",
    "entitlee",
    "licence",
]


async def generate(
    url: str, size: Size, *, seed: int = 2026, today: date | None = None, log: Any = print
) -> Generated:
    """Fill the (empty, migrated) database at `url` with a data set of `size`."""
    from db.dashboard import rebuild_summaries
    from db.engine import create_engine, create_sessionmaker
    from resolvers.clock import today as clock_today

    started = time.perf_counter()
    plan = Plan(size, seed, today or clock_today())
    conn = await asyncpg.connect(raw_url(url))
    bypassed = True
    try:
        await conn.execute("SET session_replication_role = replica")
    except asyncpg.InsufficientPrivilegeError:
        bypassed = False
    await conn.execute("SET synchronous_commit = off")
    ref = await _reference(conn, plan)
    counters, totals = Counters(), {}
    for index in range(size.schools):
        await _copy(conn, _school(plan, ref, index, counters), totals)
        if (index + 1) % max(1, size.schools // 10) == 0:
            log(
                f"  {index + 1}/{size.schools} schools, {totals.get('licence', 0):,} licences, "
                f"{time.perf_counter() - started:.0f} s"
            )
    for table in SEQUENCES:
        await conn.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
            f"(SELECT COALESCE(max(id), 1) FROM {table}))"
        )
    await conn.close()

    engine = create_engine(url)
    async with create_sessionmaker(engine)() as session, session.begin():
        await rebuild_summaries(session)
    await engine.dispose()
    conn = await asyncpg.connect(raw_url(url))
    await conn.execute("VACUUM (ANALYZE)")
    await conn.close()

    schools = [school_rio(i) for i in range(size.schools)]
    return Generated(
        size=size,
        board_rio=BOARD_RIO,
        school_rios=schools,
        consenting_rios=[s for i, s in enumerate(schools) if consent_of(i, ["ENTITLEMENTS"])],
        dashboard="bench-dashboard",
        shops=[f"bench-shop-{k}" for k in range(1, SHOPS + 1)],
        rows=totals,
        seconds=time.perf_counter() - started,
        bypassed_triggers=bypassed,
    )


async def _main(args: argparse.Namespace) -> None:
    from bench.support import throwaway_database
    from db.migrate import upgrade

    size = Size(args.schools, args.pupils, args.entitlements, args.licences)

    async def run(url: str) -> None:
        await asyncio.to_thread(upgrade, url)
        generated = await generate(url, size, seed=args.seed)
        print(f"{size.describe()} in {generated.seconds:.0f} s: {generated.rows}")

    if args.url:
        await run(args.url)
    else:
        async with throwaway_database() as url:
            await run(url)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--schools", type=int, default=FULL.schools)
    parser.add_argument("--pupils", type=int, default=FULL.pupils)
    parser.add_argument("--entitlements", type=int, default=FULL.entitlements)
    parser.add_argument("--licences", type=int, default=FULL.licences)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument(
        "--url", help="an empty SQLAlchemy PostgreSQL URL to fill (default: a throwaway one)"
    )
    asyncio.run(_main(parser.parse_args()))
