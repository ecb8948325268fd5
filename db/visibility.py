"""Who may receive which event (DOMAIN.md §7–8): the facts the rule in
`domain.visibility.may_see_event` needs, loaded for a batch of events in a fixed
number of statements whatever its size, and the one check every event passes on
its way to a supplier: live subscriptions, their replay, pushes to suppliers'
endpoints.

    facts = await load_facts(session, rows, today)
    facts.may_see(viewer, row)                        # handed over as it happens (live)
    facts.may_see(viewer, row, handed_over=today)     # handed over later (replay, push)

Each event is judged with the consent its school had given when the event
happened (its consent history: every activation, revocation and processing
agreement, placed in the event stream by their own events), and, when handed over
later, also with the consent of now. Consent changes are rows of the event table
too (`domain.visibility.ConsentChange`), never delivered themselves: `is_chain_event`
tells them apart.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from db.models import (
    DataExchange,
    Delivery,
    Entitlement,
    EntitlementRecipient,
    Event,
    Licence,
    ProcessingAgreement,
    Product,
)
from domain.calendar import chain_day
from domain.entitlements import RecipientRole
from domain.events import EventKind
from domain.roles import DataType, Role
from domain.visibility import (
    CONSENT_CHANGES,
    NO_HISTORY,
    NOW,
    AgreementSpan,
    ConsentHistory,
    EntitlementFacts,
    ExchangeSpan,
    Moment,
    SchoolConsent,
    Viewer,
    may_see_event,
)


def is_chain_event(row: Event) -> bool:
    """An event of the chain (delivered to suppliers), not a consent change."""
    return row.kind not in CONSENT_CHANGES


def data_type_of(row: Event) -> DataType:
    """Which data type an event hands over: a licence's events are activations."""
    return DataType.ACTIVATIONS if EventKind(row.kind).about_licence else DataType.ENTITLEMENTS


def aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def moment_of(row: Event) -> Moment:
    return Moment((row.tx_id, row.id), aware(row.occurred_at))


def day_of(row: Event) -> date:
    return chain_day(aware(row.occurred_at))


@dataclass
class Facts:
    """What deciding and building a batch of events needs: the entitlements and
    licences the events are about, who is involved in each entitlement, and the
    consent history of their schools."""

    entitlements: dict[int, Entitlement] = field(default_factory=dict)
    licences: dict[int, Licence] = field(default_factory=dict)
    involved: dict[int, EntitlementFacts] = field(default_factory=dict)
    history: dict[int, ConsentHistory] = field(default_factory=dict)

    def may_see(self, viewer: Viewer, row: Event, *, handed_over: date | None = None) -> bool:
        """The one check every event passes on its way to a supplier: as it happens
        (live), or, with `handed_over` (today), later (a replay, a push)."""
        involved = self.involved.get(row.entitlement_id) if row.entitlement_id else None
        if involved is None or not is_chain_event(row):
            return False  # every event of the chain is about an entitlement
        if Role.OPERATOR in viewer.roles:
            return True
        history = (
            self.history.get(involved.school_id, NO_HISTORY)
            if involved.school_id is not None
            else NO_HISTORY
        )
        return may_see_event(
            viewer,
            involved,
            history,
            moment_of(row),
            day_of(row),
            data_type_of(row),
            handed_over=None if handed_over is None else (NOW, handed_over),
        )

    def consent_now(self, school_id: int | None, today: date) -> SchoolConsent:
        history = self.history.get(school_id, NO_HISTORY) if school_id else NO_HISTORY
        return history.at(NOW, today)


async def load_facts(session: AsyncSession, rows: Iterable[Event], today: date) -> Facts:
    rows = list(rows)
    entitlement_ids = sorted({r.entitlement_id for r in rows if r.entitlement_id is not None})
    licence_ids = sorted({r.licence_id for r in rows if r.licence_id is not None})
    return await load_entitlement_facts(session, entitlement_ids, today, licence_ids)


