"""A realistic demo of the chain, loaded into an empty (migrated) database. One
module (about 480 lines): one reproducible data set, read top to bottom.

One board with schools in the hybrid RIO situation (a BRIN6 shared by a
provider and a location, a provider under two boards), a school year with
subjects and groups, about 1,000 pupils with sandbox ECK iDs (never real ones:
see `domain/sandbox.py`), teachers with secondary ids only, a supplier in every
role (and one in the combined shop+publisher role), products including a combi,
a set and a physical one, and entitlements and licences in every status.

Reproducible: the same seed gives the same data.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from stdnum import ean

from db.models import (
    DataExchange,
    Delivery,
    Enrolment,
    Entitlee,
    Entitlement,
    EntitlementRecipient,
    GroupMembership,
    Licence,
    Organisation,
    OrganisationIdentifier,
    OrganisationRelation,
    Person,
    PersonIdentifier,
    ProcessingAgreement,
    Product,
    ProductComponent,
    SchoolPeriod,
    SchoolSubject,
    SubjectEnrolment,
    Supplier,
    SupplierRole,
    SupplierSchool,
    TeachingGroup,
)
from domain.entitlements import EntitlementStatus, RecipientRole, RecipientState, Variant
from domain.identifiers import OrgIdScheme, OrgLevel, PersonIdScheme, Sector
from domain.licences import LicenceStatus
from domain.persons import PersonKind
from domain.products import ProductType
from domain.roles import DataType, Role
from domain.sandbox import sandbox_eck_id, test_pgns

SUPPLIERS: list[tuple[str, str, list[Role]]] = [
    ("demo-shop", "Demo Leermiddelenshop", [Role.SELLER]),
    ("demo-publisher", "Demo Uitgeverij (licentiekantoor)", [Role.LICENSOR]),
    ("demo-combined", "Demo Uitgeverij met eigen webshop", [Role.SELLER, Role.LICENSOR]),
    ("demo-portal", "Demo Leerportaal (Mijn leermiddelen)", [Role.PORTAL]),
    ("demo-lms", "Demo ELO", [Role.PORTAL]),
    ("demo-dashboard", "Demo Dashboard", [Role.DASHBOARD]),
    ("demo-sis", "Demo Leerlingadministratie", [Role.SIS]),
    ("demo-school-admin", "Schoolbeheerder (Stichting Voorbeeldonderwijs)", [Role.SCHOOL]),
    ("demo-college-admin", "Schoolbeheerder Het Voorbeeld College", [Role.SCHOOL]),
    ("operator", "ketenpoort operator", [Role.OPERATOR]),
]

#: The schools (OA_ID) each demo school account may name in its token's `school`.
SCHOOL_ACCOUNTS: dict[str, list[str]] = {
    "demo-school-admin": ["104A158", "104A159", "104A160"],
    "demo-college-admin": ["104A158"],
}


@dataclass(frozen=True)
class DemoSummary:
    organisations: int
    pupils: int
    teachers: int
    products: int
    entitlements: int
    licences: int


def ean13(seed: int) -> str:
    """A valid ISBN-13 (978 prefix) for demo products."""
    body = f"97890{seed:07d}"
    return body + ean.calc_check_digit(body)


async def is_loaded(session: AsyncSession) -> bool:
    return bool(await session.scalar(select(func.count()).select_from(Supplier)))


async def load_demo(
    session: AsyncSession, *, today: date, sandbox_key: bytes, pupils: int = 1000, seed: int = 7
) -> DemoSummary:
    rng = random.Random(seed)

    suppliers: dict[str, Supplier] = {}
    for code, name, roles in SUPPLIERS:
        supplier = Supplier(code=code, name=name)
        session.add(supplier)
        await session.flush()
        session.add_all(SupplierRole(supplier_id=supplier.id, role=r.value) for r in roles)
        suppliers[code] = supplier

    def org(level: OrgLevel, rio_id: str, name: str, **ids: str | list[str]) -> Organisation:
        row = Organisation(level=level.value, rio_id=rio_id, name=name)
        session.add(row)
        pending.append((row, ids))
        return row

    pending: list[tuple[Organisation, dict[str, str | list[str]]]] = []
    board = org(OrgLevel.BOARD, "100B001", "Stichting Voorbeeldonderwijs", BGE_CODE="41645")
    board2 = org(OrgLevel.BOARD, "100B002", "Vereniging Samen Leren", BGE_CODE="41646")
    college = org(
        OrgLevel.PROVIDER,
        "104A158",
        "Het Voorbeeld College",
        OIE_CODE="09QQ",
        BP_ID="100158",
        DD_ID="a3F0c2e1-DEMO-4b7a-9c1d-09QQ00000001",
        AS_ID="SOM-09QQ",
    )
    basisschool = org(
        OrgLevel.PROVIDER,
        "104A159",
        "Basisschool De Regenboog",
        OIE_CODE="10AB",
        VE_CODE="10AB00",
        BP_ID="100159",
    )
    lyceum = org(OrgLevel.PROVIDER, "104A160", "Samen Lyceum", OIE_CODE="11CD", VE_CODE="11CD00")
    # The hybrid situation: the college's BRIN6 09QQ00 is registered on two
    # locations, so a lookup by BRIN6 alone is ambiguous.
    main_location = org(
        OrgLevel.LOCATION, "112X995", "Voorbeeld College, Hoofdgebouw", VE_CODE="09QQ00"
    )
    annex = org(
        OrgLevel.LOCATION, "112X996", "Voorbeeld College, Dependance", VE_CODE=["09QQ00", "09QQ01"]
    )
    po_location = org(OrgLevel.LOCATION, "112X997", "De Regenboog", VE_CODE="10AB00")
    await session.flush()
    for row, ids in pending:
        for scheme, values in ids.items():
            for value in [values] if isinstance(values, str) else values:
                session.add(
                    OrganisationIdentifier(
                        organisation_id=row.id, scheme=OrgIdScheme(scheme).value, value=value
                    )
                )
    for parent, child in [
        (board, college),
        (board, basisschool),
        (board, lyceum),
        (board2, lyceum),
        (college, main_location),
        (college, annex),
        (basisschool, po_location),
    ]:
        session.add(OrganisationRelation(parent_id=parent.id, child_id=child.id))
    # The schools each school account speaks for (supplier_school): the board's
    # administrator for its three schools, the college's for the college only.
    by_rio = {"104A158": college, "104A159": basisschool, "104A160": lyceum}
    for code, schools_of in SCHOOL_ACCOUNTS.items():
        session.add_all(
            SupplierSchool(supplier_id=suppliers[code].id, organisation_id=by_rio[rio].id)
            for rio in schools_of
        )

    year_start = date(today.year if today.month >= 8 else today.year - 1, 8, 1)
    year_code = f"{year_start.year}-{year_start.year + 1}"
    year_end = date(year_start.year + 1, 7, 31)

    schools = [(college, Sector.VO, pupils * 8 // 10), (basisschool, Sector.PO, pupils // 5)]
    pgns = iter(test_pgns(pupils + 50, seed))
    key = sandbox_key
    subjects_by_school: dict[int, list[SchoolSubject]] = {}
    groups_by_school: dict[int, list[TeachingGroup]] = {}
    pupils_by_school: dict[int, list[int]] = {}
    person_count = 0
    teacher_count = 0
    for school, sector, pupil_count in schools:
        period = SchoolPeriod(
            school_id=school.id, code=year_code, start_date=year_start, end_date=year_end
        )
        session.add(period)
        await session.flush()
        subject_names = (
            [
                ("NE", "Nederlands"),
                ("EN", "Engels"),
                ("WI", "Wiskunde"),
                ("GS", "Geschiedenis"),
                ("AK", "Aardrijkskunde"),
            ]
            if sector == Sector.VO
            else [("TAAL", "Taal"), ("REK", "Rekenen"), ("WO", "Wereldoriëntatie")]
        )
        subjects = [SchoolSubject(school_id=school.id, code=c, name=n) for c, n in subject_names]
        session.add_all(subjects)
        group_codes = (
            [f"{year}{letter}" for year in range(1, 5) for letter in "ABCD"]
            if sector == Sector.VO
            else [f"groep{n}" for n in range(3, 9)]
        )
        groups = [
            TeachingGroup(school_id=school.id, period_id=period.id, code=c, name=f"Klas {c}")
            for c in group_codes
        ]
        session.add_all(groups)
        await session.flush()
        subjects_by_school[school.id] = subjects
        groups_by_school[school.id] = groups

        person_rows = [
            Person(kind=PersonKind.PUPIL.value, sector=sector.value) for _ in range(pupil_count)
        ]
        session.add_all(person_rows)
        await session.flush()
        pupils_by_school[school.id] = [p.id for p in person_rows]
        identifiers, enrolments, memberships, subject_rows = [], [], [], []
        for index, person in enumerate(person_rows):
            pgn = next(pgns)
            identifiers.append(
                {
                    "person_id": person.id,
                    "scheme": PersonIdScheme.ECK_ID.value,
                    "scope": "",
                    "value": sandbox_eck_id(pgn, sector, key),
                }
            )
            identifiers.append(
                {
                    "person_id": person.id,
                    "scheme": PersonIdScheme.ASI.value,
                    "scope": str(school.id),
                    "value": f"LL{100000 + index}",
                }
            )
            enrolments.append(
                {"person_id": person.id, "school_id": school.id, "period_id": period.id}
            )
            group = groups[index % len(groups)]
            memberships.append({"person_id": person.id, "group_id": group.id})
            for subject in subjects:
                if sector == Sector.PO or rng.random() < 0.8:
                    subject_rows.append(
                        {"person_id": person.id, "subject_id": subject.id, "period_id": period.id}
                    )
        await session.execute(insert(PersonIdentifier), identifiers)
        await session.execute(insert(Enrolment), enrolments)
        await session.execute(insert(GroupMembership), memberships)
        await session.execute(insert(SubjectEnrolment), subject_rows)
        person_count += pupil_count

        teachers = [Person(kind=PersonKind.TEACHER.value) for _ in range(10)]
        session.add_all(teachers)
        await session.flush()
        domain_name = "voorbeeldcollege.nl" if sector == Sector.VO else "deregenboog.nl"
        for index, teacher in enumerate(teachers):
            session.add(
                PersonIdentifier(
                    person_id=teacher.id,
                    scheme=PersonIdScheme.NEPRI.value,
                    scope="",
                    value=f"docent{index + 1}@{domain_name}",
                )
            )
            session.add(Enrolment(person_id=teacher.id, school_id=school.id, period_id=period.id))
        teacher_count += len(teachers)

    publisher = suppliers["demo-publisher"]
    combined = suppliers["demo-combined"]
    catalogue = [
        ("Getal & Ruimte vwo 1 (digitaal)", ProductType.DIGITAL, publisher),
        ("Nieuw Nederlands 1 havo/vwo", ProductType.DIGITAL, publisher),
        ("Stepping Stones 1 (digitaal)", ProductType.DIGITAL, publisher),
        ("Geschiedeniswerkplaats 1", ProductType.DIGITAL, publisher),
        ("De Geo 1 combi (boek + digitaal)", ProductType.COMBI, publisher),
        ("Rekenrijk groep 5 (set)", ProductType.SET, combined),
        ("Rekenrijk groep 5 oefenen", ProductType.DIGITAL, combined),
        ("Rekenrijk groep 5 toetsen", ProductType.DIGITAL, combined),
        ("Taal actief groep 5", ProductType.DIGITAL, combined),
        ("Atlas voor het voortgezet onderwijs (papier)", ProductType.PHYSICAL, publisher),
    ]
    products = [
        Product(
            code=ean13(i + 1),
            name=name,
            type=kind.value,
            publisher_id=owner.id,
            first_publication_date=year_start - timedelta(days=400),
            sale_start_date=year_start - timedelta(days=200),
        )
        for i, (name, kind, owner) in enumerate(catalogue)
    ]
    session.add_all(products)
    await session.flush()
    session.add_all(
        [
            ProductComponent(product_id=products[4].id, component_id=products[1].id),
            ProductComponent(product_id=products[5].id, component_id=products[6].id),
            ProductComponent(product_id=products[5].id, component_id=products[7].id),
            ProductComponent(product_id=products[5].id, component_id=products[8].id),
        ]
    )

    portal, lms, dashboard = (
        suppliers["demo-portal"],
        suppliers["demo-lms"],
        suppliers["demo-dashboard"],
    )
    for school, _sector, _count in schools:
        for receiver, role in [
            (portal, Role.PORTAL),
            (lms, Role.PORTAL),
            (dashboard, Role.DASHBOARD),
        ]:
            for data_type in (
                DataType.ENTITLEMENTS,
                DataType.ACTIVATIONS,
                DataType.SCHOOL_INFO,
                DataType.SCHOOL_ORGANISATION,
            ):
                session.add(
                    DataExchange(
                        school_id=school.id,
                        supplier_id=receiver.id,
                        role=role.value,
                        data_type=data_type.value,
                        activated_by="demo",
                    )
                )
            session.add(
                ProcessingAgreement(
                    school_id=school.id,
                    supplier_id=receiver.id,
                    reference=f"VWO-{school.rio_id}-{receiver.code}",
                    valid_from=year_start,
                )
            )
        session.add(
            ProcessingAgreement(
                school_id=school.id,
                supplier_id=publisher.id,
                reference=f"VWO-{school.rio_id}-publisher",
                valid_from=year_start,
            )
        )
        # The administration system processes pupil data for the school: its mandate.
        session.add(
            ProcessingAgreement(
                school_id=school.id,
                supplier_id=suppliers["demo-sis"].id,
                reference=f"VWO-{school.rio_id}-sis",
                valid_from=year_start,
            )
        )

    session.add(
        ProcessingAgreement(
            school_id=lyceum.id,
            supplier_id=suppliers["demo-sis"].id,
            reference=f"VWO-{lyceum.rio_id}-sis",
            valid_from=year_start,
        )
    )

    shop = suppliers["demo-shop"]
    entitlement_count = 0
    licence_count = 0
    until = year_end - timedelta(days=60)
    plans = [
        # (product index, school, variant, quantity, status, licences to activate)
        (0, college, Variant.SCHOOL, 300, EntitlementStatus.LINK_READY, 120),
        (1, college, Variant.SCHOOL_SUBJECT, 250, EntitlementStatus.LINK_READY, 40),
        (2, college, Variant.SCHOOL_GROUP, 40, EntitlementStatus.PROVISIONED, 0),
        (3, college, Variant.SCHOOL, 200, EntitlementStatus.ENTITLED, 0),
        (4, college, Variant.SCHOOL, 100, EntitlementStatus.CANCELLED, 10),
        (3, college, Variant.SCHOOL_PUPIL, None, EntitlementStatus.BLOCKED, 2),
        (5, basisschool, Variant.SCHOOL, 80, EntitlementStatus.LINK_READY, 30),
        (8, basisschool, Variant.SCHOOL_TEACHER, None, EntitlementStatus.LINK_READY, 0),
        (0, college, Variant.SCHOOL, 50, EntitlementStatus.LINK_READY, 5),  # ENDED below
    ]
    for number, (p_index, school, variant, quantity, status, licensed) in enumerate(plans, 1):
        product = products[p_index]
        seller = combined if product.publisher_id == combined.id else shop
        ended = number == len(plans)
        start = year_start - timedelta(days=400) if ended else year_start
        activation_until = year_start - timedelta(days=40) if ended else until
        delivery = Delivery(
            seller_id=seller.id,
            reference_id=f"demo-{number}",
            request_hash="demo",
            buyer_school_id=school.id,
            order_number=f"ORD-{2026000 + number}",
        )
        session.add(delivery)
        await session.flush()
        school_pupils = pupils_by_school[school.id]
        named = school_pupils[:3] if variant == Variant.SCHOOL_PUPIL else []
        entitlement = Entitlement(
            delivery_id=delivery.id,
            product_id=product.id,
            variant=variant.value,
            school_id=school.id,
            subject_id=subjects_by_school[school.id][0].id
            if variant == Variant.SCHOOL_SUBJECT
            else None,
            group_id=groups_by_school[school.id][0].id if variant == Variant.SCHOOL_GROUP else None,
            quantity=quantity,
            licences_used=licensed,
            start_date=start,
            activation_until_date=activation_until,
            min_expiration_date=year_end if not ended else year_start - timedelta(days=1),
            status=status.value,
            status_before_block=EntitlementStatus.LINK_READY.value
            if status == EntitlementStatus.BLOCKED
            else None,
        )
        session.add(entitlement)
        await session.flush()
        entitlement_count += 1
        for person_id in named:
            session.add(Entitlee(entitlement_id=entitlement.id, person_id=person_id))
        recipients: list[tuple[Supplier, RecipientRole]] = [
            (portal, RecipientRole.PORTAL),
            (dashboard, RecipientRole.DASHBOARD),
        ]
        if seller.id != product.publisher_id:
            recipients.insert(0, (publisher, RecipientRole.LICENSOR))
        for receiver, recipient_role in recipients:
            state = RecipientState.PENDING
            if status != EntitlementStatus.ENTITLED and recipient_role == RecipientRole.LICENSOR:
                state = RecipientState.CONFIRMED
            if (
                status
                in (
                    EntitlementStatus.LINK_READY,
                    EntitlementStatus.CANCELLED,
                    EntitlementStatus.BLOCKED,
                )
                and recipient_role == RecipientRole.PORTAL
            ):
                state = RecipientState.CONFIRMED
            failure = None
            if status == EntitlementStatus.PROVISIONED and recipient_role == RecipientRole.PORTAL:
                # The portal does not know the group yet (code 7): a delivery that is
                # stuck, as dashboards should show.
                state, failure = RecipientState.FAILED, 7
            session.add(
                EntitlementRecipient(
                    entitlement_id=entitlement.id,
                    supplier_id=receiver.id,
                    role=recipient_role.value,
                    state=state.value,
                    failure_code=failure,
                    failure_message="group 1A unknown in the portal" if failure else None,
                )
            )
        holders = named[:licensed] if named else school_pupils[:licensed]
        licence_rows = []
        for index, person_id in enumerate(holders):
            licence_status = LicenceStatus.ACTIVATED
            if status == EntitlementStatus.BLOCKED or (index == 0 and number == 1):
                licence_status = LicenceStatus.BLOCKED
            licence_rows.append(
                {
                    "entitlement_id": entitlement.id,
                    "person_id": person_id,
                    "product_id": product.id,
                    "school_id": school.id,
                    "status": licence_status.value,
                    "expiration_date": entitlement.min_expiration_date,
                }
            )
        if licence_rows:
            await session.execute(insert(Licence), licence_rows)
        licence_count += len(licence_rows)
    await session.flush()
    return DemoSummary(
        organisations=len(pending),
        pupils=person_count,
        teachers=teacher_count,
        products=len(products),
        entitlements=entitlement_count,
        licences=licence_count,
    )
