"""Issue 12 items 5 and 6 on a real uvicorn with its access log on (as
`uvicorn app:create_app --factory` runs it): the GraphiQL link with a bearer token in
its query string, a GET query holding a BSN and an Authorization header never reach
the log; the path does."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import httpx

from tests.conftest import token_for
from tests.e2e.conftest import CLI, ROOT, free_port

PGN = "123456782"


def test_the_access_log_holds_paths_only(tmp_path: Path) -> None:
    database = f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}"
    env = {**os.environ, "DATABASE_URL": database}
    subprocess.run([*CLI, "migrate"], env=env, cwd=ROOT, check=True, capture_output=True)
    port = free_port()
    log = (tmp_path / "stderr.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "app:create_app",
            "--factory",
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
            "--log-level",
            "info",
        ],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=log,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/livez", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, "the gateway stopped"
            assert time.monotonic() < deadline, "the gateway did not start"
            time.sleep(0.1)
        token = token_for("operator", "operator")
        headers = quote(f'{{"Authorization": "Bearer {token}"}}')
        page = httpx.get(f"{base}/graphql?headers={headers}", headers={"Accept": "text/html"})
        assert page.status_code == 200
        answer = httpx.get(
            f"{base}/graphql",
            params={
                "query": f'{{ organisation(identifier: {{value: "{PGN}"}}) {{ __typename }} }}'
            },
            headers={"Authorization": f"Bearer {token}"},
        )
        assert answer.status_code == 200
        invalid = httpx.post(
            f"{base}/graphql",
            json={"query": "{ secretFieldNameQQ }"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert invalid.json()["errors"]
        # Both requests logged (the access line and the request line), then stop.
        deadline = time.monotonic() + 30
        while (tmp_path / "stderr.log").read_text().count("GET /graphql") < 4:
            assert time.monotonic() < deadline, (tmp_path / "stderr.log").read_text()
            time.sleep(0.1)
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
    text = (tmp_path / "stderr.log").read_text()
    assert token not in text
    assert token.split(".")[1] not in text
    assert "headers=" not in text
    assert PGN not in text
    assert "secretFieldNameQQ" not in text
    assert '"GET /graphql HTTP/1.1" 200' in text
