"""GraphQL object types, separate from the ORM models.

Each type is built from a row by `from_row()`; nested fields load through the
request's DataLoaders (`info.context.loaders`, `resolvers/loaders.py`; never lazy
loading, which async SQLAlchemy cannot do). Descriptions use the chain's own words
so GraphiQL documents the chain. One module (about 600 lines): the types refer to
each other in cycles (a person's licences, a licence's person), which strawberry
resolves within a module without lazy types.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from domain.calendar import today
from domain.consent import Disclosure, disclose
from domain.cursors import event_cursor
from domain.entitlements import (
    EntitlementStatus,
    RecipientRole,
    RecipientState,
    Variant,
    effective_status,
)
from domain.identifiers import OrgIdScheme, OrgLevel, PersonIdScheme, Sector
from domain.licences import LicenceStatus, effective_licence_status, has_access
from domain.persons import PersonKind
from domain.privacy import redact, redact_pgns
from domain.products import ProductType
from schema.errors import person_consent_required

if TYPE_CHECKING:
    from db import models

T = TypeVar("T")

strawberry.enum(OrgLevel, description="RIO level of an organisation.")
strawberry.enum(
    OrgIdScheme,
    description="RIO identifier schemes. Primary: OB_ID (board), OA_ID (provider, the "
    "'school'), OL_CODE (location). Secondary: BGE_CODE (bevoegd gezag), OIE_CODE (BRIN4), "
    "VE_CODE (BRIN6), BP_ID (Basispoort), DD_ID (DigiDelivery GUID), AS_ID (administration "
    "system key).",
)
strawberry.enum(
    PersonIdScheme,
    description="Person identifier schemes: ECK_ID (primary, pupils), NEPRI "
    "(nlEduPersonRealId), NEPPI (nlEduPersonProfileId), BPI (Basispoort id), ASI "
    "(administration system key, unique within a school), EDUID.",
)
strawberry.enum(Sector, description="Education sector an ECK iD is bound to.")
strawberry.enum(PersonKind, description="Pupil (onderwijsdeelnemer) or teacher.")
strawberry.enum(
    ProductType,
    description="DIGITAL, PHYSICAL (out of scope for delivery), COMBI (print + digital) "
    "or SET (several digital products).",
)
strawberry.enum(
    Variant,
    description="Entitlement variant (aanspraakvariant): who bought it and who may activate it.",
)
strawberry.enum(
    EntitlementStatus,
    description="Entitlement status: ENTITLED → PROVISIONED (licence office) → LINK_READY "
    "(portal); CANCELLED and BLOCKED by the shop; ENDED is derived once "
    "activationUntilDate has passed.",
)
strawberry.enum(RecipientRole, description="Role in which a supplier receives an entitlement.")
strawberry.enum(
    RecipientState,
    description="What a recipient answered: PENDING, CONFIRMED, or FAILED with a status code.",
)
strawberry.enum(
    LicenceStatus,
    description="Licence status: ACTIVATED, BLOCKED (by the shop), EXPIRED (derived from "
    "expirationDate).",
)


# --- pagination -----------------------------------------------------------------------


@strawberry.type(description="Where a page of a list ends.")
class PageInfo:
    has_next_page: bool = strawberry.field(description="Whether another page follows.")
    end_cursor: str | None = strawberry.field(description="Pass as `after` to get the next page.")


@strawberry.type(description="One row of a list with its cursor.")
class Edge(Generic[T]):
    cursor: str = strawberry.field(description="Opaque cursor of this row.")
    node: T = strawberry.field(description="The row.")


@strawberry.type(description="A page of a list, ordered by a stable key.")
class Connection(Generic[T]):
    edges: list[Edge[T]] = strawberry.field(description="The rows with their cursors.")
    page_info: PageInfo = strawberry.field(description="Whether and where the list goes on.")
    #: Counts the rows matching the filter (asked only when totalCount is selected).
    counter: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(description="The rows without cursors.")
    def nodes(self) -> list[T]:
        return [edge.node for edge in self.edges]

    @strawberry.field(description="Number of rows matching the filter (costs one count query).")
    async def total_count(self) -> int:
        return await self.counter()


async def _load(info: Info, loader: str, pk: int | None, build: Callable[[Any], T]) -> T | None:
    """The object with id `pk` through the request's DataLoader `loader`, or None."""
    if pk is None:
        return None
    row = await getattr(info.context.loaders, loader).load(pk)
    return build(row) if row is not None else None


