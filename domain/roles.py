"""Who calls the gateway, and which kinds of data a school can switch on.

Roles are the scopes a supplier's token carries (DOMAIN.md §2). Data types are
the Edu-V "gegevenssoorten" a school activates per receiving supplier (§7); the
confidential ones also need a processing agreement (mandate).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
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


#: The longest role an event or audit row stores (`actor_role`, `audit_log.role`).
ROLE_NAME_LENGTH = 16


def role_name(roles: Iterable[Role]) -> str:
    """The role an audit row names for a caller acting in all its roles (a read, a
    subscription's deliveries, a registry change): "operator" for the operator,
    else the roles in order, as the row has room for."""
    roles = frozenset(roles)
    if Role.OPERATOR in roles:
        return Role.OPERATOR.value
    return ",".join(sorted(role.value for role in roles))[:ROLE_NAME_LENGTH]


@dataclass(frozen=True)
class Actor:
    """Who caused a change or a read, as event and audit rows name it: the supplier
    (None: the gateway itself) and the role it acted in. A caller's is
    `Principal.acting_as(role)` or `Principal.actor`."""

    supplier_id: int | None
    role: str | None


@dataclass(frozen=True)
class Principal:
    """The caller, as every layer sees it: an authenticated supplier with the roles
    its token grants and it is registered for. A school administrator's token names
    its school (`school`, any RIO id); `school_id` is that school's organisation id.
    The visibility rules call it a viewer (`domain.visibility.Viewer`); the consent
    rules in SQL (`db/access.py`) take it with the day they apply on."""

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

    def manages(self, school_id: int) -> bool:
        """May change and audit this school's consent: its own administrator (the
        school its token names), or the operator."""
        return self.is_operator or (Role.SCHOOL in self.roles and self.school_id == school_id)

    def owns(self, supplier_id: int | None) -> bool:
        """May see or change what belongs to this supplier (its deliveries, its push
        endpoints, its products): the supplier itself, or the operator."""
        return self.is_operator or supplier_id == self.supplier_id

    @property
    def key(self) -> tuple[int, frozenset[Role], int | None]:
        """What the visibility rules depend on (a cache key)."""
        return (self.supplier_id, self.roles, self.school_id)

    def acting_as(self, role: Role) -> Actor:
        """The caller as event and audit rows name it when it acts in `role`."""
        return Actor(self.supplier_id, role.value)

    @property
    def actor(self) -> Actor:
        """The caller acting in all its roles (`role_name`)."""
        return Actor(self.supplier_id, role_name(self.roles))
