"""The roster use case (school organisation data, role ``sis``): validate a school's
roster for one school period (`domain.roster`), match its persons to the stored
ones, and write it in one transaction (`db/roster.py`), idempotent by referenceId."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from db import roster as store
from domain.roles import Principal, Role
from domain.roster import RosterInput, match_persons, validate_roster
from services.writes import Transactions, run_write


async def upsert(
    db: Transactions,
    caller: Principal,
    school_id: int,
    spec: RosterInput,
    reference_id: str | None,
    message: Callable[[], Any],
    changed: Callable[[], None] | None = None,
) -> tuple[dict[str, Any], bool]:
    """Write the roster of `school_id`; returns the counts of what changed and
    whether the answer is a repeated message's. Refusals raise `DomainError`."""

    async def work(session: AsyncSession) -> dict[str, Any]:
        facts = await store.school_facts(session, school_id, spec.period_code.strip())
        roster = validate_roster(
            spec,
            stored_group_codes=facts.groups.keys(),
            stored_subject_codes=facts.subjects.keys(),
        )
        stored = await store.stored_persons(session, school_id, roster.keys)
        matches = match_persons(roster, stored)
        counts = await store.upsert(
            session, school_id, roster, facts, matches, actor=caller.acting_as(Role.SIS)
        )
        return counts.as_dict()

    return await run_write(db, caller, "schoolRosterUpsert", reference_id, message, work, changed)
