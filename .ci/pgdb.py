"""CI helper: check that PostgreSQL answers, create or drop a throwaway database.

usage: pgdb.py ping | create NAME | drop NAME   (server from KETENPOORT_TEST_POSTGRES_URL)
"""

import asyncio
import os
import sys

import asyncpg

URL = os.environ["KETENPOORT_TEST_POSTGRES_URL"].replace("postgresql+asyncpg", "postgresql")


async def main(action: str, name: str | None) -> None:
    conn = await asyncpg.connect(URL, timeout=10)
    try:
        if action == "ping":
            print("PostgreSQL", await conn.fetchval("SHOW server_version"), "at", URL)
        elif action == "create":
            await conn.execute(f'CREATE DATABASE "{name}"')
        elif action == "drop":
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


if __name__ == "__main__":
    try:
        asyncio.run(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None))
    except (OSError, asyncpg.PostgresError) as exc:
        sys.exit(f"PostgreSQL at {URL}: {exc}")
