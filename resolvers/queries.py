"""Read resolvers: decode arguments, load through `db/`, build schema types."""

from __future__ import annotations

from typing import Any

import strawberry
from sqlalchemy import Select
from strawberry.types import Info

from db import access, catalogue, entitlements, organisations
from db.pagination import InvalidCursor, count, fetch_page
from domain.consent import Disclosure, disclose
from domain.identifiers import (
    IdentifierError,
    OrgLevel,
    PersonIdScheme,
    validate_product_id,
)
from domain.roles import DataType
from resolvers import lookup
from resolvers.auth import principal, require_school
from resolvers.clock import today
from schema.errors import (
    BadInput,
    person_consent_required,
)
from schema.filters import EntitlementFilter, LicenceFilter, OrganisationFilter, ProductFilter
from schema.lookups import (
    InvalidIdentifier,
    OrganisationAmbiguous,
    OrganisationIdentifierInput,
    OrganisationLookup,
    OrganisationNotFound,
    PersonIdentifierInput,
    PersonLookup,
    PersonNotFound,
)
from schema.types import (
    Connection,
    Edge,
    Entitlement,
    Licence,
    Organisation,
    PageInfo,
    Person,
    Product,
)


def invalid(error: IdentifierError) -> InvalidIdentifier:
    return InvalidIdentifier(
        scheme=str(error.scheme) if error.scheme else None,
        value=error.value,
        problem=error.problem,
        message=str(error),
    )


def org_lookup_result(found: lookup.OrgResult) -> OrganisationLookup:
    match found:
        case lookup.OrgFound(row):
            return Organisation.from_row(row)
        case lookup.OrgAmbiguous(value, candidates, message):
            return OrganisationAmbiguous(
                value=value,
                candidates=[Organisation.from_row(r) for r in candidates],
                message=message,
            )
        case lookup.Malformed(error):
            return invalid(error)
        case lookup.OrgNotFound(scheme, value, message):
            return OrganisationNotFound(value=value, scheme=scheme, message=message)
    raise AssertionError(found)


def person_lookup_result(found: lookup.PersonResult) -> PersonLookup:
    match found:
        case lookup.PersonFound(row):
            return Person.from_row(row)
        case lookup.PersonMissing(scheme, value, message):
            return PersonNotFound(scheme=scheme, value=value, message=message)
        case lookup.Malformed(error):
            return invalid(error)
        case lookup.OrgNotFound(_, value, message) | lookup.OrgAmbiguous(value, _, message):
            return InvalidIdentifier(
                scheme="school", value=value, problem="school", message=message
            )
    raise AssertionError(found)


async def organisation(
    info: Info, id: strawberry.ID | None, identifier: OrganisationIdentifierInput | None
) -> OrganisationLookup:
    if (id is None) == (identifier is None):
        raise BadInput("give exactly one of `id` or `identifier`")
    if id is not None:
        row = await info.context.loaders.organisation.load(_int_id(id, "id"))
        if row is None:
            return OrganisationNotFound(
                value=str(id), scheme=None, message=f"no organisation has id {id}"
            )
        return Organisation.from_row(row)
    assert identifier is not None
    found = await lookup.find_organisation(info.context.db, identifier.scheme, identifier.value)
    return org_lookup_result(found)


async def person_disclosure(info: Info, found: lookup.PersonResult) -> Disclosure | None:
    """The person rule for a person named by identifier (`domain.consent`): None
    when the identifier is malformed (nothing was looked up)."""
    if isinstance(found, lookup.PersonFound):
        caller, day = await principal(info.context), today()
        person_id = found.row.id
        answer = await info.context.db.run(
            lambda s: access.person_access_of(s, caller, day, person_id)
        )
        return disclose(answer)
    if isinstance(found, lookup.PersonMissing):
        return disclose(None)
    return None


