"""actors/system_view.py and actors/metrics.py: inspect() snapshots become metric values and a health verdict."""
from __future__ import annotations

import json

import pytest

from actors.metrics import CATALOGUE, Metrics
from actors.system_view import HealthLimits, Observation, SystemView


def gateway(accepted: int, rejected: int = 0, filled: int = 0, naks: dict | None = None, url: str | None = "ws://x",
            pending: int = 0) -> dict:
    return {"url": url, "cursors": {}, "counts": {"orders_accepted": accepted, "orders_rejected": rejected,
                                                  "orders_filled": filled, "fill_reports": 2 * filled},
            "server": {"frames": 10 * accepted, "sessions": 3, "logged_on": 2, "pending_writes": pending,
                       "naks_by_code": naks or {}}}


def market(shard: int, p99: float | None = 12.0, stale: list | None = None, ready: int = 4) -> dict:
    return {"shard": shard, "symbols": 4, "ready": ready, "stale": stale or [], "running": True, "last_error": None,
            "diffs": 100, "gaps": 0, "reconnects": 0, "lag_p50_ms": 3.0, "lag_p99_ms": p99, "lag_max_ms": 40.0}


def sender(sent: int, windows: list | None = None, started: bool = True) -> dict:
    return {"started": started, "queued": 1, "in_flight": 2, "resolving": ["c1"],
            "counts": {"sent": sent, "rejected": 1, "rate_limited": 0},
            "rate_limits": {"blocked": False, "windows": windows or [
                {"kind": "REQUEST_WEIGHT", "interval_ms": 60000, "capacity": 5700, "used": 570},
                {"kind": "ORDERS", "interval_ms": 10000, "capacity": 95, "used": 19}]}}


def poll(view: SystemView, snapshots: dict, now_ms: int = 1_000) -> dict:
    return view.update({k: Observation(v, 0.002, None if v is not None else "gone") for k, v in snapshots.items()},
                       now_ms)


def counter(m: Metrics, name: str, key: str = "") -> float:
    return m.counters[name][key]


def test_counters_follow_the_actors_counts_and_survive_a_restart() -> None:
    m = Metrics(export=False)
    view = SystemView(m)
    poll(view, {"gateway": gateway(accepted=5, rejected=1, naks={"BAD_SIGNATURE": 2})})
    assert counter(m, "indexmaker_index_orders", "outcome=accepted") == 5  # first sight: all of it
    poll(view, {"gateway": gateway(accepted=8, rejected=1, naks={"BAD_SIGNATURE": 3})})
    assert counter(m, "indexmaker_index_orders", "outcome=accepted") == 8
    assert counter(m, "indexmaker_index_orders", "outcome=rejected") == 1
    assert counter(m, "indexmaker_gateway_naks", "code=BAD_SIGNATURE") == 3
    # the gateway restarted: its counts start again from zero; what it counted since then is new
    poll(view, {"gateway": gateway(accepted=2, rejected=0)})
    assert counter(m, "indexmaker_index_orders", "outcome=accepted") == 10
    assert counter(m, "indexmaker_gateway_frames") == 50 + 30 + 20
    assert m.gauges["indexmaker_gateway_sessions"] == {"state=open": 3, "state=logged_on": 2}


