"""The Starlette application: the public API's routes under `/public-api/v1`, plus the
emulator-only `GET /__emulator/stats` (no auth; it does not exist on the real API).

Every API request goes through one pipeline, in this order: count it, add the configured
latency, rate-limit, let the fault modes answer first, check credentials and scope, run the
endpoint, let the fault modes replace the answer. `/healthz` and `/openapi.json` skip rate
limits and faults (they are how a harness checks the emulator is up); `/healthz`, the
OpenAPI document and the public preview files need no credentials.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from alter_pipeline.emulator import params
from alter_pipeline.emulator.auth import authenticate, authorize
from alter_pipeline.emulator.config import BASE_PATH, Credentials
from alter_pipeline.emulator.embed import check_origin, issue_token
from alter_pipeline.emulator.errors import ApiError, NotFound, TooManyRequests
from alter_pipeline.emulator.faults import SCOPE_KEY, Fault, fault_chain
from alter_pipeline.emulator.live import Shoppers
from alter_pipeline.emulator.png import PREVIEW_PIXELS, preview_png
from alter_pipeline.emulator.render import dumps
from alter_pipeline.emulator.store import Store
from alter_pipeline.emulator.throttle import TokenBucket, retry_after_header

log = logging.getLogger(__name__)

Handler = Callable[[Request], Awaitable[Response]]
PUBLIC = "public"  # no credentials
ANY_SCOPE = None  # credentials, any scope
CORS = {"Access-Control-Allow-Origin": "*"}


def json_response(body: bytes | dict[str, Any], status: int = 200) -> Response:
    content = body if isinstance(body, bytes) else dumps(body)
    return Response(content, status, media_type="application/json")


def error_response(error: ApiError) -> Response:
    response = json_response({"message": error.message}, error.status)
    response.headers.update(error.headers)
    return response


@dataclass
class Runtime:
    """What the pipeline needs besides the store; built once per app."""

    store: Store
    credentials: Credentials
    faults: list[Fault]
    bucket: TokenBucket | None
    fault_rng: random.Random
    shoppers: Shoppers | None = None
    live_task: asyncio.Task[None] | None = field(default=None, repr=False)

    @classmethod
    def create(cls, store: Store, credentials: Credentials) -> Runtime:
        config = store.config
        return cls(
            store=store,
            credentials=credentials,
            faults=fault_chain(config.fault_rate, config.faults),
            bucket=TokenBucket(config.rate_limit) if config.rate_limit else None,
            fault_rng=random.Random(f"faults:{config.seed}"),
            shoppers=Shoppers(store, config.live_rate, config.seed) if config.live else None,
        )

    def reset(self, store: Store) -> None:
        """Serve `store` from now on, with the rate limit and fault draws started afresh."""
        fresh = Runtime.create(store, self.credentials)
        self.store, self.bucket, self.fault_rng = store, fresh.bucket, fresh.fault_rng
        if self.shoppers is not None:
            self.shoppers.store = store


class Api:
    """The endpoints, each a method taking the request and returning a response."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self.config = runtime.store.config

    @property
    def store(self) -> Store:
        return self.rt.store  # looked up per request: `Runtime.reset` may swap the store

    async def healthz(self, request: Request) -> Response:
        return json_response({"ok": True})

    async def openapi(self, request: Request) -> Response:
        return json_response(_openapi_bytes())

    async def auth_check(self, request: Request) -> Response:
        return json_response(
            {
                "ok": True,
                "message": "success",
                "storefrontId": self.config.storefront_id,
                "userOwnerId": self.config.user_owner_id,
                "credentialId": self.config.credential_id,
                "scopes": list(self.config.scopes),
            }
        )

    async def list_orders(self, request: Request) -> Response:
        query = params.order_query(request.query_params)
        return json_response(self.store.orders_page(query))

    async def get_order(self, request: Request) -> Response:
        order_id = params.path_id("id", request.path_params["id"])
        return json_response(self.store.order_body(order_id))

    async def batch(self, request: Request) -> Response:
        ids = params.batch_ids(params.json_object(await request.body()))
        return json_response(self.store.batch_body(ids))

    async def set_status(self, request: Request) -> Response:
        order_id = params.path_id("id", request.path_params["id"])
        status = params.status_change(params.json_object(await request.body()))
        self.store.set_status(order_id, status)
        return json_response(
            {
                "success": True,
                "message": "Order status updated.",
                "orderId": order_id,
                "newStatus": status,
            }
        )

    async def set_quantities(self, request: Request) -> Response:
        order_id = params.path_id("orderId", request.path_params["id"])
        changes = params.quantity_changes(params.json_object(await request.body()))
        self.store.set_quantities(order_id, changes)
        return json_response(
            {"success": True, "message": "Order quantities updated.", "orderId": order_id}
        )

    async def set_all_quantities(self, request: Request) -> Response:
        order_id = params.path_id("orderId", request.path_params["id"])
        quantity = params.quantity_all(params.json_object(await request.body()))
        self.store.set_all_quantities(order_id, quantity)
        return json_response({"success": True, "orderId": order_id, "quantity": quantity})

    async def delete_order(self, request: Request) -> Response:
        order_id = params.path_id("id", request.path_params["id"])
        self.store.delete_order(order_id)
        return json_response({"success": True, "message": "Order deleted.", "orderId": order_id})

    async def embed_session(self, request: Request) -> Response:
        tool, origin, mode, resource_id = params.embed_request(
            params.json_object(await request.body())
        )
        origin = check_origin(origin, self.config.allowed_origins)
        if mode == "design":
            self.store.product_body(resource_id)  # 404 unless the design is the storefront's
        else:
            self.store.order_body(resource_id)
        answer = issue_token(
            secret=self.config.embed_secret,
            tool=tool,
            origin=origin,
            mode=mode,
            resource_id=resource_id,
            storefront_id=self.config.storefront_id,
        )
        return json_response(answer)

    async def list_products(self, request: Request) -> Response:
        query = params.product_query(request.query_params)
        return json_response(self.store.products_page(query))

    async def get_product(self, request: Request) -> Response:
        product_id = params.path_id("id", request.path_params["id"])
        return json_response(self.store.product_body(product_id))

    async def preview(self, request: Request) -> Response:
        raw_id, size = request.path_params["product_id"], request.path_params["size"]
        size = size.removesuffix(".png")
        product = self.store.catalog.by_model(params.path_id("productId", raw_id))
        if product is None or size not in PREVIEW_PIXELS:
            raise NotFound(f"no preview {size!r} for product {raw_id}")
        png = preview_png(product.rgb, PREVIEW_PIXELS[size])
        return Response(png, media_type="image/png", headers=CORS)

    async def preview_options(self, request: Request) -> Response:
        headers = {**CORS, "Access-Control-Allow-Methods": "GET, OPTIONS"}
        return Response(status_code=204, headers=headers)

    async def stats(self, request: Request) -> Response:
        live = dict(self.rt.shoppers.actions) if self.rt.shoppers else None
        body = {
            **self.store.counters.as_dict(),
            "orders": self.store.order_count(),
            "products": len(self.store.catalog.products),
            "live": live,
        }
        return json_response(body)


