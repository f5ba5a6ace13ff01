"""The `monitor` actor on the session's Ray instance: it polls named actors, and what it records leaves through
Ray's metrics export — read back from the node's Prometheus endpoint (`MetricsExportPort`), as Prometheus would.

The actors polled here are stand-ins with the inspect() shapes of the real ones (tests/integration/
test_system_observability.py polls the real system); a name that no actor holds is reported down."""
from __future__ import annotations

import time
import uuid

import pytest

ray = pytest.importorskip("ray")

from actors.monitor import MonitorOptions, start_monitor  # noqa: E402
from tests.integration.metrics_scrape import export_url, scrape_until, series  # noqa: E402

#: Workers report metrics to the agent every metrics_report_interval_ms (10 s by default): allow a few rounds.
EXPORT_WAIT_S = 45.0


@ray.remote(num_cpus=0)
class FakeActor:
    def __init__(self, snapshot: dict) -> None:
        self.snapshot = snapshot

    def set(self, snapshot: dict) -> None:
        self.snapshot = snapshot

    def inspect(self) -> dict:
        return self.snapshot


def gateway_snapshot(accepted: int) -> dict:
    return {"url": "ws://127.0.0.1:1/ws", "cursors": {},
            "counts": {"orders_accepted": accepted, "orders_rejected": 2, "orders_filled": 1, "fill_reports": 4},
            "server": {"frames": 40, "sessions": 1, "logged_on": 1, "pending_writes": 0,
                       "naks_by_code": {"BAD_SEQUENCE": 3}}}


ROUTER = {"pending": [], "by_stage": {"credited": 1}, "errors": {},
          "routes": [{"route_id": "r1", "stage": "credited", "created_ms": 1_000, "updated_ms": 43_000}]}


@pytest.fixture(scope="module")
def monitored(ray_cluster):  # noqa: ARG001
    """A monitor polling two stand-ins every 0.5 s (and `minter`, which no actor holds), after the gateway's counts
    moved between two polls."""
    ns = f"mon-{uuid.uuid4().hex[:8]}"
    gw = FakeActor.options(name="gateway", namespace=ns).remote(gateway_snapshot(5))
    router = FakeActor.options(name="router", namespace=ns).remote(ROUTER)
    monitor = start_monitor(MonitorOptions(("gateway", "router", "minter"), namespace=ns, interval_s=0.5,
                                           inspect_timeout_s=5.0))
    try:
        assert ray.get(monitor.wait_polls.remote(1, 30.0))
        ray.get(gw.set.remote(gateway_snapshot(7)))
        polls = ray.get(monitor.inspect.remote())["polls"]
        assert ray.get(monitor.wait_polls.remote(polls + 1, 30.0))
        yield monitor
    finally:
        for a in (monitor, gw, router):
            ray.kill(a, no_restart=True)


def test_monitor_turns_polls_into_metric_values_and_health(monitored) -> None:
    view = ray.get(monitored.inspect.remote())
    m = view["metrics"]
    assert m["counters"]["indexmaker_index_orders"] == {"outcome=accepted": 7, "outcome=rejected": 2,
                                                        "outcome=filled": 1}
    assert m["counters"]["indexmaker_gateway_naks"] == {"code=BAD_SEQUENCE": 3}
    assert m["gauges"]["indexmaker_actor_up"] == {"actor=gateway": 1, "actor=router": 1, "actor=minter": 0}
    assert m["histograms"]["indexmaker_route_seconds"]["stage=credited"]["sum"] == 42.0
    health = ray.get(monitored.health.remote())
    assert not health["healthy"] and health["status"] == "unhealthy"
    assert any(p.startswith("minter: not answering (not found") for p in health["problems"])
    assert health["actors"]["gateway"]["up"] and health["age_ms"] >= 0


@pytest.mark.slow  # Ray's workers report every 10 s: the endpoint shows a value 10-20 s after it is recorded
def test_monitor_values_reach_the_ray_metrics_endpoint(monitored) -> None:
    # Ray adds the ray_ prefix (and _total to counters) and labels each series with the worker that recorded it:
    # this monitor's series only.
    worker = ray.get(monitored.inspect.remote())["worker_id"]
    found = scrape_until(export_url(), {
        "accepted": series("index_orders_total", 'outcome="accepted"', worker),
        "naks": series("gateway_naks_total", 'code="BAD_SEQUENCE"', worker),
        "minter_up": series("actor_up", 'actor="minter"', worker),
        "gateway_up": series("actor_up", 'actor="gateway"', worker),
        "route_count": series("route_seconds_count", 'stage="credited"', worker),
        "healthy": series("healthy", "", worker),
    }, time.monotonic() + EXPORT_WAIT_S)
    assert found == {"accepted": 7.0, "naks": 3.0, "minter_up": 0.0, "gateway_up": 1.0, "route_count": 1.0,
                     "healthy": 0.0}
