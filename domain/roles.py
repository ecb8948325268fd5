"""Who calls the gateway, and which kinds of data a school can switch on.

Roles are the scopes a supplier's token carries (DOMAIN.md §2). Data types are
the Edu-V "gegevenssoorten" a school activates per receiving supplier (§7); the
confidential ones also need a processing agreement (mandate).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from domain.calendar import today


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


@dataclass(frozen=True)
class Scope:
    """Who is asking on which day, for the consent rules in SQL (`db/access.py`)."""

    supplier_id: int
    roles: frozenset[Role]
    school_id: int | None
    today: date


@dataclass(frozen=True)
class Principal:
    """The caller, as every layer sees it: an authenticated supplier with the roles
    its token grants and it is registered for. A school administrator's token names
    its school (`school`, any RIO id); `school_id` is that school's organisation id.
    The visibility rules call it a viewer (`domain.visibility.Viewer`)."""

    supplier_id: int
    roles: frozenset[Role]
    school_id: int | None = None
    supplier_code: str = ""
    school: str | None = None

    def has(self, *roles: Role) -> bool:
        return Role.OPERATOR in self.roles or any(role in self.roles for role in roles)

    @property
    def is_operator(self) -> bool:
        return Role.OPERATOR in self.roles

    @property
    def key(self) -> tuple[int, frozenset[Role], int | None]:
        """What the visibility rules depend on (a cache key)."""
        return (self.supplier_id, self.roles, self.school_id)

    @property
    def scope(self) -> Scope:
        """The caller today, for the consent rules in SQL."""
        return Scope(self.supplier_id, self.roles, self.school_id, today())
