"""The stream of one subscription (DOMAIN.md §8): resume, initial state, live.

The subscription resolvers (resolvers/live.py) check the arguments and the caller's
access, then ask the connection's context for this stream (`open`). It yields the
items strawberry executes for the subscriber:

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

Over a websocket (live/transport.py), once the replay or the initial state has been
sent, the stream hands its live part to the operation (`Operation.hand_over`): each
event is then executed and encoded once per operation, variables and caller, and
that text goes to every subscription sharing them (`_handed_over`). In-process
subscriptions (`schema.subscribe`, the API tests) keep yielding the live items.

A subscriber that falls `live_queue_size` events behind is dropped and its
websocket closed with 4008 and the cursor to resume after; a token that expires
ends the connection with 4401 (live/transport.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncGenerator, Callable
from typing import Any

from db import events
from db.events import Cut, Position, Topic
from db.pagination import event_cursor
from domain.roles import DataType
from domain.visibility import Viewer
from live.broker import (
    RESTART,
    SHUTDOWN,
    TOO_SLOW,
    Broker,
    Item,
    Revoked,
    Subscriber,
    SubscriptionEnded,
)
from live.eager import Pending, run_eagerly
from resolvers.clock import today
from resolvers.live import LiveUnavailable
from schema.errors import BadInput, ConsentRequired

log = logging.getLogger("ketenpoort.live")


#: How many catch-up passes a resume makes from the table before it takes a live
#: queue anyway (a subscriber that never catches up is too slow for the stream).
CATCH_UP_PASSES = 20

#: Close codes besides the protocols' own (live/transport.py sends them).
CLOSE_TOO_SLOW = 4008
CLOSE_TOKEN_EXPIRED = 4401
CLOSE_RESTART = 1012


async def open_stream(
    context: Any,
    broker: Broker,
    viewer: Viewer,
    topic: Topic,
    start: Cut | None,
    initial_state: bool,
) -> AsyncGenerator[Any, None]:
    """The items of one subscription, as the module docstring describes. `context` is
    the operation's live context (live/context.py)."""
    subscriber: Subscriber | None = None
    note = _auditor(broker, viewer, topic)
    try:
        # What has been sent (or reflected) so far: the stream goes on after it.
        sent = start
        if sent is not None:
            # Catch up from the table first, without a live queue, so that a long
            # replay (back after hours, or arriving during a burst) cannot overflow a
            # queue it does not have yet; take the queue once a pass comes back short.
            for _ in range(CATCH_UP_PASSES):
                target = await broker.current()
                if target <= sent.at:
                    break
                count = 0
                async for item in broker.replay(viewer, topic, sent.at, target):
                    count += 1  # read, whether sent or reflected already
                    if not _covered(sent, item):
                        note(item)
                        yield _deliver(context, item)
                sent = Cut(target, sent.reflected)
                if count < broker.batch_size:
                    break
        # Register, then fill the gap up to where the live queue begins (`current`:
        # a broker without subscribers has not kept its high-water mark up to date).
        await broker.current()
        subscriber = broker.subscribe(topic, viewer)
        subscriber.on_drop = lambda s: _dropped(context, s)
        if sent is not None:
            subscriber.last = sent.at
            async for item in broker.replay(viewer, topic, sent.at, subscriber.registered_at):
                if subscriber.closed is not None:
                    raise SubscriptionEnded(subscriber.closed)
                if not _covered(sent, item):
                    note(item)
                    yield _deliver(context, item)
                subscriber.last = item.at
            sent = Cut(max(sent.at, subscriber.registered_at), sent.reflected)
        elif initial_state:
            subscriber.last = None  # dropped before the state is complete: start over
            state, sent = await _initial_state(context, broker, viewer, topic, subscriber)
            while state:  # popped, so the rows do not stay referenced by this frame
                item = state.pop(0)
                note(item)
                yield _deliver(context, item)
            subscriber.last = sent.at
        else:
            sent = Cut(subscriber.registered_at)
        operation = getattr(context, "operation", None)
        if operation is not None:
            # Over a websocket: what was yielded has been sent; the live stream goes
            # on in the operation's own task, once per event for all who share it.
            operation.hand_over(_handed_over(context, broker, operation, subscriber, sent, note))
            subscriber = None
            return
        while True:
            item = await subscriber.get()
            if item.revoked is not None:
                raise revoked_error(item.revoked, subscriber.last)
            if not _covered(sent, item):
                note(item)
                yield _deliver(context, item)
                subscriber.last = item.at
    except SubscriptionEnded as ended:
        if ended.reason not in (SHUTDOWN, RESTART) and getattr(context, "connection", None):
            # The websocket is being closed with a code that says why and where to
            # resume; ending the stream here would send a misleading "complete".
            await asyncio.Event().wait()
    finally:
        if subscriber is not None:
            broker.unsubscribe(subscriber)


