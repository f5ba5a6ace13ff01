"""The OrderSender on a real local Ray instance, a real redis-server and the exchange simulator (its own process):
a 1,000-order burst under the rate limits with no rejection and fills that add up, a kill in the middle of a batch
with nothing sent twice and no fill lost or reported twice, filter violations rejected by name and never sent,
unknown outcomes resolved by a query before any resend."""
from __future__ import annotations

import time
import uuid
from collections import Counter, defaultdict
from decimal import Decimal

import pytest

ray = pytest.importorskip("ray")

from actors.order_sender import OrderSender, SenderOptions  # noqa: E402
from core.batch_planner import AssetOrder as Planned  # noqa: E402
from core.sender_messages import OrderDone, SenderFill  # noqa: E402
from core.side import Side  # noqa: E402
from core.symbol_filters import min_quantity_for, parse_exchange_info  # noqa: E402
from tests.integration.executions_reader import ExecutionsReader  # noqa: E402
from tests.integration.simulator_process import SimulatorProcess  # noqa: E402

WAIT_S = 60.0  # upper bound on any single wait; the waits themselves are on conditions


def limits(orders: int, per_seconds: int = 1) -> list[dict]:
    return [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": per_seconds, "limit": orders},
            {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
            {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000}]


def sim_filters(sim: SimulatorProcess) -> dict:
    """The simulator's own filters (it twins or synthesises symbols the real capture lacks)."""
    return parse_exchange_info(sim.get("/api/v3/exchangeInfo"))


def make_sender(ray_cluster, sim: SimulatorProcess, redis_server, **kw):
    options = SenderOptions(sim.url, sim.ws_url, sim.api_key, sim.secret, redis_url=redis_server.url,
                            account=f"t{uuid.uuid4().hex[:8]}", recv_window_ms=2_000, request_timeout_ms=1_000,
                            resolve_margin_ms=500, **kw)
    name = f"sender-{uuid.uuid4().hex[:6]}"
    sender = OrderSender.options(name=name).remote(options)
    ray.get(sender.start.remote())
    return sender, ExecutionsReader(redis_server.url, options.account)


def buy_orders(sim: SimulatorProcess, filters, symbols: list[str], notional_factor: int = 2) -> list[Planned]:
    """A taker BUY per symbol: limit 1 % above the best ask, about twice the minimum notional."""
    tops = sim.get("/_admin/test/books?limit=1")
    out = []
    for s in symbols:
        ask = Decimal(tops[s]["asks"][0][0])
        price = ask * Decimal("1.01")
        qty = min_quantity_for(filters[s], price) * notional_factor
        out.append(Planned(s, Side.BUY, price, qty, qty))
    return out


def exchange_orders(sim: SimulatorProcess, prefix: str) -> list[dict]:
    return [o for o in sim.get("/_admin/test/orders") if o["clientOrderId"].startswith(prefix)]


def check_reports(sink_dump: dict, exchange: list[dict]) -> None:
    """The consumer's reports against the exchange's own record: every fill once, nothing else, and each order
    closed with the quantity its fills add up to."""
    entries = sink_dump["entries"]
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))  # gap-free
    assert sink_dump["conflicts"] == 0
    fills = [e for e in entries if isinstance(e, SenderFill)]
    dones = {e.client_order_id: e for e in entries if isinstance(e, OrderDone)}
    assert len({f.key for f in fills}) == len(fills)  # no fill reported twice
    got = {(f.symbol, f.trade_id): f.quantity for f in fills}
    expected = {(o["symbol"], t): Decimal(q) for o in exchange for t, q in o["fills"]}
    assert got == expected  # no fill lost, none invented
    per_order: dict[str, Decimal] = defaultdict(Decimal)
    for f in fills:
        per_order[f.client_order_id] += f.quantity
    for o in exchange:
        done = dones[o["clientOrderId"]]
        assert done.executed_qty == Decimal(o["executedQty"]) == per_order[o["clientOrderId"]]
        assert done.status == o["status"]
        last_fill_seq = max((f.seq for f in fills if f.client_order_id == done.client_order_id), default=0)
        assert done.seq > last_fill_seq  # an order is closed only after its fills


