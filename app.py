"""The ASGI application: GraphQL over HTTP and websockets at /graphql, GraphiQL,
and the probes /livez, /readyz, /healthz (gateway/probes.py). One app factory, one
settings object; the engine is opened and closed in the Starlette lifespan, one
database session per request. HTTP requests for /graphql are served ahead of
Starlette's middleware and router (gateway/front.py), with the same observation and
body limit.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette
from starlette.routing import Route
from strawberry.http.ides import get_graphql_ide_html

from db.engine import create_engine, create_sessionmaker
from db.pg import connect_arguments
from gateway import errors as gateway_errors
from gateway import graphiql as graphiql_page
from gateway import logging as request_logging
from gateway import metrics, shared, tracing
from gateway.caches import AuditBuffer
from gateway.front import Gateway
from gateway.http import GraphQLHTTP, open_compiled_reads
from gateway.limits import gateway_schema
from gateway.middleware import BodySizeLimit
from gateway.observe import RequestObserver
from gateway.probes import Probes
from gateway.resources import Activation
from gateway.shutdown import GracefulShutdown
from gateway.tokens import TokenError
from live.broker import Broker, engine_of
from live.transport import LiveEndpoint, WebSocketsAt
from push import routes as push_routes
from push import start_push
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
) -> Gateway:
    """Build the gateway. Pass `sessionmaker` to run on an engine you manage
    (tests); otherwise the lifespan opens one for `settings.database_url`."""
    settings = settings or get_settings()
    settings.check()
    request_logging.configure(settings.log_format, settings.log_level)
    tracing.configure_from_environment()
    holder: dict[str, Any] = {"sessionmaker": sessionmaker}

    def current_sessionmaker() -> AsyncSession:
        return holder["sessionmaker"]()  # type: ignore[no-any-return]

    graphiql_html = None
    if settings.graphiql:
        graphiql_html = graphiql_page.render(
            get_graphql_ide_html(graphql_ide="graphiql"), settings, FIRST_QUERY
        )
    # HTTP: our own GraphQL-over-HTTP handler (gateway/http.py).
    graphql = GraphQLHTTP(
        settings, current_sessionmaker, gateway_schema(settings), graphiql_html=graphiql_html
    )
    # Websockets: our own graphql-transport-ws and graphql-ws (live/transport.py).
    websockets = LiveEndpoint(
        settings,
        graphql.schema,
        current_sessionmaker,
        verifier=graphql.verifier,
        token_error=TokenError,
        errors=gateway_errors,
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
        # Queries compiled to one SQL statement each on PostgreSQL (compiler/, issue 14).
        graphql.compiled = await open_compiled_reads(
            settings, graphql.schema, engine or engine_of(sessions)
        )
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
            if graphql.compiled is not None:
                await graphql.compiled.close()
                graphql.compiled = None
            await broker.stop()
            await audit_buffer.stop()
            graphql.audit_buffer = websockets.audit_buffer = None
            if engine is not None:
                await engine.dispose()

    probes = Probes(settings, current_sessionmaker, lambda: graphql.broker)

    app = Gateway(
        routes=[
            Route("/graphql", graphql),
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
    app.graphql = graphql  # HTTP at /graphql, ahead of the middleware (gateway/front.py)
    app.state.graphql = graphql
    app.state.probes = probes
    app.state.settings = settings
    return app