# --- organisations ----------------------------------------------------------------------


@strawberry.type(description="One identifier of an organisation: scheme and value.")
class OrganisationIdentifier:
    scheme: OrgIdScheme = strawberry.field(description="RIO identifier scheme.")
    value: str = strawberry.field(description="The identifier, e.g. 09QQ00 for a VE_CODE (BRIN6).")


@strawberry.type(
    description="An organisation at one RIO level: board (Onderwijsbestuur), provider "
    "(Onderwijsaanbieder, the 'school') or location (Onderwijslocatie)."
)
class Organisation:
    id: strawberry.ID = strawberry.field(description="The gateway's id for this organisation.")
    level: OrgLevel = strawberry.field(description="BOARD, PROVIDER or LOCATION.")
    rio_id: str = strawberry.field(
        description="Primary RIO id: OB_ID (board), OA_ID (provider) or OL_CODE (location)."
    )
    name: str = strawberry.field(description="Name as registered in RIO.")
    pk: strawberry.Private[int]

    @classmethod
    def from_row(cls, row: models.Organisation) -> Organisation:
        return cls(
            id=strawberry.ID(str(row.id)),
            level=OrgLevel(row.level),
            rio_id=row.rio_id,
            name=row.name,
            pk=row.id,
        )

    @strawberry.field(description="All identifiers: the primary id and every secondary one.")
    async def identifiers(self, info: Info) -> list[OrganisationIdentifier]:
        primary_scheme = {
            OrgLevel.BOARD: OrgIdScheme.OB_ID,
            OrgLevel.PROVIDER: OrgIdScheme.OA_ID,
            OrgLevel.LOCATION: OrgIdScheme.OL_CODE,
        }[self.level]
        rows = await info.context.loaders.organisation_identifiers.load(self.pk)
        return [OrganisationIdentifier(scheme=primary_scheme, value=self.rio_id)] + [
            OrganisationIdentifier(scheme=OrgIdScheme(r.scheme), value=r.value) for r in rows
        ]

    @strawberry.field(
        description="Boards this provider belongs to (several in the hybrid situation)."
    )
    async def boards(self, info: Info) -> list[Organisation]:
        if self.level != OrgLevel.PROVIDER:
            return []
        rows = await info.context.loaders.boards_of.load(self.pk)
        return [Organisation.from_row(r) for r in rows]

    @strawberry.field(
        description="For a board: its providers. For a location: the providers it belongs to."
    )
    async def providers(self, info: Info) -> list[Organisation]:
        loaders = info.context.loaders
        if self.level == OrgLevel.BOARD:
            rows = await loaders.providers_of_board.load(self.pk)
        elif self.level == OrgLevel.LOCATION:
            rows = await loaders.providers_of_location.load(self.pk)
        else:
            return []
        return [Organisation.from_row(r) for r in rows]

    @strawberry.field(description="Locations of this provider.")
    async def locations(self, info: Info) -> list[Organisation]:
        if self.level != OrgLevel.PROVIDER:
            return []
        rows = await info.context.loaders.locations_of.load(self.pk)
        return [Organisation.from_row(r) for r in rows]


async def load_organisation(info: Info, pk: int | None) -> Organisation | None:
    return await _load(info, "organisation", pk, Organisation.from_row)


# --- suppliers and products -------------------------------------------------------------


@strawberry.type(description="A supplier (leverancier): shop, publisher, portal, dashboard, SIS.")
class Supplier:
    id: strawberry.ID = strawberry.field(description="The gateway's id for this supplier.")
    code: str = strawberry.field(description="The supplier's code, the `sub` of its tokens.")
    name: str = strawberry.field(description="Display name.")

    @classmethod
    def from_row(cls, row: models.Supplier) -> Supplier:
        return cls(id=strawberry.ID(str(row.id)), code=row.code, name=row.name)


