"""`AlterClient`: the sync client of the Alter public API, one method per endpoint.

Plain Python over httpx; no Dagster, no lake. Thread-safe: one client may serve many threads.

    with AlterClient(base_url, key, token) as client:
        info = client.auth_check()
        for page in client.iter_order_pages(concurrency=8):
            ...  # page.items: raw dicts, money as Decimal, deduplicated by id

Retry safety per endpoint (see `retry.py` for the rules):

    endpoint                                   safety           retried on
    GET    /healthz, /auth/check               idempotent       connect errors, timeouts, 429, 5xx
    GET    /customer-orders, /:id              idempotent       same
    POST   /customer-orders/batch (a read)     idempotent       same
    PATCH  /customer-orders/:id/status         idempotent       same (sets a value)
    PATCH  /customer-orders/:id/quantity[/all] idempotent       same (sets values)
    DELETE /customer-orders/:id                idempotent       same; a 404 after an ambiguous
                                                                failed attempt counts as deleted
    POST   /embed/session                      NOT idempotent   only connect errors and 429
    GET    /files/public/products/:id/:size    idempotent       same as reads; sent without auth
    GET    /products, /products/:id            idempotent       same as reads

A failed attempt is "ambiguous" when the request may have reached the server: a read timeout,
a connection lost after sending, or a 5xx. Retrying a status or quantity PATCH after that is
harmless (it sets the same value again). Retrying a DELETE may find the order already gone:
when an earlier attempt was ambiguous the 404 is taken as the earlier attempt's success
(`DeleteResult.already_deleted`); a 404 on the first attempt is a `NotFoundError`. An embed
session is never re-created after an ambiguous failure: the caller gets the error and decides.

No log line, error message or repr contains the key or token.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar, cast

import httpx

from alter_pipeline.api import _args, _wire, errors
from alter_pipeline.api.models import (
    AuthInfo,
    DeleteResult,
    EmbedSession,
    Health,
    Order,
    OrderList,
    OrderSummary,
    Product,
    ProductList,
    ProductPreview,
    QuantityAllUpdate,
    QuantityUpdate,
    StatusUpdate,
)
from alter_pipeline.api.paging import Decoder, FastPage, Listing, Page, PagerSettings, iter_pages
from alter_pipeline.api.retry import RetryPolicy, RetryState, Safety, Timeouts
from alter_pipeline.contract import DEFAULT_BASE_URL, DEFAULT_PRODUCTS_PAGE_SIZE, MAX_PAGE_SIZE

logger = logging.getLogger("alter_pipeline.api")

T = TypeVar("T")

BATCH_SIZE = 50  # ids per POST /customer-orders/batch
USER_AGENT = "alter-pipeline/0.1 (+httpx)"
_IMAGE_TYPES = ("image/", "application/octet-stream")


class AlterClient:
    """The Alter public API. Use as a context manager, or call `close()`."""

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        api_key: str = "",
        api_token: str = "",
        *,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        user_agent: str = USER_AGENT,
    ) -> None:
        self.base_url = _args.base_url(base_url)
        self.timeouts = timeouts or Timeouts()
        self.retry = retry or RetryPolicy()
        self._secrets = _wire.Secrets(api_key, api_token)
        self._user_agent = user_agent
        self.stats = _wire.Counters()
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=self.timeouts.to_httpx(),
            headers={"user-agent": user_agent, "accept": "application/json"},
            verify=_wire.ssl_context(),
        )

    def __repr__(self) -> str:
        return f"AlterClient({self.base_url!r})"

    def __enter__(self) -> AlterClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # ---- health and auth -------------------------------------------------------------------

    def healthz(self) -> Health:
        """`GET /healthz` (no auth). A 5xx after retries is `ok=False`, not an exception."""
        call = _wire.Call("GET", "/healthz", auth=False)
        reply = self._send(call, Safety.IDEMPOTENT)
        if reply.status < 500 and not 200 <= reply.status < 300:
            raise _wire.error_for(reply, call, self._secrets)
        details = self._try_json(reply)
        return Health(ok=200 <= reply.status < 300, status=reply.status, details=details)

    def auth_check(self) -> AuthInfo:
        """`GET /auth/check`: the storefront, credential and scopes of the key and token."""
        call = _wire.Call("GET", "/auth/check")
        return self._parse(AuthInfo.from_json, self._json(call), call)

    # ---- orders ----------------------------------------------------------------------------

    def list_orders(
        self,
        *,
        name: str | None = None,
        category_id: int | None = None,
        order_status: str | None = None,
        offset: int = 0,
        limit: int = MAX_PAGE_SIZE,
        order_by: str | None = None,
        direction: str | None = None,
    ) -> OrderList:
        """One page of `GET /customer-orders` (list shape). See `iter_orders` for all of them."""
        params = _order_params(name, category_id, order_status, offset, limit, order_by, direction)
        call = _wire.Call("GET", "/customer-orders", params, scope="orders:read")
        return self._parse(OrderList.from_json, self._json(call), call)

    def list_orders_raw(
        self,
        *,
        name: str | None = None,
        category_id: int | None = None,
        order_status: str | None = None,
        offset: int = 0,
        limit: int = MAX_PAGE_SIZE,
        order_by: str | None = None,
        direction: str | None = None,
    ) -> Page:
        """`list_orders` as a raw `Page` (dicts, numbers as Decimal), not deduplicated."""
        params = _order_params(name, category_id, order_status, offset, limit, order_by, direction)
        call = _wire.Call("GET", "/customer-orders", params, scope="orders:read")
        return self._raw_page(call, "order", offset)

    def get_order(self, order_id: int) -> Order:
        """`GET /customer-orders/:id` (detail shape)."""
        path = f"/customer-orders/{_args.object_id(order_id, 'order_id')}"
        call = _wire.Call("GET", path, scope="orders:read")
        return self._parse(lambda d: Order.from_json(d["order"]), self._json(call), call)

    def get_orders(self, order_ids: Iterable[int]) -> list[Order]:
        """Batch read in chunks of 50 ids. Ids the storefront does not have are left out."""
        raw = self.get_orders_raw(order_ids)
        call = _wire.Call("POST", "/customer-orders/batch")
        return [self._parse(Order.from_json, item, call) for item in raw]

    def get_orders_raw(self, order_ids: Iterable[int]) -> list[dict[str, Any]]:
        """Batch read as raw dicts (numbers as Decimal), in server order per chunk of 50."""
        ids = list(dict.fromkeys(_args.object_id(i, "order id") for i in order_ids))
        found: list[dict[str, Any]] = []
        for start in range(0, len(ids), BATCH_SIZE):
            chunk = ids[start : start + BATCH_SIZE]
            call = _wire.Call(
                "POST",
                "/customer-orders/batch",
                json_body={"customerOrderIds": chunk},
                scope="orders:read",
            )
            data = self._json(call)
            found.extend(self._parse(lambda d: _dict_list(d["orders"]), data, call))
        return found

    def set_order_status(self, order_id: int, status: str) -> StatusUpdate:
        """`PATCH /customer-orders/:id/status` with one of the documented statuses."""
        path = f"/customer-orders/{_args.object_id(order_id, 'order_id')}/status"
        body = {"status": _args.order_status(status)}
        call = _wire.Call("PATCH", path, json_body=body, scope="orders:write")
        return self._parse(StatusUpdate.from_json, self._json(call), call)

    def set_item_quantities(self, order_id: int, quantities: Mapping[int, int]) -> QuantityUpdate:
        """`PATCH /customer-orders/:orderId/quantity`: {orderDetailId: quantity}."""
        path = f"/customer-orders/{_args.object_id(order_id, 'order_id')}/quantity"
        if not quantities:
            raise ValueError("quantities must name at least one orderDetailId")
        items = [
            {
                "orderDetailId": _args.object_id(detail_id, "orderDetailId"),
                "quantity": _args.quantity(quantity),
            }
            for detail_id, quantity in quantities.items()
        ]
        call = _wire.Call("PATCH", path, json_body={"items": items}, scope="orders:write")
        return self._parse(QuantityUpdate.from_json, self._json(call), call)

    def set_all_quantities(self, order_id: int, quantity: int) -> QuantityAllUpdate:
        """`PATCH /customer-orders/:orderId/quantity/all`: one quantity for every item."""
        path = f"/customer-orders/{_args.object_id(order_id, 'order_id')}/quantity/all"
        body = {"quantity": _args.quantity(quantity)}
        call = _wire.Call("PATCH", path, json_body=body, scope="orders:write")
        return self._parse(QuantityAllUpdate.from_json, self._json(call), call)

    def delete_order(self, order_id: int) -> DeleteResult:
        """`DELETE /customer-orders/:id`. Retried; see the module docstring for the 404 rule."""
        checked = _args.object_id(order_id, "order_id")
        call = _wire.Call("DELETE", f"/customer-orders/{checked}", scope="orders:write")
        state = RetryState(self.retry, call.method, call.path, Safety.IDEMPOTENT)
        while True:
            reply = self._send_in(state, call)
            if reply.status == 404 and state.maybe_applied:
                return _deleted_earlier(checked, call)
            data = self._decode(state, reply, call)
            if not isinstance(data, _wire.RetryIn):
                return self._parse(DeleteResult.from_json, data, call)

    # ---- embed and files -------------------------------------------------------------------

    def create_embed_session(
        self,
        tool: str,
        origin: str,
        *,
        design_id: int | None = None,
        order_id: int | None = None,
    ) -> EmbedSession:
        """`POST /embed/session` for exactly one of a design or an order. Not retried once the
        request may have been processed (see the module docstring)."""
        body: dict[str, Any] = {"tool": _args.embed_tool(tool), "origin": _args.origin(origin)}
        body |= _args.exactly_one_resource(design_id, order_id)
        call = _wire.Call("POST", "/embed/session", json_body=body, scope="embed:session:create")
        data = self._json(call, Safety.NOT_IDEMPOTENT)
        return self._parse(EmbedSession.from_json, data, call)

    def get_product_preview(self, product_id: int, size: str) -> ProductPreview:
        """`GET /files/public/products/:productId/:size`: image bytes; sent without auth."""
        product = _args.object_id(product_id, "product_id")
        call = _wire.Call(
            "GET", f"/files/public/products/{product}/{_args.preview_size(size)}", auth=False
        )
        reply = self._checked(self._send(call, Safety.IDEMPOTENT), call)
        content_type = reply.content_type.split(";")[0].strip().lower()
        if not content_type.startswith(_IMAGE_TYPES):
            raise _wire.protocol_error(
                "a non-image preview", reply.status, reply.content_type, reply.body, call,
                self._secrets,
            )  # fmt: skip
        return ProductPreview(content=reply.body, content_type=content_type)

    # ---- products --------------------------------------------------------------------------

    def list_products(
        self,
        *,
        offset: int = 0,
        limit: int = DEFAULT_PRODUCTS_PAGE_SIZE,
        name: str | None = None,
        customizer: bool | None = None,
        order_by: str | None = None,
        direction: str | None = None,
    ) -> ProductList:
        """One page of `GET /products`. `order_by` is whitelisted by the server, not here."""
        params = _product_params(offset, limit, name, customizer, order_by, direction)
        call = _wire.Call("GET", "/products", params, scope="products:read")
        return self._parse(ProductList.from_json, self._json(call), call)

    def list_products_raw(
        self,
        *,
        offset: int = 0,
        limit: int = DEFAULT_PRODUCTS_PAGE_SIZE,
        name: str | None = None,
        customizer: bool | None = None,
        order_by: str | None = None,
        direction: str | None = None,
    ) -> Page:
        """`list_products` as a raw `Page`."""
        params = _product_params(offset, limit, name, customizer, order_by, direction)
        call = _wire.Call("GET", "/products", params, scope="products:read")
        return self._raw_page(call, "products", offset)

    def get_product(self, product_id: int) -> Product:
        """`GET /products/:id`."""
        path = f"/products/{_args.object_id(product_id, 'product_id')}"
        call = _wire.Call("GET", path, scope="products:read")
        return self._parse(Product.from_json, self._json(call), call)

    # ---- listings --------------------------------------------------------------------------

    def iter_order_pages(
        self,
        *,
        concurrency: int = 8,
        page_size: int = MAX_PAGE_SIZE,
        name: str | None = None,
        category_id: int | None = None,
        order_status: str | None = None,
        decoder: Decoder | None = None,
    ) -> Iterator[Page | FastPage]:
        """Every order matching the filters, as raw pages: ascending id order, verified complete
        even while orders are created and deleted (see `paging/`). Pages arrive in completion
        order; each holds only rows not yielded before. With a `decoder` (a `paging.Decoder`:
        a list of page bodies in, one `Decoded` or None per body out, e.g.
        `lake.fast_flatten.decode_orders_pages`), a page it reads arrives as a `FastPage`."""
        listing = Listing(
            "/customer-orders",
            "order",
            "orders:read",
            filters=_order_filters(name, category_id, order_status),
            decoder=decoder,
        )
        return self._pages(listing, concurrency, page_size)

    def iter_product_pages(
        self,
        *,
        concurrency: int = 8,
        page_size: int = MAX_PAGE_SIZE,
        name: str | None = None,
        customizer: bool | None = None,
    ) -> Iterator[Page]:
        """Every product, as raw pages. Asks for id order, falls back to the server's order if
        that is refused (then completeness rests on the `total` check alone)."""
        filters = _product_filters(name, customizer)
        listing = Listing("/products", "products", "products:read", filters, by_id_optional=True)
        # Without a decoder the pager yields plain `Page`s only.
        return cast(Iterator[Page], self._pages(listing, concurrency, page_size))

    def iter_orders(self, *, concurrency: int = 8, **filters: Any) -> Iterator[OrderSummary]:
        """Typed convenience over `iter_order_pages` (same filters)."""
        call = _wire.Call("GET", "/customer-orders")
        for page in self.iter_order_pages(concurrency=concurrency, **filters):
            for item in page.items:
                yield self._parse(OrderSummary.from_json, item, call)

    def iter_products(self, *, concurrency: int = 8, **filters: Any) -> Iterator[Product]:
        """Typed convenience over `iter_product_pages` (same filters)."""
        call = _wire.Call("GET", "/products")
        for page in self.iter_product_pages(concurrency=concurrency, **filters):
            for item in page.items:
                yield self._parse(Product.from_json, item, call)

    def _pages(
        self, listing: Listing, concurrency: int, page_size: int
    ) -> Iterator[Page | FastPage]:
        settings = PagerSettings(
            self.base_url, self._secrets, self.timeouts, self.retry, self.stats, self._user_agent
        )
        return iter_pages(
            settings,
            listing,
            # Two rows at least: consecutive pages overlap by one.
            page_size=_args.limit(page_size, minimum=2),
            concurrency=_args.concurrency(concurrency),
        )

    # ---- plumbing --------------------------------------------------------------------------

    def _json(self, call: _wire.Call, safety: Safety = Safety.IDEMPOTENT) -> Any:
        state = RetryState(self.retry, call.method, call.path, safety)
        while True:
            data = self._decode(state, self._send_in(state, call), call)
            if not isinstance(data, _wire.RetryIn):
                return data

    def _decode(self, state: RetryState, reply: _wire.Reply, call: _wire.Call) -> Any:
        """The reply's JSON, or `RetryIn` (already waited) to send it again: see `_wire`."""
        data = _wire.decode_or_retry(state, self._checked(reply, call), call, self._secrets)
        if isinstance(data, _wire.RetryIn):
            self.stats.add(retries=1)
            time.sleep(data.seconds)
        return data

    def _checked(self, reply: _wire.Reply, call: _wire.Call) -> _wire.Reply:
        if not 200 <= reply.status < 300:
            raise _wire.error_for(reply, call, self._secrets)
        return reply

    def _parse(self, build: Callable[[Any], T], data: Any, call: _wire.Call) -> T:
        """Typed result, or ProtocolError naming what did not match the contract."""
        try:
            return build(data)
        except (KeyError, TypeError, ValueError, AttributeError, ArithmeticError) as problem:
            detail = self._secrets.scrub(f"{type(problem).__name__}: {problem}")
            raise errors.ProtocolError(
                f"response does not match the contract ({detail})",
                method=call.method,
                path=call.path,
            ) from None

    def _raw_page(self, call: _wire.Call, envelope: str, offset: int) -> Page:
        def unwrap(data: Any) -> Page:
            body = data[envelope]
            total = body["total"]
            if isinstance(total, bool) or not isinstance(total, int):
                raise TypeError(f"total is not an integer: {total!r}")
            return Page(offset=offset, items=_dict_list(body["items"]), total=total)

        return self._parse(unwrap, self._json(call), call)

    def _try_json(self, reply: _wire.Reply) -> dict[str, Any]:
        try:
            data = _wire.decode_json(reply, _wire.Call("GET", "/healthz"), self._secrets)
        except errors.ProtocolError:
            return {}
        return data if isinstance(data, dict) else {}

    def _send(self, call: _wire.Call, safety: Safety) -> _wire.Reply:
        return self._send_in(RetryState(self.retry, call.method, call.path, safety), call)

    def _send_in(self, state: RetryState, call: _wire.Call) -> _wire.Reply:
        """Attempts (counted in `state`) until a reply to act on (any status) or a final
        transport error."""
        while True:
            state.begin()
            outcome = self._attempt(call)
            step = _wire.settle(state, outcome, call, self._secrets)
            if isinstance(step, _wire.Reply):
                return step
            self.stats.add(retries=1)
            time.sleep(step)

    def _attempt(self, call: _wire.Call) -> _wire.Reply | Exception:
        """One HTTP exchange. Failures are returned, not raised, so they never get chained."""
        request = call.build(self._http, self._secrets)
        self.stats.add(requests=1)
        try:
            response = self._http.send(request, stream=True)
        except httpx.HTTPError as error:
            return error
        chunks: list[bytes] = []
        try:
            for chunk in response.iter_bytes():
                chunks.append(chunk)
        except httpx.DecodingError as error:
            return error
        except httpx.HTTPError as error:
            partial = b"".join(chunks)
            return _wire.BodyIncomplete(response.status_code, response.headers, partial, error)
        finally:
            response.close()
        body = b"".join(chunks)
        self.stats.add(nbytes=len(body), throttled=int(response.status_code == 429))
        return _wire.Reply(response.status_code, response.headers, body)


