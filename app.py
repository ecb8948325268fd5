"""The ASGI application: GraphQL over HTTP and websockets at /graphql, GraphiQL,
and the probes /livez, /readyz, /healthz (gateway/probes.py). One app factory, one
settings object; the engine is opened and closed in the Starlette lifespan, one
database session per request.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.types.unset import UNSET

from db.engine import create_engine, create_sessionmaker
from db.pg import connect_arguments
from gateway import graphiql as graphiql_page
from gateway import logging as request_logging
from gateway import metrics, shared, tracing
from gateway.caches import AuditBuffer, SupplierCache
from gateway.limits import gateway_schema
from gateway.middleware import BodySizeLimit
from gateway.observe import RequestObserver
from gateway.probes import Probes
from gateway.resources import Activation
from gateway.shutdown import GracefulShutdown
from gateway.token_cache import CachedVerifier
from gateway.tokens import TokenError, TokenVerifier
from live.broker import Broker, engine_of
from live.transport import LiveEndpoint, WebSocketsAt
from push import routes as push_routes
from push import start_push
from resolvers.context import Context
from settings import Settings, get_settings

log = logging.getLogger("ketenpoort")

FIRST_QUERY = """# ketenpoort: one GraphQL schema for the Dutch educational content chain.
# Your bearer token is in the Headers tab below (make run printed it).
# Look a school up by any RIO identifier, e.g. its VE_CODE (BRIN6):
query FirstQuery {
  organisation(identifier: {value: "09QQ00"}) {
    __typename
    ... on Organisation { rioId name level identifiers { scheme value } locations { name } }
    ... on OrganisationAmbiguous { message candidates { level rioId name } }
    ... on OrganisationNotFound { message }
  }
  entitlements(first: 5) {
    nodes { id variant status quantity licencesUsed product { productId name } }
  }
}
"""


class GatewayGraphQL(GraphQL):  # type: ignore[type-arg]
    """Strawberry's ASGI view for HTTP with the gateway's context, token check and
    session lifetime (websockets: live/transport.py)."""

    def __init__(self, settings: Settings, sessionmaker: Callable[[], AsyncSession], **kw: Any):
        super().__init__(
            gateway_schema(settings),
            graphql_ide="graphiql" if settings.graphiql else None,
            keep_alive=True,
            keep_alive_interval=settings.ws_keep_alive_seconds,
            **kw,
        )
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.verifier = CachedVerifier(TokenVerifier(settings))  # gateway/token_cache.py
        self.limiter = shared.rate_limiter(settings)
        self.supplier_cache = SupplierCache(settings.supplier_cache_seconds)
        self.audit_buffer: AuditBuffer | None = None
        self.broker: Broker | None = None
        self.activation: Activation | None = None

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        context = Context(self.settings, self.sessionmaker, request, response)
        context.limiter = self.limiter
        context.supplier_cache = self.supplier_cache
        context.audit_buffer = self.audit_buffer
        if self.activation is not None:
            context.activations = self.activation.group_commit
            context.reference_cache = self.activation.cache
        if isinstance(request, Request):
            try:
                context.caller = self.verifier.verify(request.headers.get("authorization"))
            except TokenError as error:
                context.auth_error = str(error)
        request.state.gateway_context = context
        return context

    async def run(  # type: ignore[override]
        self, request: Request | WebSocket, context: Any = UNSET, root_value: Any = UNSET
    ) -> Any:
        try:
            return await super().run(request, context, root_value)
        finally:
            context = getattr(request.state, "gateway_context", None)
            if context is not None:
                await context.finish()

    async def render_graphql_ide(self, request: Request) -> Response:
        return HTMLResponse(graphiql_page.render(self.graphql_ide_html, self.settings, FIRST_QUERY))


_gc_tuned = False


def tune_gc(settings: Settings) -> None:
    """Once per process, when the app starts: raise the young-generation threshold
    (`Settings.gc_young_threshold`) and freeze what exists then (modules, the
    schema, the engine: never garbage), so that full collections neither scan it
    nor start in the middle of a fan-out."""
    global _gc_tuned
    if _gc_tuned or settings.gc_young_threshold <= 0:
        return
    _gc_tuned = True
    _, middle, old = gc.get_threshold()
    gc.set_threshold(settings.gc_young_threshold, middle, old)
    gc.collect()
    gc.freeze()


def create_app(
    settings: Settings | None = None,
    *,
    sessionmaker: Callable[[], AsyncSession] | None = None,
) -> Starlette:
    """Build the gateway. Pass `sessionmaker` to run on an engine you manage
    (tests); otherwise the lifespan opens one for `settings.database_url`."""
    settings = settings or get_settings()
    settings.check()
    request_logging.configure(settings.log_format, settings.log_level)
    tracing.configure_from_environment()
    holder: dict[str, Any] = {"sessionmaker": sessionmaker}

    def current_sessionmaker() -> AsyncSession:
        return holder["sessionmaker"]()  # type: ignore[no-any-return]

    graphql = GatewayGraphQL(settings, current_sessionmaker)
    # Websockets: our own graphql-transport-ws and graphql-ws (live/transport.py).
    websockets = LiveEndpoint(
        settings,
        graphql.schema,
        current_sessionmaker,
        verifier=graphql.verifier,
        token_error=TokenError,
        limiter=graphql.limiter,
        supplier_cache=graphql.supplier_cache,
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        engine = None
        if holder["sessionmaker"] is None:
            engine = create_engine(
                settings.database_url, pool_size=settings.db_pool_size, echo=settings.db_echo
            )
            holder["sessionmaker"] = create_sessionmaker(engine)
        app.state.sessionmaker = holder["sessionmaker"]
        audit_buffer = AuditBuffer(holder["sessionmaker"], settings.audit_flush_seconds)
        audit_buffer.start()
        graphql.audit_buffer = websockets.audit_buffer = audit_buffer
        # Live subscriptions: one broker per process (live/broker.py).
        sessions = holder["sessionmaker"]
        broker = Broker(settings, sessions, engine or engine_of(sessions))
        await broker.start()
        graphql.broker = websockets.broker = app.state.broker = broker
        activation = await Activation.open(settings, engine or engine_of(sessions))
        graphql.activation = websockets.activation = activation  # HTTP and websockets
        app.state.push = await start_push(settings, sessions)  # push/: suppliers' endpoints
        tune_gc(settings)
        # Supplier cache emptied at once on a registry change anywhere (gateway/shared.py).
        invalidation = None
        if broker.is_postgres:
            assert broker.engine is not None
            invalidation = shared.SupplierInvalidation(
                connect_arguments(broker.engine.url), graphql.supplier_cache
            )
            invalidation.start()
        app.state.supplier_invalidation = invalidation
        # Operations: gauges sampled once a second, live lag per event, SIGTERM drain.
        broker.on_fan_out = metrics.observe_fan_out
        sampler = metrics.Sampler(
            lambda: engine or engine_of(sessions), lambda: broker, lambda: graphql.audit_buffer
        )
        sampler.start()
        GracefulShutdown(probes, lambda: graphql.broker).install()
        try:
            yield
        finally:
            await sampler.stop()
            if invalidation is not None:
                await invalidation.stop()
            if hasattr(graphql.limiter, "close"):
                await graphql.limiter.close()
            if graphql.activation is not None:
                await graphql.activation.close()
                graphql.activation = websockets.activation = None
            if app.state.push is not None:
                await app.state.push.stop()
            await broker.stop()
            await audit_buffer.stop()
            graphql.audit_buffer = websockets.audit_buffer = None
            if engine is not None:
                await engine.dispose()

    probes = Probes(settings, current_sessionmaker, lambda: graphql.broker)

    app = Starlette(
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"]),
            *push_routes.routes(),
            *probes.routes(),
            *metrics.metrics_route(settings),
            *graphiql_page.assets_route(settings),
        ],
        lifespan=lifespan,
    )
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    # Websockets at /graphql, with the server's own send (live/transport.py).
    app.add_middleware(WebSocketsAt, endpoint=websockets, path="/graphql")
    app.add_middleware(RequestObserver)  # outermost: request id, log line, metrics, span
    app.state.graphql = graphql
    app.state.probes = probes
    app.state.settings = settings
    return app
