"""The read-audit buffer writes every request's rows in one write (not one per
request: that cost the worker more CPU than a compiled page itself): PostgreSQL's
COPY, elsewhere one insert per actor."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, func, select

from db.engine import create_sessionmaker
from db.models import AuditLog
from domain.roles import Actor
from gateway.caches import AuditBuffer


async def test_a_flush_writes_every_row_in_one_write(backend: Any) -> None:
    engine = backend.engine
    marker = "read.audit-buffer-test"
    shop, dashboard = Actor(None, "seller"), Actor(None, "dashboard")
    buffer = AuditBuffer(create_sessionmaker(engine), interval=3600)
    for n in range(200):
        actor = shop if n % 2 else dashboard
        buffer.add(actor, [(None, marker, "entitlement", str(n)), (None, marker, "licence", None)])
    inserts: list[str] = []

    def count(_c: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO AUDIT_LOG"):
            inserts.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        await buffer.flush()
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)
    sessions = create_sessionmaker(engine)
    async with sessions() as session, session.begin():
        written = await session.execute(
            select(AuditLog.role, func.count())
            .where(AuditLog.action == marker)
            .group_by(AuditLog.role)
        )
        by_role = dict(written.all())
        await session.execute(AuditLog.__table__.delete().where(AuditLog.action == marker))
    assert by_role == {"seller": 200, "dashboard": 200}
    if engine.dialect.name == "postgresql":
        assert inserts == []  # one COPY through asyncpg
    else:  # SQLAlchemy may split a large insert into batches; never one per request
        assert 1 <= len(inserts) <= 4, len(inserts)
