"""Observability of the whole local system (world/launcher.py's LocalSystem on the session's Ray instance), after
one user's deposit, order, fills and mint (world/demo.py's flow): every actor's inspect() is plain data, the
monitor's metrics reach Ray's metrics endpoint, `http` answers /health from the monitor (200 healthy, 503 once an
actor is gone) and serves the user its invoice over a signed GET."""
from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal
from typing import Any

import pytest

ray = pytest.importorskip("ray")

from aiohttp import ClientSession  # noqa: E402
from yarl import URL  # noqa: E402

from protocol.http_auth import sign_request  # noqa: E402
from protocol.signature import Signer  # noqa: E402
from tests.integration.metrics_scrape import export_url, scrape_until, series  # noqa: E402
from tests.integration.demo_flow import one_user_flow  # noqa: E402
from world.launcher import LocalSystem  # noqa: E402

pytestmark = pytest.mark.slow  # a whole system: ~15 s to start, and the monitor polls every 5 s

PLAIN_SCALARS = (str, int, float, bool, type(None))


def not_plain(value: Any, path: str) -> list[str]:
    """Every place in `value` that is not plain data (dicts with str keys, lists, str/int/float/bool/None)."""
    if type(value) is dict:
        out = [f"{path}: key {k!r} is {type(k).__name__}" for k in value if not isinstance(k, str)]
        for k, v in value.items():
            out += not_plain(v, f"{path}.{k}")
        return out
    if type(value) is list:
        return [p for i, v in enumerate(value) for p in not_plain(v, f"{path}[{i}]")]
    if type(value) in PLAIN_SCALARS:  # exact types: an Enum or a Decimal subclass is not plain
        return []
    return [f"{path}: {type(value).__name__} {value!r}"[:200]]


@pytest.fixture(scope="module")
def flow(ray_cluster):  # noqa: ARG001
    with one_user_flow("obs") as (s, alice, result):
        yield s, alice, result


@pytest.fixture
def system(flow) -> LocalSystem:
    return flow[0]


def http_get(system: LocalSystem, target: str, headers: dict | None = None) -> tuple[int, dict]:
    base = ray.get(system.actor("http").start.remote())

    async def go() -> tuple[int, dict]:
        async with ClientSession() as http:
            async with http.get(URL(base + target, encoded=True), headers=headers or {}) as resp:
                return resp.status, await resp.json()
    return asyncio.run(go())


def health_after_polls(system: LocalSystem, polls: int = 1) -> tuple[int, dict]:
    """/health once the monitor has completed `polls` more polls (2: one that surely started after now)."""
    monitor = system.actor("monitor")
    done = ray.get(monitor.inspect.remote())["polls"]
    assert ray.get(monitor.wait_polls.remote(done + polls, 60.0))
    return http_get(system, "/health")


def test_every_actor_inspect_is_plain_data(system) -> None:
    names = sorted(system.actors)
    assert {"gateway", "sender", "solver", "minter", "chain", "router", "monitor", "http", "orders-0",
            "market-0"} <= set(names)
    problems: list[str] = []
    for name in names:
        view = ray.get(system.actor(name).inspect.remote(), timeout=30)
        assert isinstance(view, dict), name
        problems += not_plain(view, name)
        if not problems:
            assert json.loads(json.dumps(view)) == view, name
    assert problems == []


def test_health_is_200_with_every_actor_up(system) -> None:
    deadline = time.monotonic() + 90
    while True:
        status, body = health_after_polls(system)
        if status == 200 or time.monotonic() > deadline:
            break
    assert (status, body["status"], body["problems"]) == (200, "ok", []), body
    assert set(body["actors"]) == set(system.actors) - {"monitor"}
    assert all(a["up"] for a in body["actors"].values())
    assert set(body["lags"]["market_book_lag_p99_ms"]) == {n for n in system.actors if n.startswith("market-")}
    assert body["age_ms"] < 3 * 5_000 + 3_000


def test_the_user_fetches_its_invoice_over_a_signed_get(flow) -> None:
    system, alice, result = flow
    stored = result["views"]["alice"]["invoices"]["a1"]
    signer = Signer(bytes(alice.key.key))
    assert signer.address == alice.address
    for target in ("/invoices/a1", f"/invoices/{stored['invoice_id']}"):
        status, body = http_get(system, target, sign_request(signer, "GET", target, int(time.time() * 1000)))
        assert (status, body) == (200, stored)
    wire = next(d.body for d in alice.reports if type(d.body).__name__ == "MintInvoice")
    assert body["mint_tx"] and Decimal(body["minted_units"]) > 0
    assert wire.client_order_id == body["cl_ord_id"] == "a1"


def test_the_flow_shows_in_the_metrics_endpoint(system) -> None:
    """Counters from the monitor, histograms from where the batch was (the minter's mint call, the route)."""
    worker = ray.get(system.actor("monitor").inspect.remote())["worker_id"]
    found = scrape_until(export_url(), {
        "accepted": series("index_orders_total", 'outcome="accepted"', worker),
        "minted": series("index_orders_total", 'outcome="minted"', worker),
        "fills": series("fills_total", "", worker),
        "routes": series("route_seconds_count", 'stage="credited"', worker),
        "mint_calls": series("mint_seconds_count"),  # recorded in the minter's process
        "book_lag": series("market_book_lag_ms", 'stat="p99"', worker),
    }, time.monotonic() + 60)
    assert set(found) == {"accepted", "minted", "fills", "routes", "mint_calls", "book_lag"}, found
    assert found["accepted"] == 1 and found["minted"] == 1 and found["routes"] == 1
    assert found["fills"] >= 1 and found["mint_calls"] >= 1 and found["book_lag"] >= 0


def test_signed_invoice_listing_through_the_http_actor(system) -> None:
    user = Signer.generate()
    target = f"/invoices?user={user.address}"
    status, body = http_get(system, target, sign_request(user, "GET", target, int(time.time() * 1000)))
    assert (status, body) == (200, {"user": user.address, "invoices": []})
    status, body = http_get(system, target)
    assert (status, body["error"]) == (401, "MISSING_AUTH")


def test_health_is_503_once_an_actor_is_gone(system) -> None:
    ray.kill(system.actor("minter"), no_restart=True)
    status, body = health_after_polls(system, 2)
    assert (status, body["status"], body["healthy"]) == (503, "unhealthy", False)
    assert body["actors"]["minter"]["up"] is False
    assert any(p.startswith("minter: not answering") for p in body["problems"])
