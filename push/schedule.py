"""The chain's retry rule for pushing events (SEM ecosystem specification v1.3,
Events API, "Retry policy"), as one pure function of what happened.

A receiver that is unavailable (connection refused or reset, a timeout, an HTTP
5xx, 429 or 408) gets the same batch again after 1 minute, then after 5 minutes,
then after 1 hour; after that, sending to it pauses for 24 hours, then resumes.
Nothing in between is skipped or collapsed: events that happen meanwhile wait
behind the batch that failed, in order.

Where the specification is silent, this is what the gateway does:

* each wait is counted from the attempt that failed, not from the first one;
* after the 24-hour pause the rule starts again from the beginning (one attempt,
  then 1 minute, 5 minutes, 1 hour, 24 hours), for as long as the endpoint stays
  registered and enabled: a receiver that comes back always gets everything;
* a 429 or 503 answer with a Retry-After longer than the scheduled wait is
  honoured (capped at the 24-hour pause);
* one successful batch resets the rule;
* a per-event refusal (status other than 0) is not unavailability: it is recorded
  and the stream moves on, so one bad event never holds the others back for ever.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

#: The waits after the 1st, 2nd and 3rd failed attempt in a row.
RETRY_WAITS: tuple[timedelta, ...] = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(hours=1),
)
#: The pause after the 4th failed attempt in a row.
PAUSE = timedelta(hours=24)
#: Attempts in one round: the first and the three retries.
ROUND = len(RETRY_WAITS) + 1


@dataclass(frozen=True)
class Next:
    """When to try again after a failed attempt."""

    failures: int
    at: datetime
    #: Set when this is the 24-hour pause (shown as "paused until").
    paused_until: datetime | None


def after_failure(
    failures_before: int, now: datetime, retry_after: timedelta | None = None
) -> Next:
    """The attempt at `now` failed; `failures_before` attempts in a row had failed
    before it. Returns the new count and when to try again."""
    failures = failures_before + 1
    step = (failures - 1) % ROUND  # 0, 1, 2: a retry wait; 3: the pause
    if step < len(RETRY_WAITS):
        wait = RETRY_WAITS[step]
        if retry_after is not None and retry_after > wait:
            wait = min(retry_after, PAUSE)
        return Next(failures, now + wait, None)
    return Next(failures, now + PAUSE, now + PAUSE)


def due(next_attempt_at: datetime | None, now: datetime) -> bool:
    """May the endpoint be tried at `now`?"""
    return next_attempt_at is None or now >= next_attempt_at
