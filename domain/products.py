"""Product types and the sale window of a product.

A product (EAN/ISBN or UUID ``productId``) is digital, physical, combi (print plus
digital) or a set of digital products. Only the digital part of the chain is in scope
(seed 004): a physical product is refused at delivery, and for combi and set the
entitlement is made at the level of the combi or set while the licence office
provisions every digital component.

A product is for sale from its ``saleStartDate`` through its ``saleEndDate``; both
ends are inclusive and either may be absent (no limit on that side).
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from domain.errors import StatusCode


class ProductType(StrEnum):
    DIGITAL = "DIGITAL"
    PHYSICAL = "PHYSICAL"
    COMBI = "COMBI"
    SET = "SET"

    @property
    def deliverable(self) -> bool:
        """Whether the gateway can make an entitlement for it (not purely physical)."""
        return self is not ProductType.PHYSICAL


def sale_status(
    today: date, sale_start_date: date | None, sale_end_date: date | None
) -> StatusCode:
    """OK while ``today`` lies in the sale window, else code 12 (not yet) or 13 (no longer)."""
    if sale_start_date is not None and today < sale_start_date:
        return StatusCode.PRODUCT_NOT_YET_FOR_SALE
    if sale_end_date is not None and today > sale_end_date:
        return StatusCode.PRODUCT_NO_LONGER_FOR_SALE
    return StatusCode.OK
