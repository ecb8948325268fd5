"""GraphQL over HTTP at /graphql: the gateway's own handler (websockets: live/transport.py).

It follows the GraphQL-over-HTTP specification:

* GET (`?query=…&variables=…&operationName=…`) runs queries only: a mutation is
  405 with `Allow: POST`. Without `query`, a browser (Accept text/html) gets
  GraphiQL when it is on.
* POST takes one JSON object (`query`, `variables`, `operationName`,
  `extensions`); a body that is not JSON, is nested deeper than the parser
  takes, or is not such an object is 400 with a JSON error, whatever the media type
  asked for. Other media types are 415.
* `Accept: application/graphql-response+json` gets that media type: a request
  that never runs (it does not parse or validate, its variables do not coerce, no
  or an unknown operation is chosen, a BSN is refused at the door) is 4xx with
  `errors` and no `data` key. `application/json` (and no Accept) answers as
  before: 200 with `data: null` and the errors.
* A document with several operations needs `operationName` (also over websockets:
  `HttpRules`, a schema extension); a name the document does not hold is an error
  naming it, redacted of any BSN.
* Every authentication failure is 401 with `WWW-Authenticate: Bearer` (a token the
  verifier refuses at once, before anything runs; no token where a field needs one,
  when the field asks); the rate limit is 429 with `Retry-After`.

A request whose document (parsed, validated and checked once per text and
operation name) and variables pass every rule runs through the handler's pipeline
(gateway/pipeline.py): per request only the variables' checks, the deadline,
graphql-core's `execute` (or the compiled statement), refusal logging, masking
and the observer's note. Every other request (each refusal before execution)
runs through strawberry's `Schema.execute`, so every extension of the schema
applies as on websockets: the parser and validation caches, the limits
(gateway/limits.py), the BSN guard (resolvers/privacy.py), the request
observer's notes (gateway/observe.py) and error masking. On PostgreSQL with
`Settings.compiled_reads`, a query is answered from one compiled statement
(compiler/, `CompiledReads`: on the pipeline directly, on `Schema.execute` a
schema extension that fills the result before graphql-core would execute);
PostgreSQL's JSON text is spliced into the answer without being decoded
(`RawJSON`). The answer carries `x-ketenpoort-compiled: 1`.

Over 400 lines: the GraphQL-over-HTTP rules (methods, media types, status codes,
refusals) and the compiled front they decide for, in one place.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qsl

from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import GraphQLError, OperationDefinitionNode
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from strawberry.exceptions import MissingQueryError
from strawberry.extensions import SchemaExtension
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types.graphql import OperationType

from compiler import Fallback
from domain.privacy import contains_pgn
from gateway import errors as error_log
from gateway import metrics, shared
from gateway.caches import SupplierCache
from gateway.middleware import declared_too_large, refuse_too_large
from gateway.pipeline import NOT_READY, Pipeline, RawJSON
from gateway.token_cache import CachedVerifier
from gateway.tokens import TokenError, TokenVerifier
from resolvers.auth import principal
from resolvers.clock import today
from resolvers.context import Context
from resolvers.privacy import pgn_refusal
from schema.errors import GatewayError
from settings import Settings

log = logging.getLogger("ketenpoort.http")

JSON = "application/json"
GRAPHQL_RESPONSE = "application/graphql-response+json"
AMBIGUOUS = "Must provide operation name if query contains multiple operations."
MASKED = "Unexpected error"
QUERY_ONLY = frozenset({OperationType.QUERY})
QUERY_OR_MUTATION = frozenset({OperationType.QUERY, OperationType.MUTATION})
COMPILED = metrics.COMPILED_READS.labels("compiled")
FALLBACK = metrics.COMPILED_READS.labels("fallback")


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class _Refusal(Exception):
    """A request answered before (or instead of) running it."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str = "BAD_REQUEST",
        headers: dict[str, str] | None = None,
        *,
        as_result: bool = False,
        **extensions: Any,
    ) -> None:
        super().__init__(message)
        #: Refused like the executor's own request errors (application/json: 200).
        self.as_result = as_result
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or {}
        self.extensions = extensions


