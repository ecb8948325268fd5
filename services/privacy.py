"""Privacy use cases (DOMAIN.md §3): the operator erases a person. Identifiers and
school data go; licences stay, anonymised; the erasure itself is audited (without
the identifiers). The school's audit trail is a read (`db/privacy.py`)."""

from __future__ import annotations

from dataclasses import dataclass

from db.privacy import erase_person
from domain.roles import Principal, Role
from services.writes import Transactions


@dataclass(frozen=True)
class Erased:
    identifiers_removed: int
    enrolments_removed: int
    licences_anonymised: int


async def erase(db: Transactions, caller: Principal, person_id: int, reason: str) -> Erased:
    """Erase one person in one transaction."""
    async with db.transaction() as session:
        counts = await erase_person(session, person_id, caller.acting_as(Role.OPERATOR), reason)
    return Erased(
        identifiers_removed=counts["identifiers"],
        enrolments_removed=counts["enrolments"],
        licences_anonymised=counts["licencesAnonymised"],
    )