async def load_supplier(info: Info, pk: int | None) -> Supplier | None:
    return await _load(info, "supplier", pk, Supplier.from_row)


@strawberry.type(description="A learning material in the catalogue.")
class Product:
    id: strawberry.ID = strawberry.field(description="The gateway's id for this product.")
    product_id: str = strawberry.field(
        description="EAN/ISBN-13 for products for sale, otherwise a UUID."
    )
    name: str = strawberry.field(description="Title of the learning material.")
    type: ProductType = strawberry.field(description="DIGITAL, PHYSICAL, COMBI or SET.")
    first_publication_date: date | None = strawberry.field(
        description="First publication; a delivery may not start before it (code 14)."
    )
    sale_start_date: date | None = strawberry.field(
        description="First day for sale (before it: code 12)."
    )
    sale_end_date: date | None = strawberry.field(
        description="Last day for sale (after it: code 13)."
    )
    pk: strawberry.Private[int]
    publisher_pk: strawberry.Private[int]

    @classmethod
    def from_row(cls, row: models.Product) -> Product:
        return cls(
            id=strawberry.ID(str(row.id)),
            product_id=row.code,
            name=row.name,
            type=ProductType(row.type),
            first_publication_date=row.first_publication_date,
            sale_start_date=row.sale_start_date,
            sale_end_date=row.sale_end_date,
            pk=row.id,
            publisher_pk=row.publisher_id,
        )

    @strawberry.field(description="The publisher whose licence office provisions it.")
    async def publisher(self, info: Info) -> Supplier | None:
        return await load_supplier(info, self.publisher_pk)

    @strawberry.field(description="Digital components of a COMBI or SET; a licence covers all.")
    async def components(self, info: Info) -> list[Product]:
        rows = await info.context.loaders.components.load(self.pk)
        return [Product.from_row(r) for r in rows]


async def load_product(info: Info, pk: int | None) -> Product | None:
    return await _load(info, "product", pk, Product.from_row)


# --- school organisation -------------------------------------------------------------------


@strawberry.type(description="A subject (vak) taught at a school.")
class SchoolSubject:
    id: strawberry.ID = strawberry.field(description="The gateway's id for this subject.")
    code: str = strawberry.field(description="The school's code for the subject (schoolSubjectId).")
    name: str = strawberry.field(description="Name of the subject.")

    @classmethod
    def from_row(cls, row: models.SchoolSubject) -> SchoolSubject:
        return cls(id=strawberry.ID(str(row.id)), code=row.code, name=row.name)


@strawberry.type(description="A group (lesgroep or klas) in one school period.")
class Group:
    id: strawberry.ID = strawberry.field(description="The gateway's id for this group.")
    code: str = strawberry.field(description="The school's code for the group (groupId).")
    name: str = strawberry.field(description="Name of the group.")

    @classmethod
    def from_row(cls, row: models.TeachingGroup) -> Group:
        return cls(id=strawberry.ID(str(row.id)), code=row.code, name=row.name)


@strawberry.type(description="A school period (schooljaar or periode).")
class SchoolPeriod:
    code: str = strawberry.field(description="The school's code, e.g. 2026-2027.")
    start_date: date = strawberry.field(description="First day.")
    end_date: date = strawberry.field(description="Last day.")


@strawberry.type(description="A person's enrolment at a school in a school period.")
class Enrolment:
    period: SchoolPeriod = strawberry.field(description="The school period.")
    school_pk: strawberry.Private[int]

    @strawberry.field(description="The school (provider).")
    async def school(self, info: Info) -> Organisation | None:
        return await load_organisation(info, self.school_pk)


@strawberry.type(description="One identifier of a person: scheme and value.")
class PersonIdentifier:
    scheme: PersonIdScheme = strawberry.field(description="Identifier scheme.")
    value: str = strawberry.field(description="The identifier.")