class _ResponseState:
    """What resolvers may set on the answer (`resolvers.auth`: 401, 429, Retry-After)."""

    __slots__ = ("headers", "status_code")

    def __init__(self) -> None:
        self.status_code: int | None = None
        self.headers: dict[str, str] = {}


class _Formatted(GatewayError):
    """An error the compiled path returns already formatted (a refusal the
    resolvers would give at that path): never masked, written as it is."""

    def __init__(self, formatted: dict[str, Any]) -> None:
        GraphQLError.__init__(
            self, formatted.get("message", ""), extensions=formatted.get("extensions")
        )
        self.path = formatted.get("path")
        self._formatted = formatted

    @property
    def formatted(self) -> dict[str, Any]:  # type: ignore[override]
        return self._formatted


# --- the rules every transport shares, as a schema extension -------------------------


class HttpRules(SchemaExtension):
    """Rules of the GraphQL-over-HTTP specification the executor leaves out, applied
    on every transport: a document with several operations needs a name (strawberry
    would run the first)."""

    def on_validate(self) -> Any:
        # Before the validation's own end (which answers what it found then); the
        # earlier extensions (the validation cache) have validated already.
        context = self.execution_context
        document = context.graphql_document
        if document is not None and getattr(context, "_provided_operation_name", None) is None:
            operations = 0
            for definition in document.definitions:
                if isinstance(definition, OperationDefinitionNode):
                    operations += 1
            if operations > 1:
                context.pre_execution_errors = [
                    GraphQLError(AMBIGUOUS),
                    *(context.pre_execution_errors or ()),
                ]
        yield


class CompiledReads(SchemaExtension):
    """Answers a query from its compiled statement when the request's context offers
    a compiler (`Context.compiled_reads`, set by the HTTP handler on PostgreSQL);
    otherwise, or when the compiler falls back, graphql-core runs the resolvers."""

    async def on_execute(self) -> AsyncIterator[None]:
        execution = self.execution_context
        front = getattr(execution.context, "compiled_reads", None)
        if front is not None and execution.result is None:
            try:
                kind = execution.operation_type
            except Exception:
                kind = None
            if kind is OperationType.QUERY:
                result = await front.answer(execution)
                if result is not None:
                    execution.result = result
        yield


class CompiledFront:
    """The process's compiler and its plain asyncpg connections (PostgreSQL only)."""

    def __init__(self, compiler: Any, pool: Any) -> None:
        self.compiler = compiler
        self.pool = pool

    async def close(self) -> None:
        await self.pool.close()

    async def answer(self, execution: Any) -> GraphQLExecutionResult | None:
        context = execution.context
        if context.caller is None:  # the resolvers answer UNAUTHENTICATED
            FALLBACK.inc()
            return None
        response = context.response
        saved = (response.status_code, dict(response.headers)) if response is not None else None
        try:
            caller = await principal(context)
        except GatewayError:
            # Refused: the resolvers refuse it at the field that needs the caller (a
            # `{ __typename }` needs none), and set the answer's status then.
            if saved is not None:
                response.status_code, response.headers = saved
            FALLBACK.inc()
            return None
        # The caller's lookup may have opened the request's session (a transaction on
        # a pooled connection): hand it back before taking the compiled statement's,
        # so that a request never holds two connections at once (a full pool, or a
        # PgBouncer pool, would otherwise wait on itself). A fallback opens it again.
        await context.db.close()
        try:
            variables = execution.variables or {}
            # Coerced and BSN-guarded by the pipeline already (None: not yet).
            coerced = getattr(execution, "coerced", None)
            plan = self.compiler.plan(
                execution.graphql_document, execution.operation_name, caller, variables, coerced
            )
            if isinstance(plan, Fallback):
                FALLBACK.inc()
                return None
            if plan.needs_connection:
                async with self.pool.acquire() as connection:
                    answer = await plan.execute(connection, variables, caller, today())
            else:
                answer = await plan.execute(None, variables, caller, today())
        except Exception as error:  # a compiler bug must not cost the caller its answer
            error_log.unexpected("compiled read failed; the resolvers answer", error=error)
            FALLBACK.inc()
            return None
        if isinstance(answer, Fallback):
            FALLBACK.inc()
            return None
        COMPILED.inc()
        for read in answer.reads:
            context.record_read(*read)
        context.compiled = True
        errors = [_Formatted(error) for error in answer.errors]
        # PostgreSQL's JSON text and formatted errors stand in for `data` and the
        # GraphQLErrors: the handler writes both through as they are.
        return GraphQLExecutionResult(
            data=RawJSON(answer.data),  # type: ignore[arg-type]
            errors=errors or None,  # type: ignore[arg-type]
        )