def _deleted_earlier(order_id: int, call: _wire.Call) -> DeleteResult:
    logger.info("DELETE %s: 404 after an ambiguous attempt, taken as deleted", call.path)
    return DeleteResult(
        success=True,
        message="Order deleted (an earlier attempt succeeded; the retry found it gone).",
        order_id=order_id,
        already_deleted=True,
    )


def _order_params(
    name: str | None,
    category_id: int | None,
    order_status: str | None,
    offset: int,
    limit: int,
    order_by: str | None,
    direction: str | None,
) -> dict[str, str]:
    params = _order_filters(name, category_id, order_status)
    params |= {"offset": str(_args.offset(offset)), "limit": str(_args.limit(limit))}
    if order_by is not None:
        params["order_by"] = _args.order_sort(order_by)
    if direction is not None:
        params["direction"] = _args.direction(direction)
    return params


def _product_params(
    offset: int,
    limit: int,
    name: str | None,
    customizer: bool | None,
    order_by: str | None,
    direction: str | None,
) -> dict[str, str]:
    params = {"offset": str(_args.offset(offset)), "limit": str(_args.limit(limit))}
    params |= _product_filters(name, customizer)
    if order_by is not None:
        params["order_by"] = _args.text(order_by, "order_by")
    if direction is not None:
        params["direction"] = _args.direction(direction)
    return params


def _product_filters(name: str | None, customizer: bool | None) -> dict[str, str]:
    params: dict[str, str] = {}
    if name is not None:
        params["name"] = _args.text(name, "name")
    if customizer is not None:
        if not isinstance(customizer, bool):
            raise ValueError(f"customizer must be True or False, got {customizer!r}")
        params["customizer"] = "true" if customizer else "false"
    return params


def _order_filters(
    name: str | None, category_id: int | None, order_status: str | None
) -> dict[str, str]:
    params: dict[str, str] = {}
    if name is not None:
        params["name"] = _args.text(name, "name")
    if category_id is not None:
        params["category_id"] = str(_args.object_id(category_id, "category_id"))
    if order_status is not None:
        params["order_status"] = _args.order_status(order_status)
    return params


def _dict_list(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise TypeError("expected a list of objects")
    return value
