"""Activation and licence resolvers: decode the input (the login school and the
product through the process's reference cache on PostgreSQL), hand the click to the
activation use case (`services/activation.py`), answer with the schema's payload
types.

``licenceActivate`` needs no referenceId: a click has none, and the decision tree
itself is idempotent (a second click finds the licence of the first). When the
caller sends one, a repeat gets the stored answer.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import strawberry
from strawberry.types import Info

from db import access, licences, organisations
from db import activation as store
from db.activation import ActivationRequest
from db.idempotency import ReferenceConflict, request_hash
from db.models import Entitlee, ProcessedMessage
from domain.errors import FieldError, StatusCode, ValidationFailed
from domain.identifiers import (
    IdentifierError,
    OrgLevel,
    PersonIdScheme,
    validate_person_identifier,
    validate_product_id,
)
from domain.licences import LicenceAction, LicenceStatus
from domain.roles import DataType, Role
from resolvers import lookup
from resolvers.auth import Principal, principal
from resolvers.clock import today
from resolvers.context import Database
from resolvers.queries import _audited, _page, product_pk, school_ids
from resolvers.writes import REFUSED, refusal
from schema.activation import (
    ActivationDenied,
    LicenceActivateInput,
    LicenceActivatePayload,
    LicenceChanged,
    LicenceChangePayload,
    LicenceGranted,
    LicenceStepInput,
)
from schema.lookups import OrganisationIdentifierInput
from schema.types import Connection, Licence
from services import activation
from services import licences as licence_service
from services.unit_of_work import Answered, Click, Reference


async def login_school(
    db: Database, school: OrganisationIdentifierInput, field: str = "school"
) -> int | FieldError:
    """The provider the login names. Most IdPs send a BRIN6, which may name a
    location: then its provider, if there is exactly one."""
    found = await lookup.find_organisation(db, school.scheme, school.value, OrgLevel.PROVIDER)
    if isinstance(found, lookup.OrgFound):
        return found.row.id
    if isinstance(found, lookup.Malformed):
        return FieldError(StatusCode.SCHOOL_UNKNOWN, field, found.error.message)
    if isinstance(found, lookup.OrgNotFound):
        location = await lookup.find_organisation(
            db, school.scheme, school.value, OrgLevel.LOCATION
        )
        candidates = (
            [location.row]
            if isinstance(location, lookup.OrgFound)
            else location.candidates
            if isinstance(location, lookup.OrgAmbiguous)
            else []
        )
        if candidates:
            ids = [row.id for row in candidates]
            related = await db.run(
                lambda s: organisations.related(s, ids, upwards=True, level=OrgLevel.PROVIDER)
            )
            providers = {p.id for rows in related.values() for p in rows}
            if len(providers) == 1:
                return providers.pop()
    return FieldError(StatusCode.SCHOOL_UNKNOWN, field, found.message)


def _person_keys(
    input: LicenceActivateInput,
) -> tuple[list[tuple[PersonIdScheme, str]], list[FieldError]]:
    keys: list[tuple[PersonIdScheme, str]] = []
    problems: list[FieldError] = []
    person = input.person
    if person.eck_id is not None:
        try:
            keys.append(
                (
                    PersonIdScheme.ECK_ID,
                    validate_person_identifier(PersonIdScheme.ECK_ID, person.eck_id),
                )
            )
        except IdentifierError as error:
            problems.append(FieldError(StatusCode.FIELD_MISSING, "person.eckId", error.message))
    for index, identifier in enumerate(person.identifiers):
        try:
            keys.append(
                (identifier.scheme, validate_person_identifier(identifier.scheme, identifier.value))
            )
        except IdentifierError as error:
            problems.append(
                FieldError(
                    StatusCode.FIELD_MISSING, f"person.identifiers.{index}.value", error.message
                )
            )
    if not keys and not problems:
        problems.append(
            FieldError(
                StatusCode.PERSON_ID_MISSING,
                "person.eckId",
                "the person needs an ECK iD or a secondary identifier (userId)",
            )
        )
    return keys, problems


async def _request(
    context: Any, caller: Principal, input: LicenceActivateInput
) -> ActivationRequest | ValidationFailed:
    problems: list[FieldError] = []
    code: str | None = None
    try:
        code, _kind = validate_product_id(input.product_id)
    except IdentifierError as error:
        problems.append(FieldError(StatusCode.FIELD_MISSING, "productId", error.message))
    keys, person_problems = _person_keys(input)
    problems += person_problems
    db = context.db
    cache = context.reference_cache or _NO_CACHE
    school = await cache.get(
        ("school", input.school.scheme, input.school.value),
        lambda: login_school(db, input.school),
    )
    if isinstance(school, FieldError):
        problems.append(school)
    product = None
    if code is not None:
        found = code
        product = await cache.get(
            ("product", code), lambda: db.run(lambda s: store.product_by_code(s, found))
        )
        # A licence office activates only its own products; to anyone else another
        # publisher's product is as unknown as a product that does not exist.
        if product is None or not caller.owns(product.publisher_id):
            problems.append(
                FieldError(
                    StatusCode.PRODUCT_UNKNOWN,
                    "productId",
                    f"no product with productId {code} is published by this licence office",
                )
            )
    code_entered = input.activation_code.strip() if input.activation_code else None
    # Clicks are registered in batches: a value the store cannot hold would fail every
    # click of the batch, so it is refused here, for this click alone.
    for field, value, longest in (
        ("activationCode", code_entered, ACTIVATION_CODE_LENGTH),
        ("referenceId", input.reference_id, REFERENCE_ID_LENGTH),
    ):
        if value is not None and (len(value) > longest or "\x00" in value):
            problems.append(
                FieldError(
                    StatusCode.FIELD_MISSING,
                    field,
                    f"{field} must be at most {longest} characters without NUL characters",
                )
            )
    if problems:
        return ValidationFailed(problems)
    assert product is not None
    assert isinstance(school, int)
    return ActivationRequest(
        school_id=school,
        product=product,
        person_keys=tuple(keys),
        activation_code=code_entered or None,
    )


#: The longest activation code and referenceId the store keeps.
ACTIVATION_CODE_LENGTH = Entitlee.activation_code.type.length
REFERENCE_ID_LENGTH = ProcessedMessage.reference_id.type.length


class _Uncached:
    async def get(self, _key: Any, load: Any) -> Any:
        return await load()


_NO_CACHE = _Uncached()


def licence_from_answer(found: dict[str, Any]) -> Licence:
    activated_at = found["activatedAt"]
    expiration = found["expirationDate"]
    return Licence(
        id=strawberry.ID(str(found["id"])),
        stored_status=LicenceStatus(found["status"]),
        activated_at=datetime.fromisoformat(activated_at)
        if isinstance(activated_at, str)
        else activated_at,
        expiration_date=date.fromisoformat(expiration)
        if isinstance(expiration, str)
        else expiration,
        pk=found["id"],
        entitlement_pk=found["entitlementId"],
        person_pk=found["personId"],
        product_pk=found["productId"],
        school_pk=found["schoolId"],
    )


async def activate(info: Info, input: LicenceActivateInput) -> LicenceActivatePayload:
    """Decode the click, hand it to the activation use case (the process's group
    commit on PostgreSQL, else one click in the request's transaction), answer."""

    context = info.context
    caller = await principal(context)
    request = await _request(context, caller, input)
    if isinstance(request, ValidationFailed):
        return refusal(request, None, LicenceActivatePayload)
    role = Role.OPERATOR if caller.is_operator else Role.LICENSOR
    reference = (
        Reference(
            (caller.supplier_id, "licenceActivate", input.reference_id),
            request_hash(strawberry.asdict(input)),
        )
        if input.reference_id is not None
        else None
    )
    click = Click(request, caller.acting_as(role), reference)
    try:
        if context.activations is not None:
            await context.db.close()  # the click needs nothing more of the request's session
            result = await context.activations.activate(click)
        else:
            result = await _in_transaction(context, click)
    except ReferenceConflict as conflict:
        return refusal(conflict, input.reference_id, LicenceActivatePayload)
    answer = result.answer
    if answer["granted"]:
        return LicenceGranted.build(answer, result.replayed, licence_from_answer(answer["licence"]))
    return ActivationDenied.build(answer)


async def _in_transaction(context: Any, click: Click) -> Answered:
    """One click in the request's own transaction (SQLite; PostgreSQL in tests that
    run inside an outer transaction)."""
    for _ in range(3):  # a double click of the same person is decided again
        async with context.db.transaction() as session:
            result = await activation.activate_one(activation.store_for(session), click, today())
        context.fresh_loaders()
        if isinstance(result, ReferenceConflict):
            raise result
        if isinstance(result, Answered):
            return result
    raise RuntimeError("the click could not be decided")


# --- block / unblock one licence ------------------------------------------------------------


async def change(
    info: Info, input: LicenceStepInput, action: LicenceAction
) -> LicenceChangePayload:
    context = info.context
    caller = await principal(context)
    try:
        licence_id = int(input.licence_id)
    except (TypeError, ValueError):
        unknown = licence_service.unknown_licence(input.licence_id)
        return refusal(unknown, None, LicenceChangePayload)
    try:
        pk, replayed = await licence_service.change(
            context.db,
            caller,
            licence_id,
            action,
            input.reference_id,
            lambda: strawberry.asdict(input),
            today(),
            context.fresh_loaders,
        )
    except REFUSED as error:
        return refusal(error, input.reference_id, LicenceChangePayload)
    row = await context.loaders.licence.load(pk)
    return LicenceChanged(licence=Licence.from_row(row), replayed=replayed)


# --- reads -------------------------------------------------------------------------------------


async def holders(
    info: Info,
    school: OrganisationIdentifierInput,
    product_id: str,
    first: int | None,
    after: str | None,
) -> Connection[Licence]:
    from db.models import Licence as Row

    ids = await school_ids(info, school, "school", DataType.ACTIVATIONS)
    await product_pk(info, product_id, "productId")  # refuses malformed and unknown ids
    code, _kind = validate_product_id(product_id)
    product = await info.context.db.run(lambda s: store.product_by_code(s, code))
    assert product is not None
    caller, day = await principal(info.context), today()
    statement = licences.holders_statement(ids, product, day).where(
        access.licence_scope(caller, day)
    )
    page = await _page(info, statement, Row.id, "licence", first, after, Licence.from_row)
    return _audited(info, page, "licence")  # the school's trail shows who read its licences
