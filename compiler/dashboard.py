"""`dashboard` as SQL: the consent decision per school and the figures in one
statement, from the statements of `db/dashboard.py` themselves (each built once per
shape there, embedded here with the plan's parameters), so both paths count with
the same SQL.

Compiled: a board, a school (with its refusals, FORBIDDEN and CONSENT_REQUIRED, at
the field), or nothing named, for a dashboard provider, a school administrator or
the operator, or nothing named for a caller without a reading role (a shop: its
own deliveries), with `fromDate`/`untilDate` and the fields `fromDate`, `untilDate`,
`excludedSchools`, `schools`, `entitlementsByStatus`, `licenceTotals` and
`activationsPerDay`. The rest (a school whose licence figures alone are refused
when they are asked for, shop, product or period filters, failures, stuck
deliveries, callers in several reading roles) runs on the resolvers.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from types import SimpleNamespace
from typing import Any, cast

from graphql import GraphQLObjectType, get_named_type
from graphql.execution.collect_fields import collect_subfields
from sqlalchemy import select

from compiler.arguments import Replay, Root, organisation_ids, organisation_search
from compiler.objects import Compiler, Details
from compiler.sql import NotCompiled, json_object, quote
from db import dashboard as figures
from db.access import consented
from db.models import DataExchange
from domain.roles import DataType, Role
from settings import Settings

_READING = (
    frozenset({Role.DASHBOARD}),
    frozenset({Role.SCHOOL}),
    frozenset({Role.OPERATOR}),
)
_SHAPE = figures.Shape("some", False, False, False)
_RANGED = figures.Shape("some", False, False, True)
_ALL = figures.Shape("all", False, False, False)
_ALL_RANGED = figures.Shape("all", False, False, True)


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


def dashboard(
    c: Compiler, key: str, details: Details, args: dict[str, Any], settings: Settings
) -> Root:
    roles = frozenset(c.caller.roles)
    no_readers = not roles & figures.READERS  # a shop (its own deliveries), say
    if roles not in _READING and not no_readers:
        raise NotCompiled("dashboard for this combination of roles")
    if no_readers and (args.get("school") is not None or args.get("board") is not None):
        raise NotCompiled("dashboard naming a school or board without a reading role")
    for name in ("shopCode", "productId", "schoolPeriod"):
        if args.get(name) is not None:
            raise NotCompiled(f"dashboard({name})")
    if args.get("school") is not None and args.get("board") is not None:
        raise NotCompiled("dashboard(school, board)")  # the resolvers' BadInput
    ranged = args.get("fromDate") is not None or args.get("untilDate") is not None
    st = c.st
    operator = Role.OPERATOR in roles
    dashboard_role = Role.DASHBOARD in roles
    params = {
        "supplier_id": st.lazy(lambda run: run.caller.supplier_id, "int"),
        "own_school": st.lazy(lambda run: run.caller.school_id, "int"),
        "today": st.lazy(lambda run: run.today, "date"),
        "seller_id": st.lazy(lambda run: run.caller.supplier_id, "int"),
    }
    entitlements, activations = figures._consent_columns(figures._scope_key(c.caller))
    board = args.get("board")
    school = args.get("school")
    named_arg = board if board is not None else school
    setup = []
    refusals: dict[str, Callable[[dict[str, Any]], Any]] | None = None
    if named_arg is not None:
        level = figures.OrgLevel.BOARD if board is not None else figures.OrgLevel.PROVIDER
        if named_arg.get("scheme") is None:
            value = st.value(key, "named_value", "text")
            named = st.embed(figures._named_statement(level), {**params, "value": value})
            setup.append(f"board_ AS (SELECT array_agg(n.id) AS ids FROM {named} AS n)")
        else:
            ids = organisation_ids(c, key, "board_", level=level.value)
            setup.append(f"board_ AS (SELECT {ids} AS ids)")
        problem = (
            "(SELECT CASE WHEN ids IS NULL OR cardinality(ids) <> 1 THEN 'board not one' END "
            "FROM board_)"
        )
        if board is not None:
            schools = st.embed(
                figures._board_statement(figures._scope_key(c.caller)),
                {**params, "board": "(SELECT board_.ids[1] FROM board_)"},
            )
            setup.append(
                "s_ AS (SELECT b.id, b.level, b.rio_id, b.name, b.entitlements, b.activations "
                f"FROM {schools} AS b(id, level, rio_id, name, entitlements, activations))"
            )
        else:
            # One school: the decision for it (`figures.school_consent`), refused as
            # `resolvers.dashboard._decide` refuses it (`_school_refusal`).
            decided = st.embed(
                figures._school_consent_statement("postgresql", figures._scope_key(c.caller)),
                {**params, "schools": "(SELECT board_.ids[1:1] FROM board_)"},
            )
            setup.append(
                "s_ AS (SELECT d.id, o.rio_id, d.entitlements, d.activations "
                f"FROM {decided} AS d(id, entitlements, activations) "
                "JOIN organisation AS o ON o.id = d.id)"
            )
            licence_fields = _asks_licence_figures(c, details)
            refused = f"NOT s.entitlements{' OR NOT s.activations' if licence_fields else ''}"
            problem = (
                "(SELECT CASE WHEN ids IS NULL OR cardinality(ids) <> 1 THEN 'board not one' "
                f"WHEN {refused} THEN 'school refused:' || "
                "CASE WHEN s.entitlements THEN 't' ELSE 'f' END || "
                "CASE WHEN s.activations THEN 't' ELSE 'f' END || s.rio_id END "
                "FROM board_ LEFT JOIN s_ AS s ON TRUE)"
            )
            refusals = {"school refused:*": _school_refusal}
    elif operator or no_readers:
        setup.append("s_ AS (SELECT NULL::int AS id WHERE FALSE)")
        problem = "NULL::text"
    else:
        # Nothing named: a dashboard's consenting schools, a school administrator's own.
        if dashboard_role:
            scope = c.caller
            consenting = (
                select(DataExchange.school_id)
                .where(
                    DataExchange.supplier_id == scope.supplier_id,
                    DataExchange.role == Role.DASHBOARD.value,
                    DataExchange.data_type == DataType.ENTITLEMENTS.value,
                    DataExchange.revoked_at.is_(None),
                    consented(
                        DataExchange.school_id,
                        scope,
                        c.today,
                        Role.DASHBOARD,
                        DataType.ENTITLEMENTS,
                    ),
                )
                .distinct()
            )
            ids = st.embed(consenting, {})
        else:
            ids = f"(SELECT {params['own_school']} AS i)"
        decided = st.embed(
            figures._school_consent_statement("postgresql", figures._scope_key(c.caller)),
            {**params, "schools": f"(SELECT array_agg(i) FROM {ids} AS x(i))"},
        )
        setup.append(
            f"s_ AS (SELECT d.id, NULL::text AS rio_id, d.entitlements, d.activations "
            f"FROM {decided} AS d(id, entitlements, activations))"
        )
        problem = "NULL::text"
    everything = operator or no_readers
    entitlement_ids = "(SELECT coalesce(array_agg(id), '{}') FROM s_ WHERE s_.entitlements)"
    licence_ids = "(SELECT coalesce(array_agg(id), '{}') FROM s_ WHERE s_.activations)"
    if operator and named_arg is not None:
        entitlement_ids = licence_ids = "(SELECT coalesce(array_agg(id), '{}') FROM s_)"
        everything = False
    shape = (_ALL_RANGED if ranged else _ALL) if everything else (_RANGED if ranged else _SHAPE)
    if not operator and no_readers and _own_deliveries_only(roles):
        shape = figures.Shape("all", False, True, ranged)
    dates = {
        "from_date": st.lazy(_value_getter(key, "from_date"), "date"),
        "until_date": st.lazy(_value_getter(key, "until_date"), "date"),
    }
    summary_type = cast(
        GraphQLObjectType,
        get_named_type(c.schema.query_type.fields["dashboard"].type),  # type: ignore[union-attr]
    )
    collected = collect_subfields(
        c.schema, c.fragments, c.variables, c.operation, summary_type, details
    )
    pairs = []
    for field_key, field_details in collected.grouped_field_set.items():
        name = field_details[0].node.name.value
        if field_details[0].node.arguments:
            raise NotCompiled(f"DashboardSummary.{name} with arguments")
        if name == "__typename":
            pairs.append((field_key, quote(summary_type.name)))
        elif name == "fromDate":
            pairs.append((field_key, str(dates["from_date"]) if ranged else "NULL::date"))
        elif name == "untilDate":
            pairs.append((field_key, str(dates["until_date"]) if ranged else "NULL::date"))
        elif name == "excludedSchools":
            listed = _excluded(c, field_details, named_arg is not None, operator or no_readers)
            pairs.append((field_key, listed))
        elif name == "schools":
            if everything:
                pairs.append((field_key, "NULL::json"))
            else:
                b = st.alias()
                obj = c.object("Organisation", b, field_details)
                # In the order the resolvers load them: a board's schools by rio_id,
                # otherwise by id.
                order = f"{b}.rio_id" if board is not None else f"{b}.id"
                pairs.append(
                    (
                        field_key,
                        f"(SELECT coalesce(json_agg({obj} ORDER BY {order}), '[]'::json) "
                        f"FROM organisation AS {b} WHERE {b}.id = ANY({entitlement_ids}::int[]))",
                    )
                )
        elif name == "entitlementsByStatus":
            counts = st.embed(
                figures._status_statement("postgresql", shape),
                {**params, **dates, "schools": entitlement_ids},
            )
            pairs.append((field_key, _status_list(c, field_details, counts)))
        elif name == "licenceTotals":
            totals = st.embed(
                figures._totals_statement("postgresql", shape),
                {**params, **dates, "schools": licence_ids},
            )
            pairs.append((field_key, _totals(c, field_details, totals)))
        elif name == "activationsPerDay":
            curve = st.embed(
                figures._curve_statement("postgresql", shape),
                {
                    **params,
                    **dates,
                    "schools": licence_ids,
                    "first_day": st.lazy(_curve_day(key, 0), "date"),
                    "last_day": st.lazy(_curve_day(key, 1), "date"),
                },
            )
            pairs.append((field_key, _curve(c, field_details, curve)))
        else:
            raise NotCompiled(f"DashboardSummary.{name}")
    sql = (
        f"(WITH {', '.join(setup)} SELECT {json_object(pairs)} AS data, {problem} AS problem, "
        "NULL::json AS reads)"
    )

    def prepare(args: dict[str, Any], caller: Any) -> dict[str, Any]:
        from_date, until_date = args.get("fromDate"), args.get("untilDate")
        if (from_date is None) != (until_date is None):
            raise Replay("half a date range")
        if from_date is not None and until_date is not None:
            days = (until_date - from_date).days + 1
            if until_date < from_date or days > figures.MAX_RANGE_DAYS:
                raise Replay("date range")
        values: dict[str, Any] = {"from_date": from_date, "until_date": until_date}
        named = args.get("board") or args.get("school")
        if named is not None:
            if named.get("scheme") is None:
                value = named["value"].strip()
                if not value:
                    raise Replay("empty school or board")
                values["named_value"] = value
            else:
                for name, found in organisation_search(named).items():
                    values[f"board_{name}"] = found
        values["caller"] = caller  # for the refusal of a named school
        return values

    return Root(key, sql, prepare, refusals=refusals)


def _own_deliveries_only(roles: frozenset[Role]) -> bool:
    """Whether a caller with these roles sees the figures of its own deliveries only,
    asked of `resolvers.dashboard._shop` (no shop named: it answers without I/O)."""
    from compiler.arguments import _drive
    from resolvers import dashboard as resolve

    own = object()
    caller = SimpleNamespace(roles=roles, is_operator=Role.OPERATOR in roles, supplier_id=own)
    return _drive(resolve._shop(None, caller, None)) is own  # type: ignore[arg-type]


def _asks_licence_figures(c: Compiler, details: Details) -> bool:
    """Whether the selection holds a field the resolvers refuse at its own path when
    only the school's licence figures are refused (`resolvers.dashboard._licences`)."""
    summary_type = cast(
        GraphQLObjectType,
        get_named_type(c.schema.query_type.fields["dashboard"].type),  # type: ignore[union-attr]
    )
    collected = collect_subfields(
        c.schema, c.fragments, c.variables, c.operation, summary_type, details
    )
    return any(
        found[0].node.name.value in ("licenceTotals", "activationsPerDay")
        for found in collected.grouped_field_set.values()
    )


