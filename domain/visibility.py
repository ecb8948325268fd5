"""Who sees an entitlement, its events and its licences (DOMAIN.md §5 and §7).

"Every status change is sent to all involved recipients": the shop that sold it,
the publisher's licence office, the portals, LMSs and dashboards it was sent to,
and the school itself; the operator sees everything. A portal, LMS or dashboard
only while the school lets it receive the data type (activation and, for these
confidential data types, a valid processing agreement); shop and licence office
need no activation between them. The consent part is `domain.consent.decide`, the
same decision the HTTP reads make.

`db/access.entitlement_scope` states the same rule in SQL for lists; a test holds
the two equal (tests/api/test_live_access.py). The live broker decides with
`may_see` for every event it delivers, over facts it loads once per batch of
events, so a revocation takes effect at the next event, also for open
subscriptions. The decision is made when an event is delivered, with the consent
of that moment, like a read at that moment.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from domain.consent import Access, ConsentFacts, decide
from domain.entitlements import RecipientRole
from domain.roles import DataType, Role


@dataclass(frozen=True)
class Viewer:
    """Who is looking: a supplier with the roles its token grants; a school
    administrator also names its school."""

    supplier_id: int
    roles: frozenset[Role]
    school_id: int | None = None

    @property
    def key(self) -> tuple[int, frozenset[Role], int | None]:
        return (self.supplier_id, self.roles, self.school_id)


@dataclass(frozen=True)
class EntitlementFacts:
    """Who is involved in one entitlement."""

    school_id: int | None
    seller_id: int
    publisher_id: int | None
    #: (supplier id, role) of every recipient it was sent to.
    recipients: frozenset[tuple[int, RecipientRole]] = frozenset()


@dataclass(frozen=True)
class SchoolConsent:
    """What one school has given which supplier today."""

    #: (supplier id, role, data type) of every data exchange activated and not revoked.
    activations: frozenset[tuple[int, Role, DataType]] = field(default_factory=frozenset)
    #: Suppliers with a processing agreement (mandate) valid today.
    mandates: frozenset[int] = field(default_factory=frozenset)


NO_CONSENT = SchoolConsent()

_RECIPIENT = {Role.PORTAL: RecipientRole.PORTAL, Role.DASHBOARD: RecipientRole.DASHBOARD}


def involved(viewer: Viewer, role: Role, entitlement: EntitlementFacts) -> bool:
    """Is the viewer, acting in `role`, a party to this entitlement?"""
    if role == Role.OPERATOR:
        return True
    if role == Role.SELLER:
        return entitlement.seller_id == viewer.supplier_id
    if role == Role.LICENSOR:
        # The publisher's licence office, also in the combined role where it is no
        # recipient.
        return entitlement.publisher_id == viewer.supplier_id
    if role in _RECIPIENT:
        return (viewer.supplier_id, _RECIPIENT[role]) in entitlement.recipients
    if role == Role.SCHOOL:
        return viewer.school_id is not None and entitlement.school_id == viewer.school_id
    return False


def may_see(
    viewer: Viewer,
    entitlement: EntitlementFacts,
    consent: SchoolConsent,
    data_type: DataType = DataType.ENTITLEMENTS,
) -> bool:
    """May the viewer receive `data_type` of this entitlement (ENTITLEMENTS for the
    entitlement and its events, ACTIVATIONS for its licences)? The most permissive
    of its roles decides."""
    for role in viewer.roles:
        if not involved(viewer, role, entitlement):
            continue
        facts = ConsentFacts(
            involved=True,
            activated=(viewer.supplier_id, role, data_type) in consent.activations,
            mandate_valid=viewer.supplier_id in consent.mandates,
        )
        if decide(role, data_type, facts) is Access.ALLOWED:
            return True
    return False