async def _visible_person(info: Info, found: lookup.PersonResult) -> PersonLookup:
    """A person is shown only to callers that may read its school organisation
    data; a related caller is told the school's consent is missing; anyone else
    gets exactly what an unknown identifier gets."""
    match await person_disclosure(info, found):
        case Disclosure.CONSENT_REQUIRED:
            raise person_consent_required()
        case Disclosure.NOT_FOUND if isinstance(found, lookup.PersonFound):
            return person_lookup_result(lookup.person_missing(found.scheme, found.value))
        case Disclosure.SHOWN:
            assert isinstance(found, lookup.PersonFound)
            person_id = found.row.id
            schools = await info.context.db.run(lambda s: access.enrolled_schools(s, person_id))
            for school_id in schools or [None]:
                info.context.record_read(school_id, "read.person", "person", person_id)
    return person_lookup_result(found)


async def pupil(info: Info, eck_id: str) -> PersonLookup:
    found = await lookup.find_person(info.context.db, PersonIdScheme.ECK_ID, eck_id)
    return await _visible_person(info, found)


async def person(info: Info, identifier: PersonIdentifierInput) -> PersonLookup:
    school = (identifier.school.scheme, identifier.school.value) if identifier.school else None
    found = await lookup.find_person(info.context.db, identifier.scheme, identifier.value, school)
    return await _visible_person(info, found)


# --- lists ------------------------------------------------------------------------------

#: A person id no row has: a filter on it lists nothing.
NO_PERSON = 0


def _int_id(value: Any, field: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise BadInput(f"{field} must be a gateway id (digits), got {value!r}") from exc


def _page_size(info: Info, first: int | None) -> int:
    settings = info.context.settings
    size = settings.default_page_size if first is None else first
    if not 1 <= size <= settings.max_page_size:
        raise BadInput(f"first must be between 1 and {settings.max_page_size}, got {size}")
    return size


async def _page(
    info: Info,
    statement: Select[Any],
    key: Any,
    kind: str,
    first: int | None,
    after: str | None,
    build: Any,
) -> Connection[Any]:
    size = _page_size(info, first)
    try:
        page = await info.context.db.run(
            lambda s: fetch_page(s, statement, key, kind=kind, first=size, after=after)
        )
    except InvalidCursor as exc:
        raise BadInput(str(exc), argument="after") from exc
    edges = [Edge(cursor=page.cursor(i), node=build(row)) for i, row in enumerate(page.rows)]
    count_statement = page.count_statement
    db = info.context.db

    async def counter() -> int:
        return await db.run(lambda s: count(s, count_statement))

    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=page.has_next, end_cursor=edges[-1].cursor if edges else None
        ),
        counter=counter,
    )


def _audited(info: Info, page: Connection[Any], kind: str) -> Connection[Any]:
    """Note in the audit trail of every school on the page that the caller read its
    `kind` rows (one row per school per request)."""
    for school_id in {edge.node.school_pk for edge in page.edges}:
        info.context.record_read(school_id, f"read.{kind}s", kind)
    return page


async def school_ids(
    info: Info, school: OrganisationIdentifierInput, field: str, data_type: DataType
) -> list[int]:
    """The organisation ids a filter's school identifier means, once the caller is
    known to have the school's consent for `data_type`; a clear error otherwise."""
    found = await lookup.find_organisation(info.context.db, school.scheme, school.value)
    if isinstance(found, lookup.OrgFound):
        ids = [found.row.id]
    elif isinstance(found, lookup.OrgAmbiguous):
        ids = [row.id for row in found.candidates]
    elif isinstance(found, lookup.Malformed):
        raise BadInput(str(found.error), field=field)
    else:
        raise BadInput(found.message, field=field)
    await require_school(info, ids, data_type, school.value)
    return ids


async def product_pk(info: Info, product_id: str, field: str) -> int:
    try:
        code, _kind = validate_product_id(product_id)
    except IdentifierError as exc:
        raise BadInput(str(exc), field=field) from exc
    row = await info.context.db.run(lambda s: catalogue.product_by_code(s, code))
    if row is None:
        raise BadInput(f"no product has productId {code!r}", field=field, statusCode=11)
    return row.id


