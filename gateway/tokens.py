"""Bearer tokens (SEM recommendation): a signed JWT carrying `iss`, `aud`, `exp`,
`iat`, `jti`, the supplier (`sub`) and its scopes (`scope`, space separated).

HS256 with a shared secret is for development and tests; production verifies
RS256 against a public key file or a JWKS URL. Every failure is a `TokenError`
whose message says what is wrong, so an integrating engineer can fix it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from functools import cached_property

import jwt

from domain.roles import Role
from resolvers.context import TokenClaims
from settings import Settings


class TokenError(Exception):
    """The bearer token is missing, malformed, expired or not for this gateway."""


class TokenVerifier:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def _key(self) -> object:
        if self.settings.jwt_public_key_file:
            with open(self.settings.jwt_public_key_file, "rb") as handle:
                return handle.read()
        return self.settings.jwt_secret

    @cached_property
    def _jwks(self) -> jwt.PyJWKClient | None:
        if self.settings.jwt_jwks_url:
            return jwt.PyJWKClient(self.settings.jwt_jwks_url, cache_keys=True)
        return None

    @cached_property
    def _jwks_file(self) -> jwt.PyJWKSet | None:
        if self.settings.jwt_jwks_file:
            with open(self.settings.jwt_jwks_file) as handle:
                return jwt.PyJWKSet.from_json(handle.read())
        return None

    def _key_from_file(self, token: str) -> object:
        assert self._jwks_file is not None
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError as exc:
            raise TokenError(f"invalid token: {exc}") from exc
        for key in self._jwks_file.keys:
            if kid is None or key.key_id == kid:
                return key.key
        raise TokenError(f"no signing key with kid {kid!r} in the configured JWKS")

    def verify(self, authorization: str | None) -> TokenClaims:
        if not authorization:
            raise TokenError("missing bearer token: send 'Authorization: Bearer <jwt>'")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise TokenError("the Authorization header must be 'Bearer <jwt>'")
        key = self._key
        if self._jwks_file is not None:
            key = self._key_from_file(token.strip())
        elif self._jwks is not None:
            try:
                key = self._jwks.get_signing_key_from_jwt(token.strip()).key
            except jwt.PyJWTError as exc:
                raise TokenError(f"no signing key for this token: {exc}") from exc
        try:
            claims = jwt.decode(
                token.strip(),
                key=key,  # type: ignore[arg-type]
                algorithms=self.settings.jwt_algorithms,
                audience=self.settings.jwt_audience,
                issuer=self.settings.jwt_issuer,
                leeway=self.settings.jwt_leeway_seconds,
                options={
                    "require": ["exp", "iat", "iss", "aud", "sub", "jti"],
                    # A short HMAC secret is refused at start (Settings.check); this
                    # keeps a verifier built without that check from using one.
                    "enforce_minimum_key_length": True,
                },
            )
        except jwt.ExpiredSignatureError as exc:
            raise TokenError("the token has expired") from exc
        except jwt.InvalidAudienceError as exc:
            raise TokenError(
                f"wrong audience: this gateway accepts aud={self.settings.jwt_audience!r}"
            ) from exc
        except jwt.InvalidIssuerError as exc:
            raise TokenError(
                f"wrong issuer: this gateway accepts iss={self.settings.jwt_issuer!r}"
            ) from exc
        except jwt.MissingRequiredClaimError as exc:
            raise TokenError(f"the token lacks the required claim {exc.claim!r}") from exc
        except jwt.PyJWTError as exc:
            raise TokenError(f"invalid token: {exc}") from exc
        check_lifetime(claims, self.settings.token_max_lifetime_seconds)
        return caller_from_claims(claims)


def check_lifetime(claims: dict[str, object], ceiling: int) -> None:
    """A token may be valid for at most `ceiling` seconds: exp − iat. Both are
    required claims, and PyJWT refuses an `iat` in the future, so a token can never
    be valid for longer than the ceiling from now either."""
    lifetime = int(claims["exp"]) - int(claims["iat"])  # type: ignore[call-overload]
    if lifetime > ceiling:
        raise TokenError(
            f"the token is valid for {lifetime} s (exp - iat); this gateway accepts at "
            f"most {ceiling} s: ask for a shorter-lived token"
        )


#: The longest `school` claim: RIO identifiers are at most 64 characters here too.
MAX_SCHOOL_CLAIM = 64


def caller_from_claims(claims: dict[str, object]) -> TokenClaims:
    raw_scope = claims.get("scope", "")
    scopes = raw_scope.split() if isinstance(raw_scope, str) else list(raw_scope or [])  # type: ignore[call-overload]
    roles = set()
    for scope in scopes:
        try:
            roles.add(Role(scope))
        except ValueError as exc:
            raise TokenError(
                f"unknown scope {scope!r}; known scopes: {', '.join(r.value for r in Role)}"
            ) from exc
    if not roles:
        raise TokenError("the token grants no scope (roles)")
    school = claims.get("school")
    if school is not None and (not isinstance(school, str) or len(school) > MAX_SCHOOL_CLAIM):
        raise TokenError(
            f"the `school` claim must be one school identifier (a string of at most "
            f"{MAX_SCHOOL_CLAIM} characters)"
        )
    if Role.SCHOOL in roles and not school:
        raise TokenError("a token with the school scope must carry a `school` claim")
    return TokenClaims(
        supplier_code=str(claims["sub"]),
        roles=frozenset(roles),
        token_id=str(claims["jti"]),
        school=str(school) if school else None,
    )


def mint_token(
    settings: Settings,
    supplier_code: str,
    roles: list[Role] | list[str],
    *,
    school: str | None = None,
    lifetime: timedelta = timedelta(hours=12),
    now: datetime | None = None,
) -> str:
    """A development token signed with the shared secret (never in production), with
    the first HMAC algorithm the gateway accepts (HS256 by default)."""
    if settings.is_production():
        raise TokenError("development tokens cannot be minted in production")
    if lifetime.total_seconds() > settings.token_max_lifetime_seconds:
        raise TokenError(
            f"a token may live at most {settings.token_max_lifetime_seconds} s "
            "(KETENPOORT_TOKEN_MAX_LIFETIME_SECONDS)"
        )
    if Role.SCHOOL.value in {str(Role(r)) for r in roles} and not school:
        raise TokenError("a token with the school scope must name its school (--school)")
    algorithm = next((a for a in settings.jwt_algorithms if a.startswith("HS")), "HS256")
    issued = now or datetime.now(UTC)
    claims: dict[str, object] = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": supplier_code,
        "scope": " ".join(str(Role(r)) for r in roles),
        "iat": int(issued.timestamp()),
        "exp": int((issued + lifetime).timestamp()),
        "jti": str(uuid.uuid4()),
    }
    if school:
        claims["school"] = school
    return jwt.encode(claims, settings.jwt_secret, algorithm=algorithm)
