"""The root fields of the read API as SQL: each becomes one subquery of the plan's
statement with three columns: `data` (the field's JSON), `problem` (a refusal
the root answers with the rules' error, `Root.refusals`, or why the resolvers must
answer this request after all: an unknown, ambiguous or malformed identifier; NULL
when none) and `reads` (the
audit reads, `[[school_id, object_id], …]`).

Each root field also prepares, per request and in Python, the values its SQL takes
from the arguments (identifiers validated by `domain/`, cursors decoded by
`db/pagination`), with the same checks as its resolver; what does not pass makes
the request run on the resolvers (`Replay`), which answer it with their errors.
(Longer than most modules: one compiler per root field, side by side.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Date, bindparam, literal_column

from compiler.arguments import (
    MAX_BIGINT,
    RANK,
    Replay,
    Root,
    access_rank,
    after_key,
    gateway_id,
    lookup_answer,
    organisation_ids,
    organisation_search,
    page_size,
)
from compiler.connections import connection
from compiler.objects import Compiler, Details
from compiler.persons import eck_filter, person_refusals, prepare_eck_filter
from compiler.sql import TODAY, NotCompiled, quote
from db import derived
from db.access import entitlement_scope, licence_scope
from db.entitlements import licence_status_matches
from db.models import Entitlement, Licence
from domain.identifiers import IdentifierError, validate_product_id
from domain.roles import DataType
from settings import Settings


def _today(c: Compiler) -> Any:
    return bindparam(TODAY, type_=Date())


# --- entitlements and licences ---------------------------------------------------------------


def _filled(value: Any) -> bool:
    """The resolvers test optional filters for truth (an empty string is no filter)."""
    return bool(value)


def entitlements(
    c: Compiler, key: str, details: Details, args: dict[str, Any], settings: Settings
) -> Root:
    """`entitlements(first, after, filter)` (`resolvers.queries.entitlements_list`)."""
    flt = args.get("filter") or {}
    st = c.st
    conditions = [st.condition(Entitlement.__table__, entitlement_scope(c.caller, c.today))]
    setup, problems = _school_and_product(c, key, flt, DataType.ENTITLEMENTS)
    if flt.get("school"):
        conditions.append("entitlement.school_id = (SELECT school_id FROM filter_)")
    if _filled(flt.get("productId")):
        conditions.append("entitlement.product_id = (SELECT product_id FROM filter_)")
    if _filled(flt.get("deliveryId")):
        conditions.append(f"entitlement.delivery_id = {st.value(key, 'delivery_id', 'bigint')}")
    if flt.get("status"):
        status = st.scalar(
            derived.effective_status(
                literal_column("entitlement.status"),
                literal_column("entitlement.activation_until_date"),
                _today(c),
            )
        )
        conditions.append(f"{status} = ANY({st.value(key, 'statuses', 'text[]')})")
    if flt.get("variant") is not None:
        conditions.append(f"entitlement.variant = {st.value(key, 'variant', 'text')}")
    sql = connection(
        c,
        key,
        details,
        node_type="Entitlement",
        table="entitlement",
        where=" AND ".join(conditions),
        kind="entitlement",
        with_school=True,
        setup=setup,
    ).replace("{problem}", problems)

    def prepare(args: dict[str, Any], caller: Any) -> dict[str, Any]:
        flt = args.get("filter") or {}
        values: dict[str, Any] = {
            "first": page_size(settings, args.get("first")),
            "after": after_key("entitlement", args.get("after")),
        }
        _prepare_school_and_product(values, flt)
        if _filled(flt.get("deliveryId")):
            values["delivery_id"] = gateway_id(flt["deliveryId"])
        if flt.get("status"):
            values["statuses"] = [s.value for s in flt["status"]]
        if flt.get("variant") is not None:
            values["variant"] = flt["variant"].value
        return values

    return Root(
        key,
        sql,
        prepare,
        "read.entitlements",
        "entitlement",
        _school_refusals(DataType.ENTITLEMENTS),
    )


def _school_and_product(
    c: Compiler, key: str, flt: dict[str, Any], data_type: DataType
) -> tuple[str, str]:
    """The `filter_` CTE resolving a filter's school and product, and the problem
    expression (a named school must be exactly one the caller may read)."""
    columns, problems, lookup = [], [], ""
    if flt.get("school"):
        lookup = f"school_ AS (SELECT {organisation_ids(c, key, 'school_')} AS ids), "
        columns.append("(SELECT ids FROM school_) AS school_ids")
        columns.append(
            "(SELECT CASE WHEN cardinality(ids) = 1 THEN ids[1] END FROM school_) AS school_id"
        )
    if _filled(flt.get("productId")):
        code = c.st.value(key, "product_code", "text")
        columns.append(f"(SELECT p.id FROM product AS p WHERE p.code = {code}) AS product_id")
    if not columns:
        return "", "NULL::text"
    setup = f"{lookup}filter_ AS (SELECT {', '.join(columns)}), "
    if flt.get("school"):
        rank = access_rank(c, "f.school_id", data_type)
        problems.append(
            "(SELECT CASE WHEN f.school_ids IS NULL THEN 'unknown school' "
            "WHEN cardinality(f.school_ids) > 1 THEN 'ambiguous school' "
            f"WHEN {rank} <> 0 THEN 'school refused:' || {rank} END FROM filter_ AS f)"
        )
    if _filled(flt.get("productId")):
        problems.append(
            "(SELECT CASE WHEN f.product_id IS NULL THEN 'unknown product' END FROM filter_ AS f)"
        )
    return setup, f"coalesce({', '.join(problems)})" if problems else "NULL::text"


def _school_refusals(data_type: DataType) -> dict[str, Callable[[dict[str, Any]], Any]]:
    """The refusal for each answer a named school can get (`resolvers.auth.school_refusal`)."""
    from resolvers.auth import school_refusal

    def refusal(access: Any) -> Callable[[dict[str, Any]], Any]:
        return lambda values: school_refusal([access], data_type, values["shown"])

    return {f"school refused:{rank}": refusal(access) for access, rank in RANK.items() if rank}


def _prepare_school_and_product(values: dict[str, Any], flt: dict[str, Any]) -> None:
    if flt.get("school"):
        values["shown"] = flt["school"]["value"]
        for name, value in organisation_search(flt["school"]).items():
            values[f"school_{name}"] = value
    if _filled(flt.get("productId")):
        try:
            values["product_code"], _kind = validate_product_id(flt["productId"])
        except IdentifierError as exc:
            raise Replay("malformed productId") from exc


def licences(
    c: Compiler, key: str, details: Details, args: dict[str, Any], settings: Settings
) -> Root:
    """`licences(first, after, filter)` (`resolvers.queries.licences_list`)."""
    flt = args.get("filter") or {}
    st = c.st
    conditions = [st.condition(Licence.__table__, licence_scope(c.caller, c.today))]
    setup, problems = _school_and_product(c, key, flt, DataType.ACTIVATIONS)
    if flt.get("school"):
        conditions.append("licence.school_id = (SELECT school_id FROM filter_)")
    if _filled(flt.get("productId")):
        conditions.append("licence.product_id = (SELECT product_id FROM filter_)")
    if _filled(flt.get("eckId")):
        # Checked first, as the resolver does: the person rule decides.
        person_setup, person_problem = eck_filter(c, key)
        setup, problems = person_setup + setup, f"coalesce({person_problem}, {problems})"
        conditions.append("licence.person_id = (SELECT person_id FROM person_filter_)")
    if _filled(flt.get("entitlementId")):
        conditions.append(f"licence.entitlement_id = {st.value(key, 'entitlement_id', 'bigint')}")
    if flt.get("status") is not None:
        status: Any = literal_column(st.value(key, "status", "text"))
        conditions.append(
            st.condition(Licence.__table__, licence_status_matches(status, _today(c)))
        )
    sql = connection(
        c,
        key,
        details,
        node_type="Licence",
        table="licence",
        where=" AND ".join(conditions),
        kind="licence",
        with_school=True,
        setup=setup,
    ).replace("{problem}", problems)

    def prepare(args: dict[str, Any], caller: Any) -> dict[str, Any]:
        flt = args.get("filter") or {}
        values: dict[str, Any] = {
            "first": page_size(settings, args.get("first")),
            "after": after_key("licence", args.get("after")),
        }
        if _filled(flt.get("eckId")):
            prepare_eck_filter(values, flt["eckId"])
        _prepare_school_and_product(values, flt)
        if _filled(flt.get("entitlementId")):
            values["entitlement_id"] = gateway_id(flt["entitlementId"])
        if flt.get("status") is not None:
            values["status"] = flt["status"].value
        return values

    refusals = {**_school_refusals(DataType.ACTIVATIONS), **person_refusals()}
    return Root(key, sql, prepare, "read.licences", "licence", refusals)


def entitlement(
    c: Compiler, key: str, details: Details, args: dict[str, Any], settings: Settings
) -> Root:
    """`entitlement(id)` (`resolvers.delivery.entitlement`): the row if the caller
    may see it; a recipient without the school's consent is told CONSENT_REQUIRED."""
    from domain.roles import Role

    st = c.st
    b = st.alias()
    visible = st.condition(Entitlement.__table__, entitlement_scope(c.caller, c.today))
    pk = st.value(key, "id", "bigint")
    obj = c.object("Entitlement", b, details)
    source = (
        f"(SELECT entitlement.* FROM entitlement WHERE entitlement.id = {pk} AND {visible}) AS {b}"
    )
    recipient_roles = [
        role.value.upper() for role in c.caller.roles if role in (Role.PORTAL, Role.DASHBOARD)
    ]
    problem = "NULL::text"
    if recipient_roles:
        roles = ", ".join(quote(r) for r in recipient_roles)
        supplier = st.param(lambda run: run.caller.supplier_id, "int")
        problem = (
            f"(CASE WHEN NOT EXISTS (SELECT 1 FROM {source}) AND EXISTS (SELECT 1 FROM "
            f"entitlement_recipient AS r WHERE r.entitlement_id = {pk} AND r.supplier_id = "
            f"{supplier} AND r.role IN ({roles})) THEN 'consent refused' END)"
        )
    sql = (
        f"(SELECT (SELECT {obj} FROM {source}) AS data, {problem} AS problem, "
        f"(SELECT json_agg(json_build_array({b}.school_id, {b}.id)) FROM {source}) AS reads)"
    )

    def prepare(args: dict[str, Any], caller: Any) -> dict[str, Any]:
        try:
            pk = int(args["id"])
        except (TypeError, ValueError):
            pk = -1  # `_id` gives None: no entitlement, no error
        if not -MAX_BIGINT <= pk <= MAX_BIGINT:
            raise Replay("id out of range")
        return {"id": pk}

    from schema.errors import entitlement_consent_required

    refusals = {"consent refused": lambda values: entitlement_consent_required()}
    return Root(key, sql, prepare, "read.entitlement", "entitlement", refusals)


