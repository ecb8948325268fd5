"""The chain's calendar: dates are Dutch school dates, so a day is a day in
Europe/Amsterdam, not in UTC (an activation at 00:30 belongs to the new day)."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

CHAIN_ZONE = ZoneInfo("Europe/Amsterdam")


def chain_day(moment: datetime) -> date:
    """The chain's calendar day of a timezone-aware moment."""
    return moment.astimezone(CHAIN_ZONE).date()


def today() -> date:
    """Today in the chain's calendar."""
    return datetime.now(CHAIN_ZONE).date()
