"""One settings object for the whole gateway, read from the environment.

Every knob has a safe development default so that `make run` works on a fresh
machine; production refuses to start with a development secret (see `check`).
"""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET = "ketenpoort-development-secret-change-me-0123456789"
DEV_PUSH_KEY = "ketenpoort-development-push-key-change-me"


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class Settings(BaseSettings):
    """Gateway configuration. Environment variables are prefixed `KETENPOORT_`,
    except `DATABASE_URL`, which keeps its conventional name."""

    model_config = SettingsConfigDict(env_prefix="KETENPOORT_", extra="ignore")

    environment: Environment = Environment.DEVELOPMENT
    database_url: str = Field(
        default="sqlite+aiosqlite:///ketenpoort.db",
        validation_alias="DATABASE_URL",
        description="SQLAlchemy async URL: sqlite+aiosqlite:///file.db or "
        "postgresql+asyncpg://user@host:5432/db",
    )
    db_pool_size: int = 10
    db_echo: bool = False
    # Queries answered from one compiled SQL statement on PostgreSQL (compiler/); off:
    # every query runs on the resolvers. `compiled_reads_connections`: their statements
    # in flight at once per process; further requests wait their turn in the gateway,
    # first come, first served (a few per PostgreSQL core are enough: more backends
    # only compete for the same cores and lengthen the slowest answers).
    compiled_reads: bool = True
    compiled_reads_connections: int = Field(default=3, ge=1)

    # Tokens (SEM recommendation: iss, aud, exp, iat, jti, supplier, scopes).
    jwt_secret: str = DEV_SECRET
    jwt_algorithms: list[str] = ["HS256"]
    jwt_public_key_file: str | None = None
    jwt_jwks_url: str | None = None
    jwt_jwks_file: str | None = None
    jwt_issuer: str = "https://ketenpoort.local/dev-issuer"
    jwt_audience: str = "ketenpoort"
    jwt_leeway_seconds: int = 30
    # The longest a token may be valid: exp - iat above this is refused (24 h).
    token_max_lifetime_seconds: int = 24 * 3600

    # Per-client rate limit: sustained requests per second and burst, per supplier
    # and process (0 switches it off).
    rate_limit_per_second: float = 200.0
    rate_limit_burst: int = 400

    # Per-process caches (gateway/caches.py): how stale the supplier registry and
    # the read-audit log may be, in seconds.
    supplier_cache_seconds: float = 5.0
    audit_flush_seconds: float = 1.0

    # API surface.
    graphiql: bool = True
    introspection: bool = True
    max_page_size: int = 100
    default_page_size: int = 20
    max_query_depth: int = 10
    max_query_tokens: int = 2000
    max_aliases: int = 15
    max_body_bytes: int = 5 * 1024 * 1024
    max_query_cost: int = 50_000
    # Input values (gateway/inputs.py): the longest input string unless its argument
    # has a natural size of its own. Requests (gateway/limits.py): the longest a
    # query or mutation may execute before it is cut off (0: no deadline); whether
    # introspection needs a valid bearer token (where introspection is on at all).
    max_input_string_length: int = 4096
    request_timeout_seconds: float = 30.0
    introspection_needs_token: bool = True

    # Live subscriptions (live/broker.py): how often the broker reads the event
    # table without a wake-up (covers a missed NOTIFY or a lost LISTEN connection),
    # events buffered per subscriber before it is dropped as too slow, events read
    # per statement, how far back `after` may resume, the most entitlements an
    # `initialState` may send, and the websocket keep-alive interval.
    live_poll_seconds: float = 1.0
    live_queue_size: int = 1000
    live_batch_size: int = 500
    live_replay_days: int = 30
    live_initial_state_limit: int = 10_000
    ws_keep_alive_seconds: float = 15.0
    # Websockets (live/transport.py): how long a new connection may take to send
    # connection_init, and how many operations may run at once on one connection.
    ws_init_timeout_seconds: float = 10.0
    ws_max_operations: int = 100
    # What subscriptions hand over is written to the schools' audit trails in rows
    # per subscription and school, one per this many seconds (live/audit.py).
    live_audit_seconds: float = 60.0

    # Python's cyclic garbage collector (app.py `tune_gc`). Thousands of open
    # subscriptions are hundreds of thousands of long-lived objects; with Python's
    # default young-generation threshold (700) a burst of messages promotes so many
    # in-flight objects that a full collection (every other request waiting; the
    # pause is in bench/RESULTS.md) starts in the middle of the burst. 0 keeps
    # Python's defaults.
    gc_young_threshold: int = 50_000

    # Activation on PostgreSQL (services/group_commit.py): the clicks a process
    # receives within the window (milliseconds), or this many, are registered in one
    # transaction; batches in flight at once per process; login schools and products
    # cached per process (db/reference_cache.py, NOTIFY forgets them).
    activation_batch_window_ms: float = 2.0
    activation_batch_max: int = 64
    activation_batch_workers: int = 1
    reference_cache_size: int = 10_000

    # Push to supplier endpoints (push/): the key that encrypts endpoint secrets
    # (any long random string; production refuses the development key), whether
    # endpoints may be on loopback or private addresses (None: only outside
    # production), the HTTP timeout and the largest answer read, how long a
    # process's lease on an endpoint lasts, how often the stream is read without
    # a local commit, how many events wait in memory per endpoint, and how many
    # days the receivers' answers per event are kept (0: for ever).
    push_enabled: bool = True
    push_secret_key: str = DEV_PUSH_KEY
    push_allow_private_addresses: bool | None = None
    push_timeout_seconds: float = 10.0
    push_max_response_bytes: int = 1024 * 1024
    push_lease_seconds: float = 30.0
    push_poll_seconds: float = 0.2
    push_queue_limit: int = 5000
    push_answer_retention_days: int = 30

    # Demo / sandbox.
    sandbox_key: str = "ketenpoort-sandbox-key"

    # --- Operations (issue 17; README "Operating") ---------------------------------------
    # GraphiQL's scripts: a mirror with unpkg's layout, or a local folder in that layout
    # (`make graphiql-assets`) that the gateway serves itself (gateway/graphiql.py).
    graphiql_assets_url: str = "https://unpkg.com"
    graphiql_assets_dir: str | None = None
    # Shared state across processes and machines: the rate limit in Redis when set
    # (gateway/shared.py); per process without it.
    redis_url: str | None = None
    redis_key_prefix: str = "ketenpoort"
    # /metrics (gateway/metrics.py): needs this bearer token when set; served on a
    # port of its own (by `ketenpoort serve`'s supervisor) when metrics_port is set.
    # Production refuses an unprotected /metrics on the API port.
    metrics_token: str | None = None
    metrics_port: int | None = None
    # Logs (gateway/logging.py): "text" for development, "json" for one JSON object
    # per line; request lines at info.
    log_format: str = "text"
    log_level: str = "INFO"
    # Readiness (gateway/probes.py): the live broker counts as stalled when its last
    # completed read is older than this.
    ready_broker_stall_seconds: float = 30.0
    # Graceful shutdown: how long requests in flight may take after SIGTERM.
    shutdown_grace_seconds: float = 20.0

    def is_production(self) -> bool:
        return self.environment == Environment.PRODUCTION

    @property
    def push_private_allowed(self) -> bool:
        """May push endpoints (and their token servers) be on loopback or private
        addresses?"""
        if self.push_allow_private_addresses is None:
            return not self.is_production()
        return self.push_allow_private_addresses

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def check(self) -> None:
        """Refuse unsafe configurations: token settings in every environment, the
        rest in production."""
        self._check_tokens()
        if self.is_production():
            if self.graphiql or self.introspection:
                raise ValueError(
                    "GraphiQL and introspection must be switched off in production "
                    "(KETENPOORT_GRAPHIQL=false, KETENPOORT_INTROSPECTION=false)"
                )
            if self.push_secret_key == DEV_PUSH_KEY:
                raise ValueError("KETENPOORT_PUSH_SECRET_KEY must be set in production")
            if self.metrics_token is None and self.metrics_port is None:
                raise ValueError(
                    "/metrics must be protected in production: set KETENPOORT_METRICS_TOKEN "
                    "or serve it on KETENPOORT_METRICS_PORT"
                )
        if self.log_format not in {"text", "json"}:
            raise ValueError("KETENPOORT_LOG_FORMAT must be text or json")

    def _check_tokens(self) -> None:
        """Every listed algorithm must be one PyJWT knows (never "none"); with any
        HMAC algorithm the shared secret must be at least that hash's size (32, 48,
        64 bytes for HS256, HS384, HS512: RFC 7518 3.2), and production refuses the
        development secret whatever the HMAC algorithm."""
        from jwt.algorithms import HMACAlgorithm, get_default_algorithms

        known = get_default_algorithms()
        if not self.jwt_algorithms:
            raise ValueError("KETENPOORT_JWT_ALGORITHMS must name at least one algorithm")
        secret = self.jwt_secret.encode()
        for name in self.jwt_algorithms:
            algorithm = known.get(name)
            if algorithm is None or name == "none":
                raise ValueError(
                    f"KETENPOORT_JWT_ALGORITHMS: {name!r} is not a signing algorithm; "
                    f"use one of {', '.join(sorted(n for n in known if n != 'none'))}"
                )
            if not isinstance(algorithm, HMACAlgorithm):
                continue
            if self.is_production() and self.jwt_secret == DEV_SECRET:
                raise ValueError(
                    f"KETENPOORT_JWT_SECRET must be set in production ({name} is enabled "
                    "and the secret is the development one)"
                )
            size = algorithm.hash_alg().digest_size
            if len(secret) < size:
                raise ValueError(
                    f"KETENPOORT_JWT_SECRET is {len(secret)} bytes; {name} needs at least "
                    f"{size} (a random secret of the hash's size, RFC 7518 section 3.2)"
                )
        if self.token_max_lifetime_seconds <= 0:
            raise ValueError("KETENPOORT_TOKEN_MAX_LIFETIME_SECONDS must be positive")


@lru_cache
def get_settings() -> Settings:
    return Settings()