def licence_holders(
    c: Compiler, key: str, details: Details, args: dict[str, Any], settings: Settings
) -> Root:
    """`licenceHolders(school, productId, first, after)` (`resolvers.activation.holders`):
    the school named must be one the caller may read ACTIVATIONS of, the product a
    known one; `db.licences.holders_condition` for it and the sets containing it."""
    from sqlalchemy import select, table

    from db.activation import PRODUCT_BY_CODE
    from db.licences import holders_condition

    st = c.st
    flt = {"school": args["school"], "productId": args["productId"]}
    setup, problems = _school_and_product(c, key, flt, DataType.ACTIVATIONS)
    code = st.value(key, "product_code", "text")
    product = st.embed(PRODUCT_BY_CODE, {"code": code})
    setup += f"products_ AS (SELECT unnest(ARRAY[r.id, r.product_id]) AS id FROM {product} AS r), "
    holders = holders_condition(
        select(literal_column("school_id")).select_from(table("filter_")),
        select(literal_column("id")).select_from(table("products_")),
        _today(c),
    )
    conditions = [
        st.condition(Licence.__table__, licence_scope(c.caller, c.today)),
        st.condition(Licence.__table__, holders),
    ]
    sql = connection(
        c,
        key,
        details,
        node_type="Licence",
        table="licence",
        where=" AND ".join(conditions),
        kind="licence",
        with_school=True,
        setup=setup,
    ).replace("{problem}", problems)

    def prepare(args: dict[str, Any], caller: Any) -> dict[str, Any]:
        values: dict[str, Any] = {
            "first": page_size(settings, args.get("first")),
            "after": after_key("licence", args.get("after")),
        }
        _prepare_school_and_product(values, {"school": args["school"], **_product(args)})
        return values

    return Root(
        key, sql, prepare, "read.licences", "licence", _school_refusals(DataType.ACTIVATIONS)
    )