async def open_compiled_reads(settings: Settings, schema: Any, engine: Any) -> CompiledFront | None:
    """The compiler and up to `Settings.compiled_reads_connections` plain asyncpg connections,
    on PostgreSQL with `Settings.compiled_reads`; None otherwise."""
    if not settings.compiled_reads or engine is None or engine.dialect.name != "postgresql":
        return None
    from compiler import ReadCompiler
    from db.pg import Connections

    return CompiledFront(
        ReadCompiler(schema, settings),
        Connections(engine.url, max_size=settings.compiled_reads_connections),
    )


# --- the handler ----------------------------------------------------------------------


class GraphQLHTTP:
    """The ASGI app for HTTP at /graphql. `schema` is the gateway's schema (also the
    websockets'); the lifespan sets the broker, audit buffer, activation and, on
    PostgreSQL, `compiled` (a `CompiledFront`)."""

    def __init__(
        self,
        settings: Settings,
        sessionmaker: Callable[[], AsyncSession],
        schema: Any,
        *,
        graphiql_html: str | None = None,
    ) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.schema = schema
        error_log.install(schema)
        extensions = list(schema.extensions)
        for extension in (HttpRules, CompiledReads):
            if extension not in extensions:
                extensions.append(extension)
        schema.extensions = extensions
        # Per request only what depends on the request (gateway/pipeline.py); None
        # for a schema not built by gateway_schema (Schema.execute runs it all).
        self.pipeline = Pipeline.of(schema, (HttpRules, CompiledReads))
        self.graphiql_html = graphiql_html
        self.max_body_bytes = settings.max_body_bytes
        # Verified tokens kept until their exp (gateway/token_cache.py); the websockets'
        # endpoint is given the same one.
        self.verifier = CachedVerifier(TokenVerifier(settings))
        self.limiter = shared.rate_limiter(settings)
        self.supplier_cache = SupplierCache(settings.supplier_cache_seconds)
        self.audit_buffer: Any = None
        self.broker: Any = None
        self.activation: Any = None
        self.compiled: CompiledFront | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = _headers(scope)
        accept = headers.get(b"accept", b"").decode("latin-1")
        spec = GRAPHQL_RESPONSE in accept
        if declared_too_large(headers.get(b"content-length"), self.max_body_bytes):
            await refuse_too_large(send, self.max_body_bytes)
            return
        try:
            method = scope["method"]
            if method == "GET":
                params = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
                if "query" not in params and "text/html" in accept:
                    if self.graphiql_html is None:
                        raise _Refusal(404, "GraphiQL is switched off here", "NOT_FOUND")
                    await _send(send, 200, self.graphiql_html.encode(), "text/html; charset=utf-8")
                    return
                request = _from_params(params)
                allowed = QUERY_ONLY
            elif method == "POST":
                kind = headers.get(b"content-type", JSON.encode()).decode("latin-1").lower()
                if not kind.startswith(JSON):
                    raise _Refusal(415, f"send the request as {JSON}", "UNSUPPORTED_MEDIA_TYPE")
                try:
                    body = await _body(receive, self.max_body_bytes)
                except _TooLarge:
                    await refuse_too_large(send, self.max_body_bytes)
                    return
                request = _from_body(body)
                allowed = QUERY_OR_MUTATION
            else:
                raise _Refusal(
                    405,
                    "GraphQL over HTTP takes GET and POST",
                    "METHOD_NOT_ALLOWED",
                    {"Allow": "GET, POST"},
                )
            await self._run(scope, receive, send, request, allowed, spec, headers)
        except _Refusal as refusal:
            error_log.refused(refusal.code, refusal.message, transport="http")
            await _send_refusal(send, refusal, spec)

    async def _run(
        self,
        scope: dict[str, Any],
        receive: Any,
        send: Any,
        request: tuple[str, dict[str, Any] | None, str | None],
        allowed: frozenset[OperationType],
        spec: bool,
        headers: dict[bytes, bytes],
    ) -> None:
        query, variables, operation_name = request
        response = _ResponseState()
        context = Context(
            self.settings,
            self.sessionmaker,
            Request(scope, receive),
            response,  # type: ignore[arg-type]
        )
        context.limiter = self.limiter
        context.supplier_cache = self.supplier_cache
        context.audit_buffer = self.audit_buffer
        if self.activation is not None:
            context.activations = self.activation.group_commit
            context.reference_cache = self.activation.cache
        if self.compiled is not None:
            context.compiled_reads = self.compiled  # type: ignore[attr-defined]
        scope.setdefault("state", {})["gateway_context"] = context
        authorization = headers.get(b"authorization")
        try:
            context.caller = self.verifier.verify(
                authorization.decode("latin-1") if authorization is not None else None
            )
        except TokenError as error:
            if authorization is not None:  # a token, refused: nothing runs
                raise _Refusal(401, str(error), "UNAUTHENTICATED") from None
            context.auth_error = str(error)  # no token: a field that needs one says so
        pipeline = self.pipeline
        prepared = pipeline.prepared(query, operation_name) if pipeline is not None else None
        if pipeline is not None and prepared is not None and prepared.kind in allowed:
            coerced = pipeline.ready(prepared, variables)
            if coerced is not NOT_READY:
                try:
                    result = await pipeline.execute(
                        prepared, variables, context, self.compiled, coerced
                    )
                finally:
                    await context.finish()
                compiled = getattr(context, "compiled", False)
                await self._answer(send, result, response, spec, compiled)
                return
        # Everything else (every refusal before execution included): the schema's
        # extensions, one source for each rule.
        try:
            try:
                result = await self.schema.execute(
                    query,
                    variable_values=variables,
                    context_value=context,
                    operation_name=operation_name,
                    allowed_operation_types=allowed,
                )
            except InvalidOperationTypeError as error:
                if error.operation_type is OperationType.SUBSCRIPTION:
                    raise _Refusal(
                        400, "subscriptions are served over websockets at /graphql"
                    ) from None
                raise _Refusal(
                    405,
                    "a GET request runs queries only: send mutations with POST",
                    "METHOD_NOT_ALLOWED",
                    {"Allow": "POST"},
                ) from None
            except CannotGetOperationTypeError:
                raise _Refusal(
                    400, error_log.no_operation(operation_name), error_log.REQUEST_ERROR
                ) from None
            except MissingQueryError:
                raise _Refusal(400, "no query", error_log.REQUEST_ERROR) from None
        finally:
            await context.finish()
        await self._answer(send, result, response, spec, getattr(context, "compiled", False))

    async def _answer(
        self, send: Any, result: Any, response: _ResponseState, spec: bool, compiled: bool
    ) -> None:
        errors = result.errors or []
        status = response.status_code or 200
        extra = dict(response.headers)
        request_error = (
            result.data is None
            and bool(errors)
            and all(not error.path and not error.message.startswith(MASKED) for error in errors)
        )
        if any(error_log.code_of(error) == "UNAUTHENTICATED" for error in errors):
            status = 401
        if status == 401:
            extra["WWW-Authenticate"] = "Bearer"
        parts = []
        if spec and request_error:
            if status == 200:
                status = 400
        else:
            data = result.data
            parts.append('"data":' + (data if isinstance(data, RawJSON) else _dumps(data)))
        if errors:
            parts.append('"errors":' + _dumps([error.formatted for error in errors]))
        if result.extensions:
            parts.append('"extensions":' + _dumps(result.extensions))
        if compiled:
            extra["x-ketenpoort-compiled"] = "1"
        body = ("{" + ",".join(parts) + "}").encode()
        await _send(send, status, body, _media(spec), extra)