def _school_refusal(values: dict[str, Any]) -> Any:
    """The error `resolvers.dashboard._decide` raises for the named school, asked of
    it with the decision the statement found (`detail`: entitlements and activations
    allowed, t or f, then the school's rio_id); None when it raises nothing (only the
    licence figures are refused: the resolvers answer with errors at their paths)."""
    from compiler.arguments import _drive
    from resolvers import dashboard as resolve
    from schema.errors import GatewayError

    detail = values["detail"]
    entitlements, activations, rio_id = detail[0] == "t", detail[1] == "t", detail[2:]
    caller = values["caller"]
    decided = figures._decided(caller, [(0, entitlements, activations)])
    row = SimpleNamespace(id=0, rio_id=rio_id)
    info = SimpleNamespace(context=SimpleNamespace(db=None))
    try:
        _drive(resolve._decide(info, caller, [row], figures.Slice(), True, decided))  # type: ignore[arg-type]
    except GatewayError as refusal:
        return refusal
    return None


def _curve_days(run: Any, key: str) -> tuple[Any, Any]:
    """`resolvers.dashboard.activations_per_day`'s days: the range, or the last 30."""
    from resolvers.dashboard import DEFAULT_DAYS

    values = run.values[key]
    end = values["until_date"] or run.today
    return values["from_date"] or end - timedelta(days=DEFAULT_DAYS - 1), end


def _excluded(c: Compiler, details: Details, named: bool, operator: bool) -> str:
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


def _fields(c: Compiler, type_name: str, details: Details, columns: dict[str, str]) -> str:
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
        else:
            raise NotCompiled(f"{type_name}.{name}")
    return json_object(pairs)


def _status_list(c: Compiler, details: Details, counts: str) -> str:
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


def _totals(c: Compiler, details: Details, totals: str) -> str:
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


def _curve(c: Compiler, details: Details, curve: str) -> str:
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


def _value_getter(key: str, name: str) -> Any:
    """A getter of the value `name` the root field `key` prepared."""
    return lambda run: run.values[key][name]


def _curve_day(key: str, index: int) -> Any:
    """A getter of the first (0) or last (1) day of the root field's curve."""
    return lambda run: _curve_days(run, key)[index]
