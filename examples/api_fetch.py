"""Fetching from a web API with async stages: product ids -> HTTP GET (100 in flight) -> records -> report.

The example starts a small product API on localhost itself (``aiohttp``'s
server, in a thread), answering each request after 50 ms, as a remote
service would.  Like real ones it misbehaves now and then: one product in
50 is briefly unavailable (503, retried), a few do not exist (404, skipped
and listed), and one request never answers (cancelled by ``timeout``,
skipped and listed).  The flow fetches every product with one worker that
keeps 100 requests in flight on its event loop (``aiohttp``'s client, one
connection pool a worker), parses the JSON into records and sums them up
by category.

Run it with ``python -m examples.api_fetch`` (needs the ``http`` extra:
``pip install -e '.[http]'``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import aiohttp
from aiohttp import web

import streamflow as sf

LATENCY = 0.05  # seconds the API takes to answer
CATEGORIES = ("books", "games", "music", "tools")
MISSING_EVERY = 97  # products that do not exist: 404
BUSY_EVERY = 50  # products whose first request finds the API busy: 503
STUCK = 500  # the product whose request never answers


# -- the API, served locally -------------------------------------------------------------


class ProductAPI:
    """``GET /products/{id}``: a product as JSON, after ``LATENCY`` seconds, on a thread of its own."""

    def __init__(self) -> None:
        self._busy_once: set[int] = set()
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self.url = "http://127.0.0.1:{}".format(self._socket.getsockname()[1])
        self._thread = threading.Thread(target=self._serve, name="product-api", daemon=True)

    def __enter__(self) -> ProductAPI:
        self._thread.start()
        self._ready.wait()
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_get("/products/{id}", self._product)
        runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(runner.setup())
        self._loop.run_until_complete(web.SockSite(runner, self._socket).start())
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            pending = asyncio.all_tasks(self._loop)  # the stuck request's handler, which cleanup would await
            for task in pending:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self._loop.run_until_complete(runner.cleanup())
            self._loop.close()

    async def _product(self, request: web.Request) -> web.Response:
        product = int(request.match_info["id"])
        await asyncio.sleep(3600 if product == STUCK else LATENCY)
        if product % MISSING_EVERY == MISSING_EVERY - 1:
            raise web.HTTPNotFound(text=f"no product {product}")
        if product % BUSY_EVERY == 7 and product not in self._busy_once:
            self._busy_once.add(product)
            raise web.HTTPServiceUnavailable(text="busy, try again")
        return web.json_response(
            {
                "id": product,
                "category": CATEGORIES[product % len(CATEGORIES)],
                "price_cents": 199 + (product * 37) % 5000,
            }
        )


# -- the flow --------------------------------------------------------------------------------


class Unavailable(Exception):
    """The API answered 503: worth another try."""


@dataclasses.dataclass(frozen=True)
class Product:
    id: int
    category: str
    price: float


@dataclasses.dataclass
class Summary:
    products: int
    by_category: dict[str, tuple[int, float]]  # count, mean price
    failures: list[sf.Failure]
    seconds: float


@sf.stage
def product_ids(count: int) -> Iterator[int]:
    yield from range(count)


class Fetch:
    """GET one product's JSON; each worker keeps one ``aiohttp`` session (a connection pool)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.session: aiohttp.ClientSession | None = None

    async def __call__(self, product: int) -> dict[str, Any]:
        if self.session is None:  # made on the worker's event loop, where it is used
            self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        async with self.session.get(f"{self.base_url}/products/{product}") as response:
            if response.status == 503:
                raise Unavailable(f"product {product}: {await response.text()}")
            if response.status == 404:
                raise LookupError(f"product {product} does not exist")
            response.raise_for_status()
            document: dict[str, Any] = await response.json()
            return document

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()


fetch = sf.map(Fetch).options(
    concurrency=100, retries=2, retry_delay=0.05, retry_on=Unavailable, timeout=2.0, on_error="skip"
)


@sf.map
def parse(document: dict[str, Any]) -> Product:
    return Product(int(document["id"]), str(document["category"]), document["price_cents"] / 100)


@sf.stage
def by_category(products: Iterable[Product]) -> dict[str, tuple[int, float]]:
    totals: dict[str, list[float]] = {}
    for product in products:
        totals.setdefault(product.category, []).append(product.price)
    return {name: (len(prices), round(sum(prices) / len(prices), 2)) for name, prices in sorted(totals.items())}


def main(count: int = 1000, **run_options: Any) -> Summary:
    """Fetch ``count`` products from a local API and sum them up by category."""
    with ProductAPI() as api:
        started = time.perf_counter()
        run = (product_ids(count=count) | fetch(base_url=api.url) | parse | by_category).start(**run_options)
        with run:
            totals = run.result()
        seconds = time.perf_counter() - started
    return Summary(sum(n for n, _ in totals.values()), totals, run.failures, seconds)


if __name__ == "__main__":
    import warnings

    warnings.simplefilter("ignore", sf.FailuresWarning)  # listed below instead
    count = 1000
    summary = main(count)
    print(f"fetched {summary.products} of {count} products in {summary.seconds:.2f} s "
          f"({count * LATENCY:.0f} s one request at a time)")
    for category, (n, mean) in summary.by_category.items():
        print(f"  {category:6} {n:4} products, mean price {mean:7.2f}")
    print(f"{len(summary.failures)} skipped:")
    for failure in sorted(summary.failures, key=lambda failure: failure.item):
        print(f"  product {failure.item}: {type(failure.error).__name__}: {failure.error} "
              f"(after {failure.attempts} attempt{'s' if failure.attempts > 1 else ''})")
