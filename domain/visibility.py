"""Who sees an entitlement, its events and its licences (DOMAIN.md §5 and §7).

"Every status change is sent to all involved recipients": the shop that sold it,
the publisher's licence office, the portals, LMSs and dashboards it was sent to,
and the school itself; the operator sees everything. A portal, LMS or dashboard
only while the school lets it receive the data type (activation and, for these
confidential data types, a valid processing agreement); shop and licence office
need no activation between them. The consent part is `domain.consent.decide`, the
same decision the HTTP reads make.

`db/access.entitlement_scope` states the same rule in SQL for lists; a test holds
the two equal (tests/api/test_live_access.py).

Events (live subscriptions, their replay, pushes to suppliers' endpoints) are
judged with `may_see_event`: the consent that held when the event happened, from
the school's consent history (`ConsentHistory`: every activation, revocation and
processing agreement with the moment it took effect), and, when the event is
handed over later than it happened (a replay, a push), also the consent of that
moment. An event that happened while an exchange was revoked is never handed to
that supplier, not later on replay either; live and replay give the same answer.
Moments are stream positions (consent changes are written to the event stream in
commit order), so "before" is exact; changes recorded before positions existed
fall back to their timestamps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum

from domain.consent import Access, ConsentFacts, decide
from domain.entitlements import RecipientRole
from domain.roles import DataType, Principal, Role

#: Who is looking: the caller (one type for every layer).
Viewer = Principal


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


# --- consent over time --------------------------------------------------------------------


class ConsentChange(StrEnum):
    """Consent changes as they are written to the event stream (beside the chain's
    EventKind): they give each change its place in commit order."""

    DATA_EXCHANGE_ACTIVATED = "DATA_EXCHANGE_ACTIVATED"
    DATA_EXCHANGE_REVOKED = "DATA_EXCHANGE_REVOKED"
    PROCESSING_AGREEMENT_REGISTERED = "PROCESSING_AGREEMENT_REGISTERED"


CONSENT_CHANGES = frozenset(change.value for change in ConsentChange)


@dataclass(frozen=True)
class Moment:
    """When something happened: its position in the event stream where it has one,
    and its time (timezone-aware)."""

    position: tuple[int, int] | None
    at: datetime

    def precedes(self, other: Moment) -> bool:
        """Did this happen before `other`? By stream position when both have one,
        else by time (a change recorded before positions existed; or `other` is
        `NOW`)."""
        if self.position is not None and other.position is not None:
            return self.position < other.position
        return self.at <= other.at


#: After everything recorded: "as it is now".
NOW = Moment(None, datetime.max.replace(tzinfo=UTC))


@dataclass(frozen=True)
class ExchangeSpan:
    """One activation of a data type towards a supplier in a role, until its
    revocation (None: still active)."""

    supplier_id: int
    role: Role
    data_type: DataType
    activated: Moment
    revoked: Moment | None = None

    def active_at(self, moment: Moment) -> bool:
        if not self.activated.precedes(moment):
            return False
        return self.revoked is None or not self.revoked.precedes(moment)


@dataclass(frozen=True)
class AgreementSpan:
    """A processing agreement: counts from its registration, for the days it is
    valid."""

    supplier_id: int
    registered: Moment
    valid_from: date
    valid_until: date | None = None

    def valid_at(self, moment: Moment, day: date) -> bool:
        if not self.registered.precedes(moment) or day < self.valid_from:
            return False
        return self.valid_until is None or day <= self.valid_until


@dataclass(frozen=True)
class ConsentHistory:
    """Everything one school has given and taken back."""

    exchanges: tuple[ExchangeSpan, ...] = ()
    agreements: tuple[AgreementSpan, ...] = ()

    def at(self, moment: Moment, day: date) -> SchoolConsent:
        """The school's consent at `moment`, for data of `day` (the mandate's
        validity is by day)."""
        return SchoolConsent(
            activations=frozenset(
                (span.supplier_id, span.role, span.data_type)
                for span in self.exchanges
                if span.active_at(moment)
            ),
            mandates=frozenset(
                span.supplier_id for span in self.agreements if span.valid_at(moment, day)
            ),
        )


NO_HISTORY = ConsentHistory()


def may_see_event(
    viewer: Viewer,
    entitlement: EntitlementFacts,
    history: ConsentHistory,
    happened: Moment,
    day: date,
    data_type: DataType,
    *,
    handed_over: tuple[Moment, date] | None = None,
) -> bool:
    """May the viewer receive an event of this entitlement that happened at
    `happened` (on `day`)? Judged with the consent of that moment and, when the
    event is handed over later (`handed_over`: a replay, a push), also with the
    consent of the hand-over."""
    if not may_see(viewer, entitlement, history.at(happened, day), data_type):
        return False
    if handed_over is None:
        return True
    moment, today = handed_over
    return may_see(viewer, entitlement, history.at(moment, today), data_type)
