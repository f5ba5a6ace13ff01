"""The sender's guards on a real local Ray instance, a real redis-server and the exchange simulator: an order
outside the exchange's percent-price band is refused by name before it is sent (the exchange never sees it, its
ORDERS count does not move, the average price is read once per symbol and not again while fresh); a symbol
rejected N times in a row stops, its next orders wait in the sender (across a restart) until `indexmaker resume`;
an insufficient-balance reject stops the whole account until the cool-off."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from decimal import Decimal

import pytest

ray = pytest.importorskip("ray")

from actors.order_sender import SENDER_NAME, OrderSender, SenderOptions  # noqa: E402
from core.batch_planner import BasketLeg  # noqa: E402
from core.config import REPO_ROOT  # noqa: E402
from core.sender_messages import OrderDone  # noqa: E402
from core.side import Side  # noqa: E402
from core.symbol_filters import min_quantity_for, round_price  # noqa: E402
from tests.integration.executions_reader import ExecutionsReader  # noqa: E402
from tests.integration.simulator_process import SimulatorProcess  # noqa: E402
from tests.integration.test_order_sender import (  # noqa: E402
    WAIT_S, buy_orders, check_reports, exchange_orders, limits, make_sender, sim_filters)
from world.run_file import write_run  # noqa: E402

BALANCE = "Account has insufficient balance for requested action."


def stats(sim: SimulatorProcess) -> dict:
    return sim.get("/_admin/test/stats")


def wait_settled(sender, batch_id: str, symbol: str) -> dict:  # noqa: ANN001
    """The batch's order of `symbol` once it is final on the exchange (a condition on the sender's state)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        orders = {o["symbol"]: o for o in ray.get(sender.orders.remote(batch_id))}
        order = orders.get(symbol)
        if order is not None and order["status"] in ("FILLED", "EXPIRED", "CANCELED", "REJECTED"):
            return order
        assert time.monotonic() < deadline, orders


def test_an_order_outside_the_percent_band_is_refused_before_sending(ray_cluster, redis_server):
    with SimulatorProcess(n_symbols=3, update_ms=100, rate_limits=limits(300)) as sim:
        sender, sink = make_sender(ray_cluster, sim, redis_server)
        filters = sim_filters(sim)
        a, b = sim.symbols[:2]
        (good,) = buy_orders(sim, filters, [a])
        f = filters[b]
        assert f.percent_price_filter == "PERCENT_PRICE_BY_SIDE" and f.bid_up == 5
        avg = Decimal(sim.get(f"/api/v3/avgPrice?symbol={b}")["price"])
        price = round_price(f, avg * f.bid_up * Decimal("1.05"), Side.BUY)  # 5 % above the band's top
        qty = min_quantity_for(f, price)
        before = stats(sim)
        results = ray.get(sender.submit.remote("band", [good, BasketLeg(b, Side.BUY, price, qty, qty)]))
        assert [(r.accepted, r.filter) for r in results] == [(True, None), (False, "PERCENT_PRICE_BY_SIDE")]
        assert results[1].client_order_id is None and "above" in results[1].reason
        assert ray.get(sender.wait_idle.remote(WAIT_S))
        after = stats(sim)
        assert after["order_requests"] - before["order_requests"] == 1  # the exchange never saw the refused one
        assert after["avg_price_requests"] - before["avg_price_requests"] == 2  # one per symbol of the batch
        assert [o["clientOrderId"] for o in exchange_orders(sim, "band")] == [f"band.{a}.0"]
        info = ray.get(sender.inspect.remote())
        assert info["counts"]["sent"] == 1 and info["counts"]["rejected"] == 1
        (day,) = [w for w in info["rate_limits"]["windows"] if w["kind"] == "ORDERS" and w["interval_ms"] == 86_400_000]
        assert day["used"] == 1  # one ORDERS slot of the day used, not two (the 1 s window may have rolled)
        # While the cached averages are fresh, a batch on the same symbols costs no extra round trip.
        again = ray.get(sender.submit.remote("band2", buy_orders(sim, filters, [a, b])))
        assert all(r.accepted for r in again)
        assert ray.get(sender.wait_idle.remote(WAIT_S))
        assert stats(sim)["avg_price_requests"] == after["avg_price_requests"]
        ray.get(sender.stop.remote())


def test_the_average_prices_of_recent_batches_are_kept_fresh_so_a_batch_does_not_wait_for_them(ray_cluster,
                                                                                                 redis_server):
    with SimulatorProcess(n_symbols=3, update_ms=100, rate_limits=limits(300)) as sim:
        sender, _ = make_sender(ray_cluster, sim, redis_server, avg_price_max_age_ms=1_500, avg_price_refresh_ms=300,
                                avg_price_keep_ms=60_000)
        filters = sim_filters(sim)
        a, b = sim.symbols[:2]
        assert all(r.accepted for r in ray.get(sender.submit.remote("k1", buy_orders(sim, filters, [a, b]))))

        def counts() -> dict:
            return ray.get(sender.inspect.remote())["counts"]
        assert counts()["avg_price_fetches"] == 2  # the first batch on these symbols waits for their values
        deadline = time.monotonic() + WAIT_S
        while counts()["avg_price_refreshes"] < 4:  # two refresh rounds: past the first values' 1.5 s of age
            assert time.monotonic() < deadline, counts()
        before = counts()
        assert all(r.accepted for r in ray.get(sender.submit.remote("k2", buy_orders(sim, filters, [a, b]))))
        after = counts()
        # Every fetch since is the background's: the batch itself asked for no value (they were kept fresh).
        assert (after["avg_price_fetches"] - before["avg_price_fetches"]
                == after["avg_price_refreshes"] - before["avg_price_refreshes"])
        assert ray.get(sender.wait_idle.remote(WAIT_S))
        ray.get(sender.stop.remote())


