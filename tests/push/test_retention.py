"""What the push keeps and what it reads: answers past
`push_answer_retention_days` are deleted in bounded statements (the status's
counters stay); `GET /events` reads only the events of entitlements the caller is
a party to (db/push.PartyTopic), exactly the ones it may be shown."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from db import events
from db import push as store
from db.engine import create_sessionmaker, read_only
from db.events import START
from db.visibility import load_facts
from domain.roles import Role
from domain.visibility import Viewer
from push import deliverer
from resolvers.clock import today
from tests.conftest import LiveGateway
from tests.push.conftest import Clock, queued, register, submit
from tests.push.receiver import Receiver
from tests.push.test_delivery import status_of


async def test_answers_past_the_retention_are_deleted_in_bounded_rounds(
    live: LiveGateway, receiver: Receiver, service_for, clock: Clock, monkeypatch
) -> None:
    monkeypatch.setattr(deliverer, "PRUNE_CHUNK", 2)
    endpoint_id = await register(live, receiver.url)
    service = await service_for(clock, push_answer_retention_days=30)
    await submit(live, lines=5)
    worker = await queued(service, endpoint_id, 5)
    assert await worker.step() == "sent"
    sessions = create_sessionmaker(live.engine)
    now = clock()  # the answers were given at the clock's time

    async def answers() -> list[store.PushAnswer]:
        async with sessions() as session:
            return list(
                await session.scalars(
                    select(store.PushAnswer)
                    .where(store.PushAnswer.endpoint_id == int(endpoint_id))
                    .order_by(store.PushAnswer.event_id)
                )
            )

    kept = await answers()
    assert len(kept) == 5
    old = [a.event_id for a in kept[:3]]
    async with sessions() as session, session.begin():
        for days, event_id in zip((31, 40, 400), old, strict=True):
            await session.execute(
                store.PushAnswer.__table__.update()
                .where(
                    store.PushAnswer.endpoint_id == int(endpoint_id),
                    store.PushAnswer.event_id == event_id,
                )
                .values(answered_at=now - timedelta(days=days))
            )
    # Everything else in the module's database is younger than 29 days too.
    assert await service.prune_answers(now) == 3  # rounds of 2, 1
    assert [a.event_id for a in await answers()] == [a.event_id for a in kept[3:]]
    assert await service.prune_answers(now) == 0
    status = await status_of(live, endpoint_id)
    assert status["status"]["deliveredEvents"] == 5  # the counters stay
    off = await service_for(clock, push_answer_retention_days=0)
    assert await off.prune_answers(now + timedelta(days=1000)) == 0


async def test_the_party_topic_reads_exactly_the_events_a_supplier_may_be_shown(
    live: LiveGateway,
) -> None:
    await submit(live, lines=2)
    await submit(live, lines=1, school="11CD")
    sessions = create_sessionmaker(live.engine)
    async with sessions() as session:
        await read_only(session)
        head = await events.stable_head(session)
        rows = await events.read(session, START, 100_000, upto=head)
        facts = await load_facts(session, rows, today())
        from db.models import Supplier, SupplierRole

        found = (
            await session.execute(
                select(Supplier.id, Supplier.code, SupplierRole.role).join(
                    SupplierRole, SupplierRole.supplier_id == Supplier.id
                )
            )
        ).all()
        roles: dict[int, set[Role]] = {}
        for supplier, _code, role in found:
            roles.setdefault(supplier, set()).add(Role(role))
        assert rows
        checked = 0
        for supplier, held in roles.items():
            viewer = Viewer(supplier, frozenset(held - {Role.OPERATOR, Role.SCHOOL}))
            narrowed = await events.read(
                session, START, 100_000, upto=head, topic=store.PartyTopic(party=supplier)
            )
            read_ids = {r.id for r in narrowed}
            shown = {r.id for r in rows if facts.may_see(viewer, r, handed_over=today())}
            assert shown <= read_ids, supplier  # nothing it may see is left unread
            involved = {
                r.id
                for r in rows
                if r.entitlement_id in facts.involved
                and supplier
                in {
                    facts.involved[r.entitlement_id].seller_id,
                    facts.involved[r.entitlement_id].publisher_id,
                    *(s for s, _ in facts.involved[r.entitlement_id].recipients),
                }
            }
            assert read_ids == involved, supplier  # and nothing of others is read
            checked += bool(read_ids)
        assert checked >= 2  # the shop and the publisher at least