async def organisations_list(
    info: Info, first: int | None, after: str | None, filter: OrganisationFilter | None
) -> Connection[Organisation]:
    filter = filter or OrganisationFilter()
    board_id = None
    if filter.board is not None:
        found = await lookup.find_organisation(
            info.context.db, filter.board.scheme, filter.board.value, OrgLevel.BOARD
        )
        if not isinstance(found, lookup.OrgFound):
            raise BadInput(getattr(found, "message", "unknown board"), field="filter.board")
        board_id = found.row.id
    statement = organisations.list_statement(
        level=filter.level, name_contains=filter.name_contains, board_id=board_id
    )
    from db.models import Organisation as Row

    return await _page(info, statement, Row.id, "organisation", first, after, Organisation.from_row)


async def products_list(
    info: Info, first: int | None, after: str | None, filter: ProductFilter | None
) -> Connection[Product]:
    from db import suppliers
    from db.models import Product as Row

    filter = filter or ProductFilter()
    publisher_id = None
    if filter.publisher_code:
        code = filter.publisher_code
        found = await info.context.db.run(lambda s: suppliers.by_code(s, code))
        if found is None:
            raise BadInput(f"no supplier has code {code!r}", field="filter.publisherCode")
        publisher_id = found[0]
    statement = catalogue.product_list_statement(
        type=filter.type, publisher_id=publisher_id, name_contains=filter.name_contains
    )
    return await _page(info, statement, Row.id, "product", first, after, Product.from_row)


async def entitlements_list(
    info: Info, first: int | None, after: str | None, filter: EntitlementFilter | None
) -> Connection[Entitlement]:
    from db.models import Entitlement as Row

    filter = filter or EntitlementFilter()
    caller, day = await principal(info.context), today()
    statement = entitlements.entitlement_list_statement(
        school_ids=await school_ids(info, filter.school, "filter.school", DataType.ENTITLEMENTS)
        if filter.school
        else None,
        product_id=await product_pk(info, filter.product_id, "filter.productId")
        if filter.product_id
        else None,
        delivery_id=_int_id(filter.delivery_id, "filter.deliveryId")
        if filter.delivery_id
        else None,
        statuses=filter.status,
        variant=filter.variant,
        today=day,
    ).where(access.entitlement_scope(caller, day))
    page = await _page(info, statement, Row.id, "entitlement", first, after, Entitlement.from_row)
    return _audited(info, page, "entitlement")


async def licences_list(
    info: Info, first: int | None, after: str | None, filter: LicenceFilter | None
) -> Connection[Licence]:
    from db.models import Licence as Row

    filter = filter or LicenceFilter()
    person_id = None
    if filter.eck_id:
        found = await lookup.find_person(info.context.db, PersonIdScheme.ECK_ID, filter.eck_id)
        if isinstance(found, lookup.Malformed):
            raise BadInput(str(found.error), field="filter.eckId")
        match await person_disclosure(info, found):
            case Disclosure.SHOWN:
                assert isinstance(found, lookup.PersonFound)
                person_id = found.row.id
            case Disclosure.CONSENT_REQUIRED:
                raise person_consent_required()
            case _:
                # Unknown, or not the caller's to know: the same empty list.
                person_id = NO_PERSON
    caller, day = await principal(info.context), today()
    statement = entitlements.licence_list_statement(
        school_ids=await school_ids(info, filter.school, "filter.school", DataType.ACTIVATIONS)
        if filter.school
        else None,
        product_id=await product_pk(info, filter.product_id, "filter.productId")
        if filter.product_id
        else None,
        person_id=person_id,
        entitlement_ids=[_int_id(filter.entitlement_id, "filter.entitlementId")]
        if filter.entitlement_id
        else None,
        status=filter.status,
        today=day,
    ).where(access.licence_scope(caller, day))
    page = await _page(info, statement, Row.id, "licence", first, after, Licence.from_row)
    return _audited(info, page, "licence")