async def load_entitlement_facts(
    session: AsyncSession,
    entitlement_ids: list[int],
    today: date,
    licence_ids: list[int] | None = None,
) -> Facts:
    facts = Facts()
    if not entitlement_ids:
        return facts
    found = await session.execute(
        select(Entitlement, Delivery.seller_id, Product.publisher_id)
        .join(Delivery, Delivery.id == Entitlement.delivery_id)
        .join(Product, Product.id == Entitlement.product_id)
        .where(Entitlement.id.in_(entitlement_ids))
    )
    sellers: dict[int, tuple[int, int | None]] = {}
    for row, seller_id, publisher_id in found:
        facts.entitlements[row.id] = row
        sellers[row.id] = (seller_id, publisher_id)
    recipients: dict[int, set[tuple[int, RecipientRole]]] = defaultdict(set)
    for entitlement_id, supplier_id, role in await session.execute(
        select(
            EntitlementRecipient.entitlement_id,
            EntitlementRecipient.supplier_id,
            EntitlementRecipient.role,
        ).where(EntitlementRecipient.entitlement_id.in_(entitlement_ids))
    ):
        recipients[entitlement_id].add((supplier_id, RecipientRole(role)))
    for entitlement_id, row in facts.entitlements.items():
        seller, publisher = sellers[entitlement_id]
        facts.involved[entitlement_id] = EntitlementFacts(
            school_id=row.school_id,
            seller_id=seller,
            publisher_id=publisher,
            recipients=frozenset(recipients.get(entitlement_id, ())),
        )
    school_ids = sorted({r.school_id for r in facts.entitlements.values() if r.school_id})
    if school_ids:
        facts.history = await consent_history(session, school_ids)
    if licence_ids:
        licences = await session.scalars(select(Licence).where(Licence.id.in_(licence_ids)))
        facts.licences = {row.id: row for row in licences}
    return facts


def _moment(at: datetime, tx_id: int | None, event_id: int | None) -> Moment:
    position = (tx_id, event_id) if tx_id is not None and event_id is not None else None
    return Moment(position, aware(at))


async def consent_history(
    session: AsyncSession, school_ids: list[int]
) -> dict[int, ConsentHistory]:
    """Every activation, revocation and processing agreement of these schools, each
    with the moment it took effect (two statements)."""
    activated, revoked, registered = aliased(Event), aliased(Event), aliased(Event)
    exchanges: dict[int, list[ExchangeSpan]] = defaultdict(list)
    for row in await session.execute(
        select(
            DataExchange.school_id,
            DataExchange.supplier_id,
            DataExchange.role,
            DataExchange.data_type,
            DataExchange.activated_at,
            activated.tx_id,
            activated.id,
            DataExchange.revoked_at,
            revoked.tx_id,
            revoked.id,
        )
        .outerjoin(activated, activated.id == DataExchange.activated_event_id)
        .outerjoin(revoked, revoked.id == DataExchange.revoked_event_id)
        .where(DataExchange.school_id.in_(school_ids))
    ):
        (school_id, supplier_id, role, data_type, on, on_tx, on_id, off, off_tx, off_id) = row
        exchanges[school_id].append(
            ExchangeSpan(
                supplier_id,
                Role(role),
                DataType(data_type),
                _moment(on, on_tx, on_id),
                None if off is None else _moment(off, off_tx, off_id),
            )
        )
    agreements: dict[int, list[AgreementSpan]] = defaultdict(list)
    for school_id, supplier_id, valid_from, valid_until, created, tx_id, event_id in (
        await session.execute(
            select(
                ProcessingAgreement.school_id,
                ProcessingAgreement.supplier_id,
                ProcessingAgreement.valid_from,
                ProcessingAgreement.valid_until,
                ProcessingAgreement.created_at,
                registered.tx_id,
                registered.id,
            )
            .outerjoin(registered, registered.id == ProcessingAgreement.registered_event_id)
            .where(ProcessingAgreement.school_id.in_(school_ids))
        )
    ):
        agreements[school_id].append(
            AgreementSpan(supplier_id, _moment(created, tx_id, event_id), valid_from, valid_until)
        )
    return {
        school_id: ConsentHistory(
            tuple(exchanges.get(school_id, ())), tuple(agreements.get(school_id, ()))
        )
        for school_id in school_ids
    }
