"""The chain's pull side of the events protocol, for receivers that were away or
are new (issue 18.5), with the gateway's own bearer token:

* `GET /events?createdAfter=…&type=…&start=…&limit=…`: the events the caller may
  see (the same visibility and consent rule as the push and the live
  subscriptions), created after the moment given, oldest first (in commit order),
  in the same envelopes and with the same ids as pushed. `limit` is 1 to 100
  (default 20), `start` skips that many (at most 10,000); events older than the
  replay window (`KETENPOORT_LIVE_REPLAY_DAYS`) are not served. The read goes
  by index to the events of entitlements the caller is a party to (seller,
  publisher, recipient: db/push.PartyTopic); only those are judged.
* `POST /requestseed/entitlement-api?schoolId=…`: queue a seed of the school's
  current entitlements to each of the caller's enabled endpoints; they then go
  on with the live events. The other APIs of the chain carry data the gateway
  does not hold and answer 400.

Answers follow the chain: 200; 400 with status 1 (invalid parameter); 401 with
status 3 (no valid token, or no such supplier); 404 for another API.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from db import events, suppliers
from db import push as store
from db.engine import read_only
from db.outbox import audit
from domain.identifiers import OrgLevel
from domain.roles import Principal, Role
from domain.visibility import Viewer
from gateway.tokens import TokenError
from push.deliverer import Bodies
from push.envelope import KINDS_OF, SENDABLE
from resolvers import lookup
from resolvers.clock import today
from resolvers.context import Database

MAX_LIMIT = 100
MAX_START = 10_000
#: Rows of the stream read per statement while looking for visible events.
PAGE = 500
#: The most rows one request reads and judges (bounded work, whatever the
#: parameters). Only rows of the caller's own entitlements are read (PartyTopic).
MAX_SCANNED = 50_000


def _refuse(http: int, status: int, message: str) -> JSONResponse:
    return JSONResponse({"status": status, "statusMessage": message}, status_code=http)


async def _caller(request: Request) -> Principal | JSONResponse:
    """The token's supplier in the roles it is registered for (not as a school
    administrator: these routes serve suppliers)."""
    gateway = request.app.state.graphql
    try:
        caller = gateway.verifier.verify(request.headers.get("authorization"))
    except TokenError as error:
        return _refuse(401, 3, str(error))
    async with gateway.sessionmaker() as session:
        found = await suppliers.by_code(session, caller.supplier_code)
    if found is None:
        return _refuse(401, 3, f"unknown supplier {caller.supplier_code!r}")
    supplier_id, registered = found
    roles = frozenset(r for r in caller.roles if r in registered) - {Role.SCHOOL}
    if not roles:
        return _refuse(401, 3, "the token grants no role this supplier is registered for")
    return Principal(supplier_id, roles, supplier_code=caller.supplier_code)


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not (low <= int(raw) <= high):
        raise ValueError(f"{name} must be a whole number from {low} to {high}")
    return int(raw)


async def get_events(request: Request) -> Response:
    viewer = await _caller(request)
    if isinstance(viewer, JSONResponse):
        return viewer
    supplier_id = viewer.supplier_id
    settings = request.app.state.settings
    try:
        limit = _int(request, "limit", 20, 1, MAX_LIMIT)
        start = _int(request, "start", 0, 0, MAX_START)
        chain_type = request.query_params.get("type")
        if chain_type is not None and chain_type not in KINDS_OF:
            raise ValueError(
                f"type must be one of {', '.join(sorted(KINDS_OF))} (the types this gateway sends)"
            )
        oldest = datetime.now(UTC) - timedelta(days=settings.live_replay_days)
        raw = request.query_params.get("createdAfter")
        after = oldest
        if raw is not None:
            if len(raw) > 40:
                raise ValueError("createdAfter is not an RFC 3339 date-time")
            try:
                after = datetime.fromisoformat(raw)
            except ValueError:
                raise ValueError("createdAfter is not an RFC 3339 date-time") from None
            if after.tzinfo is None:
                raise ValueError("createdAfter needs a time zone (Z)")
            after = max(after, oldest)
    except ValueError as error:
        return _refuse(400, 1, str(error))
    # Only the events of the caller's own entitlements are read (by index), then judged.
    topic = store.PartyTopic(
        kinds=KINDS_OF[chain_type] if chain_type is not None else None, party=supplier_id
    )
    found: list[dict[str, Any]] = []
    skipped = scanned = 0
    async with request.app.state.graphql.sessionmaker() as session:
        await read_only(session)
        position = await store.position_before(session, after)
        while len(found) < limit and scanned < MAX_SCANNED:
            rows = await events.read(session, position, PAGE, topic=topic)
            scanned += len(rows)
            visible = await _visible(session, rows, viewer, after)
            for item in visible:
                if skipped < start:
                    skipped += 1
                elif len(found) < limit:
                    found.append(item)
            if len(rows) < PAGE:
                break
            position = events.position(rows[-1])
    return JSONResponse(found)


async def _visible(
    session: AsyncSession, rows: list[Any], viewer: Viewer, after: datetime
) -> list[dict[str, Any]]:
    if not rows:
        return []
    facts = await events.load_facts(session, rows, today())
    chosen = [
        r
        for r in rows
        if _aware(r.occurred_at) > after
        and r.kind in SENDABLE
        and facts.may_see(viewer, r, handed_over=today())
    ]
    if not chosen:
        return []
    bodies = await Bodies.load(session, chosen, facts)
    return [bodies.pending(r).body for r in chosen]


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


async def request_seed(request: Request) -> Response:
    who = await _caller(request)
    if isinstance(who, JSONResponse):
        return who
    supplier_id, code = who.supplier_id, who.supplier_code
    api = request.path_params["api"]
    if api != "entitlement-api":
        return _refuse(
            400, 1, f"{api!r}: this gateway seeds the entitlement-api only (it holds no other data)"
        )
    school = request.query_params.get("schoolId")
    if not school or len(school) > 64:
        return _refuse(400, 1, "schoolId (any RIO identifier of the school) is required")
    gateway = request.app.state.graphql
    database = Database(gateway.sessionmaker)
    try:
        organisation = await lookup.find_organisation(database, None, school, OrgLevel.PROVIDER)
        if not isinstance(organisation, lookup.OrgFound):
            return _refuse(400, 5, f"school {school!r} is not one school known to the gateway")
        async with database.transaction() as session:
            endpoints = [
                row
                for row in await store.endpoints(session, supplier_id)
                if row.enabled
                and (row.kinds is None or set(row.kinds) & KINDS_OF["mp.Entitlement"])
            ]
            for row in endpoints:
                await store.add_seed(session, row.id, organisation.row.id, code)
                await audit(
                    session,
                    who.actor,
                    "pushSeed.request",
                    "push_endpoint",
                    row.id,
                    school_id=organisation.row.id,
                )
    finally:
        await database.close()
    if not endpoints:
        return _refuse(400, 99, "register an events endpoint (pushEndpointRegister) first")
    service = getattr(request.app.state, "push", None)
    for row in endpoints:
        if service is not None:
            service.poke(row.id)
    return JSONResponse(
        {"status": 0, "statusMessage": f"seed queued for {len(endpoints)} endpoint(s)"}
    )


def routes() -> list[Route]:
    """Mounted by app.py beside /graphql."""
    return [
        Route("/events", get_events, methods=["GET"]),
        Route("/requestseed/{api}", request_seed, methods=["POST"]),
    ]