def test_a_burst_of_1000_orders_gets_through_without_a_rate_limit_rejection(ray_cluster, redis_server):
    with SimulatorProcess(n_symbols=100, update_ms=100, rate_limits=limits(300)) as sim:
        sender, sink = make_sender(ray_cluster, sim, redis_server)
        filters = sim_filters(sim)
        started = time.monotonic()
        batches = {f"burst{i}": buy_orders(sim, filters, sim.symbols) for i in range(10)}
        results = ray.get([sender.submit.remote(b, orders) for b, orders in batches.items()])
        assert all(r.accepted for rs in results for r in rs) and sum(len(rs) for rs in results) == 1000
        assert ray.get(sender.wait_idle.remote(WAIT_S))
        elapsed = time.monotonic() - started
        info = ray.get(sender.inspect.remote())
        stats = sim.get("/_admin/test/stats")
        assert info["counts"]["rate_limited"] == 0 and stats["http_429"] == 0 and stats["http_418"] == 0
        assert stats["order_requests"] == info["counts"]["sent"] == 1000
        assert elapsed >= 1000 / 285 - 1  # the budget (95 % of 300/s) paced it: no faster than allowed
        dump = sink.dump()
        check_reports(dump, exchange_orders(sim, "burst"))
        assert sum(isinstance(e, OrderDone) for e in dump["entries"]) == 1000
        ray.get(sender.stop.remote())


def test_a_sender_killed_mid_batch_comes_back_with_nothing_duplicated_or_lost(ray_cluster, redis_server):
    with SimulatorProcess(n_symbols=100, update_ms=100, rate_limits=limits(100)) as sim:
        sender, sink = make_sender(ray_cluster, sim, redis_server)
        filters = sim_filters(sim)
        batches = {f"kill{i}": buy_orders(sim, filters, sim.symbols) for i in range(3)}
        # The exchange answers the first 40 orders late (still within the client's timeout), so that the kill
        # finds requests in flight: on the exchange, not yet answered, SENT in Redis.
        sim.post("/_admin/faults", {"order_delay_ms": 800, "order_delay_count": 40})
        for b, orders in batches.items():
            assert all(r.accepted for r in ray.get(sender.submit.remote(b, orders)))
        deadline = time.monotonic() + WAIT_S
        while (info := ray.get(sender.inspect.remote()))["in_flight"] < 20:  # a condition on the actor's state
            assert time.monotonic() < deadline
        ray.kill(sender, no_restart=False)
        assert info["queued"] > 100  # most of the 300 orders were still waiting for their rate-limit window
        deadline = time.monotonic() + WAIT_S
        while True:  # the restarted actor answers once __init__ has run again (spec/ray.md §6: ~2 s)
            try:
                assert ray.get(sender.wait_idle.remote(WAIT_S))
                break
            except ray.exceptions.RayActorError:
                assert time.monotonic() < deadline
        after = ray.get(sender.inspect.remote())
        assert after["restarted"] and after["counts"]["rate_limited"] == 0
        assert after["counts"]["queries"] >= 20  # the orders that were in flight were asked for, by client id
        exchange = exchange_orders(sim, "kill")
        per_intent = Counter(o["clientOrderId"].rsplit(".", 1)[0] for o in exchange)
        assert len(per_intent) == 300 and set(per_intent.values()) == {1}  # each planned order on the exchange once
        assert len({o["clientOrderId"] for o in exchange}) == len(exchange)
        dump = sink.dump()
        check_reports(dump, exchange)
        assert sim.get("/_admin/test/stats")["http_429"] == 0
        ray.get(sender.stop.remote())