def _product(args: dict[str, Any]) -> dict[str, Any]:
    """The product argument as a filter's (an empty productId is malformed here)."""
    if not args["productId"]:
        raise Replay("empty productId")
    return {"productId": args["productId"]}


# --- organisations and products --------------------------------------------------------------


def organisation(
    c: Compiler, key: str, details: Details, args: dict[str, Any], settings: Settings
) -> Root:
    """`organisation(id | identifier)` (`resolvers.queries.organisation`): the one
    organisation found, or the typed answers `OrganisationNotFound` and
    `InvalidIdentifier` (their values and messages made per request by the resolver
    itself, `lookup_answer`); an identifier that points at several organisations
    (`OrganisationAmbiguous`) runs on the resolvers."""
    st = c.st
    b, n, v = st.alias(), st.alias(), st.alias()
    obj = c.object("Organisation", b, details)
    missing = c.object("OrganisationNotFound", n, details)
    invalid = c.object("InvalidIdentifier", v, details)
    if args.get("id") is not None and args.get("identifier") is None:
        ids = f"ARRAY[{st.value(key, 'id', 'bigint')}]::bigint[]"
        ids = f"(SELECT array_agg(o.id) FROM organisation AS o WHERE o.id = ANY({ids}))"
    elif args.get("identifier") is not None and args.get("id") is None:
        ids = organisation_ids(c, key, "org_")
    else:
        raise NotCompiled("organisation needs exactly one of id or identifier")

    def answer(name: str) -> str:
        return st.value(key, f"answer_{name}", "text")

    kind = answer("kind")
    sql = (
        f"(SELECT CASE WHEN {kind} = 'invalid' THEN (SELECT {invalid} FROM (SELECT "
        f"{answer('scheme')} AS scheme, {answer('value')} AS value, {answer('problem')} "
        f"AS problem, {answer('message')} AS message) AS {v}) "
        f"WHEN f.ids IS NULL THEN (SELECT {missing} FROM (SELECT {answer('value')} AS value, "
        f"{answer('scheme')} AS scheme, {answer('message')} AS message) AS {n}) "
        "WHEN cardinality(f.ids) = 1 THEN "
        f"(SELECT {obj} FROM organisation AS {b} WHERE {b}.id = f.ids[1]) END AS data, "
        "CASE WHEN cardinality(f.ids) > 1 THEN 'ambiguous' END AS problem, "
        f"NULL::json AS reads FROM (SELECT CASE WHEN {kind} = 'lookup' THEN {ids} END AS ids) AS f)"
    )

    def prepare(args: dict[str, Any], caller: Any) -> dict[str, Any]:
        values = {f"answer_{k}": v for k, v in lookup_answer(args).items()}
        if args.get("id") is not None:
            values["id"] = gateway_id(args["id"])
        elif values["answer_kind"] == "lookup":
            values.update(
                {f"org_{k}": v for k, v in organisation_search(args["identifier"]).items()}
            )
        else:
            values.update({f"org_{k}": None for k in _SEARCH})
        return values

    return Root(key, sql, prepare)


