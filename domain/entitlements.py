"""The entitlement (Aanspraak) and its lifecycle, as data.

An entitlement is the right of some pupils or teachers to start using a product
within an activation period ``startDate`` .. ``activationUntilDate`` (both inclusive).
The shop creates it from a delivery specification and sends it to every recipient;
the publisher's licence office confirms it (PROVISIONED), the school's portal places
the access link (LINK_READY). DOMAIN.md §5 and seed 004.

Lifecycle (``ALLOWED`` is the single source of truth; ``transition()`` applies it)::

    ENTITLED --PROVISION--> PROVISIONED --LINK_READY--> LINK_READY
    LINK_READY --LINK_READY--> LINK_READY        (another portal confirms its own link)
    ENTITLED | PROVISIONED | LINK_READY --CANCEL--> CANCELLED
    ENTITLED | PROVISIONED | LINK_READY | CANCELLED --BLOCK--> BLOCKED
    BLOCKED --UNBLOCK--> the status before the block

Decisions beyond DOMAIN.md:

* CANCEL is widened from LINK_READY to ENTITLED and PROVISIONED: a shop must be able
  to cancel an order before the portal has placed the link (a wrong order found the
  same afternoon). Cancelling means "no new activations", which is meaningful in
  every status before the link, and licences cannot exist yet there.
* BLOCK is widened likewise: a seller may block before the link is placed.
* A second LINK_READY on a LINK_READY entitlement is allowed and changes nothing: a
  school may have several portals (Mijn leermiddelen and an LMS), each confirming its
  own link; only that recipient's state changes.
* Repeating an action (cancel a CANCELLED, block a BLOCKED, provision a PROVISIONED)
  is refused. A repeated *message* is recognised by its reference id before the
  domain is asked, so a refusal here means a genuinely conflicting request.
* ``ENDED`` is never stored. It is derived from ``activationUntilDate`` by
  ``effective_status()`` and only means "no new activations". Transitions act on the
  stored status, so a seller can still block an entitlement after its activation
  period: its licences live until their own ``expirationDate``, usually much later.
  Passing ``ENDED`` to ``transition()`` is refused (it is not a stored status).
* Quantity may only go down, never below the licences already activated (41), and
  only on open variants, which are the only ones with a quantity.

Recipients (DOMAIN.md §5): every status change goes to the publisher's licence office
(unless shop and publisher are the same supplier, the "combined role", which skips
the licence office's confirmation) and to each portal, LMS and dashboard provider for
which the school activated the *entitlements* data exchange. Each recipient has its
own delivery state (PENDING, CONFIRMED, FAILED with a code); a failure does not move
the entitlement, which stays where it was until a corrected message or retry succeeds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date
from enum import StrEnum
from types import MappingProxyType

from domain.errors import DomainError, StatusCode, TransitionNotAllowed
from domain.persons import PersonKind


class EntitlementStatus(StrEnum):
    """Stored statuses, plus ``ENDED``, which is derived and never stored."""

    ENTITLED = "ENTITLED"
    PROVISIONED = "PROVISIONED"
    LINK_READY = "LINK_READY"
    CANCELLED = "CANCELLED"
    BLOCKED = "BLOCKED"
    #: Derived by ``effective_status()`` from ``activationUntilDate``; never stored,
    #: never a source or target of a transition.
    ENDED = "ENDED"

    @property
    def stored(self) -> bool:
        return self is not EntitlementStatus.ENDED


STORED_STATUSES: frozenset[EntitlementStatus] = frozenset(s for s in EntitlementStatus if s.stored)


class Requirement(StrEnum):
    """An input a variant needs; the value is the GraphQL field name of the order line."""

    SCHOOL_ID = "schoolId"
    SCHOOL_SUBJECT_ID = "schoolSubjectId"
    GROUP_ID = "groupId"
    QUANTITY = "quantity"
    ENTITLEES = "entitlees"


class Variant(StrEnum):
    """Entitlement variants (Aanspraakvarianten), DOMAIN.md §4."""

    PERSONAL = "PERSONAL"
    SCHOOL = "SCHOOL"
    SCHOOL_SUBJECT = "SCHOOL_SUBJECT"
    SCHOOL_GROUP = "SCHOOL_GROUP"
    SCHOOL_PUPIL = "SCHOOL_PUPIL"
    SCHOOL_TEACHER = "SCHOOL_TEACHER"

    @property
    def is_open(self) -> bool:
        """Open: anyone matching the rule may activate, up to ``quantity`` licences."""
        return self in _OPEN

    @property
    def is_individual(self) -> bool:
        """Individual: only the named persons (or activation-code holders) may activate."""
        return not self.is_open

    @property
    def for_school(self) -> bool:
        """Bought by a school (needs ``schoolId``); PERSONAL is bought by a private person."""
        return self is not Variant.PERSONAL

    @property
    def person_kind(self) -> PersonKind:
        """Who may activate: teachers only through SCHOOL_TEACHER, pupils through the rest."""
        return PersonKind.TEACHER if self is Variant.SCHOOL_TEACHER else PersonKind.PUPIL

    @property
    def requires(self) -> frozenset[Requirement]:
        """The inputs this variant needs in a delivery (DOMAIN.md §4, seed 004 table)."""
        return _REQUIRES[self]


_OPEN = frozenset({Variant.SCHOOL, Variant.SCHOOL_SUBJECT, Variant.SCHOOL_GROUP})

_REQUIRES: Mapping[Variant, frozenset[Requirement]] = MappingProxyType(
    {
        Variant.PERSONAL: frozenset({Requirement.ENTITLEES}),
        Variant.SCHOOL: frozenset({Requirement.SCHOOL_ID, Requirement.QUANTITY}),
        Variant.SCHOOL_SUBJECT: frozenset(
            {Requirement.SCHOOL_ID, Requirement.SCHOOL_SUBJECT_ID, Requirement.QUANTITY}
        ),
        Variant.SCHOOL_GROUP: frozenset(
            {Requirement.SCHOOL_ID, Requirement.GROUP_ID, Requirement.QUANTITY}
        ),
        Variant.SCHOOL_PUPIL: frozenset({Requirement.SCHOOL_ID, Requirement.ENTITLEES}),
        Variant.SCHOOL_TEACHER: frozenset({Requirement.SCHOOL_ID, Requirement.ENTITLEES}),
    }
)


class ActivationCodeState(StrEnum):
    """State of an activation code attached to an individual entitlement."""

    UNUSED = "UNUSED"
    USED = "USED"
    REVOKED = "REVOKED"


class EntitlementAction(StrEnum):
    PROVISION = "PROVISION"
    LINK_READY = "LINK_READY"
    CANCEL = "CANCEL"
    BLOCK = "BLOCK"
    UNBLOCK = "UNBLOCK"


_S = EntitlementStatus
_A = EntitlementAction

#: (current status, action) -> new status. ``None`` means "the status before the
#: block" (only for UNBLOCK). A pair that is absent is refused.
ALLOWED: Mapping[tuple[EntitlementStatus, EntitlementAction], EntitlementStatus | None] = (
    MappingProxyType(
        {
            (_S.ENTITLED, _A.PROVISION): _S.PROVISIONED,
            (_S.PROVISIONED, _A.LINK_READY): _S.LINK_READY,
            (_S.LINK_READY, _A.LINK_READY): _S.LINK_READY,
            (_S.ENTITLED, _A.CANCEL): _S.CANCELLED,
            (_S.PROVISIONED, _A.CANCEL): _S.CANCELLED,
            (_S.LINK_READY, _A.CANCEL): _S.CANCELLED,
            (_S.ENTITLED, _A.BLOCK): _S.BLOCKED,
            (_S.PROVISIONED, _A.BLOCK): _S.BLOCKED,
            (_S.LINK_READY, _A.BLOCK): _S.BLOCKED,
            (_S.CANCELLED, _A.BLOCK): _S.BLOCKED,
            (_S.BLOCKED, _A.UNBLOCK): None,
        }
    )
)

#: Statuses a block can start from, hence the only valid ``status_before_block``.
BLOCKABLE: frozenset[EntitlementStatus] = frozenset(
    current for (current, action) in ALLOWED if action is _A.BLOCK
)

_VERBS: Mapping[EntitlementAction, str] = MappingProxyType(
    {
        _A.PROVISION: "provision",
        _A.LINK_READY: "confirm the link of",
        _A.CANCEL: "cancel",
        _A.BLOCK: "block",
        _A.UNBLOCK: "unblock",
    }
)


def transition(
    current: EntitlementStatus,
    action: EntitlementAction,
    *,
    status_before_block: EntitlementStatus | None = None,
) -> EntitlementStatus:
    """Apply ``action`` to the stored status ``current``; the one place ``ALLOWED`` is read.

    For UNBLOCK, ``status_before_block`` (stored beside a BLOCKED status) is the
    result. Raises ``TransitionNotAllowed`` (code 99) for a pair the table lacks, and
    ``DomainError`` (99) when a block's previous status is missing or not blockable,
    which is a data fault rather than a caller's mistake.
    """
    key = (current, action)
    if key not in ALLOWED:
        raise TransitionNotAllowed(
            current,
            action,
            f"cannot {_VERBS[action]} an entitlement that is {current}",
        )
    target = ALLOWED[key]
    if target is not None:
        return target
    if status_before_block is None or status_before_block not in BLOCKABLE:
        raise DomainError(
            StatusCode.OTHER,
            f"cannot unblock: the status before the block is unknown ({status_before_block!s})",
        )
    return status_before_block


def allowed_actions(current: EntitlementStatus) -> frozenset[EntitlementAction]:
    """The actions the table allows from ``current`` (for UI hints and GraphQL fields)."""
    return frozenset(action for (status, action) in ALLOWED if status is current)


def initial_status(combined_role: bool) -> EntitlementStatus:
    """Status of a new entitlement.

    In the combined role (shop and publisher are the same supplier) there is no licence
    office to confirm, so the entitlement starts PROVISIONED (seed 004, "NVT
    gecombineerde rol"); otherwise ENTITLED.
    """
    return EntitlementStatus.PROVISIONED if combined_role else EntitlementStatus.ENTITLED


def effective_status(
    stored: EntitlementStatus, activation_until_date: date, today: date
) -> EntitlementStatus:
    """The status to show: ``ENDED`` once ``today`` is past ``activationUntilDate``.

    BLOCKED stays BLOCKED (it says more: the licences are blocked too). CANCELLED also
    stays CANCELLED after the date: it records a deliberate act of the seller, and both
    statuses mean "no new activations" anyway. Every other stored status becomes ENDED,
    including ENTITLED/PROVISIONED entitlements whose link was never placed.
    """
    if stored in (EntitlementStatus.BLOCKED, EntitlementStatus.CANCELLED):
        return stored
    if today > activation_until_date:
        return EntitlementStatus.ENDED
    return stored


@dataclass(frozen=True, kw_only=True)
class EntitlementState:
    """What the rules need to know about one stored entitlement.

    Methods return a NEW state or raise; guards (``can_…``) answer without raising, from
    the same checks. ``quantity`` is None for individual variants (their size is the
    number of entitlees); ``licences_used`` counts licences activated on it.
    """

    status: EntitlementStatus
    variant: Variant
    activation_until_date: date
    status_before_block: EntitlementStatus | None = None
    quantity: int | None = None
    licences_used: int = 0

    # -- refusals (the single place each rule is checked) -------------------------

    def refusal(self, action: EntitlementAction) -> DomainError | None:
        """Why ``action`` is refused in this state, or None if it is allowed."""
        try:
            transition(self.status, action, status_before_block=self.status_before_block)
        except DomainError as error:
            return error
        if (
            action is EntitlementAction.CANCEL
            and self.variant.is_individual
            and self.licences_used > 0
        ):
            # DOMAIN.md §5: an individual entitlement with a licence cannot be
            # cancelled; an open one can (existing licences keep working).
            return DomainError(
                StatusCode.LICENCE_REGISTERED,
                f"cannot cancel a {self.variant} entitlement: {self.licences_used} "
                f"licence(s) already registered on it",
            )
        return None

    def quantity_refusal(self, new_quantity: int) -> DomainError | None:
        """Why lowering the quantity to ``new_quantity`` is refused, or None.

        Allowed in every stored status: the quantity is a commercial fact (what the
        school pays for), independent of whether new activations are possible.
        """
        if not self.variant.is_open or self.quantity is None:
            return DomainError(
                StatusCode.QUANTITY_NOT_ALLOWED,
                f"a {self.variant} entitlement has no quantity; only open variants "
                f"(SCHOOL, SCHOOL_SUBJECT, SCHOOL_GROUP) can be lowered",
                field="quantity",
            )
        if new_quantity < 1:
            return DomainError(
                StatusCode.QUANTITY_TOO_LOW,
                f"quantity must be at least 1, got {new_quantity}",
                field="quantity",
            )
        if new_quantity >= self.quantity:
            return DomainError(
                StatusCode.QUANTITY_NOT_ALLOWED,
                f"quantity may only go down: new {new_quantity} is not below "
                f"current {self.quantity}",
                field="quantity",
            )
        if new_quantity < self.licences_used:
            return DomainError(
                StatusCode.QUANTITY_NOT_ALLOWED,
                f"quantity {new_quantity} is below the {self.licences_used} licences "
                f"already activated",
                field="quantity",
            )
        return None

    # -- guards ---------------------------------------------------------------------

    def can(self, action: EntitlementAction) -> bool:
        return self.refusal(action) is None

    def can_provision(self) -> bool:
        return self.can(EntitlementAction.PROVISION)

    def can_link_ready(self) -> bool:
        return self.can(EntitlementAction.LINK_READY)

    def can_cancel(self) -> bool:
        return self.can(EntitlementAction.CANCEL)

    def can_block(self) -> bool:
        return self.can(EntitlementAction.BLOCK)

    def can_unblock(self) -> bool:
        return self.can(EntitlementAction.UNBLOCK)

    def can_lower_quantity(self, new_quantity: int) -> bool:
        return self.quantity_refusal(new_quantity) is None

    def effective_status(self, today: date) -> EntitlementStatus:
        return effective_status(self.status, self.activation_until_date, today)

    # -- transitions ----------------------------------------------------------------

    def apply(self, action: EntitlementAction) -> EntitlementState:
        """The state after ``action``; raises the refusal if there is one."""
        error = self.refusal(action)
        if error is not None:
            raise error
        new_status = transition(self.status, action, status_before_block=self.status_before_block)
        if action is EntitlementAction.BLOCK:
            return replace(self, status=new_status, status_before_block=self.status)
        if action is EntitlementAction.UNBLOCK:
            return replace(self, status=new_status, status_before_block=None)
        return replace(self, status=new_status)

    def provision(self) -> EntitlementState:
        return self.apply(EntitlementAction.PROVISION)

    def link_ready(self) -> EntitlementState:
        return self.apply(EntitlementAction.LINK_READY)

    def cancel(self) -> EntitlementState:
        return self.apply(EntitlementAction.CANCEL)

    def block(self) -> EntitlementState:
        return self.apply(EntitlementAction.BLOCK)

    def unblock(self) -> EntitlementState:
        return self.apply(EntitlementAction.UNBLOCK)

    def lower_quantity(self, new_quantity: int) -> EntitlementState:
        error = self.quantity_refusal(new_quantity)
        if error is not None:
            raise error
        return replace(self, quantity=new_quantity)


# -- recipients -----------------------------------------------------------------------


class RecipientRole(StrEnum):
    """The role in which a supplier receives an entitlement."""

    LICENSOR = "LICENSOR"
    PORTAL = "PORTAL"
    DASHBOARD = "DASHBOARD"


class RecipientState(StrEnum):
    """Delivery state of an entitlement at one recipient."""

    PENDING = "PENDING"
    CONFIRMED = "CONFIRMED"
    FAILED = "FAILED"


def recipients_for(
    seller_supplier_id: int,
    publisher_supplier_id: int,
    activated: Iterable[tuple[int, RecipientRole]],
) -> list[tuple[int, RecipientRole]]:
    """Who receives an entitlement (and every later status change), deduplicated.

    ``activated`` holds the (supplier, role) pairs for which the school activated the
    *entitlements* data exchange: portals/LMSs and dashboards. The publisher's licence
    office is always a recipient, first in the list, without any activation (the
    bilateral shop-publisher contract gives purpose, seed 004), except in the
    combined role (seller == publisher), where the shop is its own licence office.
    LICENSOR pairs in ``activated`` are ignored: only the product's publisher
    provisions it. The rest is ordered by role (PORTAL, then DASHBOARD) and supplier id
    so the result is deterministic. A supplier that is both the school's portal and its
    dashboard appears once per role: it has a step to confirm in one and not the other.
    """
    result: list[tuple[int, RecipientRole]] = []
    if seller_supplier_id != publisher_supplier_id:
        result.append((publisher_supplier_id, RecipientRole.LICENSOR))
    order = {RecipientRole.PORTAL: 0, RecipientRole.DASHBOARD: 1}
    others = {
        (supplier_id, RecipientRole(role))
        for supplier_id, role in activated
        if role is not RecipientRole.LICENSOR
    }
    result.extend(sorted(others, key=lambda pair: (order[pair[1]], pair[0])))
    return result


#: The entitlement action a recipient's confirmation performs. A dashboard only
#: watches; it has nothing to confirm.
CONFIRMS: Mapping[RecipientRole, EntitlementAction] = MappingProxyType(
    {
        RecipientRole.LICENSOR: EntitlementAction.PROVISION,
        RecipientRole.PORTAL: EntitlementAction.LINK_READY,
    }
)


def confirmation_action(role: RecipientRole) -> EntitlementAction | None:
    """PROVISION for a licence office, LINK_READY for a portal, None for a dashboard."""
    return CONFIRMS.get(role)


def failure_allowed(role: RecipientRole, code: StatusCode) -> bool:
    """Whether a recipient in ``role`` may answer a delivery with failure ``code``.

    A licence office and a portal may report any agreed code except 0 (which is not
    a failure): the SEM tables do not restrict which party reports which code, and
    both may meet every problem (an unknown pupil, an unknown product, a wrong
    quantity, an activation code). A dashboard only watches and reports nothing.
    """
    return role in CONFIRMS and code in _FAILURE_CODES


_FAILURE_CODES = frozenset(StatusCode) - {StatusCode.OK}
