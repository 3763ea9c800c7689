"""The ASGI app: routes as plain functions over one :class:`Server` per worker process.

Routes:
    ``POST /get-online-features``  Feast's contract (:mod:`feast_spark.server.contract`).
    ``GET /health``   the process is alive (200).
    ``GET /ready``    the online store answers (200), else 503 naming the store.
    ``GET /metrics``  Prometheus text (:mod:`feast_spark.server.metrics`).
    ``GET /openapi.json``, ``GET /docs``  the contract.

A request never blocks the event loop on the network: Cassandra reads are sent asynchronously
and their last answer wakes the loop (``start_read``); a SQLite read of a few keys runs on the
loop when its connection is free (WAL mode: a reader does not wait for writers), larger ones,
registry reads and store connections run in worker threads. No error reaches the client as a
traceback: request problems are 4xx, an unreachable or slow store 503/504, anything else a 500
with a one-line JSON error (the traceback goes to the server's log).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final, Protocol, runtime_checkable

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from feast_spark.config import SqliteOnlineStoreConfig, load_config
from feast_spark.errors import DefinitionError, NotFoundError, OnlineStoreError
from feast_spark.online.base import OnlineStore, ReadRequest, TableRead
from feast_spark.registry import Registry
from feast_spark.server import metrics
from feast_spark.server.contract import (
    RequestError,
    entity_columns,
    error_body,
    from_lookup_error,
    parse_request,
    render,
)
from feast_spark.server.openapi import DOCS_HTML, OPENAPI
from feast_spark.server.settings import ServeSettings
from feast_spark.server.state import Definitions, StoreHolder

_log = logging.getLogger(__name__)

JSON: Final = "application/json"
#: Request body bytes allowed per entity row (plus a fixed allowance for the feature list).
BODY_BYTES_PER_ENTITY: Final = 4096
BODY_BYTES_BASE: Final = 1 << 20


@runtime_checkable
class _ReadsIfFree(Protocol):
    """A store that reads on the caller's thread when its connection is free (SQLite)."""

    def read_if_free(self, requests: Any, *, now: Any = None) -> Any: ...


#: Keys of a request read on the event loop when the store allows (:class:`_ReadsIfFree`):
#: handing a read of a few keys to a worker thread costs more than the read; a larger read goes
#: to a thread so that it does not hold up the requests behind it.
INLINE_READ_KEYS: Final = 512


@runtime_checkable
class _StartsReads(Protocol):
    """A store that reads without blocking (Cassandra)."""

    def start_read(self, requests: Any, *, now: Any = None) -> Any: ...


