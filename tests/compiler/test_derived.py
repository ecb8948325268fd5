"""The SQL twins of `db/derived.py` give the answers of the Python rules in
`domain/` for every branch, evaluated by the database itself."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import Date, Integer, String, bindparam, select

from db import derived
from domain.entitlements import EntitlementStatus, effective_status
from domain.licences import LicenceStatus, effective_licence_status, has_access

TODAY = date(2026, 11, 30)
DATES = [TODAY - timedelta(days=1), TODAY, TODAY + timedelta(days=1)]
STORED_LICENCE = [LicenceStatus.ACTIVATED, LicenceStatus.BLOCKED]
STORED_ENTITLEMENT = [s for s in EntitlementStatus if s is not EntitlementStatus.ENDED]


def _text(name: str) -> Any:
    return bindparam(name, type_=String())


def _date(name: str) -> Any:
    return bindparam(name, type_=Date())


async def _evaluate(session: Any, expression: Any, **values: Any) -> Any:
    return await session.scalar(select(expression), values)


@pytest.mark.parametrize("stored", STORED_ENTITLEMENT)
@pytest.mark.parametrize("until", DATES)
async def test_effective_status_in_sql_is_the_domain_rule(
    session: Any, stored: EntitlementStatus, until: date
) -> None:
    found = await _evaluate(
        session,
        derived.effective_status(_text("stored"), _date("until"), _date("today")),
        stored=stored.value,
        until=until,
        today=TODAY,
    )
    assert found == effective_status(stored, until, TODAY).value


@pytest.mark.parametrize("stored", STORED_LICENCE)
@pytest.mark.parametrize("expires", DATES)
@pytest.mark.parametrize("entitlement", [*STORED_ENTITLEMENT, None])
async def test_licence_status_and_access_in_sql_are_the_domain_rules(
    session: Any, stored: LicenceStatus, expires: date, entitlement: EntitlementStatus | None
) -> None:
    values = {
        "stored": stored.value,
        "expires": expires,
        "today": TODAY,
        "entitlement": entitlement.value if entitlement else None,
    }
    status = await _evaluate(
        session,
        derived.effective_licence_status(
            _text("stored"), _date("expires"), _date("today"), _text("entitlement")
        ),
        **values,
    )
    assert (
        status
        == effective_licence_status(stored, expires, TODAY, entitlement_status=entitlement).value
    )
    access = await _evaluate(
        session,
        derived.has_access(_text("stored"), _date("expires"), _date("today"), _text("entitlement")),
        **values,
    )
    # The resolver answers False when the entitlement is gone (`Licence.has_access`).
    expected = entitlement is not None and has_access(stored, expires, TODAY, entitlement)
    assert bool(access) is expected


@pytest.mark.parametrize(("quantity", "used"), [(None, 0), (10, 0), (10, 4), (10, 10)])
async def test_licences_available_in_sql(session: Any, quantity: int | None, used: int) -> None:
    found = await _evaluate(
        session,
        derived.licences_available(
            bindparam("quantity", type_=Integer()), bindparam("used", type_=Integer())
        ),
        quantity=quantity,
        used=used,
    )
    assert found == (None if quantity is None else quantity - used)