@strawberry.type(
    description="A pupil or teacher, known by ECK iD (pupils) or secondary identifiers. "
    "The gateway stores no names, BSN or onderwijsnummer."
)
class Person:
    id: strawberry.ID = strawberry.field(description="The gateway's id for this person.")
    kind: PersonKind = strawberry.field(description="PUPIL or TEACHER.")
    sector: Sector | None = strawberry.field(
        description="Sector the ECK iD is bound to (po, vo, mbo, ho)."
    )
    pk: strawberry.Private[int]

    @classmethod
    def from_row(cls, row: models.Person) -> Person:
        return cls(
            id=strawberry.ID(str(row.id)),
            kind=PersonKind(row.kind),
            sector=Sector(row.sector) if row.sector else None,
            pk=row.id,
        )

    @strawberry.field(description="The person's ECK iD, if it has one.")
    async def eck_id(self, info: Info) -> str | None:
        rows = await info.context.loaders.person_identifiers.load(self.pk)
        return next((r.value for r in rows if r.scheme == PersonIdScheme.ECK_ID.value), None)

    @strawberry.field(description="Every identifier of the person.")
    async def identifiers(self, info: Info) -> list[PersonIdentifier]:
        rows = await info.context.loaders.person_identifiers.load(self.pk)
        return [PersonIdentifier(scheme=PersonIdScheme(r.scheme), value=r.value) for r in rows]

    @strawberry.field(description="Enrolments per school and period, newest first.")
    async def enrolments(self, info: Info) -> list[Enrolment]:
        rows = await info.context.loaders.enrolments.load(self.pk)
        return [
            Enrolment(
                period=SchoolPeriod(code=p.code, start_date=p.start_date, end_date=p.end_date),
                school_pk=e.school_id,
            )
            for e, p in rows
        ]

    @strawberry.field(description="Groups the person is in.")
    async def groups(self, info: Info) -> list[Group]:
        return [Group.from_row(r) for r in await info.context.loaders.person_groups.load(self.pk)]

    @strawberry.field(description="Subjects the pupil follows.")
    async def subjects(self, info: Info) -> list[SchoolSubject]:
        rows = await info.context.loaders.person_subjects.load(self.pk)
        return [SchoolSubject.from_row(r) for r in rows]

    @strawberry.field(description="Individual entitlements naming this person.")
    async def entitlements(self, info: Info) -> list[Entitlement]:
        rows = await info.context.loaders.entitlements_of_person.load(self.pk)
        return [Entitlement.from_row(r) for r in rows]

    @strawberry.field(description="The person's licences, with their access state.")
    async def licences(self, info: Info) -> list[Licence]:
        rows = await info.context.loaders.licences_of_person.load(self.pk)
        return [Licence.from_row(r) for r in rows]


async def load_person(info: Info, pk: int | None, school_pk: int | None) -> Person | None:
    """A person reached through another object (a licence's holder): the person rule
    of `domain.consent`, batched by the `person` loader. `school_pk` is the school
    whose audit trail notes the read."""
    if pk is None:
        return None
    answer, row = await info.context.loaders.person.load(pk) or (None, None)
    match disclose(answer):
        case Disclosure.SHOWN:
            assert row is not None  # shown: the loader read the row
            info.context.record_read(school_pk, "read.persons", "person")
            return Person.from_row(row)
        case Disclosure.CONSENT_REQUIRED:
            raise person_consent_required()
    return None


# --- entitlements and licences ---------------------------------------------------------------


@strawberry.type(description="A recipient of an entitlement and what it answered.")
class EntitlementRecipient:
    role: RecipientRole = strawberry.field(description="LICENSOR, PORTAL or DASHBOARD.")
    state: RecipientState = strawberry.field(description="PENDING, CONFIRMED or FAILED.")
    failure_code: int | None = strawberry.field(
        description="Agreed status code the recipient reported, when FAILED."
    )
    failure_message: str | None = strawberry.field(description="The recipient's explanation.")
    updated_at: datetime = strawberry.field(description="When the state last changed.")
    supplier_pk: strawberry.Private[int]

    @strawberry.field(description="The receiving supplier.")
    async def supplier(self, info: Info) -> Supplier | None:
        return await load_supplier(info, self.supplier_pk)


