"""The school is in control (DOMAIN.md §7): who may receive or read which data of
a school, as one pure decision.

A supplier reads a data type of a school only when all of these hold:

* its token grants a role that receives that data type at all (else: scope
  required, transport code 3);
* it is involved in the data: the seller of the delivery, a recipient of the
  entitlement, the school itself for its own data (else: not found, so nothing
  leaks about other suppliers' deliveries);
* the school activated that data type for this supplier in this role and, for
  the confidential data types, has a processing agreement (mandate) with it that
  is valid today (else: consent required, transport code 4).

Exemptions, from the agreements of the chain:

* shop and licence office need no activation between them: their bilateral
  contract gives the purpose (entitlements shop → licence office, activations
  licence office → shop);
* the school reads its own data; the operator runs the gateway;
* the administration system (sis) is the source of school organisation data: it
  needs the school's mandate (it processes pupil data for the school), not an
  activation.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from domain.roles import DataType, Role


class ConsentMissing(Exception):
    """The school has not given this supplier what the data needs (transport code 4)."""


class Access(StrEnum):
    ALLOWED = "ALLOWED"
    SCOPE_REQUIRED = "SCOPE_REQUIRED"
    NOT_INVOLVED = "NOT_INVOLVED"
    CONSENT_REQUIRED = "CONSENT_REQUIRED"


#: Which roles receive which data type at all (DOMAIN.md §7 table, plus the source).
RECEIVERS: dict[DataType, frozenset[Role]] = {
    DataType.SCHOOL_INFO: frozenset(
        {Role.SELLER, Role.PORTAL, Role.LICENSOR, Role.DASHBOARD, Role.SIS}
    ),
    DataType.SCHOOL_ORGANISATION: frozenset(
        {Role.SELLER, Role.PORTAL, Role.LICENSOR, Role.DASHBOARD, Role.SIS}
    ),
    DataType.FINE_DISTRIBUTION: frozenset({Role.SELLER, Role.SIS}),
    DataType.ENTITLEMENTS: frozenset({Role.SELLER, Role.PORTAL, Role.LICENSOR, Role.DASHBOARD}),
    DataType.ACTIVATIONS: frozenset({Role.SELLER, Role.PORTAL, Role.LICENSOR, Role.DASHBOARD}),
}

#: Data that flows between shop and licence office under their bilateral contract.
BILATERAL: dict[DataType, frozenset[Role]] = {
    DataType.ENTITLEMENTS: frozenset({Role.SELLER, Role.LICENSOR}),
    DataType.ACTIVATIONS: frozenset({Role.SELLER, Role.LICENSOR}),
}


@dataclass(frozen=True, kw_only=True)
class ConsentFacts:
    """What the database says about one (school, supplier, role, data type)."""

    involved: bool
    activated: bool = False
    mandate_valid: bool = False


def needs_activation(role: Role, data_type: DataType) -> bool:
    if role in (Role.OPERATOR, Role.SCHOOL, Role.SIS):
        return False
    return role not in BILATERAL.get(data_type, frozenset())


def needs_mandate(role: Role, data_type: DataType) -> bool:
    if role in (Role.OPERATOR, Role.SCHOOL) or not data_type.confidential:
        return False
    if role == Role.SIS:
        return True
    return role not in BILATERAL.get(data_type, frozenset())


def decide(role: Role, data_type: DataType, facts: ConsentFacts) -> Access:
    """May a caller acting in `role` read `data_type` of one school?"""
    if role == Role.OPERATOR:
        return Access.ALLOWED
    if role != Role.SCHOOL and role not in RECEIVERS[data_type]:
        return Access.SCOPE_REQUIRED
    if not facts.involved:
        return Access.NOT_INVOLVED
    if needs_activation(role, data_type) and not facts.activated:
        return Access.CONSENT_REQUIRED
    if needs_mandate(role, data_type) and not facts.mandate_valid:
        return Access.CONSENT_REQUIRED
    return Access.ALLOWED


def best(accesses: list[Access]) -> Access:
    """A caller holding several roles gets the most permissive answer of them."""
    order = [Access.ALLOWED, Access.CONSENT_REQUIRED, Access.NOT_INVOLVED, Access.SCOPE_REQUIRED]
    return min(accesses, key=order.index) if accesses else Access.SCOPE_REQUIRED


# --- persons and "not found" ---------------------------------------------------------------
#
# A person (its identifiers, and per school its school organisation data) is shown
# to a caller that may read SCHOOL_ORGANISATION (`decide`) at a school where the
# person is enrolled; a school administrator sees its own school's pupils. Every
# path to a person follows this one rule: the direct lookups, a licence's holder,
# a replayed or live answer that nests one, a filter by ECK iD.
#
# A caller that may not see the person is told CONSENT_REQUIRED only when it is
# *related* to the person, so that it learns nothing it did not know already:
#
# * it takes part, in a role it holds, in an entitlement that names the person or
#   that the person holds a licence on (seller, publisher's licence office,
#   recipient; `domain.visibility.involved`), or
# * a school where the person is enrolled works with it: has (or had) a data
#   exchange with it, or a processing agreement.
#
# Any other caller gets the answer an unknown identifier gets (`disclose`).


def person_access(*, allowed: bool, related: bool) -> Access:
    """The answer about one person (see the rule above)."""
    if allowed:
        return Access.ALLOWED
    return Access.CONSENT_REQUIRED if related else Access.NOT_INVOLVED


class Disclosure(StrEnum):
    """What a caller is told about a thing it named (a person, an entitlement, ...)."""

    SHOWN = "SHOWN"
    CONSENT_REQUIRED = "CONSENT_REQUIRED"
    NOT_FOUND = "NOT_FOUND"


def disclose(access: Access | None) -> Disclosure:
    """The one place where "unknown" and "not yours" become the same answer:
    `access` is None for a thing that does not exist. Only a caller related to the
    thing hears that the school's consent is missing; anyone else, whatever the
    reason, gets exactly what an unknown identifier gets."""
    if access is Access.ALLOWED:
        return Disclosure.SHOWN
    if access is Access.CONSENT_REQUIRED:
        return Disclosure.CONSENT_REQUIRED
    return Disclosure.NOT_FOUND
