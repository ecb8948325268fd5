"""Run the Alembic migrations from code (the CLI and the test suite use this)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

ROOT = Path(__file__).resolve().parent.parent


def alembic_config(url: str | None = None, connection: Connection | None = None) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.attributes["configure_logger"] = False
    if url:
        config.attributes["url"] = url
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Upgrade the database at `url` (runs its own event loop)."""
    command.upgrade(alembic_config(url), revision)


def upgrade_connection(connection: Connection, revision: str = "head") -> None:
    """Upgrade through an open sync connection (inside `AsyncConnection.run_sync`)."""
    command.upgrade(alembic_config(connection=connection), revision)


def check(url: str) -> None:
    """Fail when the models and the migrations differ (`alembic check`)."""
    command.check(alembic_config(url))
