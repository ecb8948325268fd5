"""`dashboard` as SQL: the consent decision per school and the figures in one
statement, from the statements of `db/dashboard.py` themselves (each built once per
shape there, embedded here with the plan's parameters), so both paths count with
the same SQL.

Compiled: a board, a school (with its refusals, FORBIDDEN and CONSENT_REQUIRED, at
the field; its licence figures alone refused at their own paths), or nothing named,
for a dashboard provider, a school administrator, the operator or a caller without
a reading role (a shop: its own deliveries), filtered by `productId`, `shopCode`
(a shop naming another: FORBIDDEN), `fromDate`/`untilDate` or `schoolPeriod`
(`compiler/dashboard_period.py`), with every field of `DashboardSummary`
(`stuckDeliveries` with its arguments as literals or variables; JSON:
`compiler/dashboard_figures.py`). Callers in several reading roles run on the
resolvers. (Over 400 lines: the root's one statement is built in one place.)"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from types import SimpleNamespace
from typing import Any, cast

from graphql import GraphQLObjectType, get_named_type
from graphql.execution.collect_fields import collect_subfields

from compiler import dashboard_figures as shown
from compiler.arguments import Replay, Root, organisation_ids, organisation_search
from compiler.dashboard_period import period
from compiler.objects import Compiler, Details
from compiler.sql import Getter, NotCompiled, json_object, quote
from db import dashboard as figures
from domain.identifiers import IdentifierError, validate_product_id
from domain.roles import Role
from settings import Settings

_READING = (
    frozenset({Role.DASHBOARD}),
    frozenset({Role.SCHOOL}),
    frozenset({Role.OPERATOR}),
)


def dashboard(
    c: Compiler, key: str, details: Details, args: dict[str, Any], settings: Settings
) -> Root:
    roles = frozenset(c.caller.roles)
    no_readers = not roles & figures.READERS  # a shop (its own deliveries), say
    if roles not in _READING and not no_readers:
        raise NotCompiled("dashboard for this combination of roles")
    if args.get("school") is not None and args.get("board") is not None:
        raise NotCompiled("dashboard(school, board)")  # the resolvers' BadInput
    in_period = args.get("schoolPeriod") is not None
    ranged = in_period or args.get("fromDate") is not None or args.get("untilDate") is not None
    st = c.st
    operator = Role.OPERATOR in roles
    dashboard_role = Role.DASHBOARD in roles
    # Figures not limited by consent: the operator's, a shop's (its own deliveries).
    everyone = operator or no_readers
    shop_only = _own_deliveries_only(roles)
    # `resolvers.dashboard.summary` tests the product for truth, the shop for None.
    product = bool(args.get("productId"))
    shop = args.get("shopCode") is not None
    params: dict[str, Any] = {
        "supplier_id": st.lazy(lambda run: run.caller.supplier_id, "int"),
        "own_school": st.lazy(lambda run: run.caller.school_id, "int"),
        "today": st.lazy(lambda run: run.today, "date"),
        "seller_id": (
            "(SELECT seller_id FROM filter_)"
            if shop
            else st.lazy(lambda run: run.caller.supplier_id, "int")
        ),
        "product_id": "(SELECT product_id FROM filter_)",
    }
    board = args.get("board")
    school = args.get("school")
    named_arg = board if board is not None else school
    one_school = school is not None and not everyone
    setup = []
    problems = []
    refusals: dict[str, Callable[[dict[str, Any]], Any]] = {}
    if named_arg is not None:
        level = figures.OrgLevel.BOARD if board is not None else figures.OrgLevel.PROVIDER
        if named_arg.get("scheme") is None:
            value = st.value(key, "named_value", "text")
            named = st.embed(figures._named_statement(level), {**params, "value": value})
            setup.append(f"board_ AS (SELECT array_agg(n.id) AS ids FROM {named} AS n)")
        else:
            ids = organisation_ids(c, key, "board_", level=level.value)
            setup.append(f"board_ AS (SELECT {ids} AS ids)")
        problems.append(
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
            # One school: the decision for it (`figures.school_consent`).
            decided = st.embed(
                figures._school_consent_statement("postgresql", figures._scope_key(c.caller)),
                {**params, "schools": "(SELECT board_.ids[1:1] FROM board_)"},
            )
            setup.append(
                "s_ AS (SELECT d.id, o.rio_id, d.entitlements, d.activations "
                f"FROM {decided} AS d(id, entitlements, activations) "
                "JOIN organisation AS o ON o.id = d.id)"
            )
    elif everyone:
        setup.append("s_ AS (SELECT NULL::int AS id WHERE FALSE)")
    else:
        # Nothing named: a dashboard's consenting schools, a school administrator's own.
        if dashboard_role:
            ids = st.embed(figures.consenting_statement(c.caller, c.today), {})
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
    # The product and the shop, found as `resolvers.dashboard.summary` finds them
    # (after the school or board); unknown ones are the resolvers' BadInput.
    found = []
    if product:
        code = st.value(key, "product_code", "text")
        found.append(f"(SELECT p.id FROM product AS p WHERE p.code = {code}) AS product_id")
        problems.append(
            "(SELECT CASE WHEN product_id IS NULL THEN 'unknown product' END FROM filter_)"
        )
    if shop:
        code = st.value(key, "shop_code", "text")
        found.append(f"(SELECT s.id FROM supplier AS s WHERE s.code = {code}) AS seller_id")
        forbidden = ""
        if shop_only:
            own = st.param(lambda run: run.caller.supplier_id, "int")
            forbidden = f" WHEN seller_id <> {own} THEN 'shop forbidden'"
        problems.append(
            f"(SELECT CASE WHEN seller_id IS NULL THEN 'unknown shop'{forbidden} END FROM filter_)"
        )
        refusals["shop forbidden"] = _shop_refusal
    if found:
        setup.append(f"filter_ AS (SELECT {', '.join(found)})")
    if one_school:
        # Refused as `resolvers.dashboard._decide` refuses it (`_school_refusal`);
        # its licence figures alone refused at their own paths (`_licence_refusal`).
        problems.append(
            "(SELECT CASE WHEN NOT s.entitlements THEN 'school refused:' || "
            "CASE WHEN s.entitlements THEN 't' ELSE 'f' END || "
            "CASE WHEN s.activations THEN 't' ELSE 'f' END || s.rio_id END FROM s_ AS s)"
        )
        refusals["school refused:*"] = _school_refusal
    dates: dict[str, Any] = {
        "from_date": st.lazy(_value_getter(key, "from_date"), "date"),
        "until_date": st.lazy(_value_getter(key, "until_date"), "date"),
    }
    curve_days: dict[str, Any] = {
        "first_day": st.lazy(_curve_day(key, 0), "date"),
        "last_day": st.lazy(_curve_day(key, 1), "date"),
    }
    if in_period:
        # After the school's refusal, as `resolvers.dashboard.summary` looks it up.
        named_ids = None
        if named_arg is not None:
            named_ids = "(SELECT board_.ids[1:1] FROM board_)"  # the school
            if board is not None:
                named_ids = "(SELECT array_agg(id) FROM s_)"  # the board's schools
        period_cte, period_problem, dates = period(c, key, named_ids, params["own_school"])
        setup.append(period_cte)
        problems.append(period_problem)
        curve_days = {"first_day": dates["from_date"], "last_day": dates["until_date"]}
    problem = f"coalesce({', '.join(problems)})" if problems else "NULL::text"
    everything = everyone and named_arg is None
    entitlement_ids = "(SELECT coalesce(array_agg(id), '{}') FROM s_ WHERE s_.entitlements)"
    licence_ids = "(SELECT coalesce(array_agg(id), '{}') FROM s_ WHERE s_.activations)"
    if everyone and named_arg is not None:
        entitlement_ids = licence_ids = "(SELECT coalesce(array_agg(id), '{}') FROM s_)"
    shape = figures.Shape("all" if everything else "some", product, shop or shop_only, ranged)
    summary_type = cast(
        GraphQLObjectType,
        get_named_type(c.schema.query_type.fields["dashboard"].type),  # type: ignore[union-attr]
    )
    collected = collect_subfields(
        c.schema, c.fragments, c.variables, c.operation, summary_type, details
    )

    def licence_figure(figure: str, field_details: Details) -> str:
        """A licence figure, or (one named school without ACTIVATIONS) its refusal."""
        if not one_school:
            return figure
        refused = c.refusal(field_details, _licence_refusal(roles), "(SELECT rio_id FROM s_)")
        return f"(CASE WHEN (SELECT activations FROM s_) THEN {figure} ELSE {refused} END)"

    pairs = []
    for field_key, field_details in collected.grouped_field_set.items():
        name = field_details[0].node.name.value
        if name == "stuckDeliveries":
            minutes, first = shown.stuck_arguments(c, field_details)
            rows = st.embed(
                figures._stuck_statement("postgresql", shape),
                {
                    **params,
                    **dates,
                    "schools": entitlement_ids,
                    "before": st.param(_moment_before(minutes), "timestamptz"),
                    "first": st.param(first, "int"),
                },
            )
            pairs.append((field_key, shown.stuck(c, field_details, rows)))
            continue
        if field_details[0].node.arguments:
            raise NotCompiled(f"DashboardSummary.{name} with arguments")
        if name == "__typename":
            pairs.append((field_key, quote(summary_type.name)))
        elif name == "fromDate":
            pairs.append((field_key, str(dates["from_date"]) if ranged else "NULL::date"))
        elif name == "untilDate":
            pairs.append((field_key, str(dates["until_date"]) if ranged else "NULL::date"))
        elif name == "excludedSchools":
            listed = shown.excluded(c, field_details, named_arg is not None, everyone)
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
            pairs.append((field_key, shown.status_list(c, field_details, counts)))
        elif name == "licenceTotals":
            totals = st.embed(
                figures._totals_statement("postgresql", shape),
                {**params, **dates, "schools": licence_ids},
            )
            pairs.append(
                (field_key, licence_figure(shown.totals(c, field_details, totals), field_details))
            )
        elif name == "activationsPerDay":
            curve = st.embed(
                figures._curve_statement("postgresql", shape),
                {
                    **params,
                    **dates,
                    "schools": licence_ids,
                    **curve_days,
                },
            )
            pairs.append(
                (field_key, licence_figure(shown.curve(c, field_details, curve), field_details))
            )
        elif name == "failures":
            failed = st.embed(
                figures._failures_statement("postgresql", shape),
                {**params, **dates, "schools": entitlement_ids},
            )
            pairs.append((field_key, shown.failures(c, field_details, failed)))
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
        if args.get("schoolPeriod") is not None:
            if from_date is not None:
                raise Replay("schoolPeriod and a date range")
            values["school_period"] = args["schoolPeriod"]
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
        if args.get("productId"):
            try:
                values["product_code"], _kind = validate_product_id(args["productId"])
            except IdentifierError as exc:
                raise Replay("malformed productId") from exc
        if args.get("shopCode") is not None:
            values["shop_code"] = args["shopCode"]
        values["caller"] = caller  # for the refusal of a named school
        return values

    return Root(key, sql, prepare, refusals=refusals or None)


def _own_deliveries_only(roles: frozenset[Role]) -> bool:
    """Whether a caller with these roles sees the figures of its own deliveries only,
    asked of `resolvers.dashboard._shop` (no shop named: it answers without I/O)."""
    from compiler.arguments import _drive
    from resolvers import dashboard as resolve

    own = object()
    caller = SimpleNamespace(roles=roles, is_operator=Role.OPERATOR in roles, supplier_id=own)
    return _drive(resolve._shop(None, caller, None)) is own  # type: ignore[arg-type]


def _shop_refusal(values: dict[str, Any]) -> Any:
    """The error `resolvers.dashboard._shop` raises for a shop naming another shop,
    asked of it with that other shop found."""
    from compiler.arguments import _drive
    from resolvers import dashboard as resolve
    from schema.errors import GatewayError

    async def other_shop(work: Any) -> tuple[object, frozenset[Role]]:
        return object(), frozenset()

    info = SimpleNamespace(context=SimpleNamespace(db=SimpleNamespace(run=other_shop)))
    try:
        _drive(resolve._shop(info, values["caller"], values["shop_code"]))  # type: ignore[arg-type]
    except GatewayError as refusal:
        return refusal
    return None


def _licence_refusal(roles: frozenset[Role]) -> Callable[[str], Exception]:
    """The error a licence figure of one named school gets when the school allows its
    entitlement figures but not its licence figures (`resolvers.dashboard._licences`
    on `_decide`'s answer), given the school's rio_id."""

    def refusal(rio_id: str) -> Exception:
        from compiler.arguments import _drive
        from resolvers import dashboard as resolve
        from schema.errors import GatewayError

        caller = SimpleNamespace(roles=roles, is_operator=False, school_id=None)
        decided = figures._decided(caller, [(0, True, False)])  # type: ignore[arg-type]
        row = SimpleNamespace(id=0, rio_id=rio_id)
        info = SimpleNamespace(context=SimpleNamespace(db=None))
        scoped = _drive(resolve._decide(info, caller, [row], figures.Slice(), True, decided))  # type: ignore[arg-type]
        try:
            resolve._licences(scoped)
        except GatewayError as error:
            return error
        raise AssertionError("the resolvers refuse no licence figure here")

    return refusal


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


def _moment_before(minutes: Getter) -> Getter:
    """A getter of the request's moment less the minutes `minutes` gets
    (`resolvers.dashboard.stuck_deliveries`)."""
    return lambda run: run.now - timedelta(minutes=minutes(run))


def _value_getter(key: str, name: str) -> Any:
    """A getter of the value `name` the root field `key` prepared."""
    return lambda run: run.values[key][name]


def _curve_day(key: str, index: int) -> Any:
    """A getter of the first (0) or last (1) day of the root field's curve."""
    return lambda run: _curve_days(run, key)[index]