_SEARCH = ("rio", "level", "sec", "sec_scheme", "upper")


def organisations(
    c: Compiler, key: str, details: Details, args: dict[str, Any], settings: Settings
) -> Root:
    """`organisations(first, after, filter)` (`resolvers.queries.organisations_list`)."""
    flt = args.get("filter") or {}
    st = c.st
    conditions, setup, problem = ["TRUE"], "", "NULL::text"
    if flt.get("level") is not None:
        conditions.append(f"organisation.level = {st.value(key, 'level', 'text')}")
    if _filled(flt.get("nameContains")):
        conditions.append(f"organisation.name ILIKE {st.value(key, 'name', 'text')}")
    if flt.get("board") is not None:
        ids = organisation_ids(c, key, "board_", level="BOARD")
        setup = f"filter_ AS (SELECT {ids} AS board_ids), "
        conditions.append(
            "organisation.id IN (SELECT child_id FROM organisation_relation "
            "WHERE parent_id = (SELECT board_ids[1] FROM filter_))"
        )
        problem = (
            "(SELECT CASE WHEN board_ids IS NULL OR cardinality(board_ids) <> 1 "
            "THEN 'board not one' END FROM filter_)"
        )
    sql = connection(
        c,
        key,
        details,
        node_type="Organisation",
        table="organisation",
        where=" AND ".join(conditions),
        kind="organisation",
        with_school=False,
        setup=setup,
    ).replace("{problem}", problem)

    def prepare(args: dict[str, Any], caller: Any) -> dict[str, Any]:
        flt = args.get("filter") or {}
        values: dict[str, Any] = {
            "first": page_size(settings, args.get("first")),
            "after": after_key("organisation", args.get("after")),
        }
        if flt.get("level") is not None:
            values["level"] = flt["level"].value
        if _filled(flt.get("nameContains")):
            values["name"] = f"%{flt['nameContains'].lower()}%"
        if flt.get("board") is not None:
            for name, value in organisation_search(flt["board"]).items():
                values[f"board_{name}"] = value
        return values

    return Root(key, sql, prepare)


