"""The object types of the read API as SQL: for a row (a table alias), the JSON of
the fields a selection asks for, nested objects and lists as correlated
subqueries. Each field does in SQL what its resolver in `schema/types.py` does,
with the same loaders' filters (the consent scopes of `db/access.py` compiled in)
and the same order; `tests/compiler` holds the two paths equal.

A field without an entry here makes the whole operation run on the resolvers.
(Longer than most modules: the table of every compiled field is one place to read.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    OperationDefinitionNode,
)
from graphql.execution.collect_fields import FieldDetails, collect_subfields
from sqlalchemy import Date, bindparam, literal_column

from compiler.marks import MARK, MARKED_JSON, READ, REFUSED, Mark, Read, Refusal
from compiler.sql import (
    TODAY,
    NotCompiled,
    Statement,
    enum_name,
    event_cursor,
    json_object,
    quote,
    timestamp,
)
from db import derived
from db.access import entitlement_scope, licence_scope
from db.models import Entitlement, Licence
from domain.identifiers import PRIMARY_SCHEME
from domain.roles import Principal

#: Nested licence lists are bounded per entitlement (`resolvers.loaders.NESTED_LICENCES`).
NESTED_LICENCES = 50

Details = list[FieldDetails]


@dataclass
class Compiler:
    """Compiles selections for one operation (one plan)."""

    schema: GraphQLSchema
    fragments: dict[str, Any]
    variables: Any
    operation: OperationDefinitionNode
    caller: Principal
    today: Any
    st: Statement
    max_page: int = 100
    _joins: dict[str, list[str]] = field(default_factory=dict)
    #: What nested fields answer beside their values (`compiler.marks`).
    marks: list[Mark] = field(default_factory=list)

    def refusal(
        self, details: Details, error: Callable[..., Exception], detail: str | None = None
    ) -> str:
        """SQL: the JSON value that stands for `error` at this field's path; with
        `detail` (SQL text, e.g. the school's rio_id) `error` is called with its value."""
        self.marks.append(Refusal([d.node for d in details], error))
        head = f"{REFUSED}{len(self.marks) - 1}"
        if detail is None:
            return f"to_json({quote(head + MARK)}::text)"
        return f"to_json(({quote(head + ':')} || coalesce({detail}, '') || {quote(MARK)})::text)"

    def read(self, action: str, object_type: str) -> str:
        """The key of an object's member whose value (a school id) is an audit read."""
        self.marks.append(Read(action, object_type))
        return f"{READ}{len(self.marks) - 1}"

    def type(self, name: str) -> Any:
        return self.schema.type_map[name]

    def object(
        self,
        type_name: str,
        alias: str,
        details: Details,
        extra: list[tuple[str, str]] | None = None,
    ) -> str:
        """JSON of one row of `type_name` (at `alias`) for the selection in `details`
        (after the `extra` members: marks)."""
        object_type = self.type(type_name)
        assert isinstance(object_type, GraphQLObjectType)
        collected = collect_subfields(
            self.schema, self.fragments, self.variables, self.operation, object_type, details
        )
        fields = FIELDS.get(type_name, {})
        pairs = list(extra or [])
        for key, field_details in collected.grouped_field_set.items():
            node = field_details[0].node
            name = node.name.value
            if name == "__typename":
                pairs.append((key, quote(type_name)))
                continue
            if node.arguments:
                raise NotCompiled(f"{type_name}.{name} with arguments")
            compile_field = fields.get(name)
            if compile_field is None:
                raise NotCompiled(f"{type_name}.{name}")
            pairs.append((key, compile_field(self, alias, field_details)))
        return json_object(pairs)

    def enum(self, column: str, enum: str) -> str:
        found = self.type(enum)
        assert isinstance(found, GraphQLEnumType)
        return enum_name(column, found)

    def one(self, type_name: str, table: str, key: str, details: Details) -> str:
        """The row of `table` whose id is `key` (`alias.column`), or null: joined to
        the list being built when there is one (one pass instead of a lookup per
        row), else a correlated subquery."""
        b = self.st.alias()
        parent = key.split(".", 1)[0]
        level = self._joins.get(parent)
        if level is not None:
            level.append(f"LEFT JOIN {table} AS {b} ON {b}.id = {key}")
            self._joins[b] = level
            obj = self.object(type_name, b, details)
            return f"(CASE WHEN {b}.id IS NULL THEN NULL ELSE {obj} END)"
        obj = self.object(type_name, b, details)
        return f"(SELECT {obj} FROM {table} AS {b} WHERE {b}.id = {key})"

    def aggregate(
        self, alias: str, source: str, order: str, element: Callable[[], str], where: str = ""
    ) -> str:
        """A JSON list of `element()` (SQL over `alias`) for the rows of `source`
        (a FROM item naming `alias`), in `order`."""
        self._joins[alias] = []
        built = element()
        joins = " ".join(self._joins[alias])
        condition = f" WHERE {where}" if where else ""
        return (
            f"(SELECT coalesce(json_agg({built} ORDER BY {order}), '[]'::json) "
            f"FROM {source} {joins}{condition})"
        )

    def many(
        self, type_name: str, source: str, alias: str, order: str, details: Details, where: str = ""
    ) -> str:
        """A JSON list of the rows of `source` (a FROM item that names `alias`)."""
        return self.aggregate(
            alias, source, order, lambda: self.object(type_name, alias, details), where
        )


Field = Callable[[Compiler, str, Details], str]


def column(name: str, convert: Callable[[str], str] | None = None) -> Field:
    def compile_field(c: Compiler, a: str, details: Details) -> str:
        value = f"{a}.{name}"
        return convert(value) if convert else value

    return compile_field


def gid(c: Compiler, a: str, details: Details) -> str:
    return f"({a}.id)::text"


def enum(name: str, enum_type: str) -> Field:
    def compile_field(c: Compiler, a: str, details: Details) -> str:
        return c.enum(f"{a}.{name}", enum_type)

    return compile_field


def when(a: str) -> Field:
    return column(a, timestamp)


#: Free text other suppliers wrote (failure messages, event details) is shown with
#: any BSN or onderwijsnummer in it redacted by the resolvers' rule (`domain/`). Text
#: holding nine digits (a superset of what the rule redacts) is marked instead, and
#: a request whose answer holds the mark is answered by the resolvers.
REDACT_MARK = "\u0001ketenpoort:redact\u0001"
_NINE_DIGITS = "'[[:digit:]]([ \u00a0.-]*[[:digit:]]){8}'"


def free_text(name: str) -> Field:
    def compile_field(c: Compiler, a: str, details: Details) -> str:
        value = f"{a}.{name}"
        return (
            f"(CASE WHEN {value} ~ {_NINE_DIGITS} OR strpos({value}, {quote(MARK)}) > 0 "
            f"THEN {quote(REDACT_MARK)} ELSE {value} END)"
        )

    return compile_field


def free_json(name: str) -> Field:
    def compile_field(c: Compiler, a: str, details: Details) -> str:
        value = f"{a}.{name}"
        # JSON text writes the marks' control character escaped.
        return (
            f"(CASE WHEN {value}::text ~ {_NINE_DIGITS} OR strpos({value}::text, "
            f"{quote(MARKED_JSON[:6])}) > 0 THEN to_json({quote(REDACT_MARK)}::text) "
            f"ELSE {value} END)"
        )

    return compile_field


# --- organisations -----------------------------------------------------------------------


def _primary_scheme(a: str) -> str:
    cases = " ".join(
        f"WHEN {quote(level.value)} THEN {quote(scheme.value)}"
        for level, scheme in PRIMARY_SCHEME.items()
    )
    return f"(CASE {a}.level {cases} END)"


def _identifiers(c: Compiler, a: str, details: Details) -> str:
    b = c.st.alias()
    source = (
        f"(SELECT 0 AS n, {_primary_scheme(a)} AS scheme, {a}.rio_id AS value "
        f"UNION ALL SELECT 1, i.scheme, i.value FROM organisation_identifier AS i "
        f"WHERE i.organisation_id = {a}.id) AS {b}"
    )
    return c.many("OrganisationIdentifier", source, b, f"{b}.n, {b}.scheme, {b}.value", details)


def _related(upwards: bool, level: str) -> Callable[[Compiler, str, Details], str]:
    """`db.organisations.related`: parents (upwards) or children at `level`, by rio_id."""
    own, far = ("child_id", "parent_id") if upwards else ("parent_id", "child_id")

    def compile_list(c: Compiler, a: str, details: Details) -> str:
        b = c.st.alias()
        source = f"organisation_relation AS r{b} JOIN organisation AS {b} ON {b}.id = r{b}.{far}"
        where = f"r{b}.{own} = {a}.id AND {b}.level = {quote(level)}"
        return c.many("Organisation", source, b, f"{b}.rio_id", details, where)

    return compile_list


def _boards(c: Compiler, a: str, details: Details) -> str:
    inner = _related(True, "BOARD")(c, a, details)
    return f"(CASE WHEN {a}.level = 'PROVIDER' THEN {inner} ELSE '[]'::json END)"


def _providers(c: Compiler, a: str, details: Details) -> str:
    of_board = _related(False, "PROVIDER")(c, a, details)
    of_location = _related(True, "PROVIDER")(c, a, details)
    return (
        f"(CASE {a}.level WHEN 'BOARD' THEN {of_board} WHEN 'LOCATION' THEN {of_location} "
        "ELSE '[]'::json END)"
    )


def _locations(c: Compiler, a: str, details: Details) -> str:
    inner = _related(False, "LOCATION")(c, a, details)
    return f"(CASE WHEN {a}.level = 'PROVIDER' THEN {inner} ELSE '[]'::json END)"


def organisation(key: str) -> Field:
    def compile_field(c: Compiler, a: str, details: Details) -> str:
        return c.one("Organisation", "organisation", f"{a}.{key}", details)

    return compile_field


# --- suppliers and products -----------------------------------------------------------------


def supplier(key: str) -> Field:
    def compile_field(c: Compiler, a: str, details: Details) -> str:
        return c.one("Supplier", "supplier", f"{a}.{key}", details)

    return compile_field


def product(key: str) -> Field:
    def compile_field(c: Compiler, a: str, details: Details) -> str:
        return c.one("Product", "product", f"{a}.{key}", details)

    return compile_field


def _components(c: Compiler, a: str, details: Details) -> str:
    b = c.st.alias()
    source = f"product_component AS r{b} JOIN product AS {b} ON {b}.id = r{b}.component_id"
    return c.many("Product", source, b, f"{b}.code", details, f"r{b}.product_id = {a}.id")


# --- entitlements and licences -----------------------------------------------------------------


def _stored(a: str, name: str) -> Any:
    return literal_column(f"{a}.{name}")


def _today() -> Any:
    return bindparam(TODAY, type_=Date())


def _entitlement_status(c: Compiler, a: str, details: Details) -> str:
    return c.st.scalar(
        derived.effective_status(
            _stored(a, "status"), _stored(a, "activation_until_date"), _today()
        )
    )


def _licences_available(c: Compiler, a: str, details: Details) -> str:
    return c.st.scalar(
        derived.licences_available(_stored(a, "quantity"), _stored(a, "licences_used"))
    )


def _optional(table: str, type_name: str, key: str) -> Field:
    def compile_field(c: Compiler, a: str, details: Details) -> str:
        return c.one(type_name, table, f"{a}.{key}", details)

    return compile_field


def _recipients(c: Compiler, a: str, details: Details) -> str:
    b = c.st.alias()
    return c.many(
        "EntitlementRecipient",
        f"entitlement_recipient AS {b}",
        b,
        f"{b}.role, {b}.supplier_id",
        details,
        f"{b}.entitlement_id = {a}.id",
    )


def _history(c: Compiler, a: str, details: Details) -> str:
    b = c.st.alias()
    where = f"{b}.entitlement_id = {a}.id AND {b}.licence_id IS NULL"
    return c.many("EntitlementEvent", f"event AS {b}", b, f"{b}.id", details, where)


def _entitlement_licences(c: Compiler, a: str, details: Details) -> str:
    """The first 50 licences the caller may see (`licences_of_entitlement` loader)."""
    b = c.st.alias()
    visible = c.st.condition(Licence.__table__, licence_scope(c.caller, c.today))
    source = (
        f"(SELECT licence.* FROM licence WHERE licence.entitlement_id = {a}.id AND {visible} "
        f"ORDER BY licence.id LIMIT {NESTED_LICENCES}) AS {b}"
    )
    return c.many("Licence", source, b, f"{b}.id", details)


def _entitlement_status_of(a: str) -> Any:
    """The stored status of a licence's entitlement (unscoped: status derivation)."""
    return literal_column(
        f"(SELECT e.status FROM entitlement AS e WHERE e.id = {a}.entitlement_id)"
    )


def _licence_status(c: Compiler, a: str, details: Details) -> str:
    return c.st.scalar(
        derived.effective_licence_status(
            _stored(a, "status"), _stored(a, "expiration_date"), _today(), _entitlement_status_of(a)
        )
    )


def _has_access(c: Compiler, a: str, details: Details) -> str:
    return c.st.scalar(
        derived.has_access(
            _stored(a, "status"), _stored(a, "expiration_date"), _today(), _entitlement_status_of(a)
        )
    )


def _visible_entitlement(c: Compiler, a: str, details: Details) -> str:
    """The licence's entitlement if the caller may see it (`visible_entitlement` loader)."""
    b = c.st.alias()
    visible = c.st.condition(Entitlement.__table__, entitlement_scope(c.caller, c.today))
    obj = c.object("Entitlement", b, details)
    return (
        f"(SELECT {obj} FROM (SELECT entitlement.* FROM entitlement "
        f"WHERE entitlement.id = {a}.entitlement_id AND {visible}) AS {b})"
    )


# --- deliveries -----------------------------------------------------------------------------------


def _delivery_totals(c: Compiler, a: str, details: Details) -> str:
    """`Delivery.totals` (schema/delivery.py, through the `delivery_totals` loader):
    `db.delivery_reads.totals_statements` embedded for the one delivery (zeros when it
    has no entitlements)."""
    from sqlalchemy import ARRAY, BigInteger

    from compiler.dashboard_figures import _fields
    from db.delivery_reads import totals_statements

    # Placeholders with values (the statement's IN lists render only when every
    # parameter has one); both are replaced by this statement's SQL when embedded.
    counts, expired = totals_statements(
        bindparam("delivery_ids", value=[], type_=ARRAY(BigInteger())),
        bindparam(TODAY, value=None, type_=Date()),
    )
    ids = {"delivery_ids": f"ARRAY[{a}.id]::bigint[]"}
    names = (
        "entitlements entitled provisioned linkReady cancelled blocked ended failed "
        "licensed quantity"
    ).split()
    columns = {name: f"coalesce(x.c{n}, 0)::bigint" for n, name in enumerate(names, 1)}
    columns["expired"] = "coalesce(y.n, 0)::bigint"
    obj = _fields(c, "DeliveryTotals", details, columns)
    counted = ", ".join(f"c{n}" for n in range(1, len(names) + 1))
    return (
        f"(SELECT {obj} FROM (SELECT 1) AS one_ "
        f"LEFT JOIN {c.st.embed(counts, ids, typed=True)} AS x(delivery_id, {counted}) ON TRUE "
        f"LEFT JOIN {c.st.embed(expired, ids, typed=True)} AS y(delivery_id, n) ON TRUE)"
    )


def _delivery_entitlements(c: Compiler, a: str, details: Details) -> str:
    """`resolvers.delivery.delivery_entitlements`: the ones the caller may see, by id."""
    b = c.st.alias()
    visible = c.st.condition(Entitlement.__table__, entitlement_scope(c.caller, c.today))
    source = (
        f"(SELECT entitlement.* FROM entitlement WHERE entitlement.delivery_id = {a}.id "
        f"AND {visible}) AS {b}"
    )
    return c.many("Entitlement", source, b, f"{b}.id", details)


FIELDS: dict[str, dict[str, Field]] = {
    "Organisation": {
        "id": gid,
        "level": enum("level", "OrgLevel"),
        "rioId": column("rio_id"),
        "name": column("name"),
        "identifiers": _identifiers,
        "boards": _boards,
        "providers": _providers,
        "locations": _locations,
    },
    "OrganisationIdentifier": {
        "scheme": enum("scheme", "OrgIdScheme"),
        "value": column("value"),
    },
    # Answers of a lookup that found nothing, over a row of the answer's values
    # (`compiler.roots.organisation`).
    "OrganisationNotFound": {
        "value": column("value"),
        "scheme": enum("scheme", "OrgIdScheme"),
        "message": column("message"),
    },
    "InvalidIdentifier": {
        "scheme": column("scheme"),
        "value": column("value"),
        "problem": column("problem"),
        "message": column("message"),
    },
    "Supplier": {"id": gid, "code": column("code"), "name": column("name")},
    "Product": {
        "id": gid,
        "productId": column("code"),
        "name": column("name"),
        "type": enum("type", "ProductType"),
        "firstPublicationDate": column("first_publication_date"),
        "saleStartDate": column("sale_start_date"),
        "saleEndDate": column("sale_end_date"),
        "publisher": supplier("publisher_id"),
        "components": _components,
    },
    "SchoolSubject": {"id": gid, "code": column("code"), "name": column("name")},
    "Group": {"id": gid, "code": column("code"), "name": column("name")},
    "Entitlement": {
        "id": gid,
        "variant": enum("variant", "Variant"),
        "status": _entitlement_status,
        "quantity": column("quantity"),
        "licencesUsed": column("licences_used"),
        "startDate": column("start_date"),
        "activationUntilDate": column("activation_until_date"),
        "minExpirationDate": column("min_expiration_date"),
        "licenceDurationMonths": column("licence_duration_months"),
        "createdAt": when("created_at"),
        "licencesAvailable": _licences_available,
        "school": organisation("school_id"),
        "product": product("product_id"),
        "schoolSubject": _optional("school_subject", "SchoolSubject", "subject_id"),
        "group": _optional("teaching_group", "Group", "group_id"),
        "recipients": _recipients,
        "history": _history,
        "licences": _entitlement_licences,
    },
    "EntitlementRecipient": {
        "role": enum("role", "RecipientRole"),
        "state": enum("state", "RecipientState"),
        "failureCode": column("failure_code"),
        "failureMessage": free_text("failure_message"),
        "updatedAt": when("updated_at"),
        "supplier": supplier("supplier_id"),
    },
    "EntitlementEvent": {
        "cursor": lambda c, a, d: event_cursor(f"{a}.tx_id", f"{a}.id"),
        "kind": column("kind"),
        "status": column("status"),
        "occurredAt": when("occurred_at"),
        "actorRole": column("actor_role"),
        "detail": free_json("payload"),
    },
    "DataExchange": {
        "id": gid,
        "role": enum("role", "Role"),
        "dataType": enum("data_type", "DataType"),
        "activatedAt": when("activated_at"),
        "activatedBy": column("activated_by"),
        "revokedAt": when("revoked_at"),
        "state": lambda c, a, d: (
            f"(CASE WHEN {a}.revoked_at IS NULL THEN 'ACTIVE' ELSE 'REVOKED' END)"
        ),
        "school": organisation("school_id"),
        "supplier": supplier("supplier_id"),
    },
    "ProcessingAgreement": {
        "id": gid,
        "reference": column("reference"),
        "validFrom": column("valid_from"),
        "validUntil": column("valid_until"),
        "school": organisation("school_id"),
        "supplier": supplier("supplier_id"),
    },
    "AuditEntry": {
        "at": when("at"),
        "role": column("role"),
        "action": column("action"),
        "objectType": column("object_type"),
        "objectId": column("object_id"),
        "detail": free_json("detail"),
        "supplier": supplier("supplier_id"),
    },
    "Delivery": {
        "id": gid,
        "referenceId": free_text("reference_id"),
        "orderNumber": free_text("order_number"),
        "createdAt": when("created_at"),
        "seller": supplier("seller_id"),
        "school": organisation("buyer_school_id"),
        "totals": _delivery_totals,
        "entitlements": _delivery_entitlements,
    },
    "Licence": {
        "id": gid,
        "status": _licence_status,
        "activatedAt": when("activated_at"),
        "expirationDate": column("expiration_date"),
        "hasAccess": _has_access,
        "product": product("product_id"),
        "entitlement": _visible_entitlement,
        "school": organisation("school_id"),
    },
}


def is_list(output_type: Any) -> bool:
    if isinstance(output_type, GraphQLNonNull):
        output_type = output_type.of_type
    return isinstance(output_type, GraphQLList)
