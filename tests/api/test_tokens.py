"""Bearer tokens: HS256 for development, RS256 with a key file, a JWKS file or a
JWKS URL (served here by a real local HTTP server), and a clear error for every
way a token can be wrong."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from domain.roles import Role
from gateway.tokens import TokenError, TokenVerifier, mint_token
from settings import Environment, Settings

DEV = Settings(environment=Environment.TEST)


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": DEV.jwt_issuer, "aud": DEV.jwt_audience, "sub": "demo-shop",
        "scope": "seller", "iat": now, "exp": now + 6 * 3600, "jti": "t-1",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def hs256(**overrides: Any) -> str:
    return jwt.encode(claims(**overrides), DEV.jwt_secret, algorithm="HS256")


def test_minted_development_token_is_accepted() -> None:
    caller = TokenVerifier(DEV).verify(f"Bearer {mint_token(DEV, 'demo-shop', ['seller'])}")
    assert caller.supplier_code == "demo-shop"
    assert caller.roles == frozenset({Role.SELLER})


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (lambda: None, "missing bearer token"),
        (lambda: "Basic abc", "must be 'Bearer <jwt>'"),
        (lambda: f"Bearer {hs256(exp=int(time.time()) - 3600)}", "expired"),
        (lambda: f"Bearer {hs256(aud='someone-else')}", "wrong audience"),
        (lambda: f"Bearer {hs256(iss='https://evil.example')}", "wrong issuer"),
        (lambda: f"Bearer {hs256(jti=None)}", "required claim 'jti'"),
        (lambda: f"Bearer {hs256(scope='seller wizard')}", "unknown scope 'wizard'"),
        (lambda: f"Bearer {hs256(scope='')}", "no scope"),
        (lambda: f"Bearer {jwt.encode(claims(), 'another-secret-of-enough-length-1234', 'HS256')}",
         "invalid token"),
    ],
)
def test_bad_tokens_are_refused_with_a_clear_reason(header: Any, message: str) -> None:
    # Minted when the test runs, not at collection: a long suite must not see its
    # still-valid tokens expire first (they live 10 minutes).
    with pytest.raises(TokenError, match=message):
        TokenVerifier(DEV).verify(header())


def test_minting_is_refused_in_production() -> None:
    production = Settings(environment=Environment.PRODUCTION, jwt_secret="x" * 40,
                          graphiql=False, introspection=False)
    with pytest.raises(TokenError):
        mint_token(production, "demo-shop", ["seller"])


@pytest.fixture(scope="module")
def rsa_key() -> Any:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def rs256(key: Any, kid: str = "key-1", **overrides: Any) -> str:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    return jwt.encode(claims(**overrides), pem, algorithm="RS256", headers={"kid": kid})


def jwks(key: Any, kid: str = "key-1") -> dict[str, Any]:
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return {"keys": [{**public, "kid": kid, "use": "sig", "alg": "RS256"}]}


def test_rs256_with_a_public_key_file(rsa_key: Any, tmp_path: Path) -> None:
    pem = tmp_path / "public.pem"
    pem.write_bytes(rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    settings = Settings(environment=Environment.TEST, jwt_algorithms=["RS256"],
                        jwt_public_key_file=str(pem))
    assert TokenVerifier(settings).verify(f"Bearer {rs256(rsa_key)}").supplier_code == "demo-shop"
    # An HS256 token signed with the development secret is not accepted by it.
    with pytest.raises(TokenError):
        TokenVerifier(settings).verify(f"Bearer {hs256()}")


def test_rs256_with_a_jwks_file_picks_the_key_by_kid(rsa_key: Any, tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks(rsa_key)))
    settings = Settings(environment=Environment.TEST, jwt_algorithms=["RS256"],
                        jwt_jwks_file=str(path))
    assert TokenVerifier(settings).verify(f"Bearer {rs256(rsa_key)}").roles == {Role.SELLER}
    with pytest.raises(TokenError, match="no signing key with kid 'other'"):
        TokenVerifier(settings).verify(f"Bearer {rs256(rsa_key, kid='other')}")


@pytest.fixture
def jwks_server(rsa_key: Any) -> Iterator[str]:
    body = json.dumps(jwks(rsa_key)).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    server.shutdown()
    server.server_close()


def test_rs256_with_a_jwks_url(rsa_key: Any, jwks_server: str) -> None:
    settings = Settings(environment=Environment.TEST, jwt_algorithms=["RS256"],
                        jwt_jwks_url=jwks_server)
    caller = TokenVerifier(settings).verify(f"Bearer {rs256(rsa_key, scope='portal dashboard')}")
    assert caller.roles == {Role.PORTAL, Role.DASHBOARD}
