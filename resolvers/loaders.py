"""DataLoaders, one set per request: nested fields of a list page become one
statement per field, not one per row (tests assert the statement count)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from strawberry.dataloader import DataLoader

from db import catalogue, entitlements, organisations, persons, suppliers
from db import delivery as deliveries
from domain.identifiers import OrgLevel
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
    def __init__(self, db: Database) -> None:
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
        self.person = _one(db, persons.by_ids)
        self.person_identifiers = _many(db, persons.identifiers_for)
        self.enrolments = _many(db, persons.enrolments_for)
        self.person_groups = _many(db, persons.groups_for)
        self.person_subjects = _many(db, persons.subjects_for)
        self.entitlement = _one(db, entitlements.by_ids)
        self.recipients = _many(db, entitlements.recipients_for)
        self.entitlees = _many(db, entitlements.entitlees_for)
        self.history = _many(db, deliveries.history)
        self.licences_of_entitlement = _many(
            db, lambda s, ids: entitlements.licences_for_entitlements(s, ids, NESTED_LICENCES)
        )
        self.licence = _one(db, entitlements.licences_by_ids)
        self.licences_of_person = _many(db, entitlements.licences_for_persons)
        self.entitlements_of_person = _many(db, entitlements.entitlements_for_persons)
