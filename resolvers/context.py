"""The per-request GraphQL context: who is calling, one database session, and the
DataLoaders that batch nested fields.

graphql-core resolves sibling fields concurrently, but one AsyncSession cannot
run two statements at once; every use of the session therefore goes through
`Database`, which serialises them with a lock. DataLoaders still collapse N
nested lookups into one statement, so the lock costs nothing on list pages.

graphql-core cancels the sibling root fields when a non-null one fails (a refused
role, say). A statement cancelled while it runs leaves the driver's connection
mid-protocol and SQLAlchemy invalidates it: the request's session is broken and the
pool reconnects. `Database.run` therefore lets a started statement finish (shielded,
still holding the lock, its outcome dropped); the cancelled resolver stops at once,
and `close` waits for the statement before the session goes back to the pool.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from domain.roles import Principal, Role
from settings import Settings

if TYPE_CHECKING:
    from resolvers.loaders import Loaders

T = TypeVar("T")


@dataclass(frozen=True)
class TokenClaims:
    """Who is calling, as the verified bearer token says (gateway/tokens.py): a
    supplier with the roles its token grants. A school administrator's token names
    the school (`school`, any RIO id of it). Not yet the caller: `resolvers.auth`
    resolves it against the registered suppliers into the `Principal` every layer
    uses."""

    supplier_code: str
    roles: frozenset[Role]
    token_id: str
    school: str | None = None

    def has(self, role: Role) -> bool:
        return role in self.roles or Role.OPERATOR in self.roles


class Database:
    """One lazily opened session per request, used by one statement at a time."""

    def __init__(self, sessionmaker: Callable[[], AsyncSession]) -> None:
        self._sessionmaker = sessionmaker
        self._session: AsyncSession | None = None
        self._lock = asyncio.Lock()

    def _get(self) -> AsyncSession:
        if self._session is None:
            self._session = self._sessionmaker()
        return self._session

    async def run(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """Run read work on the request's session. A caller cancelled before the
        work holds the session gives it up; once the work runs, it runs to its end
        (see the module docstring)."""
        started = False

        async def locked() -> T:
            nonlocal started
            async with self._lock:
                started = True
                return await work(self._get())

        task = asyncio.ensure_future(locked())
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if not started:
                task.cancel()
            task.add_done_callback(_dropped)
            raise

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One mutation, one transaction: committed when the block ends, rolled
        back as a whole when it raises."""
        async with self._lock:
            session = self._get()
            if session.in_transaction():
                # Reads earlier in the request autobegan a transaction; end it so
                # the mutation starts on a fresh snapshot.
                await session.commit()
            async with session.begin():
                yield session

    async def close(self) -> None:
        if self._session is None and not self._lock.locked():
            return  # nothing opened, nothing running (most compiled reads, every click)
        # After any statement a cancelled resolver left running (`run`).
        async with self._lock:
            if self._session is not None:
                await self._session.close()
                self._session = None


def _dropped(task: asyncio.Future[Any]) -> None:
    """The outcome of work whose caller was cancelled: nobody reads it (retrieved
    so that asyncio does not log it as never retrieved)."""
    if not task.cancelled():
        task.exception()


@dataclass
class Context:
    """What every resolver gets as `info.context`."""

    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession] | Callable[[], AsyncSession]
    request: Request | WebSocket | None = None
    response: Response | WebSocket | None = None
    caller: TokenClaims | None = None
    auth_error: str | None = None
    limiter: Any = None
    supplier_cache: Any = None
    audit_buffer: Any = None
    #: PostgreSQL only: the process's group commit for activations
    #: (services/group_commit.py) and its cache of login schools and products
    #: (db/reference_cache.py); None elsewhere and in tests on a session.
    activations: Any = None
    reference_cache: Any = None
    reads: set[tuple[int | None, str, str, str | None]] = field(default_factory=set)
    db: Database = field(init=False)
    _loaders: Loaders | None = field(default=None, init=False)
    #: The authenticated caller, once `resolvers.auth.principal` resolved it.
    principal: Principal | None = field(default=None, init=False)
    #: The rate limiter's answer for this request, once asked (the compiled front and
    #: then the resolvers may both ask: one request takes one token).
    rate_wait: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.db = Database(self.sessionmaker)

    @property
    def loaders(self) -> Loaders:
        """The request's DataLoaders (made when first asked for)."""
        if self._loaders is None:
            from resolvers.loaders import Loaders

            self._loaders = Loaders(self.db, lambda: self.principal)
        return self._loaders

    def record_read(
        self, school_id: int | None, action: str, object_type: str, object_id: Any = None
    ) -> None:
        """Remember that the caller read a school's data; written to the audit log
        when the request ends (`finish`), one row per school and object."""
        self.reads.add(
            (school_id, action, object_type, None if object_id is None else str(object_id))
        )

    async def finish(self) -> None:
        """End of request: write the read audit rows (own short transaction, so a
        read-only request stays read-only until its answer is complete), close."""
        await self.db.close()
        if self.reads and self.principal is not None:
            from db.privacy import record_reads

            reads = sorted(self.reads, key=lambda r: (r[0] or 0, r[1], r[2], r[3] or ""))
            self.reads.clear()
            who = self.principal.actor
            if self.audit_buffer is not None:
                self.audit_buffer.add(who, reads)  # written in the next batch
                return
            async with self.db.transaction() as session:
                await record_reads(session, who, reads)
            await self.db.close()

    def fresh_loaders(self) -> None:
        """Forget cached rows (after a mutation changed them)."""
        self._loaders = None