def test_consecutive_rejects_stop_a_symbol_until_the_operator_resumes_it(ray_cluster, redis_server, tmp_path):
    with SimulatorProcess(n_symbols=3, update_ms=100, rate_limits=limits(300)) as sim:
        options = SenderOptions(sim.url, sim.ws_url, sim.api_key, sim.secret, redis_url=redis_server.url,
                                account=f"t{os.getpid()}g", recv_window_ms=2_000, request_timeout_ms=1_000,
                                resolve_margin_ms=500, breaker_threshold=2, breaker_cool_off_ms=0)
        # The name the CLI looks for, in this test session's own namespace.
        sender = OrderSender.options(name=SENDER_NAME).remote(options)
        sink = ExecutionsReader(redis_server.url, options.account)
        ray.get(sender.start.remote())
        try:
            filters = sim_filters(sim)
            s, t = sim.symbols[:2]
            sim.post("/_admin/faults", {"reject_orders": {"count": 2, "code": -2010, "msg": "Order rejected (test).",
                                                          "symbol": s}})
            for i in range(2):
                assert all(r.accepted for r in ray.get(sender.submit.remote(f"trip{i}", buy_orders(sim, filters,
                                                                                                  [s, t]))))
                assert ray.get(sender.wait_idle.remote(WAIT_S))
            info = ray.get(sender.inspect.remote())
            assert [(b["key"], b["scope"], b["reason"], b["rejects"]) for b in info["breakers"]] == [
                (s, "symbol", "CONSECUTIVE_REJECTS", 2)]
            assert "Order rejected (test)." in info["breakers"][0]["detail"]
            sent = stats(sim)["order_requests"]
            assert sent == 4

            # The next batch is accepted (recorded), its order for the stopped symbol waits; the other one goes.
            assert all(r.accepted for r in ray.get(sender.submit.remote("held", buy_orders(sim, filters, [s, t]))))
            wait_settled(sender, "held", t)
            assert stats(sim)["order_requests"] == sent + 1
            assert [o["clientOrderId"] for o in exchange_orders(sim, "held")] == [f"held.{t}.0"]
            info = ray.get(sender.inspect.remote())
            assert info["held"] == {s: 1}
            assert [o["status"] for o in ray.get(sender.orders.remote("held")) if o["symbol"] == s] == ["INTENDED"]

            # A restart keeps the breaker (stored with the sender's state) and the held order held.
            ray.kill(sender, no_restart=False)
            deadline = time.monotonic() + WAIT_S
            while True:  # ray.kill is asynchronous: a call may still reach the old process, or find none
                try:
                    if ray.get(sender.start.remote())["restarted"]:
                        break
                except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError):  # still restarting
                    pass
                assert time.monotonic() < deadline
            info = ray.get(sender.inspect.remote())
            assert info["restarted"] and [b["key"] for b in info["breakers"]] == [s] and info["held"] == {s: 1}
            assert stats(sim)["order_requests"] == sent + 1

            # The operator clears it: `indexmaker resume SYMBOL`, finding the system through the run file.
            write_run(tmp_path, phase="up", pid=os.getpid(), actors=[SENDER_NAME],
                      ray={"address": ray.get_runtime_context().gcs_address, "namespace": ray_cluster})
            env = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
            done = subprocess.run([sys.executable, "cli.py", "resume", s, "--state-dir", str(tmp_path)],
                                  cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr
            assert f"cleared the circuit breaker for {s}: CONSECUTIVE_REJECTS" in done.stdout
            assert "1 held order(s) released" in done.stdout
            assert ray.get(sender.wait_idle.remote(WAIT_S))
            info = ray.get(sender.inspect.remote())
            assert info["breakers"] == [] and info["held"] == {}
            assert sorted(o["clientOrderId"] for o in exchange_orders(sim, "held")) == sorted(
                [f"held.{s}.0", f"held.{t}.0"])
            # Nothing dropped: the consumer gets each rejected order's end and every fill of what was sent.
            dump = sink.dump()
            check_reports(dump, exchange_orders(sim, "trip") + exchange_orders(sim, "held"))
            rejected = {e.client_order_id for e in dump["entries"]
                        if isinstance(e, OrderDone) and e.status == "REJECTED"}
            assert rejected == {f"trip0.{s}.0", f"trip1.{s}.0"}
            # An unknown symbol is refused with a reason, not a crash.
            bad = subprocess.run([sys.executable, "cli.py", "resume", "NOPEUSDC", "--state-dir", str(tmp_path)],
                                 cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
            assert bad.returncode == 1 and "NOPEUSDC is not traded on this exchange" in bad.stderr
        finally:
            ray.get(sender.stop.remote())
            ray.kill(sender, no_restart=True)


def test_an_insufficient_balance_reject_stops_the_account_until_the_cool_off(ray_cluster, redis_server):
    with SimulatorProcess(n_symbols=3, update_ms=100, rate_limits=limits(300)) as sim:
        cool_off_ms = 3_000
        sender, sink = make_sender(ray_cluster, sim, redis_server, breaker_threshold=5,
                                   breaker_cool_off_ms=cool_off_ms)
        filters = sim_filters(sim)
        s, t = sim.symbols[:2]
        sim.post("/_admin/faults", {"reject_orders": {"count": 1, "code": -2010, "msg": BALANCE, "symbol": s}})
        assert all(r.accepted for r in ray.get(sender.submit.remote("poor", buy_orders(sim, filters, [s]))))
        assert ray.get(sender.wait_idle.remote(WAIT_S))
        (trip,) = ray.get(sender.inspect.remote())["breakers"]
        assert (trip["key"], trip["scope"], trip["reason"]) == ("*", "account", "INSUFFICIENT_BALANCE")
        sent = stats(sim)["order_requests"]
        # Every symbol waits now, not only the one that was refused.
        assert all(r.accepted for r in ray.get(sender.submit.remote("wait", buy_orders(sim, filters, [s, t]))))
        info = ray.get(sender.inspect.remote())
        assert info["held"] == {s: 1, t: 1} and stats(sim)["order_requests"] == sent
        # Idle only once the cool-off has released them and they have settled (the sender wakes itself for it).
        assert ray.get(sender.wait_idle.remote(WAIT_S))
        info = ray.get(sender.inspect.remote())
        assert info["breakers"] == [] and info["held"] == {}
        waited = exchange_orders(sim, "wait")
        assert sorted(o["clientOrderId"] for o in waited) == sorted([f"wait.{s}.0", f"wait.{t}.0"])
        assert min(o["time"] for o in waited) >= trip["since_ms"] + cool_off_ms  # not one sent before
        check_reports(sink.dump(), exchange_orders(sim, "poor") + waited)
        ray.get(sender.stop.remote())


def test_a_halted_pair_is_told_to_the_solver_without_tripping_a_breaker_and_reopens_with_the_exchange(
        ray_cluster, redis_server):
    """The exchange halts a pair (status BREAK): the order meets -1013 "Market is closed.", is rejected, and the
    sender's order budget names the pair closed (what makes the solver hold its indexes back), which trips no
    breaker; the status read that follows takes the pair's filters anew, so a later order for it is refused before
    it is sent. Once exchangeInfo lists it TRADING again, the next status read reopens it."""
    with SimulatorProcess(n_symbols=3, update_ms=100, rate_limits=limits(300)) as sim:
        sender, _ = make_sender(ray_cluster, sim, redis_server, breaker_threshold=1, closed_poll_ms=100,
                                status_poll_ms=60_000)
        filters = sim_filters(sim)
        a, b = sim.symbols[:2]
        sim.post("/_admin/market_status", {"symbol": a, "status": "BREAK"})
        ray.get(sender.submit.remote("halt0", buy_orders(sim, filters, [a, b])))
        assert wait_settled(sender, "halt0", a)["status"] == "REJECTED"
        assert wait_settled(sender, "halt0", b)["status"] == "FILLED"
        assert ray.get(sender.order_budget.remote())[2] == [a]
        deadline = time.monotonic() + WAIT_S
        while ray.get(sender.inspect.remote())["closed_pairs"] != {a: "BREAK"}:  # the status read after the -1013
            assert time.monotonic() < deadline, ray.get(sender.inspect.remote())["closed_pairs"]
        sent = stats(sim)["order_requests"]
        refused, filled = ray.get(sender.submit.remote("halt1", buy_orders(sim, filters, [a, b])))
        assert not refused.accepted and refused.filter == "MARKET_CLOSED"
        assert wait_settled(sender, "halt1", b)["status"] == "FILLED"
        assert stats(sim)["order_requests"] == sent + 1  # only b's: a's never left
        inspect = ray.get(sender.inspect.remote())
        assert inspect["counts"]["breaker_trips"] == 0 and inspect["breakers"] == []
        sim.post("/_admin/market_status", {"symbol": a, "status": "TRADING"})
        deadline = time.monotonic() + WAIT_S
        while ray.get(sender.order_budget.remote())[2]:  # the sender's next status read (every 100 ms here)
            assert time.monotonic() < deadline, "the pair never reopened"
        results = ray.get(sender.submit.remote("open", buy_orders(sim, filters, [a])))
        assert results[0].accepted and wait_settled(sender, "open", a)["status"] == "FILLED"
        assert ray.get(sender.wait_idle.remote(WAIT_S))
        ray.get(sender.stop.remote())
