"""What suppliers receive over websockets, in the school's audit trail (issue 13.5).

HTTP reads of school data are audited per request; a subscription hands over events
one by one for hours. Its deliveries are counted per (subscription, supplier, role,
school) and written in batches: one audit row per school and subscription every
`live_audit_seconds` while events flow, and when the gateway stops, with the number
of items and the range of cursors they carried (action `live.deliver`, object the
subscription). The school reads them in `auditTrail` like any other row.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.events import Position
from db.models import AuditLog
from db.pagination import event_cursor
from domain.roles import role_name
from domain.visibility import Viewer

log = logging.getLogger("ketenpoort.live")

ACTION = "live.deliver"


@dataclass
class _Tally:
    field: str
    count: int
    first: Position
    last: Position


class DeliveryAudit:
    """Counts deliveries in memory and writes them every `interval` seconds."""

    def __init__(self, sessionmaker: Callable[[], AsyncSession], interval: float) -> None:
        self.sessionmaker = sessionmaker
        self.interval = interval
        self._tallies: dict[tuple[str, int, str, int], _Tally] = {}
        self._task: asyncio.Task[None] | None = None

    def subscriber(
        self, subscription: str, field: str, viewer: Viewer
    ) -> Callable[[int | None, Position], None]:
        """What one subscription calls for each item it sends: (school, position).
        Its tally of the last school is kept at hand (a fan-out calls this thousands
        of times per event: no allocation unless the school or the batch changes)."""
        supplier_id, role = viewer.supplier_id, role_name(viewer.roles)
        last: list[Any] = [None, None, None]  # school, its tally, the batch it is in

        def delivered(school_id: int | None, at: Position) -> None:
            if school_id is None:
                return
            tally = last[1]
            if last[0] != school_id or last[2] is not self._tallies:
                key = (subscription, supplier_id, role, school_id)
                tally = self._tallies.get(key)
                if tally is None:
                    tally = self._tallies[key] = _Tally(field, 0, at, at)
                last[:] = [school_id, tally, self._tallies]
            tally.count += 1
            if at > tally.last:
                tally.last = at
            elif at < tally.first:
                tally.first = at

        return delivered

    async def flush(self) -> None:
        tallies, self._tallies = self._tallies, {}
        if not tallies:
            return
        rows: list[dict[str, Any]] = [
            {
                "supplier_id": supplier_id,
                "role": role,
                "action": ACTION,
                "object_type": "subscription",
                "object_id": subscription,
                "school_id": school_id,
                "detail": {
                    "field": tally.field,
                    "count": tally.count,
                    "fromCursor": event_cursor(*tally.first),
                    "toCursor": event_cursor(*tally.last),
                },
            }
            for (subscription, supplier_id, role, school_id), tally in tallies.items()
        ]
        try:
            async with self.sessionmaker() as session, session.begin():
                await session.execute(insert(AuditLog), rows)
        except Exception:  # an audit write must never take the stream down with it
            log.exception("could not write %d live delivery audit rows", len(rows))

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.flush()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="live-delivery-audit")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()