def test_a_filter_violating_order_is_rejected_by_name_and_never_sent(ray_cluster, redis_server):
    with SimulatorProcess(n_symbols=10, update_ms=100, rate_limits=limits(300)) as sim:
        sender, sink = make_sender(ray_cluster, sim, redis_server)
        filters = sim_filters(sim)
        good = buy_orders(sim, filters, sim.symbols[:4])
        s2 = sim.symbols[2]
        tiny = Planned(s2, Side.BUY, good[2].price, filters[s2].min_qty, Decimal(0))  # under minNotional
        assert tiny.price * tiny.quantity < filters[s2].min_notional
        huge = Planned(sim.symbols[3], Side.BUY, good[3].price, Decimal("1e12"), Decimal(0))  # a price in its band
        good = good[:2]
        results = ray.get(sender.submit.remote("filt", good + [tiny, huge]))
        assert [(r.accepted, r.filter) for r in results] == [(True, None), (True, None), (False, "NOTIONAL"),
                                                             (False, "LOT_SIZE")]
        assert all(r.client_order_id is None for r in results[2:])
        assert ray.get(sender.submit.remote("filt", [])) == results  # a retried batch gets the same answer
        assert ray.get(sender.wait_idle.remote(WAIT_S))
        assert sim.get("/_admin/test/stats")["order_requests"] == 2
        assert {o["clientOrderId"] for o in exchange_orders(sim, "filt")} == {"filt.%s.0" % s for s in
                                                                              sim.symbols[:2]}
        ray.get(sender.stop.remote())


def test_unknown_outcomes_are_resolved_by_query_before_any_resend(ray_cluster, redis_server):
    with SimulatorProcess(n_symbols=10, update_ms=100, rate_limits=limits(300)) as sim:
        sender, sink = make_sender(ray_cluster, sim, redis_server)
        filters = sim_filters(sim)
        a, b, c = buy_orders(sim, filters, sim.symbols[:3])
        # 1. A 5xx before execution: the query finds nothing; once recvWindow has passed it goes out as attempt 1.
        sim.post("/_admin/faults", {"reject_orders": {"count": 1, "status": 500, "code": -1007,
                                                      "msg": "Timeout waiting for response from backend server."}})
        ray.get(sender.submit.remote("unk5xx", [a]))
        assert ray.get(sender.wait_idle.remote(WAIT_S))
        assert [o["clientOrderId"] for o in exchange_orders(sim, "unk5xx")] == [f"unk5xx.{a.symbol}.1"]
        assert ray.get(sender.inspect.remote())["counts"]["resent"] == 1
        # 2. The order executed but its answer was lost (-1007): the query finds it; nothing is resent.
        sim.post("/_admin/test/lose_answers", {"count": 1})
        ray.get(sender.submit.remote("unklost", [b]))
        assert ray.get(sender.wait_idle.remote(WAIT_S))
        assert sim.get("/_admin/test/stats")["answers_lost"] == 1
        assert [o["clientOrderId"] for o in exchange_orders(sim, "unklost")] == [f"unklost.{b.symbol}.0"]
        assert ray.get(sender.inspect.remote())["counts"]["resent"] == 1
        # 3. No answer within the client's timeout (the exchange holds the request longer): one order either way.
        sim.post("/_admin/faults", {"order_delay_ms": 1_500, "order_delay_count": 1})
        ray.get(sender.submit.remote("unkslow", [c]))
        assert ray.get(sender.wait_idle.remote(WAIT_S))
        slow = exchange_orders(sim, "unkslow")
        assert len(slow) == 1  # exactly one order for that intent, whichever attempt it was
        info = ray.get(sender.inspect.remote())
        assert info["counts"]["unknown"] == 3 and info["counts"]["resent"] == 1 + (slow[0]["clientOrderId"][-1] != "0")
        check_reports(sink.dump(), exchange_orders(sim, "unk"))
        ray.get(sender.stop.remote())
