"""Subscription resolvers: live delivery progress (DOMAIN.md §8).

Each subscription checks its arguments and the caller's access first (a refusal is
a GraphQL error before anything streams), then asks the context for the stream
(`open_stream`: live/streams.py, over a websocket or in-process): resume after a
cursor, the initial state first, or live events from now.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from db import events
from db.events import Cut, Topic
from db.pagination import InvalidCursor
from domain.consent import Access
from domain.entitlements import EntitlementStatus
from domain.events import EventKind
from domain.roles import DataType
from resolvers.auth import principal
from resolvers.clock import today
from resolvers.queries import school_ids
from schema.errors import BadInput, ConsentRequired, GatewayError
from schema.lookups import OrganisationIdentifierInput

if TYPE_CHECKING:
    from strawberry.types import Info



class LiveUnavailable(GatewayError):
    code = "UNAVAILABLE"


def _id(value: Any, argument: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise BadInput(f"{argument} must be a gateway id (digits), got {value!r}") from exc


def _cut(after: str) -> Cut:
    try:
        return events.decode_cut(after)
    except InvalidCursor as exc:
        raise BadInput(
            f"{exc}: pass the `cursor` of an event this gateway sent", argument="after"
        ) from exc


def _consent_error(what: str) -> ConsentRequired:
    return ConsentRequired(
        f"consent required: the school has revoked or never activated the data exchange "
        f"{what} for this supplier, or has no valid processing agreement"
    )


async def delivery_progress(
    info: Info,
    delivery_id: Any,
    school: OrganisationIdentifierInput | None,
    entitlement_id: Any,
    after: str | None,
    initial_state: bool,
) -> AsyncGenerator[Any, None]:
    given = [x for x in (delivery_id, school, entitlement_id) if x is not None]
    if len(given) != 1:
        raise BadInput("give exactly one of deliveryId, school or entitlementId")
    caller = await principal(info.context)
    day = today()
    db = info.context.db
    if delivery_id is not None:
        pk = _id(delivery_id, "deliveryId")
        answer, schools = await db.run(
            lambda s: events.delivery_access_and_schools(s, caller, day, pk)
        )
        if answer is Access.CONSENT_REQUIRED:
            raise _consent_error(DataType.ENTITLEMENTS.value)
        if answer is not Access.ALLOWED:
            raise BadInput(f"no delivery {pk} you are involved in", argument="deliveryId")
        topic = Topic(delivery_id=pk, schools=schools)
    elif entitlement_id is not None:
        from db import access

        pk = _id(entitlement_id, "entitlementId")
        answer, row = await db.run(lambda s: access.entitlement_access(s, caller, day, pk))
        if answer is Access.CONSENT_REQUIRED:
            raise _consent_error(DataType.ENTITLEMENTS.value)
        if answer is not Access.ALLOWED:
            raise BadInput(f"entitlement {pk} is unknown", argument="entitlementId", statusCode=40)
        school_id = getattr(row, "school_id", None)
        schools = frozenset({school_id}) if school_id is not None else frozenset()
        topic = Topic(entitlement_id=pk, schools=schools)
    else:
        assert school is not None
        ids = await school_ids(info, school, "school", DataType.ENTITLEMENTS)
        topic = Topic(school_ids=frozenset(ids))
    return await _stream(info, topic, after, initial_state)


async def entitlements_reaching_status(
    info: Info, status: EntitlementStatus, after: str | None, initial_state: bool
) -> AsyncGenerator[Any, None]:
    if status == EntitlementStatus.ENDED:
        raise BadInput(
            "ENDED is derived from activationUntilDate and has no event; "
            "query entitlements(filter: {status: [ENDED]}) instead",
            argument="status",
        )
    return await _stream(info, Topic(status=status.value), after, initial_state)


async def licence_activations(
    info: Info, school: OrganisationIdentifierInput | None, after: str | None
) -> AsyncGenerator[Any, None]:
    ids = None
    if school is not None:
        ids = frozenset(await school_ids(info, school, "school", DataType.ACTIVATIONS))
    topic = Topic(school_ids=ids, kinds=frozenset({EventKind.LICENCE_ACTIVATED.value}))
    return await _stream(info, topic, after, False)


async def _stream(
    info: Info, topic: Topic, after: str | None, initial_state: bool
) -> AsyncGenerator[Any, None]:
    """Check what can be checked before streaming; return the stream."""
    open_stream = getattr(info.context, "open_stream", None)
    if open_stream is None:
        raise LiveUnavailable("subscriptions are served over websockets at /graphql")
    caller = await principal(info.context)
    start: Cut | None = None
    if after is not None:
        if initial_state:
            raise BadInput(
                "give either `after` (resume after that cursor) or `initialState: true` "
                "(the current state first), not both"
            )
        start = _cut(after)
        oldest = datetime.now(UTC) - timedelta(days=info.context.settings.live_replay_days)
        at = start.at
        problem = await info.context.db.run(lambda s: events.resume_problem(s, at, oldest))
        if problem:
            raise BadInput(problem, argument="after")
    stream = open_stream(caller, topic, start, initial_state)
    if stream is None:
        raise LiveUnavailable("live subscriptions are not running in this gateway process")
    return stream  # type: ignore[no-any-return]
