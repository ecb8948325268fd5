"""`dashboard(schoolPeriod)` as SQL: the period's days found by the statement
`resolvers.dashboard.summary` runs (`db.dashboard._period_statement`) at the schools
it looks in (the named school, the named board's schools, or a school
administrator's own), then used as the figures' date range. A period that is not
there, or spans more than `MAX_RANGE_DAYS` (the resolvers' `_date_range` check), is
the resolvers' BadInput: the statement reports it and the resolvers answer."""

from __future__ import annotations

from typing import Any

from compiler.objects import Compiler
from compiler.sql import NotCompiled
from db import dashboard as figures
from domain.roles import Role


def period(
    c: Compiler, key: str, school_ids: str | None, own_school: Any
) -> tuple[str, str, dict[str, str]]:
    """The `period_` CTE, its problem (SQL text: null when the period is usable) and
    the dates (SQL) the figures count between. `school_ids`: an int[] of the named
    schools (None when nothing is named)."""
    if school_ids is None:
        if c.caller.school_id is None or Role.OPERATOR in c.caller.roles:
            raise NotCompiled("dashboard(schoolPeriod) without a school")  # BadInput
        school_ids = f"ARRAY[{own_school}]"
    days = c.st.embed(
        figures._period_statement("postgresql"),
        {"schools": school_ids, "code": c.st.value(key, "school_period", "text")},
    )
    setup = f"period_ AS (SELECT p.f AS from_date, p.u AS until_date FROM {days} AS p(f, u))"
    problem = (
        "(SELECT CASE WHEN from_date IS NULL THEN 'no such school period' "
        "WHEN until_date < from_date OR until_date - from_date + 1 > "
        f"{int(figures.MAX_RANGE_DAYS)} THEN 'school period too long' END FROM period_)"
    )
    dates = {
        "from_date": "(SELECT from_date FROM period_)",
        "until_date": "(SELECT until_date FROM period_)",
    }
    return setup, problem, dates
