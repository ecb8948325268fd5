"""Issue 12 items 5 and 6 on a real uvicorn with its access log on (as
`uvicorn app:create_app --factory` runs it): the GraphiQL link with a bearer token in
its query string, a GET query holding a BSN and an Authorization header never reach
the log; the path does."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import httpx

from tests.conftest import token_for
from tests.e2e.conftest import start_gateway, stop_gateway
from tests.waiting import until

PGN = "123456782"


def test_the_access_log_holds_paths_only(tmp_path: Path) -> None:
    database = f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}"
    log = (tmp_path / "stderr.log").open("wb")
    gateway = start_gateway(database, demo=False, log_level="info", output=log)
    base = gateway.url
    try:
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
        written = tmp_path / "stderr.log"
        until(lambda: written.read_text().count("GET /graphql") >= 4, "both requests logged",
              seen=written.read_text)
    finally:
        stop_gateway(gateway)
        log.close()
    text = (tmp_path / "stderr.log").read_text()
    assert token not in text
    assert token.split(".")[1] not in text
    assert "headers=" not in text
    assert PGN not in text
    assert "secretFieldNameQQ" not in text
    assert '"GET /graphql HTTP/1.1" 200' in text
