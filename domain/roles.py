"""Who calls the gateway, and which kinds of data a school can switch on.

Roles are the scopes a supplier's token carries (DOMAIN.md §2). Data types are
the Edu-V "gegevenssoorten" a school activates per receiving supplier (§7); the
confidential ones also need a processing agreement (mandate).
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    SELLER = "seller"
    LICENSOR = "licensor"
    PORTAL = "portal"
    DASHBOARD = "dashboard"
    SIS = "sis"
    SCHOOL = "school"
    OPERATOR = "operator"


class DataType(StrEnum):
    SCHOOL_INFO = "SCHOOL_INFO"
    SCHOOL_ORGANISATION = "SCHOOL_ORGANISATION"
    FINE_DISTRIBUTION = "FINE_DISTRIBUTION"
    ENTITLEMENTS = "ENTITLEMENTS"
    ACTIVATIONS = "ACTIVATIONS"

    @property
    def confidential(self) -> bool:
        """Confidential data types need a valid mandate besides the activation."""
        return self is not DataType.SCHOOL_INFO