def _auditor(broker: Broker, viewer: Viewer, topic: Topic) -> Callable[[Item], None]:
    """Notes each item a subscription sends, for the school's audit trail."""
    if topic.status is not None:
        field = "entitlementsReachingStatus"
    elif topic.data_type is DataType.ACTIVATIONS:
        field = "licenceActivations"
    else:
        field = "deliveryProgress"
    delivered = broker.audit.subscriber(uuid.uuid4().hex[:16], field, viewer)

    def note(item: Item) -> None:
        entitlement = item.entitlement
        delivered(entitlement.school_id if entitlement is not None else None, item.at)

    return note


def _covered(sent: Cut, item: Item) -> bool:
    """Sent already, or reflected by the initial state or the resumed cursor."""
    return item.event is not None and sent.covers(item.at, item.event.id)


async def _handed_over(
    context: Any,
    broker: Broker,
    operation: Any,
    subscriber: Subscriber,
    sent: Cut,
    note: Callable[[Item], None],
) -> None:
    """A websocket subscription's live stream after the hand-over: the same items and
    checks as `open_stream`, each sent as the message rendered once for every
    subscription that shares its operation and caller."""
    caller = subscriber.viewer.key
    operation.subscriber = subscriber
    sent_at, reflected = sent.at, sent.reflected

    def direct(item: Item) -> bool:
        """The same delivery in the broker's pass, when it can be done at once: the
        message is rendered (or renders without a read) and the send does not have
        to wait. False leaves the item to the task below, in order. (`_covered`
        inlined: this runs once per subscriber per event.)"""
        if operation.busy or item.revoked is not None or _expired(context):
            return False
        event = item.event
        if item.at <= sent_at or (reflected and event is not None and event.id in reflected):
            return True
        try:
            node = _node(context, item)
            text = operation.rendered(item.rendered, caller)
            if text is None:
                outcome = run_eagerly(operation.render(node, item.rendered, caller))
                if isinstance(outcome, Pending):  # it reads: the task waits for it
                    outcome.task.add_done_callback(observed)
                    return False
                text = outcome
            operation.send_now(text)
        except Exception:  # the task meets it again and reports it
            return False
        subscriber.last = item.at
        note(item)
        return True

    subscriber.direct = direct
    try:
        while True:  # `_live`, inlined: this loop runs once per subscriber per event
            item = subscriber.take() or await subscriber.get()
            if item.revoked is not None:
                await operation.end([revoked_error(item.revoked, subscriber.last).formatted])
                return
            if _covered(sent, item):
                continue
            node = _node(context, item)
            text = operation.rendered(item.rendered, caller)
            if text is None:
                text = await operation.render(node, item.rendered, caller)
            await operation.send(text)
            subscriber.last = item.at
            note(item)
    except SubscriptionEnded as ended:
        if ended.reason == SHUTDOWN:
            await operation.end()
    except Exception:
        log.exception("live subscription %s failed", operation.id)
        await operation.end(
            [
                {
                    "message": "internal error in the live stream; resubscribe",
                    "extensions": {"code": "INTERNAL", "resume": resume_hint(subscriber.last)},
                }
            ]
        )
    finally:
        subscriber.direct = None
        operation.subscriber = None
        broker.unsubscribe(subscriber)


