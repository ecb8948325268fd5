"""The dashboard's figures as JSON (the fields of `DashboardSummary` below the root,
`compiler/dashboard.py`): each over the rows of a statement of `db/dashboard.py`
the root embeds, with the resolvers' wording and order."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphql import GraphQLError, VariableNode, get_named_type
from graphql.execution.collect_fields import collect_subfields
from graphql.execution.values import get_argument_values

from compiler.arguments import Replay
from compiler.objects import Compiler, Details, free_text
from compiler.sql import Getter, NotCompiled, Run, fixed, json_object, quote, timestamp
from domain.errors import StatusCode
from domain.roles import DataType, Role


def _reason(refused_by_dashboard: bool) -> str:
    """`resolvers.dashboard._decide`'s reason for an excluded school, as SQL over
    `s_` (a row of the board's schools with `entitlements`, `activations`)."""
    from resolvers import dashboard as resolve

    if not refused_by_dashboard:
        return quote("not your school")
    arms = []
    for entitlements, activations in ((False, False), (False, True), (True, False)):
        missing = [
            t
            for t, ok in (
                (DataType.ENTITLEMENTS, entitlements),
                (DataType.ACTIVATIONS, activations),
            )
            if not ok
        ]
        before, _, after = resolve.consent_message("\x00", missing).partition("\x00")
        arms.append(
            f"WHEN {'' if entitlements else 'NOT '}s_.entitlements AND "
            f"{'' if activations else 'NOT '}s_.activations "
            f"THEN {quote(before)} || s_.rio_id || {quote(after)}"
        )
    return f"(CASE {' '.join(arms)} END)"


def _missing() -> str:
    return (
        "(SELECT coalesce(json_agg(m.t ORDER BY m.n), '[]'::json) FROM (VALUES "
        f"(1, {quote(DataType.ENTITLEMENTS.value)}, s_.entitlements), "
        f"(2, {quote(DataType.ACTIVATIONS.value)}, s_.activations)) AS m(n, t, ok) "
        "WHERE NOT m.ok)"
    )


def excluded(c: Compiler, details: Details, named: bool, operator: bool) -> str:
    if not named or operator:
        return "'[]'::json"
    excluded_type = get_named_type(c.type("DashboardSummary").fields["excludedSchools"].type)
    collected = collect_subfields(
        c.schema, c.fragments, c.variables, c.operation, excluded_type, details
    )
    pairs = []
    for key, field_details in collected.grouped_field_set.items():
        name = field_details[0].node.name.value
        if name == "__typename":
            pairs.append((key, quote(excluded_type.name)))
        elif name == "school":
            b = c.st.alias()
            obj = c.object("Organisation", b, field_details)
            pairs.append((key, f"(SELECT {obj} FROM organisation AS {b} WHERE {b}.id = s_.id)"))
        elif name == "missing":
            pairs.append((key, _missing()))
        elif name == "reason":
            pairs.append((key, _reason(Role.DASHBOARD in c.caller.roles)))
        else:
            raise NotCompiled(f"ExcludedSchool.{name}")
    return (
        f"(SELECT coalesce(json_agg({json_object(pairs)} ORDER BY s_.rio_id), '[]'::json) "
        "FROM s_ WHERE NOT (s_.entitlements AND s_.activations))"
    )


def _fields(
    c: Compiler,
    type_name: str,
    details: Details,
    columns: dict[str, str],
    objects: dict[str, Callable[[Details], str]] | None = None,
) -> str:
    """JSON of one row: `columns` are SQL per field, `objects` make a nested object's
    SQL from its selection."""
    object_type = c.type(type_name)
    collected = collect_subfields(
        c.schema, c.fragments, c.variables, c.operation, object_type, details
    )
    pairs = []
    for key, field_details in collected.grouped_field_set.items():
        name = field_details[0].node.name.value
        if name == "__typename":
            pairs.append((key, quote(type_name)))
        elif name in columns:
            pairs.append((key, columns[name]))
        elif objects and name in objects:
            pairs.append((key, objects[name](field_details)))
        else:
            raise NotCompiled(f"{type_name}.{name}")
    return json_object(pairs)


def status_list(c: Compiler, details: Details, counts: str) -> str:
    obj = _fields(
        c,
        "EntitlementStatusCount",
        details,
        {
            "status": "x.status",
            "entitlements": "x.n::bigint",
            "openEntitlements": "coalesce(x.n_open, 0)::bigint",
            "quantity": "coalesce(x.quantity, 0)::bigint",
        },
    )
    return (
        f"(SELECT coalesce(json_agg({obj} ORDER BY x.status), '[]'::json) "
        f"FROM {counts} AS x(status, n, n_open, quantity))"
    )


def _rate(part: str, whole: str) -> str:
    """`activationRate`: a float division, null when nothing was bought."""
    return f"(CASE WHEN {whole} = 0 THEN NULL ELSE ({part})::float8 / ({whole})::float8 END)"


def totals(c: Compiler, details: Details, totals: str) -> str:
    obj = _fields(
        c,
        "LicenceTotals",
        details,
        {
            "entitlements": "x.entitlements::bigint",
            "openEntitlements": "x.open_entitlements::bigint",
            "quantityBought": "x.quantity::bigint",
            "licencesActivated": "x.used::bigint",
            "licencesActivatedOpen": "x.used_open::bigint",
            "activationRate": _rate("x.used_open", "x.quantity"),
        },
    )
    return (
        f"(SELECT {obj} FROM {totals} "
        "AS x(entitlements, open_entitlements, quantity, used, used_open))"
    )


def curve(c: Compiler, details: Details, curve: str) -> str:
    obj = _fields(
        c,
        "ActivationDay",
        details,
        {
            "day": "x.day",
            "activations": "x.activations::bigint",
            "cumulative": "x.cumulative::bigint",
            "activationRate": _rate("x.cumulative_open", "x.bought"),
        },
    )
    return (
        f"(SELECT coalesce(json_agg({obj} ORDER BY x.day), '[]'::json) "
        f"FROM {curve} AS x(day, activations, cumulative, cumulative_open, bought))"
    )


def failures(c: Compiler, details: Details, rows: str) -> str:
    """`failures` over the rows of `db.dashboard._failures_statement`, in its order
    (most frequent first); `meaning` is `resolvers.dashboard._meaning` of each code."""
    from resolvers.dashboard import _meaning

    unknown = max(int(code) for code in StatusCode) + 1
    meanings = " ".join(
        f"WHEN {int(code)} THEN {quote(_meaning(int(code)))}" for code in StatusCode
    )
    code = "coalesce(x.code, 0)"
    obj = _fields(
        c,
        "FailureCount",
        details,
        {
            "code": code,
            "meaning": f"(CASE {code} {meanings} ELSE {quote(_meaning(unknown))} END)",
            "recipientRole": c.enum("x.role", "RecipientRole"),
            "entitlements": "x.n::bigint",
            "lastReportedAt": timestamp("x.last"),
        },
        {"recipient": lambda found: c.one("Supplier", "supplier", "x.supplier_id", found)},
    )
    return (
        f"(SELECT coalesce(json_agg({obj} ORDER BY x.n DESC, x.code, x.role, x.supplier_id), "
        f"'[]'::json) FROM {rows} AS x(code, role, supplier_id, n, last))"
    )


def stuck_arguments(c: Compiler, details: Details) -> tuple[Getter, Getter]:
    """Getters of `stuckDeliveries`' arguments (wait in minutes, page size) for each
    request, checked against the bounds `resolvers.dashboard.stuck_arguments` sets:
    literals once, here (out of bounds: the resolvers answer, and refuse); variables
    on every request (out of bounds: that request goes to the resolvers)."""
    from resolvers.dashboard import stuck_arguments as check
    from schema.errors import GatewayError

    node = details[0].node
    field = c.type("DashboardSummary").fields["stuckDeliveries"]

    def checked(variables: Any) -> tuple[int, int]:
        args = get_argument_values(field, node, variables)
        minutes, first = args["pendingLongerThanMinutes"], args["first"]
        check(minutes, first)
        return minutes, first

    if not any(isinstance(argument.value, VariableNode) for argument in node.arguments or ()):
        try:
            minutes, first = checked(c.variables)
        except GatewayError as refused:
            raise NotCompiled("DashboardSummary.stuckDeliveries out of bounds") from refused
        return fixed(minutes), fixed(first)

    def given(run: Run) -> tuple[int, int]:
        try:
            return checked(run.variables)
        except GatewayError as refused:
            raise Replay("stuckDeliveries out of bounds") from refused
        except GraphQLError as refused:  # null for a non-null argument with a default
            raise Replay("stuckDeliveries arguments") from refused

    return (lambda run: given(run)[0]), (lambda run: given(run)[1])


def stuck(c: Compiler, details: Details, rows: str) -> str:
    """`stuckDeliveries` over the rows of `db.dashboard._stuck_statement`, longest
    wait first, each with its delivery (`resolvers.dashboard.stuck_deliveries`)."""
    d = c.st.alias()

    def deliveries(found: Details) -> str:
        delivery = _fields(
            c,
            "StuckDelivery",
            found,
            {
                "deliveryId": "x.delivery_id::text",
                "orderNumber": free_text("order_number")(c, d, found),
                "submittedAt": timestamp(f"{d}.created_at"),
                "entitlements": "x.n::bigint",
                "pendingAtLicensor": "x.licensor::bigint",
                "pendingAtPortal": "x.portal::bigint",
                "pendingSince": timestamp("x.since"),
            },
            {
                "shop": lambda shop: c.one("Supplier", "supplier", f"{d}.seller_id", shop),
                "school": lambda school: c.one(
                    "Organisation", "organisation", f"{d}.buyer_school_id", school
                ),
            },
        )
        return f"coalesce(json_agg({delivery} ORDER BY x.since, x.delivery_id), '[]'::json)"

    summary = _fields(
        c,
        "StuckDeliveries",
        details,
        {"total": "coalesce(max(x.total), 0)::bigint"},
        {"deliveries": deliveries},
    )
    return (
        f"(SELECT {summary} FROM {rows} AS x(delivery_id, n, licensor, portal, since, total) "
        f"JOIN delivery AS {d} ON {d}.id = x.delivery_id)"
    )
