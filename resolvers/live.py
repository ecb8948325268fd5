"""Subscription resolvers: live delivery progress (DOMAIN.md §8).

Each subscription checks its arguments first (a refusal is a GraphQL error before
anything streams), then registers with the process's broker and streams:

* resume (`after`): first the table is replayed from `after` up to the broker's
  high-water position, pass after pass, without a live queue (a long replay cannot
  overflow a queue it does not have). Then the live queue is registered, at the
  high-water position H of that moment; the events up to H are replayed from the
  table, every event after H reaches the queue, and queued events at or below the
  last position already sent are skipped. Nothing is lost or sent twice across the
  switch, because no event can appear behind a position the broker has passed.
* initial state: the current entitlements of the topic, read in one snapshot
  together with the position they reflect, then the live events after it (those
  the snapshot already reflects are skipped).
* otherwise: live events from the broker's position now (a change committed a
  moment before may still come; `initialState` makes "now" exact).

Over graphql-transport-ws, once the replay or the initial state has been sent, the
live stream leaves strawberry's per-operation pipeline (`_handed_off`,
resolvers/websocket.Handoff): each event is executed and encoded once per
operation, variables and caller, and that text goes to every subscription sharing
them. The legacy graphql-ws protocol and in-process subscriptions stay in the
pipeline (their events are still executed once per shape: schema.live).

A subscriber that falls `live_queue_size` events behind is dropped and its
websocket closed with 4008 and the cursor to resume after; a token that expires
ends the connection with 4401 at the next event.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from db import events
from db.events import Position, Topic
from db.pagination import InvalidCursor, decode_event_cursor, event_cursor
from domain.consent import Access
from domain.entitlements import EntitlementStatus
from domain.events import EventKind
from domain.roles import DataType
from domain.visibility import Viewer
from resolvers.auth import principal
from resolvers.broker import SHUTDOWN, TOO_SLOW, Broker, Item, Subscriber, SubscriptionEnded
from resolvers.clock import today
from resolvers.eager import Pending, run_eagerly
from resolvers.queries import school_ids
from resolvers.websocket import (
    CLOSE_TOKEN_EXPIRED,
    CLOSE_TOO_SLOW,
    HANDOFF,
    Handoff,
    close_websocket,
    observed,
)
from schema.errors import BadInput, ConsentRequired, GatewayError

if TYPE_CHECKING:
    from strawberry.types import Info

    from schema.lookups import OrganisationIdentifierInput


log = logging.getLogger("ketenpoort.live")


class LiveUnavailable(GatewayError):
    code = "UNAVAILABLE"


def _broker(info: Info) -> Broker:
    broker = getattr(info.context, "broker", None)
    if broker is None or not broker.running:
        raise LiveUnavailable("live subscriptions are not running in this gateway process")
    return broker


def _id(value: Any, argument: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise BadInput(f"{argument} must be a gateway id (digits), got {value!r}") from exc


def _position(after: str) -> Position:
    try:
        return decode_event_cursor(after)
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
    scope = caller.scope
    db = info.context.db
    if delivery_id is not None:
        pk = _id(delivery_id, "deliveryId")
        answer = await db.run(lambda s: events.delivery_access(s, scope, pk))
        if answer is Access.CONSENT_REQUIRED:
            raise _consent_error(DataType.ENTITLEMENTS.value)
        if answer is not Access.ALLOWED:
            raise BadInput(f"no delivery {pk} you are involved in", argument="deliveryId")
        topic = Topic(delivery_id=pk)
    elif entitlement_id is not None:
        from db import access

        pk = _id(entitlement_id, "entitlementId")
        answer, _row = await db.run(lambda s: access.entitlement_access(s, scope, pk))
        if answer is Access.CONSENT_REQUIRED:
            raise _consent_error(DataType.ENTITLEMENTS.value)
        if answer is not Access.ALLOWED:
            raise BadInput(f"entitlement {pk} is unknown", argument="entitlementId", statusCode=40)
        topic = Topic(entitlement_id=pk)
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
    broker = _broker(info)
    caller = await principal(info.context)
    viewer = Viewer(caller.supplier_id, caller.roles, caller.school_id)
    start: Position | None = None
    if after is not None:
        if initial_state:
            raise BadInput(
                "give either `after` (resume after that cursor) or `initialState: true` "
                "(the current state first), not both"
            )
        start = _position(after)
        oldest = datetime.now(UTC) - timedelta(days=info.context.settings.live_replay_days)
        problem = await info.context.db.run(lambda s: events.resume_problem(s, start, oldest))
        if problem:
            raise BadInput(problem, argument="after")
    return _items(info, broker, viewer, caller.scope, topic, start, initial_state)


#: How many catch-up passes a resume makes from the table before it takes a live
#: queue anyway (a subscriber that never catches up is too slow for the stream).
CATCH_UP_PASSES = 20


async def _items(
    info: Info,
    broker: Broker,
    viewer: Viewer,
    scope: Any,
    topic: Topic,
    start: Position | None,
    initial_state: bool,
) -> AsyncGenerator[Any, None]:
    context = info.context
    subscriber: Subscriber | None = None
    try:
        position = start
        if position is not None:
            # Catch up from the table first, without a live queue, so that a long
            # replay (back after hours, or arriving during a burst) cannot overflow a
            # queue it does not have yet; take the queue once a pass comes back short.
            for _ in range(CATCH_UP_PASSES):
                target = broker.high_water
                if target <= position:
                    break
                sent = 0
                async for item in broker.replay(viewer, topic, position, target):
                    yield _deliver(context, broker, position, item)
                    position, sent = item.at, sent + 1  # asked for more: it was sent
                position = max(position, target)
                if sent < broker.batch_size:
                    break
        # Register, then fill the gap up to where the live queue begins.
        subscriber = broker.subscribe(topic, viewer)
        subscriber.on_drop = lambda s: _close_too_slow(context, broker, s)
        last = subscriber.registered_at
        reflected: frozenset[int] = frozenset()
        if position is not None:
            subscriber.last = position
            async for item in broker.replay(viewer, topic, position, subscriber.registered_at):
                if subscriber.closed is not None:
                    raise SubscriptionEnded(subscriber.closed)
                yield _deliver(context, broker, subscriber.last, item)
                subscriber.last = item.at
            last = max(position, subscriber.registered_at)
        elif initial_state:
            subscriber.last = None  # dropped before the state is complete: start over
            state, last, reflected = await _initial_state(context, broker, scope, topic, subscriber)
            while state:  # popped, so the rows do not stay referenced by this frame
                yield _deliver(context, broker, None, state.pop(0))
            subscriber.last = last
        handoff = HANDOFF.get()
        if handoff is not None and handoff.task is None:
            # graphql-transport-ws: what was yielded has been sent; the live stream
            # goes on in a task of its own, outside strawberry's pipeline.
            handoff.start(_handed_off(context, broker, handoff, subscriber, last, reflected))
            subscriber = None
            return
        async for item in _live(subscriber, last, reflected):
            yield _deliver(context, broker, subscriber.last, item)
            subscriber.last = item.at
    except SubscriptionEnded as ended:
        if ended.reason != SHUTDOWN:
            # The websocket is being closed with a code that says why and where to
            # resume; ending the stream here would send a misleading "complete".
            await asyncio.Event().wait()
    finally:
        if subscriber is not None:
            broker.unsubscribe(subscriber)


def _already_sent(item: Item, last: Position, reflected: frozenset[int]) -> bool:
    """At or before where the stream began, or reflected by the initial state."""
    return item.at <= last or (item.event is not None and item.event.id in reflected)


async def _live(
    subscriber: Subscriber, last: Position, reflected: frozenset[int]
) -> AsyncIterator[Item]:
    """The live queue's items after `last`, less those the initial state reflects."""
    while True:
        item = await subscriber.get()
        if _already_sent(item, last, reflected):
            continue
        yield item