@strawberry.type(description="One event in an entitlement's history.")
class EntitlementEvent:
    cursor: str = strawberry.field(description="Position in the event stream.")
    kind: str = strawberry.field(description="What happened, e.g. ENTITLEMENT_LINK_READY.")
    status: str | None = strawberry.field(description="Status after the event.")
    occurred_at: datetime = strawberry.field(description="When it was committed.")
    actor_role: str | None = strawberry.field(description="Role the actor acted in.")
    detail: JSON | None = strawberry.field(
        description="Extra facts, e.g. the failure code and the recipient."
    )

    @classmethod
    def from_row(cls, row: models.Event) -> EntitlementEvent:
        return cls(
            cursor=event_cursor(row.tx_id, row.id),
            kind=row.kind,
            status=row.status,
            occurred_at=row.occurred_at,
            actor_role=row.actor_role,
            detail=redact(row.payload),
        )


@strawberry.type(
    description="An entitlement (aanspraak): the right for some pupils or teachers to start "
    "using one product within an activation period."
)
class Entitlement:
    id: strawberry.ID = strawberry.field(description="The entitlementId.")
    variant: Variant = strawberry.field(description="Entitlement variant.")
    stored_status: strawberry.Private[EntitlementStatus]
    quantity: int | None = strawberry.field(
        description="Licences bought (open variants); null for individual variants."
    )
    licences_used: int = strawberry.field(description="Licences activated on it so far.")
    start_date: date = strawberry.field(description="First day pupils can activate.")
    activation_until_date: date = strawberry.field(description="Last day pupils can activate.")
    min_expiration_date: date | None = strawberry.field(
        description="Licence term: licences run at least until this date."
    )
    licence_duration_months: int | None = strawberry.field(
        description="Licence term: months from activation."
    )
    created_at: datetime = strawberry.field(description="When the shop submitted it.")
    pk: strawberry.Private[int]
    school_pk: strawberry.Private[int | None]
    product_pk: strawberry.Private[int]
    subject_pk: strawberry.Private[int | None]
    group_pk: strawberry.Private[int | None]
    delivery_pk: strawberry.Private[int]

    @classmethod
    def from_row(cls, row: models.Entitlement) -> Entitlement:
        return cls(
            id=strawberry.ID(str(row.id)),
            variant=Variant(row.variant),
            stored_status=EntitlementStatus(row.status),
            quantity=row.quantity,
            licences_used=row.licences_used,
            start_date=row.start_date,
            activation_until_date=row.activation_until_date,
            min_expiration_date=row.min_expiration_date,
            licence_duration_months=row.licence_duration_months,
            created_at=row.created_at,
            pk=row.id,
            school_pk=row.school_id,
            product_pk=row.product_id,
            subject_pk=row.subject_id,
            group_pk=row.group_id,
            delivery_pk=row.delivery_id,
        )

    @strawberry.field(description="Current status; ENDED once activationUntilDate has passed.")
    def status(self) -> EntitlementStatus:
        return effective_status(self.stored_status, self.activation_until_date, today())

    @strawberry.field(description="Licences still available (open variants).")
    def licences_available(self) -> int | None:
        return None if self.quantity is None else self.quantity - self.licences_used

    @strawberry.field(description="The school (provider) the entitlement is for.")
    async def school(self, info: Info) -> Organisation | None:
        return await load_organisation(info, self.school_pk)

    @strawberry.field(description="The product.")
    async def product(self, info: Info) -> Product | None:
        return await load_product(info, self.product_pk)

    @strawberry.field(description="The subject of a SCHOOL_SUBJECT entitlement.")
    async def school_subject(self, info: Info) -> SchoolSubject | None:
        if self.subject_pk is None:
            return None
        row = await info.context.loaders.subject.load(self.subject_pk)
        return SchoolSubject.from_row(row) if row else None

    @strawberry.field(description="The group of a SCHOOL_GROUP entitlement.")
    async def group(self, info: Info) -> Group | None:
        if self.group_pk is None:
            return None
        row = await info.context.loaders.group.load(self.group_pk)
        return Group.from_row(row) if row else None

    @strawberry.field(description="Where it was sent and what each recipient answered.")
    async def recipients(self, info: Info) -> list[EntitlementRecipient]:
        rows = await info.context.loaders.recipients.load(self.pk)
        return [
            EntitlementRecipient(
                role=RecipientRole(r.role),
                state=RecipientState(r.state),
                failure_code=r.failure_code,
                failure_message=None
                if r.failure_message is None
                else redact_pgns(r.failure_message),
                updated_at=r.updated_at,
                supplier_pk=r.supplier_id,
            )
            for r in rows
        ]

    @strawberry.field(description="Every status change, failure and quantity change, oldest first.")
    async def history(self, info: Info) -> list[EntitlementEvent]:
        rows = await info.context.loaders.history.load(self.pk)
        return [EntitlementEvent.from_row(r) for r in rows]

    @strawberry.field(
        description="The first 50 licences activated on it; use `licences(filter:)` for all."
    )
    async def licences(self, info: Info) -> list[Licence]:
        rows = await info.context.loaders.licences_of_entitlement.load(self.pk)
        return [Licence.from_row(r) for r in rows]


