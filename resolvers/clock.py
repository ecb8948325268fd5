"""The chain's calendar: dates are Dutch school dates, so "today" is today in
Europe/Amsterdam, not in UTC (an activation at 00:30 belongs to the new day)."""

from __future__ import annotations

from datetime import datetime

from domain.calendar import CHAIN_ZONE as AMSTERDAM
from domain.calendar import today


def now() -> datetime:
    return datetime.now(AMSTERDAM)


__all__ = ["AMSTERDAM", "now", "today"]