async def _handed_off(
    context: Any,
    broker: Broker,
    handoff: Handoff,
    subscriber: Subscriber,
    last: Position,
    reflected: frozenset[int],
) -> None:
    """A graphql-transport-ws subscription's live stream after the handoff: the same
    items and checks as `_items`, each sent as the message rendered once for every
    subscription that shares its operation and caller."""
    caller = subscriber.viewer.key

    def direct(item: Item) -> bool:
        """The same delivery in the broker's pass, when it can be done at once: the
        message is rendered (or renders without a read) and the send does not have
        to wait. False leaves the item to the task below, in order."""
        if handoff.busy or _expired(context):
            return False
        if _already_sent(item, last, reflected):
            return True
        try:
            node = _node(context, broker, subscriber.last, item)
            text = handoff.rendered(item.rendered, caller)
            if text is None:
                outcome = run_eagerly(handoff.render(node, item.rendered, caller))
                if isinstance(outcome, Pending):  # it reads: the task waits for it
                    outcome.task.add_done_callback(observed)
                    return False
                text = outcome
            handoff.send_now(text)
        except Exception:  # the task meets it again and reports it
            return False
        subscriber.last = item.at
        return True

    subscriber.direct = direct
    try:
        while True:  # `_live`, inlined: this loop runs once per subscriber per event
            item = subscriber.take() or await subscriber.get()
            if _already_sent(item, last, reflected):
                continue
            node = _node(context, broker, subscriber.last, item)
            text = handoff.rendered(item.rendered, caller)
            if text is None:
                text = await handoff.render(node, item.rendered, caller)
            await handoff.send(text)
            subscriber.last = item.at
    except SubscriptionEnded as ended:
        if ended.reason == SHUTDOWN:
            await handoff.end()
    except Exception:
        log.exception("live subscription %s failed", handoff.operation.id)
        await handoff.end(
            [
                {
                    "message": "internal error in the live stream; resubscribe",
                    "extensions": {"code": "INTERNAL", "resume": _resume(subscriber.last)},
                }
            ]
        )
    finally:
        subscriber.direct = None
        broker.unsubscribe(subscriber)
        handoff.finished()