def observed(task: asyncio.Task[Any]) -> None:
    """A send or a rendering carried on in a task that nobody may wait for must not
    log "exception never retrieved": whoever needs it meets the failure itself."""
    if not task.cancelled():
        task.exception()


async def _initial_state(
    context: Any, broker: Broker, viewer: Viewer, topic: Topic, subscriber: Subscriber
) -> tuple[list[Item], Cut]:
    """The topic's entitlements now, as items, and the cut they reflect: the live
    stream goes on after it."""
    limit = context.settings.live_initial_state_limit
    try:
        async with broker.sessionmaker() as session:
            snapshot = await events.snapshot(
                session,
                events.snapshot_statement(viewer, topic, today()),
                limit,
                topic,
                below=broker.horizon,
            )
    except events.HeldBack as held:
        raise LiveUnavailable(
            f"{held}: subscribe again in a moment, or without initialState"
        ) from held
    if snapshot.truncated:
        raise BadInput(
            f"the initial state holds more than {limit} entitlements: subscribe to a "
            "narrower topic (a school, a delivery), or page through them with the "
            "entitlements query",
            argument="initialState",
        )
    cut = Cut(max(snapshot.cut.at, subscriber.registered_at), snapshot.cut.reflected)
    return [Item(cut.at, None, row, cut=cut) for row in snapshot.rows], cut


def _deliver(context: Any, item: Item) -> Any:
    """`_node`, with the loaders started fresh, so that nested fields are read as
    they are now (strawberry executes the node for this subscriber)."""
    node = _node(context, item)
    context.fresh_loaders()
    return node


def _node(context: Any, item: Item) -> Any:
    """The schema object for an item (built once for every subscriber), unless the
    token has expired meanwhile: then the connection is closed."""
    if _expired(context):
        connection = getattr(context, "connection", None)
        if connection is not None:
            connection.token_expired()
        raise SubscriptionEnded("token expired")
    if item.node is None:
        from schema.live import build

        cursor = events.cut_cursor(item.cut) if item.cut else event_cursor(*item.at)
        item.node = build(cursor, item.event, item.entitlement, item.licence)
    return item.node


def _expired(context: Any) -> bool:
    expires = getattr(context, "token_expires_at", None)
    return expires is not None and time.time() > expires


def resume_hint(at: Position | None) -> str:
    if at is None:
        return "subscribe again with initialState: true"
    return f"resume with after={event_cursor(*at)}"


def revoked_error(revoked: Revoked, last: Position | None) -> ConsentRequired:
    """CONSENT_REQUIRED (status code 4) for a subscription whose school revoked the
    data exchange: which school, which data type, and where to resume."""
    school = revoked.school or "the school"
    return ConsentRequired(
        f"consent required: {school} has revoked the data exchange "
        f"{revoked.data_type.value} for this supplier; nothing after this point is sent. "
        f"Once it is activated again, {resume_hint(last)}",
        school=revoked.school,
        dataType=revoked.data_type.value,
        resume=None if last is None else event_cursor(*last),
    )


def _dropped(context: Any, subscriber: Subscriber) -> None:
    """The broker ended the subscription: close its websocket with a code that says
    why and a reason that says where to resume."""
    connection = getattr(context, "connection", None)
    if connection is None:
        return  # in-process: the stream itself ends
    if subscriber.closed == RESTART:
        connection.close_soon(CLOSE_RESTART, f"{RESTART}; {resume_hint(subscriber.last)}")
        return
    reason = f"{TOO_SLOW}: over {subscriber.limit} events waiting; {resume_hint(subscriber.last)}"
    connection.close_soon(CLOSE_TOO_SLOW, reason)