def products(
    c: Compiler, key: str, details: Details, args: dict[str, Any], settings: Settings
) -> Root:
    """`products(first, after, filter)` (`resolvers.queries.products_list`)."""
    flt = args.get("filter") or {}
    st = c.st
    conditions, setup, problem = ["TRUE"], "", "NULL::text"
    if flt.get("type") is not None:
        conditions.append(f"product.type = {st.value(key, 'type', 'text')}")
    if _filled(flt.get("nameContains")):
        conditions.append(f"product.name ILIKE {st.value(key, 'name', 'text')}")
    if _filled(flt.get("publisherCode")):
        code = st.value(key, "publisher", "text")
        publisher = f"(SELECT s.id FROM supplier AS s WHERE s.code = {code})"
        setup = f"filter_ AS (SELECT {publisher} AS publisher_id), "
        conditions.append("product.publisher_id = (SELECT publisher_id FROM filter_)")
        problem = (
            "(SELECT CASE WHEN publisher_id IS NULL THEN 'unknown publisher' END FROM filter_)"
        )
    sql = connection(
        c,
        key,
        details,
        node_type="Product",
        table="product",
        where=" AND ".join(conditions),
        kind="product",
        with_school=False,
        setup=setup,
    ).replace("{problem}", problem)

    def prepare(args: dict[str, Any], caller: Any) -> dict[str, Any]:
        flt = args.get("filter") or {}
        values: dict[str, Any] = {
            "first": page_size(settings, args.get("first")),
            "after": after_key("product", args.get("after")),
        }
        if flt.get("type") is not None:
            values["type"] = flt["type"].value
        if _filled(flt.get("nameContains")):
            values["name"] = f"%{flt['nameContains']}%"
        if _filled(flt.get("publisherCode")):
            values["publisher"] = flt["publisherCode"]
        return values

    return Root(key, sql, prepare)


# --- deliveries ----------------------------------------------------------------------------------


def delivery(
    c: Compiler, key: str, details: Details, args: dict[str, Any], settings: Settings
) -> Root:
    """`delivery(id | referenceId)` (`resolvers.delivery.delivery`): the caller's own
    delivery by id (any delivery for the operator) or by the caller's referenceId;
    null for anything else."""
    from domain.roles import Role

    st = c.st
    b = st.alias()
    obj = c.object("Delivery", b, details)
    supplier = st.lazy(lambda run: run.caller.supplier_id, "int")  # not the operator's
    if args.get("referenceId") is not None and args.get("id") is None:
        reference = st.value(key, "reference", "text")
        where = f"{b}.seller_id = {supplier} AND {b}.reference_id = {reference}"
    elif args.get("id") is not None and args.get("referenceId") is None:
        own = "TRUE" if Role.OPERATOR in c.caller.roles else f"{b}.seller_id = {supplier}"
        where = f"{b}.id = {st.value(key, 'id', 'bigint')} AND {own}"
    else:
        raise NotCompiled("delivery needs exactly one of id or referenceId")
    sql = (
        f"(SELECT (SELECT {obj} FROM delivery AS {b} WHERE {where}) AS data, "
        "NULL::text AS problem, NULL::json AS reads)"
    )

    def prepare(args: dict[str, Any], caller: Any) -> dict[str, Any]:
        from resolvers.delivery import _id

        if args.get("id") is not None:
            pk = _id(args["id"])
            if pk is not None and not -MAX_BIGINT <= pk <= MAX_BIGINT:
                raise Replay("id out of range")
            return {"id": pk or -1}  # as the resolver looks it up
        return {"reference": args["referenceId"]}

    return Root(key, sql, prepare)


# --- the school in control ----------------------------------------------------------------------