async def _initial_state(
    context: Any, broker: Broker, scope: Any, topic: Topic, subscriber: Subscriber
) -> tuple[list[Item], Position, frozenset[int]]:
    """The topic's entitlements now, as items at the position they reflect (the
    live stream goes on after it), and the later events they reflect too (skipped
    in the live stream)."""
    limit = context.settings.live_initial_state_limit
    async with broker.sessionmaker() as session:
        snapshot = await events.snapshot(
            session, events.snapshot_statement(scope, topic, today()), limit
        )
    if snapshot.truncated:
        raise BadInput(
            f"the initial state holds more than {limit} entitlements: subscribe to a "
            "narrower topic (a school, a delivery), or page through them with the "
            "entitlements query",
            argument="initialState",
        )
    at = max(snapshot.at, subscriber.registered_at)
    return [Item(at, None, row) for row in snapshot.rows], at, snapshot.reflected


def _deliver(context: Any, broker: Broker, sent: Position | None, item: Item) -> Any:
    """`_node`, with the loaders started fresh, so that nested fields are read as
    they are now (strawberry executes the node for this subscriber)."""
    node = _node(context, broker, sent, item)
    context.fresh_loaders()
    return node


def _node(context: Any, broker: Broker, sent: Position | None, item: Item) -> Any:
    """The schema object for an item (built once for every subscriber), unless the
    token has expired meanwhile: then the connection is closed."""
    if _expired(context):
        reason = f"token expired; reconnect with a new token and {_resume(sent)}"
        broker.run_soon(close_websocket(context.request, CLOSE_TOKEN_EXPIRED, reason))
        raise SubscriptionEnded("token expired")
    if item.node is None:
        from schema.live import build

        item.node = build(item)
    return item.node


def _expired(context: Any) -> bool:
    expires = getattr(context, "token_expires_at", None)
    return expires is not None and time.time() > expires


def _resume(at: Position | None) -> str:
    if at is None:
        return "subscribe again with initialState: true"
    return f"resume with after={event_cursor(*at)}"


def _close_too_slow(context: Any, broker: Broker, subscriber: Subscriber) -> None:
    reason = f"{TOO_SLOW}: over {subscriber.limit} events waiting; {_resume(subscriber.last)}"
    broker.run_soon(close_websocket(context.request, CLOSE_TOO_SLOW, reason))