class Server:
    """One worker's state: settings, definitions, online store.

    Args:
        settings: What to serve and how.
    """

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        config = load_config(settings.config_path).with_project(settings.project)
        self.config = config
        self.definitions = Definitions(
            Registry(config.registry), config.project, config.registry_cache_ttl_seconds
        )
        self.stores = StoreHolder(config.online_store)
        self.max_body = BODY_BYTES_BASE + BODY_BYTES_PER_ENTITY * settings.server.max_entities

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        """Open the store at start (a store that is down is not fatal); close it at the end."""
        try:
            await run_in_threadpool(self.stores.connect)
        except OnlineStoreError as error:
            _log.warning("online store unreachable at start, will retry: %s", error)
        # What is alive now (modules, the driver, definitions) lives as long as the worker: out
        # of the collector's sight, a full collection under load scans only what requests made,
        # instead of pausing every request in flight for tens of milliseconds.
        gc.collect()
        gc.freeze()
        yield
        await run_in_threadpool(self.stores.close)

    async def store(self) -> OnlineStore:
        """The open store, opening it in a thread if needed.

        Raises:
            OnlineStoreError: It cannot be opened.
        """
        store = self.stores.current
        if store is None:
            store = await run_in_threadpool(self.stores.connect)
        return store

    async def read(self, store: OnlineStore, requests: tuple[ReadRequest, ...]) -> list[TableRead]:
        """The store's answers, waited for without blocking the loop, within the timeout.

        Raises:
            OnlineStoreError: The read failed.
            TimeoutError: No answer within ``request_timeout_s``.
        """
        timeout = self.settings.server.request_timeout_s
        if not isinstance(store, _StartsReads):
            if (
                isinstance(store, _ReadsIfFree)
                and sum(len(request.keys) for request in requests) <= INLINE_READ_KEYS
            ):
                inline: list[TableRead] | None = store.read_if_free(requests)
                if inline is not None:
                    return inline
            async with asyncio.timeout(timeout):
                answers: list[TableRead] = await run_in_threadpool(store.read, requests)
            return answers
        pending = store.start_read(requests)
        if not pending.done():
            loop = asyncio.get_running_loop()
            done = loop.create_future()
            pending.add_done_callback(lambda: loop.call_soon_threadsafe(_resolve, done))
            async with asyncio.timeout(timeout):
                await done
        result: list[TableRead] = pending.result()
        return result

    async def ping(self, store: OnlineStore) -> None:
        """Ask the store a trivial question.

        Raises:
            OnlineStoreError: It does not answer within ``request_timeout_s``.
        """
        timeout = self.settings.server.request_timeout_s
        try:
            async with asyncio.timeout(timeout):
                if isinstance(self.stores.config, SqliteOnlineStoreConfig):
                    await run_in_threadpool(_ping_sqlite, self.stores.config.path)
                else:
                    await _ping_cassandra(store, timeout)
        except TimeoutError:
            raise OnlineStoreError(
                store.kind, store.target, f"no answer within {timeout} s"
            ) from None


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():  # not cancelled by a timeout meanwhile
        future.set_result(None)


