"""The relational model of the whole chain (DOMAIN.md sections 2 to 8). One module
(about 700 lines): the tables refer to each other, and Alembic compares them as one
metadata.

Organisations are stored once per RIO level with their primary id on the row and
any number of secondary identifiers beside it; persons are stored once per
sector-bound identity with their identifiers beside them, so licences hang on the
person and survive a change of school. Entitlements carry a `licences_used`
counter that the activation path increments with a guarded UPDATE, which is what
keeps "licences < quantity" true under concurrency. Events form the outbox that
subscriptions read; the audit log records who did what.

Statuses are stored as the `StrEnum` values of `domain/`; derived statuses
(ENDED, EXPIRED) are never stored.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, BigId, enum_check, enum_column
from domain.entitlements import (
    ActivationCodeState,
    EntitlementStatus,
    RecipientRole,
    RecipientState,
    Variant,
)
from domain.identifiers import OrgIdScheme, OrgLevel, PersonIdScheme, Sector
from domain.licences import LicenceStatus
from domain.persons import PersonKind
from domain.products import ProductType
from domain.roles import DataType, Role

Timestamp = DateTime(timezone=True)


def now_column() -> Mapped[datetime]:
    return mapped_column(Timestamp, nullable=False, server_default=func.now())


# --- organisations (RIO) -------------------------------------------------------


class Organisation(Base):
    """A board, provider ("school") or location, identified by its RIO primary id."""

    __tablename__ = "organisation"
    __table_args__ = (enum_check("level", OrgLevel),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    level: Mapped[str] = enum_column(OrgLevel)
    rio_id: Mapped[str] = mapped_column(String(16), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    created_at: Mapped[datetime] = now_column()


class OrganisationIdentifier(Base):
    """A secondary identifier (BRIN4, BRIN6, BP_ID, DD_ID, AS_ID, BGE_CODE) of an
    organisation. The same value may point at several organisations (a BRIN6 of
    a provider and of a location): lookups must report that ambiguity."""

    __tablename__ = "organisation_identifier"
    __table_args__ = (
        UniqueConstraint("organisation_id", "scheme", "value"),
        Index("ix_organisation_identifier_scheme_value", "scheme", "value"),
        enum_check("scheme", OrgIdScheme),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("organisation.id", ondelete="CASCADE"), nullable=False
    )
    scheme: Mapped[str] = enum_column(OrgIdScheme)
    value: Mapped[str] = mapped_column(String(64), nullable=False)


class OrganisationRelation(Base):
    """Board→provider and provider→location links (many-to-many in practice)."""

    __tablename__ = "organisation_relation"
    __table_args__ = (
        CheckConstraint("parent_id <> child_id", name="not_self"),
        Index("ix_organisation_relation_child_id", "child_id"),
    )

    parent_id: Mapped[int] = mapped_column(
        ForeignKey("organisation.id", ondelete="CASCADE"), primary_key=True
    )
    child_id: Mapped[int] = mapped_column(
        ForeignKey("organisation.id", ondelete="CASCADE"), primary_key=True
    )


# --- suppliers and products ------------------------------------------------------


class Supplier(Base):
    """A Leverancier: one organisation that may hold several roles."""

    __tablename__ = "supplier"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    created_at: Mapped[datetime] = now_column()


class SupplierRole(Base):
    __tablename__ = "supplier_role"
    __table_args__ = (enum_check("role", Role),)

    supplier_id: Mapped[int] = mapped_column(
        ForeignKey("supplier.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = enum_column(Role, primary_key=True)


class SupplierSchool(Base):
    """A school (provider) a school account may speak for: a token of that supplier
    with the school scope must name one of these schools (gateway/tokens.py,
    resolvers/auth.py). Registered by the operator (`ketenpoort school-account`)."""

    __tablename__ = "supplier_school"
    __table_args__ = (Index("ix_supplier_school_organisation_id", "organisation_id"),)

    supplier_id: Mapped[int] = mapped_column(
        ForeignKey("supplier.id", ondelete="CASCADE"), primary_key=True
    )
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("organisation.id", ondelete="CASCADE"), primary_key=True
    )


class Product(Base):
    """A learning material: EAN/ISBN for products for sale, otherwise a UUID."""

    __tablename__ = "product"
    __table_args__ = (
        enum_check("type", ProductType),
        CheckConstraint(
            "sale_end_date IS NULL OR sale_start_date IS NULL OR sale_end_date >= sale_start_date",
            name="sale_period",
        ),
        Index("ix_product_publisher_id", "publisher_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(36), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(String(300), nullable=False)
    type: Mapped[str] = enum_column(ProductType)
    publisher_id: Mapped[int] = mapped_column(ForeignKey("supplier.id"), nullable=False)
    first_publication_date: Mapped[date | None] = mapped_column(Date)
    sale_start_date: Mapped[date | None] = mapped_column(Date)
    sale_end_date: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = now_column()


class ProductComponent(Base):
    """The digital components of a combi or set product."""

    __tablename__ = "product_component"
    __table_args__ = (CheckConstraint("product_id <> component_id", name="not_self"),)

    product_id: Mapped[int] = mapped_column(
        ForeignKey("product.id", ondelete="CASCADE"), primary_key=True
    )
    component_id: Mapped[int] = mapped_column(ForeignKey("product.id"), primary_key=True)


class Contract(Base):
    """A framework contract between a shop and a school (codes 20/21)."""

    __tablename__ = "contract"
    __table_args__ = (
        UniqueConstraint("seller_id", "contract_number"),
        CheckConstraint("valid_until IS NULL OR valid_until >= valid_from", name="valid_period"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seller_id: Mapped[int] = mapped_column(ForeignKey("supplier.id"), nullable=False)
    contract_number: Mapped[str] = mapped_column(String(64), nullable=False)
    school_id: Mapped[int | None] = mapped_column(ForeignKey("organisation.id"))
    valid_from: Mapped[date] = mapped_column(Date, nullable=False)
    valid_until: Mapped[date | None] = mapped_column(Date)


# --- school organisation (from the administration system) -------------------------


class SchoolPeriod(Base):
    """A school period (schooljaar/periode) of a provider."""

    __tablename__ = "school_period"
    __table_args__ = (
        UniqueConstraint("school_id", "code"),
        CheckConstraint("end_date >= start_date", name="period"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    school_id: Mapped[int] = mapped_column(
        ForeignKey("organisation.id", ondelete="CASCADE"), nullable=False
    )
    code: Mapped[str] = mapped_column(String(64), nullable=False)
    start_date: Mapped[date] = mapped_column(Date, nullable=False)
    end_date: Mapped[date] = mapped_column(Date, nullable=False)


class SchoolSubject(Base):
    """A subject (vak) a school teaches; SCHOOL_SUBJECT entitlements name one."""

    __tablename__ = "school_subject"
    __table_args__ = (UniqueConstraint("school_id", "code"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    school_id: Mapped[int] = mapped_column(
        ForeignKey("organisation.id", ondelete="CASCADE"), nullable=False
    )
    code: Mapped[str] = mapped_column(String(64), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)


class TeachingGroup(Base):
    """A group (lesgroep/klas) in one school period; SCHOOL_GROUP entitlements name one."""

    __tablename__ = "teaching_group"
    __table_args__ = (
        UniqueConstraint("school_id", "period_id", "code"),
        Index("ix_teaching_group_period_id", "period_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    school_id: Mapped[int] = mapped_column(
        ForeignKey("organisation.id", ondelete="CASCADE"), nullable=False
    )
    period_id: Mapped[int] = mapped_column(
        ForeignKey("school_period.id", ondelete="CASCADE"), nullable=False
    )
    code: Mapped[str] = mapped_column(String(64), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    subject_id: Mapped[int | None] = mapped_column(ForeignKey("school_subject.id"))


class Person(Base):
    """A pupil or teacher. A pupil is one row per sector-bound ECK iD; it keeps
    its licences when it changes school within the sector. Erasure clears the
    identifiers and sets `erased_at`, keeping counts and anonymised licences."""

    __tablename__ = "person"
    __table_args__ = (
        enum_check("kind", PersonKind),
        CheckConstraint("sector IS NULL OR sector IN ('po', 'vo', 'mbo', 'ho')", name="sector"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = enum_column(PersonKind)
    sector: Mapped[str | None] = enum_column(Sector, nullable=True)
    created_at: Mapped[datetime] = now_column()
    erased_at: Mapped[datetime | None] = mapped_column(Timestamp)


class PersonIdentifier(Base):
    """ECK iD or a secondary identifier. Unique per scheme; scope is the school's
    organisation id for schemes only unique within a school (ASI), else ''."""

    __tablename__ = "person_identifier"
    __table_args__ = (
        UniqueConstraint("scheme", "scope", "value"),
        Index("ix_person_identifier_person_id", "person_id"),
        enum_check("scheme", PersonIdScheme),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    person_id: Mapped[int] = mapped_column(
        ForeignKey("person.id", ondelete="CASCADE"), nullable=False
    )
    scheme: Mapped[str] = enum_column(PersonIdScheme)
    scope: Mapped[str] = mapped_column(String(16), nullable=False, server_default="")
    value: Mapped[str] = mapped_column(String(255), nullable=False)


class Enrolment(Base):
    """A person (pupil or teacher) at a school in a school period."""

    __tablename__ = "enrolment"
    __table_args__ = (
        UniqueConstraint("person_id", "school_id", "period_id"),
        Index("ix_enrolment_school_id_period_id", "school_id", "period_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    person_id: Mapped[int] = mapped_column(
        ForeignKey("person.id", ondelete="CASCADE"), nullable=False
    )
    school_id: Mapped[int] = mapped_column(
        ForeignKey("organisation.id", ondelete="CASCADE"), nullable=False
    )
    period_id: Mapped[int] = mapped_column(
        ForeignKey("school_period.id", ondelete="CASCADE"), nullable=False
    )
    location_id: Mapped[int | None] = mapped_column(ForeignKey("organisation.id"))


class GroupMembership(Base):
    __tablename__ = "group_membership"
    __table_args__ = (Index("ix_group_membership_group_id", "group_id"),)

    person_id: Mapped[int] = mapped_column(
        ForeignKey("person.id", ondelete="CASCADE"), primary_key=True
    )
    group_id: Mapped[int] = mapped_column(
        ForeignKey("teaching_group.id", ondelete="CASCADE"), primary_key=True
    )


class SubjectEnrolment(Base):
    """A pupil following a subject in a school period."""

    __tablename__ = "subject_enrolment"
    __table_args__ = (Index("ix_subject_enrolment_subject_id", "subject_id"),)

    person_id: Mapped[int] = mapped_column(
        ForeignKey("person.id", ondelete="CASCADE"), primary_key=True
    )
    subject_id: Mapped[int] = mapped_column(
        ForeignKey("school_subject.id", ondelete="CASCADE"), primary_key=True
    )
    period_id: Mapped[int] = mapped_column(
        ForeignKey("school_period.id", ondelete="CASCADE"), primary_key=True
    )


# --- delivery: specifications, entitlements, recipients, entitlees -----------------


class Delivery(Base):
    """A delivery specification (leveringsspecificatie) as a shop submitted it.
    `reference_id` is the shop's idempotency key: a retry returns this row."""

    __tablename__ = "delivery"
    __table_args__ = (
        UniqueConstraint("seller_id", "reference_id"),
        CheckConstraint("buyer_school_id IS NOT NULL OR buyer_person_id IS NOT NULL", name="buyer"),
        Index("ix_delivery_buyer_school_id", "buyer_school_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    seller_id: Mapped[int] = mapped_column(ForeignKey("supplier.id"), nullable=False)
    reference_id: Mapped[str] = mapped_column(String(128), nullable=False)
    request_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    buyer_school_id: Mapped[int | None] = mapped_column(ForeignKey("organisation.id"))
    buyer_person_id: Mapped[int | None] = mapped_column(
        ForeignKey("person.id", ondelete="SET NULL")
    )
    order_number: Mapped[str | None] = mapped_column(String(64))
    contract_id: Mapped[int | None] = mapped_column(ForeignKey("contract.id"))
    created_at: Mapped[datetime] = now_column()


class Entitlement(Base):
    """An Aanspraak: the right to start using one product within an activation
    period. Only the status may change after creation, and the quantity only down."""

    __tablename__ = "entitlement"
    __table_args__ = (
        enum_check("variant", Variant),
        enum_check("status", EntitlementStatus, exclude=[EntitlementStatus.ENDED]),
        enum_check(
            "status_before_block",
            EntitlementStatus,
            exclude=[EntitlementStatus.ENDED, EntitlementStatus.BLOCKED],
        ),
        CheckConstraint("quantity IS NULL OR quantity >= 1", name="quantity"),
        CheckConstraint("licences_used >= 0", name="licences_used"),
        CheckConstraint("quantity IS NULL OR licences_used <= quantity", name="within_quantity"),
        CheckConstraint("activation_until_date >= start_date", name="activation_period"),
        CheckConstraint(
            "min_expiration_date IS NOT NULL OR licence_duration_months IS NOT NULL",
            name="licence_term",
        ),
        CheckConstraint(
            "licence_duration_months IS NULL OR licence_duration_months >= 1",
            name="licence_duration",
        ),
        Index("ix_entitlement_school_id_status", "school_id", "status"),
        # A school's entitlements in id order: the pages of `entitlements(filter: {school})`.
        Index("ix_entitlement_school_id_id", "school_id", "id"),
        Index("ix_entitlement_product_id", "product_id"),
        Index("ix_entitlement_delivery_id", "delivery_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("delivery.id"), nullable=False)
    product_id: Mapped[int] = mapped_column(ForeignKey("product.id"), nullable=False)
    variant: Mapped[str] = enum_column(Variant)
    school_id: Mapped[int | None] = mapped_column(ForeignKey("organisation.id"))
    subject_id: Mapped[int | None] = mapped_column(ForeignKey("school_subject.id"))
    group_id: Mapped[int | None] = mapped_column(ForeignKey("teaching_group.id"))
    quantity: Mapped[int | None] = mapped_column(Integer)
    licences_used: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    start_date: Mapped[date] = mapped_column(Date, nullable=False)
    activation_until_date: Mapped[date] = mapped_column(Date, nullable=False)
    min_expiration_date: Mapped[date | None] = mapped_column(Date)
    licence_duration_months: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = enum_column(EntitlementStatus)
    status_before_block: Mapped[str | None] = enum_column(EntitlementStatus, nullable=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False, server_default="1")
    created_at: Mapped[datetime] = now_column()
    updated_at: Mapped[datetime] = now_column()


#: The recipient rows that still matter to a dashboard: failed, or not yet confirmed
#: by a recipient that has to confirm (licence office, portal).
UNANSWERED = "state IN ('PENDING', 'FAILED') AND role IN ('LICENSOR', 'PORTAL')"


class EntitlementRecipient(Base):
    """Where an entitlement was sent and what that recipient answered: confirmed,
    pending, or the failure code it reported."""

    __tablename__ = "entitlement_recipient"
    __table_args__ = (
        enum_check("role", RecipientRole),
        enum_check("state", RecipientState),
        Index("ix_entitlement_recipient_supplier_id_state", "supplier_id", "state"),
        # Dashboards look for failures and unanswered deliveries: a few percent of the
        # rows (a dashboard recipient only watches and never answers, so it is left out).
        Index(
            "ix_entitlement_recipient_unanswered",
            "state",
            "updated_at",
            postgresql_where=text(UNANSWERED),
            sqlite_where=text(UNANSWERED),
        ),
    )

    entitlement_id: Mapped[int] = mapped_column(
        ForeignKey("entitlement.id", ondelete="CASCADE"), primary_key=True
    )
    supplier_id: Mapped[int] = mapped_column(ForeignKey("supplier.id"), primary_key=True)
    role: Mapped[str] = enum_column(RecipientRole, primary_key=True)
    state: Mapped[str] = enum_column(RecipientState)
    failure_code: Mapped[int | None] = mapped_column(Integer)
    failure_message: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = now_column()


class Entitlee(Base):
    """A person named by an individual entitlement, or an activation code for one."""

    __tablename__ = "entitlee"
    __table_args__ = (
        UniqueConstraint("entitlement_id", "person_id"),
        UniqueConstraint("activation_code"),
        CheckConstraint("person_id IS NOT NULL OR activation_code IS NOT NULL", name="who"),
        enum_check("code_state", ActivationCodeState),
        Index("ix_entitlee_person_id", "person_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    entitlement_id: Mapped[int] = mapped_column(
        ForeignKey("entitlement.id", ondelete="CASCADE"), nullable=False
    )
    person_id: Mapped[int | None] = mapped_column(ForeignKey("person.id", ondelete="SET NULL"))
    activation_code: Mapped[str | None] = mapped_column(String(64))
    code_state: Mapped[str | None] = enum_column(ActivationCodeState, nullable=True)


class Licence(Base):
    """A Licentie: created when a pupil activates an entitlement. EXPIRED is
    derived from `expiration_date`; `person_id` is cleared on erasure."""

    __tablename__ = "licence"
    __table_args__ = (
        UniqueConstraint("entitlement_id", "person_id"),
        enum_check("status", LicenceStatus, exclude=[LicenceStatus.EXPIRED]),
        Index("ix_licence_person_id_product_id", "person_id", "product_id"),
        Index("ix_licence_school_id_product_id", "school_id", "product_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    entitlement_id: Mapped[int] = mapped_column(ForeignKey("entitlement.id"), nullable=False)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("person.id", ondelete="SET NULL"))
    product_id: Mapped[int] = mapped_column(ForeignKey("product.id"), nullable=False)
    school_id: Mapped[int | None] = mapped_column(ForeignKey("organisation.id"))
    status: Mapped[str] = enum_column(LicenceStatus)
    activated_at: Mapped[datetime] = now_column()
    expiration_date: Mapped[date] = mapped_column(Date, nullable=False)
    updated_at: Mapped[datetime] = now_column()


# --- the school in control ---------------------------------------------------------


class DataExchange(Base):
    """A school's activation of one data type towards one supplier in one role.
    Revocation sets `revoked_at`; a later activation is a new row, so the history
    is kept (db/visibility.consent_history)."""

    __tablename__ = "data_exchange"
    __table_args__ = (
        enum_check("role", Role),
        enum_check("data_type", DataType),
        Index("ix_data_exchange_school_id_supplier_id", "school_id", "supplier_id", "data_type"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    school_id: Mapped[int] = mapped_column(
        ForeignKey("organisation.id", ondelete="CASCADE"), nullable=False
    )
    supplier_id: Mapped[int] = mapped_column(ForeignKey("supplier.id"), nullable=False)
    role: Mapped[str] = enum_column(Role)
    data_type: Mapped[str] = enum_column(DataType)
    activated_at: Mapped[datetime] = now_column()
    activated_by: Mapped[str | None] = mapped_column(String(200))
    revoked_at: Mapped[datetime | None] = mapped_column(Timestamp)
    #: The events that place the activation and the revocation in the stream's
    #: order (db/visibility.py); None for rows from before they were written.
    activated_event_id: Mapped[int | None] = mapped_column(BigInteger)
    revoked_event_id: Mapped[int | None] = mapped_column(BigInteger)


class ProcessingAgreement(Base):
    """A verwerkersovereenkomst between a school and a supplier: the mandate that
    confidential data types need besides the activation."""

    __tablename__ = "processing_agreement"
    __table_args__ = (
        CheckConstraint("valid_until IS NULL OR valid_until >= valid_from", name="valid_period"),
        Index("ix_processing_agreement_school_id_supplier_id", "school_id", "supplier_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    school_id: Mapped[int] = mapped_column(
        ForeignKey("organisation.id", ondelete="CASCADE"), nullable=False
    )
    supplier_id: Mapped[int] = mapped_column(ForeignKey("supplier.id"), nullable=False)
    reference: Mapped[str | None] = mapped_column(String(128))
    valid_from: Mapped[date] = mapped_column(Date, nullable=False)
    valid_until: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = now_column()
    #: The event that places the registration in the stream's order.
    registered_event_id: Mapped[int | None] = mapped_column(BigInteger)


# --- outbox, audit, idempotency ------------------------------------------------------


class Event(Base):
    """The outbox: one row per state change, written in the change's transaction.

    On PostgreSQL `tx_id` holds the writing transaction's id; readers only pass a
    transaction once every older one has finished, so a transaction that commits
    late cannot be skipped. On SQLite writes are serialised and `id` alone orders
    them (tx_id stays 0)."""

    __tablename__ = "event"
    __table_args__ = (
        Index("ix_event_tx_id_id", "tx_id", "id"),
        Index("ix_event_school_id", "school_id"),
        Index("ix_event_entitlement_id", "entitlement_id"),
        Index("ix_event_delivery_id", "delivery_id"),
        # The catch-up read of pushed events (push/routes.py: GET /events?createdAfter=).
        Index("ix_event_occurred_at", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tx_id: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    kind: Mapped[str] = mapped_column(String(48), nullable=False)
    school_id: Mapped[int | None] = mapped_column(Integer)
    delivery_id: Mapped[int | None] = mapped_column(BigInteger)
    entitlement_id: Mapped[int | None] = mapped_column(BigInteger)
    licence_id: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str | None] = mapped_column(String(16))
    actor_supplier_id: Mapped[int | None] = mapped_column(Integer)
    actor_role: Mapped[str | None] = mapped_column(String(16))
    occurred_at: Mapped[datetime] = now_column()
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class AuditLog(Base):
    """Who read or changed what, when, in which role. Schools read their own trail."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_school_id_at", "school_id", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = now_column()
    supplier_id: Mapped[int | None] = mapped_column(Integer)
    role: Mapped[str | None] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(64), nullable=False)
    object_type: Mapped[str] = mapped_column(String(32), nullable=False)
    object_id: Mapped[str | None] = mapped_column(String(64))
    school_id: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class ProcessedMessage(Base):
    """Idempotency: a message's reference id is processed once; a repeat gets the
    stored answer again (DOMAIN.md §5, "messages can arrive twice")."""

    __tablename__ = "processed_message"

    supplier_id: Mapped[int] = mapped_column(ForeignKey("supplier.id"), primary_key=True)
    operation: Mapped[str] = mapped_column(String(48), primary_key=True)
    reference_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    response: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    created_at: Mapped[datetime] = now_column()


# --- dashboards: summaries kept by the database ------------------------------------------
#
# Kept by database triggers in the transaction of every change (migration 0004); the
# application never writes them. On PostgreSQL a change appends its difference to a
# delta table (appending makes nobody wait) and every few thousand differences are
# folded into the summaries; readers add the differences not folded yet.


class _EntitlementCounters:
    entitlements: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    open_entitlements: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    quantity: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    licences_used: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    licences_used_open: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")


class EntitlementSummary(_EntitlementCounters, Base):
    """Entitlements per school, product, shop, stored status and activation period,
    with their quantities and licence counters, for filtered dashboard figures.
    ENDED stays derivable because the activation period is part of the key."""

    __tablename__ = "entitlement_summary"
    __table_args__ = (
        Index("ix_entitlement_summary_product_id", "product_id"),
        Index("ix_entitlement_summary_seller_id", "seller_id"),
    )

    school_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seller_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(16), primary_key=True)
    start_date: Mapped[date] = mapped_column(Date, primary_key=True)
    activation_until_date: Mapped[date] = mapped_column(Date, primary_key=True)


class SchoolSummary(_EntitlementCounters, Base):
    """The same per school, stored status and activation end only: a board's status
    summary is a few rows per school."""

    __tablename__ = "school_summary"

    school_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(16), primary_key=True)
    activation_until_date: Mapped[date] = mapped_column(Date, primary_key=True)


class EntitlementDelta(_EntitlementCounters, Base):
    """A change of an entitlement, not yet folded into the two summaries above."""

    __tablename__ = "entitlement_delta"
    __table_args__ = (Index("ix_entitlement_delta_school_id", "school_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    school_id: Mapped[int] = mapped_column(Integer, nullable=False)
    product_id: Mapped[int] = mapped_column(Integer, nullable=False)
    delivery_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    start_date: Mapped[date] = mapped_column(Date, nullable=False)
    activation_until_date: Mapped[date] = mapped_column(Date, nullable=False)


class LicenceDaySummary(Base):
    """Licences activated per school, day (Europe/Amsterdam on PostgreSQL), product
    and shop, for filtered activation curves."""

    __tablename__ = "licence_day_summary"
    __table_args__ = (Index("ix_licence_day_summary_product_id", "product_id"),)

    school_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    product_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seller_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    activations: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    activations_open: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")


class SchoolDaySummary(Base):
    """Licences activated per school and day: a board's activation curve."""

    __tablename__ = "school_day_summary"

    school_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    activations: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    activations_open: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")


class LicenceDelta(Base):
    """An activation (or removed licence), not yet folded into the day summaries."""

    __tablename__ = "licence_delta"
    __table_args__ = (Index("ix_licence_delta_school_id_day", "school_id", "day"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    school_id: Mapped[int] = mapped_column(Integer, nullable=False)
    day: Mapped[date] = mapped_column(Date, nullable=False)
    product_id: Mapped[int] = mapped_column(Integer, nullable=False)
    entitlement_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    activations: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