def test_market_lag_rate_limits_and_routes_are_set() -> None:
    m = Metrics(export=False)
    view = SystemView(m)
    routes = [{"route_id": "r1", "stage": "credited", "created_ms": 1_000, "updated_ms": 31_000},
              {"route_id": "r2", "stage": "bridging", "created_ms": 5_000, "updated_ms": 6_000}]
    snapshots = {"market-1": market(1, p99=25.5), "sender": sender(10),
                 "router": {"pending": [{}], "routes": routes, "by_stage": {"credited": 1, "bridging": 1},
                            "errors": {}}}
    poll(view, snapshots)
    assert m.gauges["indexmaker_market_book_lag_ms"]["shard=1,stat=p99"] == 25.5
    assert m.gauges["indexmaker_market_symbols"]["shard=1,state=stale"] == 0
    assert m.gauges["indexmaker_rate_limit_used_ratio"] == {"window=REQUEST_WEIGHT/60000ms": 0.1,
                                                            "window=ORDERS/10000ms": 0.2}
    assert m.gauges["indexmaker_exchange_orders_open"]["state=resolving"] == 1
    assert m.gauges["indexmaker_routes"] == {"stage=credited": 1, "stage=bridging": 1}
    # a finished route's time is observed once, from its own timestamps, however often it is polled
    poll(view, snapshots)
    routes[1].update(stage="failed", updated_ms=65_000)
    poll(view, snapshots)
    h = m.histograms["indexmaker_route_seconds"]
    assert (h["stage=credited"]["count"], h["stage=credited"]["sum"]) == (1, 30.0)
    assert (h["stage=failed"]["count"], h["stage=failed"]["sum"]) == (1, 60.0)
    assert h["stage=credited"]["buckets"][CATALOGUE["indexmaker_route_seconds"].boundaries.index(30.0)] == 1


def test_batch_time_is_observed_only_from_recorded_times() -> None:
    m = Metrics(export=False)
    view = SystemView(m)
    history = [{"batch_id": "b1", "planned_ms": 1_000, "completed_ms": 1_800},
               {"batch_id": "b2", "planned_ms": 2_000}]  # still running: nothing to observe yet
    solver = {"counts": {"batches": 2, "fills": 7}, "outbox": [], "batches_in_flight": {"b2": {}},
              "mints_owed": [], "history": history}
    poll(view, {"solver": solver})
    poll(view, {"solver": solver})
    assert m.histograms["indexmaker_batch_seconds"][""]["count"] == 1
    assert m.histograms["indexmaker_batch_seconds"][""]["sum"] == pytest.approx(0.8)
    history[1]["completed_ms"] = 2_500
    poll(view, {"solver": solver})
    assert m.histograms["indexmaker_batch_seconds"][""]["count"] == 2
    assert counter(m, "indexmaker_fills") == 7 and counter(m, "indexmaker_batches") == 2


def test_each_invoice_shortfall_is_observed_once_per_index_and_health_is_unaffected() -> None:
    m = Metrics(export=False)
    view = SystemView(m)
    recent = [[1, "SY100", "12.50"], [2, "SYAI", "-3.10"], [3, "SY100", "7.25"]]
    orders = {"shard": 0, "open_orders": [], "undelivered": 0, "shortfalls": {"epoch": "e1", "recent": recent}}
    assert poll(view, {"orders-0": orders})["status"] == "ok"
    poll(view, {"orders-0": orders})  # seen already: not observed again
    h = m.histograms["indexmaker_shortfall_bps"]
    assert (h["index=SY100"]["count"], h["index=SY100"]["sum"]) == (2, pytest.approx(19.75))
    assert h["index=SYAI"]["count"] == 1 and h["index=SYAI"]["buckets"][0] == 1  # an improvement: the first bucket
    # An answer older than one already taken (overlapping polls) brings nothing new.
    poll(view, {"orders-0": orders | {"shortfalls": {"epoch": "e1", "recent": recent[:1]}}})
    assert h["index=SY100"]["count"] == 2
    # The shard restarted: its numbering starts again under a new epoch.
    poll(view, {"orders-0": orders | {"shortfalls": {"epoch": "e2", "recent": [[1, "SY100", "40"]]}}})
    assert h["index=SY100"]["count"] == 3