# (method, path under BASE_PATH, scope or PUBLIC/ANY_SCOPE, handler name, exempt from limits)
ROUTES: tuple[tuple[str, str, str | None, str, bool], ...] = (
    ("GET", "/healthz", PUBLIC, "healthz", True),
    ("GET", "/openapi.json", PUBLIC, "openapi", True),
    ("GET", "/auth/check", ANY_SCOPE, "auth_check", False),
    ("GET", "/customer-orders", "orders:read", "list_orders", False),
    ("POST", "/customer-orders/batch", "orders:read", "batch", False),
    ("GET", "/customer-orders/{id}", "orders:read", "get_order", False),
    ("DELETE", "/customer-orders/{id}", "orders:write", "delete_order", False),
    ("PATCH", "/customer-orders/{id}/status", "orders:write", "set_status", False),
    ("PATCH", "/customer-orders/{id}/quantity", "orders:write", "set_quantities", False),
    ("PATCH", "/customer-orders/{id}/quantity/all", "orders:write", "set_all_quantities", False),
    ("POST", "/embed/session", "embed:session:create", "embed_session", False),
    ("GET", "/files/public/products/{product_id}/{size}", PUBLIC, "preview", False),
    ("OPTIONS", "/files/public/products/{product_id}/{size}", PUBLIC, "preview_options", False),
    ("GET", "/products", "products:read", "list_products", False),
    ("GET", "/products/{id}", "products:read", "get_product", False),
)