# --- reading the request ----------------------------------------------------------------


def _headers(scope: dict[str, Any]) -> dict[bytes, bytes]:
    found: dict[bytes, bytes] = {}
    for name, value in scope.get("headers") or ():
        found.setdefault(name, value)
    return found


class _TooLarge(Exception):
    """The body grew over `Settings.max_body_bytes` while it was read."""


async def _body(receive: Any, max_bytes: int) -> bytes:
    chunks = []
    received = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Refusal(400, "the client left before the body was complete")
        chunk = message.get("body", b"")
        received += len(chunk)
        if received > max_bytes:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


_UTF8_BOM = b"\xef\xbb\xbf"


def _json(text: str | bytes, what: str) -> Any:
    try:
        if isinstance(text, bytes) and not text.startswith(_UTF8_BOM) and b"\0" not in text[:4]:
            # What json.loads finds for such bytes (UTF-8) and decodes them as, without
            # its search for the encoding on every request.
            text = text.decode("utf-8", "surrogatepass")
        return json.loads(text)
    except RecursionError:
        raise _Refusal(400, f"{what} is nested too deeply") from None
    except ValueError:  # UnicodeDecodeError included
        raise _Refusal(400, f"{what} is not valid JSON") from None


def _from_body(body: bytes) -> tuple[str, dict[str, Any] | None, str | None]:
    if not body:
        raise _Refusal(400, "the request body is empty: send a JSON object with `query`")
    found = _json(body, "the request body")
    if isinstance(found, list):
        raise _Refusal(400, "batched requests are not supported: send one operation a request")
    if not isinstance(found, dict):
        raise _Refusal(400, "the request body must be a JSON object with `query`")
    return _fields(found.get("query"), found.get("variables"), found.get("operationName"))