def _school_list(
    table: str, type_name: str, order: str
) -> Callable[[Compiler, str, Details, dict[str, Any], Settings], Root]:
    """A school's own rows (`resolvers.consent.exchanges`/`agreements`): the school
    must be one provider, and a school administrator's own (else the resolvers
    refuse)."""

    def compile_root(
        c: Compiler, key: str, details: Details, args: dict[str, Any], settings: Settings
    ) -> Root:
        from domain.roles import Role

        st = c.st
        ids = organisation_ids(c, key, "school_", level="PROVIDER")
        b = st.alias()
        obj = c.object(type_name, b, details)
        own = "FALSE"
        if Role.OPERATOR not in c.caller.roles:
            school = st.param(lambda run: run.caller.school_id, "int")
            own = f"f.ids[1] IS DISTINCT FROM {school}"
        sql = (
            f"(SELECT (SELECT coalesce(json_agg({obj} ORDER BY {order.format(b=b)}), '[]'::json) "
            f"FROM {table} AS {b} WHERE {b}.school_id = f.ids[1]) AS data, "
            "CASE WHEN f.ids IS NULL OR cardinality(f.ids) <> 1 THEN 'school not one' "
            f"WHEN {own} THEN 'not the own school' END AS problem, NULL::json AS reads "
            f"FROM (SELECT {ids} AS ids) AS f)"
        )

        def prepare(args: dict[str, Any], caller: Any) -> dict[str, Any]:
            return {f"school_{k}": v for k, v in organisation_search(args["school"]).items()}

        return Root(key, sql, prepare)

    return compile_root


def audit_trail(
    c: Compiler, key: str, details: Details, args: dict[str, Any], settings: Settings
) -> Root:
    """`auditTrail(school, first, after, since, until)` (`resolvers.privacy.audit_trail`):
    the named school must be one provider and, for a school administrator, its own
    (else the resolvers refuse); its audit rows as a connection by id."""
    from domain.roles import Role

    st = c.st
    ids = organisation_ids(c, key, "school_", level="PROVIDER")
    own = "FALSE"
    if Role.OPERATOR not in c.caller.roles:
        school = st.param(lambda run: run.caller.school_id, "int")
        own = f"school_ids[1] IS DISTINCT FROM {school}"
    conditions = ["audit_log.school_id = (SELECT school_ids[1] FROM filter_)"]
    if args.get("since") is not None:
        conditions.append(f"audit_log.at >= {st.value(key, 'since', 'timestamptz')}")
    if args.get("until") is not None:
        conditions.append(f"audit_log.at < {st.value(key, 'until', 'timestamptz')}")
    problem = (
        "(SELECT CASE WHEN school_ids IS NULL OR cardinality(school_ids) <> 1 "
        f"THEN 'school not one' WHEN {own} THEN 'not the own school' END FROM filter_)"
    )
    sql = connection(
        c,
        key,
        details,
        node_type="AuditEntry",
        table="audit_log",
        where=" AND ".join(conditions),
        kind="audit",
        with_school=False,
        setup=f"filter_ AS (SELECT {ids} AS school_ids), ",
    ).replace("{problem}", problem)

    def prepare(args: dict[str, Any], caller: Any) -> dict[str, Any]:
        values: dict[str, Any] = {
            "first": page_size(settings, args.get("first")),
            "after": after_key("audit", args.get("after")),
            "since": args.get("since"),
            "until": args.get("until"),
        }
        for name, value in organisation_search(args["school"]).items():
            values[f"school_{name}"] = value
        return values

    return Root(key, sql, prepare)


RootCompiler = Callable[[Compiler, str, Details, dict[str, Any], Settings], Root]

ROOTS: dict[str, RootCompiler] = {
    "organisation": organisation,
    "organisations": organisations,
    "products": products,
    "entitlements": entitlements,
    "licences": licences,
    "licenceHolders": licence_holders,
    "entitlement": entitlement,
    "delivery": delivery,
    "auditTrail": audit_trail,
    "dataExchanges": _school_list(
        "data_exchange", "DataExchange", "{b}.supplier_id, {b}.data_type, {b}.id"
    ),
    "processingAgreements": _school_list(
        "processing_agreement", "ProcessingAgreement", "{b}.supplier_id, {b}.valid_from, {b}.id"
    ),
}

__all__ = ["ROOTS", "Replay", "Root"]
