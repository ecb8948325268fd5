"""The chain's calendar: dates are Dutch school dates, so "today" is today in
Europe/Amsterdam, not in UTC (an activation at 00:30 belongs to the new day)."""

from __future__ import annotations

from datetime import UTC, datetime

from domain.calendar import CHAIN_ZONE as AMSTERDAM
from domain.calendar import today


def now() -> datetime:
    return datetime.now(AMSTERDAM)


def utc_now() -> datetime:
    """The present moment in UTC, the one clock "N minutes ago" is measured from on
    the resolvers and compiled alike (`compiler.sql.Run`), so a test can pin both."""
    return datetime.now(UTC)


__all__ = ["AMSTERDAM", "now", "today", "utc_now"]
