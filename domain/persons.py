"""The two kinds of person the chain licenses.

Pupils (onderwijsdeelnemers) and teachers (onderwijsmedewerkers) are licensed by
different rules: a pupil may use an open school, subject or group entitlement, a
teacher only ever an individual SCHOOL_TEACHER entitlement naming them (DOMAIN.md §6,
seed 003: "OnderwijsmedewerkerLicenties alleen individueel toegekend"). Teachers also
have no primary identifier (no ECK iD is guaranteed), which the identifier layer
handles; here only the kind matters.
"""

from __future__ import annotations

from enum import StrEnum


class PersonKind(StrEnum):
    """Stored as the person's kind; also the kind an entitlement variant is meant for."""

    PUPIL = "PUPIL"
    TEACHER = "TEACHER"