def test_health_names_every_problem() -> None:
    view = SystemView(Metrics(export=False), HealthLimits(max_book_lag_ms=1_000, max_pending_writes=10))
    ok = poll(view, {"gateway": gateway(1), "market-0": market(0), "sender": sender(1),
                     "chain": {"listening": True, "last_error": None}})
    assert ok["healthy"] and ok["status"] == "ok" and ok["problems"] == []
    assert ok["lags"]["market_book_lag_p99_ms"] == {"market-0": 12.0}
    assert ok["actors"]["gateway"]["up"] is True
    bad = poll(view, {"gateway": gateway(1, url=None, pending=11), "market-0": market(0, p99=2_000.0,
                                                                                      stale=["ETHUSDC"], ready=3),
                      "sender": sender(1, started=False), "chain": {"listening": False, "last_error": "rpc down"},
                      "minter": None})
    assert not bad["healthy"] and bad["status"] == "unhealthy"
    text = "\n".join(bad["problems"])
    for expected in ("gateway: not listening", "gateway: 11 store writes queued", "market-0: 1 of 4 books",
                     "market-0: 1 stale symbols ['ETHUSDC']", "market-0: book lag p99 2000.0 ms",
                     "sender: not started", "chain: deposit listener not running", "chain: rpc down",
                     "minter: not answering (gone)"):
        assert expected in text
    assert bad["actors"]["minter"] == {"up": False, "inspect_ms": 2.0, "error": "gone"}
    assert json.loads(json.dumps(bad)) == bad  # /health answers it as it is


def test_an_open_circuit_breaker_is_a_named_problem() -> None:
    m = Metrics(export=False)
    view = SystemView(m)
    tripped = sender(1) | {"breakers": [{"key": "BTCUSDC", "scope": "symbol", "reason": "CONSECUTIVE_REJECTS",
                                         "detail": "-2010: Order rejected", "since_ms": 1_700_000_000_000,
                                         "rejects": 3}], "held": {"BTCUSDC": 4, "ETHUSDC": 1}}
    health = poll(view, {"sender": tripped})
    assert not health["healthy"]
    assert health["problems"] == ["sender: circuit breaker open for BTCUSDC: CONSECUTIVE_REJECTS since "
                                  "2023-11-14 22:13:20 UTC (-2010: Order rejected), 4 orders held"]
    assert m.gauges["indexmaker_circuit_breakers_open"][""] == 1
    account = sender(1) | {"breakers": [dict(tripped["breakers"][0], key="*", scope="account",
                                             reason="INSUFFICIENT_BALANCE")], "held": {"BTCUSDC": 4, "ETHUSDC": 1}}
    (problem,) = poll(view, {"sender": account})["problems"]
    assert "open for the whole account: INSUFFICIENT_BALANCE" in problem and problem.endswith("5 orders held")
    assert poll(view, {"sender": sender(1) | {"breakers": [], "held": {}}})["healthy"]
    assert m.gauges["indexmaker_circuit_breakers_open"][""] == 0


def test_a_changed_inspect_shape_is_a_problem_not_a_crash() -> None:
    m = Metrics(export=False)
    health = poll(SystemView(m), {"orders-0": {"undelivered": "many"}})
    assert any("orders-0: inspect() not understood" in p for p in health["problems"])
    assert m.gauges["indexmaker_actor_up"]["actor=orders-0"] == 1


def test_metrics_refuse_unknown_names_and_wrong_tags() -> None:
    m = Metrics(export=False)
    with pytest.raises(ValueError, match="not a gauge"):
        m.set("indexmaker_no_such", 1)
    with pytest.raises(ValueError, match="takes tags"):
        m.inc("indexmaker_index_orders", 1, {"status": "x"})
    with pytest.raises(ValueError, match="only goes up"):
        m.inc("indexmaker_fills", -1)
    assert json.loads(json.dumps(m.snapshot())) == m.snapshot()


def test_histogram_boundaries_are_what_ray_exports() -> None:
    from ray.util import metrics as rm

    for spec in CATALOGUE.values():
        if spec.kind == "histogram":
            rm.Histogram(spec.name, description=spec.description, boundaries=list(spec.boundaries),
                         tag_keys=spec.tags)  # raises ValueError for a boundary Ray refuses (<= 0)


