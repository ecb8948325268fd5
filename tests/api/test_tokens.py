"""Bearer tokens: HS256 for development, RS256 with a key file, a JWKS file or a
JWKS URL (served here by a real local HTTP server), and a clear error for every
way a token can be wrong."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
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


# --- issue 12.7: HMAC secrets for every algorithm ------------------------------------------

PRODUCTION = {
    "environment": Environment.PRODUCTION, "graphiql": False, "introspection": False,
    "metrics_token": "m" * 32,
}
SIZES = {"HS256": 32, "HS384": 48, "HS512": 64}


@pytest.mark.parametrize(
    "algorithms", [["HS256"], ["HS384"], ["HS512"], ["RS256", "HS384"], ["HS512", "HS256"]]
)
def test_production_refuses_the_development_secret_with_every_hmac_algorithm(
    algorithms: list[str],
) -> None:
    with pytest.raises(ValueError, match="KETENPOORT_JWT_SECRET"):
        Settings(**PRODUCTION, jwt_algorithms=algorithms).check()


@pytest.mark.parametrize("algorithm", sorted(SIZES))
def test_a_secret_shorter_than_the_hash_is_refused_in_every_environment(algorithm: str) -> None:
    size = SIZES[algorithm]
    for environment in Environment:
        settings = {**PRODUCTION, "environment": environment, "push_secret_key": "k" * 40}
        with pytest.raises(ValueError, match=f"{size - 1} bytes; {algorithm} needs at least"):
            Settings(**settings, jwt_algorithms=[algorithm], jwt_secret="s" * (size - 1)).check()
        Settings(**settings, jwt_algorithms=[algorithm], jwt_secret="s" * size).check()
    # In a mix the largest hash decides.
    with pytest.raises(ValueError, match="HS512 needs at least 64"):
        Settings(jwt_algorithms=["HS256", "HS512"], jwt_secret="s" * 63).check()


def test_a_secret_is_measured_in_bytes() -> None:
    with pytest.raises(ValueError, match="31 bytes"):
        Settings(jwt_secret="é" * 15 + "s").check()  # 16 characters, 31 bytes
    Settings(jwt_secret="é" * 16).check()


def test_production_with_only_rs256_needs_no_secret() -> None:
    Settings(**PRODUCTION, push_secret_key="k" * 40, jwt_algorithms=["RS256"]).check()


@pytest.mark.parametrize("name", ["none", "HS1024", "", "hs256"])
def test_an_unknown_algorithm_is_refused_at_start(name: str) -> None:
    with pytest.raises(ValueError, match="not a signing algorithm"):
        Settings(jwt_algorithms=["HS256", name]).check()
    with pytest.raises(ValueError, match="at least one algorithm"):
        Settings(jwt_algorithms=[]).check()


@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
def test_a_token_signed_with_a_short_secret_is_refused_by_the_verifier(algorithm: str) -> None:
    """Even a verifier built without `Settings.check` (a tool, a test) will not use a
    secret shorter than the hash: PyJWT's minimum key length is enforced."""
    secret = "s" * (SIZES[algorithm] - 1)
    settings = Settings(environment=Environment.TEST, jwt_algorithms=[algorithm], jwt_secret=secret)
    with pytest.warns(jwt.InsecureKeyLengthWarning):  # the forger does not mind
        forged = jwt.encode(claims(sub="operator", scope="operator"), secret, algorithm=algorithm)
    with pytest.raises(TokenError, match="HMAC key"):
        TokenVerifier(settings).verify(f"Bearer {forged}")


def test_development_tokens_use_the_configured_hmac_algorithm() -> None:
    settings = Settings(environment=Environment.TEST, jwt_algorithms=["HS512"],
                        jwt_secret="s" * 64)
    token = mint_token(settings, "demo-shop", ["seller"])
    assert jwt.get_unverified_header(token)["alg"] == "HS512"
    assert TokenVerifier(settings).verify(f"Bearer {token}").supplier_code == "demo-shop"


# --- issue 12.9: the lifetime ceiling ------------------------------------------------------

DAY = 24 * 3600


def test_the_default_ceiling_is_24_hours() -> None:
    assert DEV.token_max_lifetime_seconds == DAY
    now = int(time.time())
    TokenVerifier(DEV).verify(f"Bearer {hs256(iat=now, exp=now + DAY)}")
    with pytest.raises(TokenError, match=f"valid for {DAY + 1} s .* at most {DAY} s"):
        TokenVerifier(DEV).verify(f"Bearer {hs256(iat=now, exp=now + DAY + 1)}")


@pytest.mark.parametrize("years", [1, 100, 10**6])
def test_long_lived_tokens_are_refused(years: int) -> None:
    now = int(time.time())
    with pytest.raises(TokenError, match="exp - iat"):
        TokenVerifier(DEV).verify(f"Bearer {hs256(iat=now, exp=now + years * 366 * DAY)}")


def test_an_old_iat_does_not_stretch_the_lifetime() -> None:
    """exp − iat counts, not exp − now: a token issued 23 h ago for 25 h is refused even
    though only 2 h are left, and a token cannot claim a later iat (PyJWT refuses an
    iat in the future)."""
    now = int(time.time())
    with pytest.raises(TokenError, match="exp - iat"):
        TokenVerifier(DEV).verify(f"Bearer {hs256(iat=now - 23 * 3600, exp=now + 2 * 3600)}")
    with pytest.raises(TokenError, match="not yet valid"):
        TokenVerifier(DEV).verify(f"Bearer {hs256(iat=now + 3600, exp=now + 2 * 3600)}")


def test_the_ceiling_is_a_setting() -> None:
    settings = Settings(environment=Environment.TEST, token_max_lifetime_seconds=600)
    now = int(time.time())
    TokenVerifier(settings).verify(f"Bearer {hs256(iat=now, exp=now + 600)}")
    with pytest.raises(TokenError, match="at most 600 s"):
        TokenVerifier(settings).verify(f"Bearer {hs256(iat=now, exp=now + 601)}")
    with pytest.raises(ValueError, match="must be positive"):
        Settings(token_max_lifetime_seconds=0).check()


def test_minting_beyond_the_ceiling_is_refused() -> None:
    with pytest.raises(TokenError, match="at most 86400 s"):
        mint_token(DEV, "demo-shop", ["seller"], lifetime=timedelta(hours=25))


# --- issue 12.10: the school claim ---------------------------------------------------------


@pytest.mark.parametrize(
    ("school", "message"),
    [
        (None, "must carry a `school` claim"),
        ("", "must carry a `school` claim"),
        (104, "one school identifier"),
        (["104A158", "104A159"], "one school identifier"),
        ("1" * 65, "at most 64 characters"),
    ],
)
def test_a_school_token_must_name_one_school(school: Any, message: str) -> None:
    token = hs256(sub="demo-school-admin", scope="school", school=school)
    with pytest.raises(TokenError, match=message):
        TokenVerifier(DEV).verify(f"Bearer {token}")


def test_a_school_token_without_school_cannot_be_minted() -> None:
    with pytest.raises(TokenError, match="must name its school"):
        mint_token(DEV, "demo-school-admin", ["school"])
    token = mint_token(DEV, "demo-school-admin", ["school"], school="104A158")
    assert TokenVerifier(DEV).verify(f"Bearer {token}").school == "104A158"
