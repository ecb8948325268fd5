"""Push to suppliers' own event endpoints (issue 18): the chain's events protocol
(SEM ecosystem specification v1.3) and its retry rule. See push/deliverer.py."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession

from settings import Settings


async def start_push(settings: Settings, sessionmaker: Callable[[], AsyncSession]) -> object | None:
    """The process's deliverer, started (None when `push_enabled` is off)."""
    if not settings.push_enabled:
        return None
    from push.deliverer import PushService

    service = PushService(settings, sessionmaker)
    await service.start()
    return service
