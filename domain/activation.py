"""The licence office's decision tree (Beslisboom in gebruik nemen), as a pure function.

When a person clicks an access link, the licence office decides whether they may
start using the product, and on which entitlement their licence is registered
(DOMAIN.md §6, seed 003). ``decide()`` takes every fact it needs in one frozen
``ActivationFacts`` (loaded by the database layer) and returns a ``Decision`` that
names the rule that decided. It never reads the clock or the database.

The tree, in order:

1. **Person unknown** (``facts.person is None``; resolving the ECK iD or the secondary
   id within the school is the caller's job) → deny ``PERSON_UNKNOWN``, code 3.
2. **Existing licence** on this product:
   * one that gives access now (ACTIVATED, ``today <= expirationDate``, entitlement
     not BLOCKED) → grant ``EXISTING_LICENCE`` with its ``licence_id``; nothing new
     is created, so repeated clicks are idempotent. Among several, the one that
     expires last (then lowest id).
   * otherwise one that is blocked (itself, or through its blocked entitlement) and
     not yet past its ``expirationDate`` → deny ``LICENCE_BLOCKED``. We do not fall
     through to another entitlement: a block is a deliberate act of the seller and a
     second licence would circumvent it. Expired licences are ignored, blocked or
     not, so a pupil can get next year's licence.
3. **Candidates**, ranked:
   a. individual (PERSONAL, SCHOOL_PUPIL, SCHOOL_TEACHER) naming the person
      (rule ``INDIVIDUAL``), or whose activation code the person entered (rule
      ``ACTIVATION_CODE``; when both hold, INDIVIDUAL: the name suffices and the code
      stays unused). No school check: the name (ECK iD) is the authorisation and it
      follows a pupil who changes school within a sector (DOMAIN.md §3).
   b. open SCHOOL_GROUP for a group the person is in now (``GROUP``), or open
      SCHOOL_SUBJECT for a subject the person follows now (``SUBJECT``); one rank,
      as in §6 b.
   c. open SCHOOL (``SCHOOL``).
   An open entitlement applies only when its school is the login school AND the login
   school is among the person's schools now: an open entitlement is a school's
   purchase for its own pupils, and a pupil enrolled at two schools acts for the one
   they logged in through.
   Within a rank: earliest ``activationUntilDate`` first, then lowest id, so seats
   that run out soonest are used first and the choice is deterministic.
4. **Checks**, in this order (the first failing one is that candidate's reason):
   person kind (teachers only through SCHOOL_TEACHER → ``TEACHER_NEEDS_INDIVIDUAL``;
   pupils never through SCHOOL_TEACHER → ``TEACHERS_ONLY``); for the ACTIVATION_CODE
   rule the code's state (REVOKED → 52, USED → 51); BLOCKED; CANCELLED;
   ``ACTIVATION_PERIOD_ENDED`` (``today > activationUntilDate``); ``NOT_STARTED``
   (``today < startDate``); ``NOT_LINK_READY``; for open variants
   ``QUANTITY_EXHAUSTED`` (``licences_used >= quantity``). Permanent reasons come
   before temporary ones because they say more.
5. The first candidate (in rank order) that passes every check is granted. A failing
   candidate does not stop a worse-ranked one: a blocked individual entitlement must
   not stop the school-wide one from working. If none passes, the denial carries the
   reason of the best-ranked candidate that applied but failed; if none applied,
   ``NO_ENTITLEMENT`` (for a teacher with no applicable entitlement at all, also
   NO_ENTITLEMENT).

Activation codes: a code entered that belongs to no candidate (unknown, or known but
for another product) is reported as ``ACTIVATION_CODE_UNKNOWN`` (50) when nothing is
granted, and it is ranked before every other failure: the person asked about that
code. A usable entitlement still wins over a wrong code: access is what they came for.

Concurrency: the grant is a decision, not a reservation. For an open entitlement the
database layer registers the licence with an atomic ``UPDATE … SET licences_used =
licences_used + 1 WHERE id = :id AND licences_used < quantity``; when that affects no
row, the seat was taken by a concurrent activation and it calls ``decide(facts,
exclude=…)`` again with that entitlement excluded (no reload needed). An excluded
candidate is never granted and, if nothing else works, is reported as
``QUANTITY_EXHAUSTED``, which is why it was excluded. Individual entitlements have no
quantity (``licences_used`` still counts, for the cancel rule 42); a unique
constraint on the person's live licence per product stops a double click.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from types import MappingProxyType

from domain.entitlements import ActivationCodeState, EntitlementStatus, Variant
from domain.errors import StatusCode
from domain.licences import LicenceStatus, has_access
from domain.persons import PersonKind

__all__ = [
    "ActivationCodeState",
    "ActivationFacts",
    "CandidateEntitlement",
    "Decision",
    "ExistingLicence",
    "PersonFacts",
    "PersonKind",
    "Rule",
    "RULE_CODES",
    "decide",
]


@dataclass(frozen=True)
class PersonFacts:
    """The person who clicked, with memberships AT ACTIVATION TIME (today)."""

    person_id: int
    kind: PersonKind
    school_ids: frozenset[int] = frozenset()
    group_ids: frozenset[int] = frozenset()
    subject_ids: frozenset[int] = frozenset()


@dataclass(frozen=True, kw_only=True)
class CandidateEntitlement:
    """An entitlement on this product that could apply to this person.

    ``names_person``: the person is an entitlee of this individual entitlement.
    ``activation_code_state``: set only when the code the person entered belongs to
    this entitlement. ``status`` is the stored status (ENDED is derived here from the
    dates). ``quantity`` is None for individual variants.
    """

    id: int
    variant: Variant
    status: EntitlementStatus
    start_date: date
    activation_until_date: date
    school_id: int | None = None
    group_id: int | None = None
    subject_id: int | None = None
    quantity: int | None = None
    licences_used: int = 0
    names_person: bool = False
    activation_code_state: ActivationCodeState | None = None


@dataclass(frozen=True, kw_only=True)
class ExistingLicence:
    """One of this person's licences on this product, with its entitlement's status."""

    id: int
    entitlement_id: int
    status: LicenceStatus
    expiration_date: date
    entitlement_status: EntitlementStatus


@dataclass(frozen=True, kw_only=True)
class ActivationFacts:
    """Everything ``decide()`` needs, loaded before it is called.

    ``school_id`` comes from the login; ``person`` is None when the person is unknown;
    ``activation_code_known`` only refines the message when the entered code belongs
    to no candidate.
    """

    today: date
    school_id: int
    person: PersonFacts | None
    existing_licences: tuple[ExistingLicence, ...] = ()
    candidates: tuple[CandidateEntitlement, ...] = ()
    activation_code: str | None = None
    activation_code_known: bool = False


class Rule(StrEnum):
    """The rule that decided: a grant rule, or the reason for a denial."""

    # grants
    EXISTING_LICENCE = "EXISTING_LICENCE"
    INDIVIDUAL = "INDIVIDUAL"
    ACTIVATION_CODE = "ACTIVATION_CODE"
    GROUP = "GROUP"
    SUBJECT = "SUBJECT"
    SCHOOL = "SCHOOL"
    # denials
    PERSON_UNKNOWN = "PERSON_UNKNOWN"
    LICENCE_BLOCKED = "LICENCE_BLOCKED"
    NO_ENTITLEMENT = "NO_ENTITLEMENT"
    NOT_LINK_READY = "NOT_LINK_READY"
    NOT_STARTED = "NOT_STARTED"
    ACTIVATION_PERIOD_ENDED = "ACTIVATION_PERIOD_ENDED"
    CANCELLED = "CANCELLED"
    BLOCKED = "BLOCKED"
    QUANTITY_EXHAUSTED = "QUANTITY_EXHAUSTED"
    TEACHER_NEEDS_INDIVIDUAL = "TEACHER_NEEDS_INDIVIDUAL"
    TEACHERS_ONLY = "TEACHERS_ONLY"
    ACTIVATION_CODE_UNKNOWN = "ACTIVATION_CODE_UNKNOWN"
    ACTIVATION_CODE_USED = "ACTIVATION_CODE_USED"
    ACTIVATION_CODE_REVOKED = "ACTIVATION_CODE_REVOKED"

    @property
    def grants(self) -> bool:
        return self in _GRANT_RULES


_GRANT_RULES = frozenset(
    {
        Rule.EXISTING_LICENCE,
        Rule.INDIVIDUAL,
        Rule.ACTIVATION_CODE,
        Rule.GROUP,
        Rule.SUBJECT,
        Rule.SCHOOL,
    }
)

#: The agreed status code each rule answers with. Grants are 0; denials without an
#: agreed code of their own are 99 with the rule named in the reason.
RULE_CODES: Mapping[Rule, StatusCode] = MappingProxyType(
    {
        **{rule: StatusCode.OK for rule in _GRANT_RULES},
        Rule.PERSON_UNKNOWN: StatusCode.PERSON_UNKNOWN,
        Rule.LICENCE_BLOCKED: StatusCode.OTHER,
        Rule.NO_ENTITLEMENT: StatusCode.OTHER,
        Rule.NOT_LINK_READY: StatusCode.OTHER,
        Rule.NOT_STARTED: StatusCode.OTHER,
        Rule.ACTIVATION_PERIOD_ENDED: StatusCode.OTHER,
        Rule.CANCELLED: StatusCode.OTHER,
        Rule.BLOCKED: StatusCode.OTHER,
        Rule.QUANTITY_EXHAUSTED: StatusCode.OTHER,
        Rule.TEACHER_NEEDS_INDIVIDUAL: StatusCode.OTHER,
        Rule.TEACHERS_ONLY: StatusCode.OTHER,
        Rule.ACTIVATION_CODE_UNKNOWN: StatusCode.ACTIVATION_CODE_UNKNOWN,
        Rule.ACTIVATION_CODE_USED: StatusCode.ACTIVATION_CODE_USED,
        Rule.ACTIVATION_CODE_REVOKED: StatusCode.ACTIVATION_CODE_REVOKED,
    }
)


@dataclass(frozen=True)
class Decision:
    """The outcome of the decision tree.

    ``entitlement_id``: the entitlement to register a new licence on (grant), the one
    the existing licence hangs on (EXISTING_LICENCE, LICENCE_BLOCKED) or the one whose
    check failed (denial). ``licence_id``: set for EXISTING_LICENCE and LICENCE_BLOCKED;
    a grant with ``licence_id is None`` means "create a licence". ``variant``: the
    chosen entitlement's variant, so the caller knows whether a seat must be taken
    atomically. ``passed_over``: (entitlement id, failing rule) of the better-ranked
    candidates that applied but failed, in rank order, for support and audit.
    """

    granted: bool
    rule: Rule
    entitlement_id: int | None
    licence_id: int | None
    code: StatusCode
    reason: str
    variant: Variant | None = None
    passed_over: tuple[tuple[int, Rule], ...] = ()

    @property
    def creates_licence(self) -> bool:
        return self.granted and self.licence_id is None

    @property
    def takes_seat(self) -> bool:
        """Whether registering the licence must take a seat atomically (open variant)."""
        return self.creates_licence and self.variant is not None and self.variant.is_open


# -- the tree -----------------------------------------------------------------------

_RANK_INDIVIDUAL = 0
_RANK_GROUP_OR_SUBJECT = 1
_RANK_SCHOOL = 2


@dataclass(frozen=True)
class _Failure:
    sort_key: tuple[int, date, int]
    rule: Rule
    entitlement_id: int | None
    variant: Variant | None
    message: str


def decide(facts: ActivationFacts, *, exclude: frozenset[int] = frozenset()) -> Decision:
    """Run the decision tree (see the module docstring) on ``facts``.

    ``exclude``: entitlement ids that lost the race for their last seat; they are
    never chosen and, if nothing else is usable, reported as QUANTITY_EXHAUSTED.
    """
    person = facts.person
    if person is None:
        return _deny(Rule.PERSON_UNKNOWN, "the person is not known to the licence office")

    existing = _existing_licence(facts)
    if existing is not None:
        return existing

    failures: list[_Failure] = []
    if facts.activation_code is not None and not any(
        c.activation_code_state is not None for c in facts.candidates
    ):
        detail = (
            "does not belong to an entitlement on this product"
            if facts.activation_code_known
            else "is unknown"
        )
        failures.append(
            _Failure(
                (_RANK_INDIVIDUAL, date.min, -1),
                Rule.ACTIVATION_CODE_UNKNOWN,
                None,
                None,
                f"the activation code {detail}",
            )
        )

    applicable: list[tuple[tuple[int, date, int], Rule, CandidateEntitlement]] = []
    for candidate in facts.candidates:
        applies = _applies(candidate, person, facts.school_id)
        if applies is not None:
            rank, rule = applies
            applicable.append(
                ((rank, candidate.activation_until_date, candidate.id), rule, candidate)
            )
    applicable.sort(key=lambda item: item[0])

    for sort_key, rule, candidate in applicable:
        failed = _check(candidate, rule, person, facts.today, exclude)
        if failed is None:
            passed_over = tuple(
                (f.entitlement_id, f.rule) for f in failures if f.entitlement_id is not None
            )
            return Decision(
                granted=True,
                rule=rule,
                entitlement_id=candidate.id,
                licence_id=None,
                code=RULE_CODES[rule],
                reason=f"granted by rule {rule}: {_grant_detail(rule, candidate)}",
                variant=candidate.variant,
                passed_over=passed_over,
            )
        failed_rule, message = failed
        failures.append(_Failure(sort_key, failed_rule, candidate.id, candidate.variant, message))

    if not failures:
        return _deny(
            Rule.NO_ENTITLEMENT,
            f"no entitlement on this product applies to this {person.kind.lower()} "
            f"at school {facts.school_id}",
        )
    failures.sort(key=lambda f: f.sort_key)
    best = failures[0]
    return Decision(
        granted=False,
        rule=best.rule,
        entitlement_id=best.entitlement_id,
        licence_id=None,
        code=RULE_CODES[best.rule],
        reason=f"denied by rule {best.rule}: {best.message}",
        variant=best.variant,
        passed_over=tuple(
            (f.entitlement_id, f.rule) for f in failures[1:] if f.entitlement_id is not None
        ),
    )


def _deny(rule: Rule, message: str) -> Decision:
    return Decision(
        granted=False,
        rule=rule,
        entitlement_id=None,
        licence_id=None,
        code=RULE_CODES[rule],
        reason=f"denied by rule {rule}: {message}",
    )


def _existing_licence(facts: ActivationFacts) -> Decision | None:
    today = facts.today
    live = [lic for lic in facts.existing_licences if today <= lic.expiration_date]
    usable = [
        lic
        for lic in live
        if has_access(lic.status, lic.expiration_date, today, lic.entitlement_status)
    ]
    if usable:
        lic = min(usable, key=lambda x: (-x.expiration_date.toordinal(), x.id))
        return Decision(
            granted=True,
            rule=Rule.EXISTING_LICENCE,
            entitlement_id=lic.entitlement_id,
            licence_id=lic.id,
            code=RULE_CODES[Rule.EXISTING_LICENCE],
            reason=(
                f"granted by rule {Rule.EXISTING_LICENCE}: licence {lic.id} is active "
                f"until {lic.expiration_date.isoformat()}"
            ),
        )
    blocked = [
        lic
        for lic in live
        if lic.status is LicenceStatus.BLOCKED
        or lic.entitlement_status is EntitlementStatus.BLOCKED
    ]
    if blocked:
        lic = min(blocked, key=lambda x: x.id)
        by = (
            "is blocked"
            if lic.status is LicenceStatus.BLOCKED
            else f"is blocked because entitlement {lic.entitlement_id} is blocked"
        )
        return Decision(
            granted=False,
            rule=Rule.LICENCE_BLOCKED,
            entitlement_id=lic.entitlement_id,
            licence_id=lic.id,
            code=RULE_CODES[Rule.LICENCE_BLOCKED],
            reason=f"denied by rule {Rule.LICENCE_BLOCKED}: licence {lic.id} {by}",
        )
    return None


def _applies(
    candidate: CandidateEntitlement, person: PersonFacts, login_school_id: int
) -> tuple[int, Rule] | None:
    """Rank and grant rule if the candidate's authorisation rule covers the person.

    Only who-it-is-for is looked at here; status, dates, quantity and person kind are
    checks (so a failing candidate can still explain a denial).
    """
    variant = candidate.variant
    if variant.is_individual:
        if candidate.names_person:
            return _RANK_INDIVIDUAL, Rule.INDIVIDUAL
        if candidate.activation_code_state is not None:
            return _RANK_INDIVIDUAL, Rule.ACTIVATION_CODE
        return None
    if candidate.school_id != login_school_id or login_school_id not in person.school_ids:
        return None
    if variant is Variant.SCHOOL_GROUP:
        if candidate.group_id is not None and candidate.group_id in person.group_ids:
            return _RANK_GROUP_OR_SUBJECT, Rule.GROUP
        return None
    if variant is Variant.SCHOOL_SUBJECT:
        if candidate.subject_id is not None and candidate.subject_id in person.subject_ids:
            return _RANK_GROUP_OR_SUBJECT, Rule.SUBJECT
        return None
    return _RANK_SCHOOL, Rule.SCHOOL


def _check(
    candidate: CandidateEntitlement,
    rule: Rule,
    person: PersonFacts,
    today: date,
    exclude: frozenset[int],
) -> tuple[Rule, str] | None:
    """The first failing check of an applicable candidate, or None if usable."""
    variant = candidate.variant
    label = f"{variant} entitlement {candidate.id}"
    if person.kind is PersonKind.TEACHER and variant.person_kind is not PersonKind.TEACHER:
        return (
            Rule.TEACHER_NEEDS_INDIVIDUAL,
            f"{label} is not for teachers; teachers get licences only through a "
            f"SCHOOL_TEACHER entitlement naming them",
        )
    if person.kind is PersonKind.PUPIL and variant.person_kind is PersonKind.TEACHER:
        return Rule.TEACHERS_ONLY, f"{label} is for teachers only"
    if rule is Rule.ACTIVATION_CODE:
        if candidate.activation_code_state is ActivationCodeState.REVOKED:
            return Rule.ACTIVATION_CODE_REVOKED, f"the activation code of {label} was revoked"
        if candidate.activation_code_state is ActivationCodeState.USED:
            return Rule.ACTIVATION_CODE_USED, f"the activation code of {label} was already used"
    status = candidate.status
    if status is EntitlementStatus.BLOCKED:
        return Rule.BLOCKED, f"{label} is blocked"
    if status is EntitlementStatus.CANCELLED:
        return Rule.CANCELLED, f"{label} is cancelled"
    if status is EntitlementStatus.ENDED or today > candidate.activation_until_date:
        return (
            Rule.ACTIVATION_PERIOD_ENDED,
            f"the activation period of {label} ended on "
            f"{candidate.activation_until_date.isoformat()}",
        )
    if today < candidate.start_date:
        return (
            Rule.NOT_STARTED,
            f"the activation period of {label} starts on {candidate.start_date.isoformat()}",
        )
    if status is not EntitlementStatus.LINK_READY:
        return Rule.NOT_LINK_READY, f"{label} is {status}, not yet LINK_READY"
    if candidate.id in exclude:
        return (
            Rule.QUANTITY_EXHAUSTED,
            f"{label} has no seat left (taken by a concurrent activation)",
        )
    if variant.is_open and (
        candidate.quantity is None or candidate.licences_used >= candidate.quantity
    ):
        return (
            Rule.QUANTITY_EXHAUSTED,
            f"{label} has no seat left ({candidate.licences_used} of "
            f"{candidate.quantity} licences used)",
        )
    return None


def _grant_detail(rule: Rule, candidate: CandidateEntitlement) -> str:
    label = f"{candidate.variant} entitlement {candidate.id}"
    if rule is Rule.INDIVIDUAL:
        return f"{label} names this person"
    if rule is Rule.ACTIVATION_CODE:
        return f"the activation code belongs to {label}"
    if rule is Rule.GROUP:
        return f"{label} covers group {candidate.group_id}, which the pupil is in"
    if rule is Rule.SUBJECT:
        return f"{label} covers subject {candidate.subject_id}, which the pupil follows"
    return f"{label} covers every pupil of school {candidate.school_id}"