@strawberry.type(description="A licence (licentie): a person's access to a product.")
class Licence:
    id: strawberry.ID = strawberry.field(description="The gateway's id for this licence.")
    stored_status: strawberry.Private[LicenceStatus]
    activated_at: datetime = strawberry.field(description="When the person activated it.")
    expiration_date: date = strawberry.field(
        description="Last day of access; the portal shows the link until then."
    )
    pk: strawberry.Private[int]
    entitlement_pk: strawberry.Private[int]
    person_pk: strawberry.Private[int | None]
    product_pk: strawberry.Private[int]
    school_pk: strawberry.Private[int | None]

    @classmethod
    def from_row(cls, row: models.Licence) -> Licence:
        return cls(
            id=strawberry.ID(str(row.id)),
            stored_status=LicenceStatus(row.status),
            activated_at=row.activated_at,
            expiration_date=row.expiration_date,
            pk=row.id,
            entitlement_pk=row.entitlement_id,
            person_pk=row.person_id,
            product_pk=row.product_id,
            school_pk=row.school_id,
        )

    @strawberry.field(
        description="ACTIVATED, BLOCKED (the licence or its whole entitlement is blocked), "
        "or EXPIRED after expirationDate."
    )
    async def status(self, info: Info) -> LicenceStatus:
        entitlement = await info.context.loaders.entitlement.load(self.entitlement_pk)
        return effective_licence_status(
            self.stored_status,
            self.expiration_date,
            today(),
            entitlement_status=EntitlementStatus(entitlement.status) if entitlement else None,
        )

    @strawberry.field(
        description="Whether the holder may use the product today: ACTIVATED, not past "
        "expirationDate, and its entitlement not BLOCKED (a CANCELLED or ENDED entitlement "
        "keeps its licences working)."
    )
    async def has_access(self, info: Info) -> bool:
        entitlement = await info.context.loaders.entitlement.load(self.entitlement_pk)
        return entitlement is not None and has_access(
            self.stored_status,
            self.expiration_date,
            today(),
            EntitlementStatus(entitlement.status),
        )

    @strawberry.field(description="The product it gives access to (all components of a set).")
    async def product(self, info: Info) -> Product | None:
        return await load_product(info, self.product_pk)

    @strawberry.field(description="The entitlement it was activated on.")
    async def entitlement(self, info: Info) -> Entitlement | None:
        row = await info.context.loaders.visible_entitlement.load(self.entitlement_pk)
        return Entitlement.from_row(row) if row else None

    @strawberry.field(
        description="The holder, under the same consent rule as `pupil`: shown when the "
        "pupil's school lets the caller read its school organisation data; "
        "CONSENT_REQUIRED when it does not; null after the person was erased."
    )
    async def person(self, info: Info) -> Person | None:
        return await load_person(info, self.person_pk, self.school_pk)

    @strawberry.field(description="The school the licence was activated at.")
    async def school(self, info: Info) -> Organisation | None:
        return await load_organisation(info, self.school_pk)