def _from_params(params: dict[str, str]) -> tuple[str, dict[str, Any] | None, str | None]:
    variables: Any = params.get("variables")
    if variables is not None:
        variables = _json(variables, "`variables`") if variables else None
    return _fields(params.get("query"), variables, params.get("operationName") or None)


def _fields(
    query: Any, variables: Any, operation_name: Any
) -> tuple[str, dict[str, Any] | None, str | None]:
    if not isinstance(query, str) or not query:
        raise _Refusal(400, "`query` must be a non-empty string", error_log.REQUEST_ERROR)
    if variables is not None and not isinstance(variables, dict):
        raise _Refusal(400, "`variables` must be a JSON object", error_log.REQUEST_ERROR)
    if operation_name is not None and not isinstance(operation_name, str):
        raise _Refusal(400, "`operationName` must be a string", error_log.REQUEST_ERROR)
    if operation_name and contains_pgn(operation_name):
        refusal = pgn_refusal("operationName")
        extensions = {k: v for k, v in (refusal.extensions or {}).items() if k != "code"}
        raise _Refusal(400, refusal.message, "BAD_USER_INPUT", as_result=True, **extensions)
    return query, variables, operation_name or None


# --- writing the answer -----------------------------------------------------------------


def _media(spec: bool) -> str:
    return f"{GRAPHQL_RESPONSE}; charset=utf-8" if spec else JSON


async def _send(
    send: Any, status: int, body: bytes, media: str, headers: dict[str, str] | None = None
) -> None:
    raw = [(b"content-type", media.encode()), (b"content-length", str(len(body)).encode())]
    for name, value in (headers or {}).items():
        raw.append((name.lower().encode("latin-1"), value.encode("latin-1")))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def _send_refusal(send: Any, refusal: _Refusal, spec: bool) -> None:
    error = {"message": refusal.message, "extensions": {"code": refusal.code, **refusal.extensions}}
    body: dict[str, Any] = {"errors": [error]}
    status = refusal.status
    if refusal.as_result and not spec:  # application/json: as the executor's refusals
        body = {"data": None, **body}
        status = 200
    headers = dict(refusal.headers)
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    await _send(send, status, _dumps(body).encode(), _media(spec), headers)
