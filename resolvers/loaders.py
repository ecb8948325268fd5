"""DataLoaders, one set per request: nested fields of a list page become one
statement per field, not one per row (tests assert the statement count)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import date
from typing import Any, TypeVar

from sqlalchemy import false, literal, select
from strawberry.dataloader import DataLoader

from db import access, catalogue, entitlements, organisations, persons, push, suppliers
from db import delivery_reads as deliveries
from domain.calendar import today
from domain.consent import Access
from domain.identifiers import OrgLevel
from domain.roles import DataType, Principal
from resolvers.context import Database

K = TypeVar("K")
V = TypeVar("V")

# Nested licence lists are bounded per parent; the full list is a paginated query.
NESTED_LICENCES = 50


def _one(db: Database, fetch: Callable[[Any, list[Any]], Awaitable[dict[Any, Any]]]) -> DataLoader:
    async def load(keys: Sequence[Any]) -> list[Any]:
        found = await db.run(lambda s: fetch(s, list(keys)))
        return [found.get(key) for key in keys]

    return DataLoader(load_fn=load)


def _many(
    db: Database, fetch: Callable[[Any, list[Any]], Awaitable[dict[Any, list[Any]]]]
) -> DataLoader:
    async def load(keys: Sequence[Any]) -> list[Any]:
        found = await db.run(lambda s: fetch(s, list(keys)))
        return [found.get(key, []) for key in keys]

    return DataLoader(load_fn=load)


class Loaders:
    """`caller` gives the caller when a loader runs (after the permission check
    resolved it); loaders of school data filter by the consent rules for it and
    today in SQL, so a nested field never shows what the caller may not read."""

    def __init__(self, db: Database, caller: Callable[[], Principal | None]) -> None:
        def visible(condition: Callable[[Principal, date], Any]) -> Any:
            current = caller()
            return condition(current, today()) if current is not None else false()

        def schools() -> Any:
            current = caller()
            if current is None:
                return select(literal(None))
            return access.visible_schools(current, today(), DataType.SCHOOL_ORGANISATION)

        self.organisation = _one(db, organisations.by_ids)
        self.organisation_identifiers = _many(db, organisations.identifiers_for)
        self.boards_of = _many(
            db, lambda s, ids: organisations.related(s, ids, upwards=True, level=OrgLevel.BOARD)
        )
        self.providers_of_board = _many(
            db,
            lambda s, ids: organisations.related(s, ids, upwards=False, level=OrgLevel.PROVIDER),
        )
        self.providers_of_location = _many(
            db,
            lambda s, ids: organisations.related(s, ids, upwards=True, level=OrgLevel.PROVIDER),
        )
        self.locations_of = _many(
            db,
            lambda s, ids: organisations.related(s, ids, upwards=False, level=OrgLevel.LOCATION),
        )
        self.supplier = _one(db, suppliers.by_ids)
        self.product = _one(db, catalogue.products_by_ids)
        self.components = _many(db, catalogue.components_for)
        self.subject = _one(db, catalogue.subjects_by_ids)
        self.group = _one(db, catalogue.groups_by_ids)

        async def persons_with_access(session: Any, ids: list[int]) -> dict[int, Any]:
            current = caller()
            if current is None:
                return {}
            answers = await access.persons_access(session, current, today(), ids)
            shown = [i for i, answer in answers.items() if answer is Access.ALLOWED]
            rows = await persons.by_ids(session, shown) if shown else {}
            return {i: (answer, rows.get(i)) for i, answer in answers.items()}

        # A person as (Access, row): the row only when the caller may see it.
        self.person = _one(db, persons_with_access)
        self.person_identifiers = _many(
            db,
            lambda s, ids: persons.identifiers_for(s, ids, visible(access.visible_identifiers)),
        )
        self.enrolments = _many(db, lambda s, ids: persons.enrolments_for(s, ids, schools()))
        self.person_groups = _many(db, lambda s, ids: persons.groups_for(s, ids, schools()))
        self.person_subjects = _many(db, lambda s, ids: persons.subjects_for(s, ids, schools()))
        self.entitlement = _one(db, entitlements.by_ids)  # internal: status derivation
        self.visible_entitlement = _one(
            db, lambda s, ids: entitlements.by_ids(s, ids, visible(access.entitlement_scope))
        )
        self.recipients = _many(db, entitlements.recipients_for)
        self.entitlees = _many(db, entitlements.entitlees_for)
        self.history = _many(db, deliveries.history)
        self.licences_of_entitlement = _many(
            db,
            lambda s, ids: entitlements.licences_for_entitlements(
                s, ids, NESTED_LICENCES, visible(access.licence_scope)
            ),
        )
        self.licence = _one(
            db, lambda s, ids: entitlements.licences_by_ids(s, ids, visible(access.licence_scope))
        )
        self.licences_of_person = _many(
            db,
            lambda s, ids: entitlements.licences_for_persons(s, ids, visible(access.licence_scope)),
        )
        self.entitlements_of_person = _many(
            db,
            lambda s, ids: entitlements.entitlements_for_persons(
                s, ids, visible(access.entitlement_scope)
            ),
        )
        self.delivery_totals = _one(db, lambda s, ids: deliveries.totals(s, ids, today()))
        self.entitlements_of_delivery = _many(
            db,
            lambda s, ids: deliveries.entitlements_of_deliveries(
                s, ids, visible(access.entitlement_scope)
            ),
        )
        self._db = db

    # A supplier's push endpoints are few: their refusals and seeds are read per endpoint.

    async def push_refusals(self, endpoint_id: int, limit: int) -> list[Any]:
        """The latest events the endpoint's receiver refused, newest first."""
        return await self._db.run(lambda s: push.refusals(s, endpoint_id, limit))

    async def push_seeds(self, endpoint_id: int) -> list[Any]:
        """The endpoint's seed requests, newest first."""
        return await self._db.run(lambda s: push.seeds_of(s, endpoint_id))