async def _ping_cassandra(store: OnlineStore, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def answered(_rows: Any) -> None:
        loop.call_soon_threadsafe(_resolve, done)

    def failed(error: BaseException) -> None:
        loop.call_soon_threadsafe(_fail, done, error)

    try:
        future = store.session.execute_async(  # type: ignore[attr-defined]
            "SELECT release_version FROM system.local", timeout=timeout
        )
        future.add_callbacks(answered, failed)
        await done
    except Exception as error:  # the driver's errors, whatever their class
        raise OnlineStoreError(
            store.kind, store.target, f"does not answer: {type(error).__name__}: {error}"
        ) from error


def _fail(future: asyncio.Future[None], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)


def _ping_sqlite(path: str) -> None:
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as connection:
            connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as error:
        raise OnlineStoreError("sqlite", path, f"cannot be read: {error}") from error


# --- routes ---------------------------------------------------------------------------------------


def observed(
    route: str,
) -> Callable[[Callable[[Request], Awaitable[Response]]], Callable[[Request], Awaitable[Response]]]:
    """Count and time every response of the wrapped route (by status)."""
    latency = metrics.LATENCY.labels(route)

    def wrap(
        endpoint: Callable[[Request], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def wrapper(request: Request) -> Response:
            started = time.perf_counter()
            response = await endpoint(request)
            latency.observe(time.perf_counter() - started)
            metrics.REQUESTS.labels(route, str(response.status_code)).inc()
            return response

        wrapper.__name__ = endpoint.__name__
        wrapper.__doc__ = endpoint.__doc__
        return wrapper

    return wrap


@observed("/get-online-features")
async def get_online_features(request: Request) -> Response:
    """Feature values and statuses for the request's entity rows (Feast's contract)."""
    server: Server = request.app.state.server
    try:
        body = await _body(request, server.max_body)
        parsed = parse_request(body, max_entities=server.settings.server.max_entities)
        metrics.ENTITIES.observe(parsed.num_rows)
        plan = server.definitions.cached_plan(parsed.features)
        if plan is None:
            plan = await run_in_threadpool(server.definitions.plan, parsed.features)
        prepared = plan.prepare(entity_columns(parsed, plan.entity_types))
        store = await server.store()
        answers = await server.read(store, prepared.requests)
        payload = render(prepared.respond(answers), full_feature_names=parsed.full_feature_names)
        return Response(payload, media_type=JSON)
    except RequestError as error:
        return Response(error.body(), status_code=error.status, media_type=JSON)
    except (NotFoundError, DefinitionError) as error:
        problem = from_lookup_error(error)
        return Response(problem.body(), status_code=problem.status, media_type=JSON)
    except OnlineStoreError as error:
        metrics.STORE_ERRORS.labels(error.store).inc()
        return _error(503, "store_unavailable", "online store", error.store, str(error))
    except TimeoutError:
        kind = server.stores.kind
        metrics.STORE_ERRORS.labels(kind).inc()
        timeout = server.settings.server.request_timeout_s
        return _error(
            504,
            "store_timeout",
            "online store",
            kind,
            f"{kind} online store did not answer within {timeout} s "
            "(feature_server.request_timeout_s)",
        )
    except OSError as error:
        return _error(
            503,
            "registry_unavailable",
            "registry",
            server.definitions.registry.uri,
            f"registry '{server.definitions.registry.uri}' cannot be read: {error}",
        )
    except Exception as error:
        _log.exception("unexpected error serving /get-online-features")
        return _error(
            500,
            "internal",
            "server",
            type(error).__name__,
            f"internal error ({type(error).__name__}); see the server's log",
        )


@observed("/health")
async def health(_request: Request) -> Response:
    """The process is alive."""
    return Response(b'{"status":"alive"}', media_type=JSON)


@observed("/ready")
async def ready(request: Request) -> Response:
    """The online store answers (200) or not (503, naming it)."""
    server: Server = request.app.state.server
    try:
        store = await server.store()
        await server.ping(store)
    except OnlineStoreError as error:
        return _error(503, "store_unavailable", "online store", error.store, str(error))
    return Response(f'{{"status":"ready","store":"{store.kind}"}}'.encode(), media_type=JSON)


async def prometheus(_request: Request) -> Response:
    """Prometheus text of every worker."""
    payload, content_type = metrics.exposition()
    return Response(payload, media_type=content_type)


async def openapi(_request: Request) -> Response:
    """The contract as an OpenAPI 3 document."""
    return Response(OPENAPI, media_type=JSON)


async def docs(_request: Request) -> Response:
    """The contract as a page."""
    return HTMLResponse(DOCS_HTML)


async def _http_error(_request: Request, error: Exception) -> Response:
    status = error.status_code if isinstance(error, HTTPException) else 500
    detail = error.detail if isinstance(error, HTTPException) else "internal error"
    return _error(status, "http", "route", _request.url.path, f"{_request.url.path}: {detail}")


def _error(status: int, code: str, kind: str, name: str, message: str) -> Response:
    return Response(error_body(code, kind, name, message), status_code=status, media_type=JSON)


async def _body(request: Request, limit: int) -> bytes:
    """The request body, refusing more than ``limit`` bytes (413) before reading them all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(int(declared), limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(size, limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(size: int, limit: int) -> RequestError:
    return RequestError(
        413,
        "body_too_large",
        "request",
        "body",
        f"the body has {size} bytes or more; at most {limit} "
        "(grows with feature_server.max_entities)",
    )


def create_app(settings: ServeSettings | None = None) -> Starlette:
    """The app of one worker (uvicorn calls it with no argument: settings from the environment).

    Raises:
        ConfigError: feature_store.yaml is missing or invalid.
    """
    server = Server(settings or ServeSettings.from_env())
    routes = [
        Route("/get-online-features", get_online_features, methods=["POST"]),
        Route("/health", health, methods=["GET"]),
        Route("/ready", ready, methods=["GET"]),
        Route("/metrics", prometheus, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/docs", docs, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        lifespan=server.lifespan,
        exception_handlers={HTTPException: _http_error},
    )
    app.state.server = server
    return app