def _pipeline(
    rt: Runtime, label: str, scope: str | None, handler: Handler, exempt: bool
) -> Handler:
    latency = rt.store.config.latency_ms / 1000

    async def endpoint(request: Request) -> Response:
        counters = rt.store.counters
        counters.started()
        try:
            response = await _answer(rt, request, scope, handler, exempt, latency)
        finally:
            counters.finished()
        counters.record(label, response.status_code)
        return response

    return endpoint


async def _answer(
    rt: Runtime,
    request: Request,
    scope: str | None,
    handler: Handler,
    exempt: bool,
    latency: float,
) -> Response:
    if latency:
        await asyncio.sleep(latency)
    request.scope[SCOPE_KEY] = scope  # faults that act per scope (401/403) read it
    try:
        if not exempt:
            early = await _limits_and_faults(rt, request)
            if early is not None:
                return early
        if scope != PUBLIC:
            authenticate(request.headers, rt.credentials)
            authorize(scope, rt.store.config.scopes)
        response = await handler(request)
    except ApiError as error:
        response = error_response(error)
    except Exception:  # a bug of the emulator: answer like a server would, and log it
        log.exception("emulator endpoint failed: %s %s", request.method, request.url.path)
        response = json_response({"message": "internal server error"}, 500)
    if not exempt:
        for fault in rt.faults:
            response = await fault.after(request, response, rt.fault_rng)
    return response


async def _limits_and_faults(rt: Runtime, request: Request) -> Response | None:
    if rt.bucket is not None:
        wait = rt.bucket.take()
        if wait:
            retry = retry_after_header(wait)
            raise TooManyRequests(
                f"rate limit of {rt.bucket.rate:g} requests per second exceeded",
                {"Retry-After": retry},
            )
    for fault in rt.faults:
        early = await fault.before(request, rt.fault_rng)
        if early is not None:
            return early
    return None


@lru_cache(maxsize=1)
def _openapi_bytes() -> bytes:
    return resources.files("alter_pipeline.contract").joinpath("openapi.json").read_bytes()


async def _http_error(request: Request, exc: Exception) -> Response:
    """Unknown paths (404) and wrong methods (405) answer JSON too, and are counted."""
    assert isinstance(exc, HTTPException)
    store: Store = request.app.state.runtime.store
    store.counters.record("unmatched", exc.status_code)
    message = "route not found" if exc.status_code == 404 else exc.detail
    response = json_response(
        {"message": f"{message}: {request.method} {request.url.path}"}, exc.status_code
    )
    response.headers.update(exc.headers or {})
    return response


def create_app(store: Store, credentials: Credentials) -> Starlette:
    runtime = Runtime.create(store, credentials)
    api = Api(runtime)
    routes = [
        Route(
            BASE_PATH + path,
            _pipeline(runtime, f"{method} {path}", scope, getattr(api, name), exempt),
            methods=[method],
        )
        for method, path, scope, name, exempt in ROUTES
    ]
    routes.append(Route("/__emulator/stats", api.stats, methods=["GET"]))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if runtime.shoppers is not None:
            runtime.live_task = asyncio.create_task(runtime.shoppers.run())
        try:
            yield
        finally:
            if runtime.live_task is not None:
                runtime.live_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await runtime.live_task

    app = Starlette(
        routes=routes, exception_handlers={HTTPException: _http_error}, lifespan=lifespan
    )
    app.state.runtime = runtime
    return app


def describe_routes() -> list[dict[str, Any]]:
    """The served routes with their scopes (for docs and the CLI banner)."""
    return [
        {"method": m, "path": BASE_PATH + p, "scope": s or "any credential"}
        for m, p, s, _, _ in ROUTES
    ]