def test_catalogue_names_are_prometheus_names_and_counters_do_not_end_in_total() -> None:
    import re

    for name, spec in CATALOGUE.items():
        assert re.fullmatch(r"indexmaker_[a-z0-9_]+", name), name
        assert not name.endswith("_total"), name  # Ray adds _total to counters
        assert list(spec.boundaries) == sorted(spec.boundaries)


def test_the_gateway_tallies_outcomes_per_batch() -> None:
    from decimal import Decimal

    from actors.gateway import tally
    from core.invoice import build_invoice
    from protocol.envelope import UserRef
    from protocol.indexmaker_app import InvoiceIssued, OrderAccepted, OrderProgress, OrderRefused
    from protocol.reason_codes import ReasonCode

    u = UserRef(8453, "0x" + "ab" * 20)
    counts = dict.fromkeys(("orders_accepted", "orders_rejected", "orders_failed", "orders_filled",
                            "orders_cancelled", "fill_reports", "invoices"), 0)
    progress = [OrderProgress(u, "c", s, Decimal(0), Decimal(0), Decimal(0)) for s in
                ("in progress", "filled", "rejected", "canceled")]
    invoice = InvoiceIssued(u, build_invoice(order_id="o", user="u", cl_ord_id="c", index="I",
                                             collateral=Decimal(1), cancelled=Decimal(0), returned=Decimal(1),
                                             spent=Decimal(0), filled_units=Decimal(0), lines=[]), 0)
    tally(counts, [OrderAccepted(u, "a"), OrderAccepted(u, "b"), OrderRefused(u, "c", ReasonCode.UNKNOWN_INDEX, "x"),
                   *progress, invoice], reported=False)
    assert counts == {"orders_accepted": 2, "orders_rejected": 1, "orders_failed": 1, "orders_filled": 1,
                      "orders_cancelled": 1, "fill_reports": 4, "invoices": 0}  # an answered GetMintInvoice
    tally(counts, [invoice], reported=True)
    assert counts["invoices"] == 1


def test_stale_books_alone_make_the_system_degraded_and_are_named_with_the_orders_waiting() -> None:
    view = SystemView(Metrics(export=False))
    solver = {"counts": {}, "outbox": [], "mints_owed": [], "history": [],
              "waiting_on_stale_books": {"LINKUSDC": 3}}
    health = poll(view, {"market-0": market(0, stale=["LINKUSDC", "ADAUSDC"]), "market-1": market(1),
                         "solver": solver})
    assert not health["healthy"] and health["status"] == "degraded"  # /health still answers 503: someone waits
    assert health["stale_books"] == {"ADAUSDC": 0, "LINKUSDC": 3}
    assert health["lags"]["orders_waiting_on_stale_books"] == 3
    assert any("market-0: 2 stale symbols ['ADAUSDC', 'LINKUSDC']" in p for p in health["problems"])
    # anything else wrong as well: unhealthy, the stale books still named
    worse = poll(view, {"market-0": market(0, stale=["LINKUSDC"]), "solver": solver, "minter": None})
    assert worse["status"] == "unhealthy" and worse["stale_books"] == {"LINKUSDC": 3}
    back = poll(view, {"market-0": market(0), "solver": {**solver, "waiting_on_stale_books": {}}})
    assert back["healthy"] and back["status"] == "ok" and back["stale_books"] == {}


def test_mints_owed_are_the_minters_queue() -> None:
    m = Metrics(export=False)
    view = SystemView(m)
    health = poll(view, {"minter": {"counts": {"minted": 4}, "errors": [], "owed": 2, "mints_owed": [{}, {}]}})
    assert health["lags"]["mints_owed"] == 2 and m.gauges["indexmaker_mints_owed"][""] == 2
    assert counter(m, "indexmaker_mints") == 4
    health = poll(view, {"minter": {"counts": {"minted": 6}, "errors": [], "owed": 0, "mints_owed": []}})
    assert health["lags"]["mints_owed"] == 0 and m.gauges["indexmaker_mints_owed"][""] == 0
