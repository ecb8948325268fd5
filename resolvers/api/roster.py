"""The roster root field: schoolRosterUpsert. Each field names the roles it needs and
calls its resolver."""

from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.types import Info

from domain.roles import Role
from resolvers import roster as resolve
from resolvers.auth import requires
from schema.roster import SchoolRosterInput, SchoolRosterUpsertPayload


@strawberry.type(description="School organisation data from the administration system.")
class RosterMutation:
    @strawberry.mutation(
        description="Upsert one school's organisation data for one period in bulk: "
        "period, subjects, groups, pupils (by ECK iD or secondary id), teachers (secondary "
        "ids), enrolments, group memberships and subject enrolments. Idempotent; "
        "`complete: true` also removes what the roster no longer lists.",
        permission_classes=[requires(Role.SIS)],
    )
    async def school_roster_upsert(
        self,
        info: Info,
        input: Annotated[
            SchoolRosterInput, strawberry.argument(description="The school's roster.")
        ],
    ) -> SchoolRosterUpsertPayload:
        return await resolve.upsert(info, input)
