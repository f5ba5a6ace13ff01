"""Benchmark of the whole buy flow, nothing mocked (local Ray, redis-server with fsync always, the simulator; SY100):
one basket's fill time against a bare ccxt script (basket_vs_floor, cold and warm), index orders filled per minute
and exchange orders per index order for 1, 10 and 100 users, and per index order the actor calls and Redis writes
up to its stored Mint Invoice. Tables, then one JSON line.

`--indexes`: the six real indexes served at once (155 pairs), the users spread over them (user i buys the i-th
index, round robin): per batch, the exchange orders sent against the distinct pairs its orders needed (perfect
netting: equal), against netting within each index only and against no netting; SY100's basket against the warm
floor in that world.
    .venv/bin/python bench/flow.py [--trials 5] [--rounds 2] [--amount 1000] [--tick-ms 100] [--no-mint]
    .venv/bin/python bench/flow.py --indexes [--users 100] [--trials 3] [--rounds 2]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import core  # noqa: E402,F401

INDEX = "SY100"
#: The six real indexes (data/indexes), served together with --indexes.
REAL_INDEXES = ("SY100", "SYAI", "SYAZ", "SYDF", "SYL2", "SYME")
CHAIN = 42161
ORDER_SHARDS = 2
MARKET_SHARDS = 2
USER_COUNTS = (1, 10, 100)
ORDERS_LIMIT = 100  # Binance spot: ORDERS 100 per 10 s per account
ORDERS_INTERVAL_S = 10
PHASE_TIMEOUT_S = 150.0


def rate_limits() -> list[dict[str, Any]]:
    """Binance spot's published limits (exchangeInfo rateLimits)."""
    return [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": ORDERS_INTERVAL_S,
             "limit": ORDERS_LIMIT},
            {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
            {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000}]


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def address(i: int) -> str:
    return f"0x{0xB0000 + i:040x}"


# ============================================================================================== the world
class World:
    """Ray actors + redis + simulator, as tests/integration/test_flow_core.py starts them."""

    def __init__(self, ray: Any, namespace: str, tmp: Path, args: argparse.Namespace) -> None:
        from actors.market_data import MarketDataOptions, start_market_data
        from actors.order_books import OrderBooksOptions, start_order_books
        from actors.order_shards import orders_shard_name, split_by_shard
        from actors.order_sender import OrderSender, SenderOptions
        from actors.solver import SolverOptions, start_solver
        from bench.flow_driver import FlowDriver
        from core.basket import load_indexes
        from core.batch_planner import PlannerLimits
        from core.chain_events import CollateralDeposit
        from core.symbol_filters import parse_exchange_info
        from tests.integration.simulator_process import SimulatorProcess
        from world.redis_server import RedisServer

        self.ray = ray
        every = load_indexes(ROOT / "data" / "indexes")
        # `indexes`: True serves the six real indexes, a list of names serves those (a smaller world), else SY100
        served = args.indexes if isinstance(args.indexes, (list, tuple)) else (REAL_INDEXES if args.indexes else
                                                                                (INDEX,))
        self.baskets = {k: every[k] for k in served}
        self.basket = self.baskets.get(INDEX) or next(iter(self.baskets.values()))
        self.symbols = sorted({a.symbol for b in self.baskets.values() for a in b.assets})
        self.redis = RedisServer(tmp / "redis").start()
        self.sim = SimulatorProcess(symbols=self.symbols, update_ms=100, rate_limits=rate_limits()).start()
        sim = self.sim
        missing = set(self.symbols) - set(sim.symbols)
        assert not missing, f"the simulator does not serve {sorted(missing)}"
        self.filters = parse_exchange_info(sim.get("/api/v3/exchangeInfo"))
        self.actors: list[Any] = []
        self.markets = start_market_data(MarketDataOptions(sim.url, sim.ws_url, book_limit=100), self.symbols,
                                         MARKET_SHARDS, namespace=namespace)
        self.actors += self.markets
        tag = uuid.uuid4().hex[:6]
        sender_name = f"sender-{tag}"
        self.sender = OrderSender.options(name=sender_name).remote(SenderOptions(
            sim.url, sim.ws_url, sim.api_key, sim.secret, redis_url=self.redis.url, account=f"flow{tag}",
            launch_yield_every=args.launch_yield_every))
        self.actors.append(self.sender)
        self.solver_name = f"solver-{tag}"
        self.minter_name = f"minter-{tag}" if args.mint else None
        self.shards = start_order_books(OrderBooksOptions(self.redis.url, ORDER_SHARDS, tuple(self.baskets),
                                                          key_prefix=f"orders-{tag}", solver_name=self.solver_name,
                                                          minter_name=self.minter_name,
                                                          **self._arrival_options(args)),
                                        namespace=namespace)
        self.actors += self.shards
        self.chains = self._start_mint_leg(tmp, namespace, tag) if args.mint else None
        driver_name = f"flow-users-{tag}"
        self.driver = FlowDriver.options(name=driver_name).remote(
            [orders_shard_name(k) for k in range(ORDER_SHARDS)], namespace, CHAIN)
        self.actors.append(self.driver)
        ray.get(self.driver.follow.remote(self.redis.url, f"orders-{tag}", ORDER_SHARDS))
        ray.get(self.sender.start.remote())
        assert all(ray.get([m.wait_ready.remote(60.0) for m in self.markets])), "market data not ready"

        # Collateral for every user: enough for every order it will send.
        amount = Decimal(args.amount)
        deposit = amount * (1 + args.trials + args.rounds * len(USER_COUNTS)) + 100  # 1: the warm-up basket
        deposits = [CollateralDeposit(CHAIN, f"0x{i + 1:064x}", 0, 1, address(i), deposit)
                    for i in range(max(USER_COUNTS))]
        for k, items in split_by_shard(deposits, ORDER_SHARDS, lambda d: d.user).items():
            ray.get(self.shards[k].credit.remote(items))

        self.solver = start_solver(SolverOptions(self.redis.url, ORDER_SHARDS, MARKET_SHARDS, namespace=namespace,
                                                 name=f"solver-{tag}", sender_name=sender_name, sender_account=f"flow{tag}", shard_prefix=f"orders-{tag}",
                                                 tick_interval_ms=args.tick_ms),
                                   self.baskets, self.filters, PlannerLimits())
        self.actors.append(self.solver)
        ray.get(self.solver.start.remote())
        self._last_orders_at = 0.0

    def _arrival_options(self, args: argparse.Namespace) -> dict[str, Any]:
        """With `args.arrival`, the shards stamp each order with its basket's value on the market shards' books as
        the launcher configures them (every invoice then reports the shortfall); without, orders carry none."""
        if not getattr(args, "arrival", False):
            return {}
        return {"baskets": {i: b.quantities() for i, b in self.baskets.items()}, "market_shards": MARKET_SHARDS}

    def _start_mint_leg(self, tmp: Path, namespace: str, tag: str) -> Any:
        """anvil x2 with the contracts, the chain actor (its deposit listener has no router: nothing is deposited
        on chain here) and the minter the shards push to."""
        from actors.chain_actor import ChainActor
        from actors.minter import MinterOptions, start_minter
        from core.config import ChainConfig
        from world.chains import LocalChains, LocalChainsConfig

        chains = LocalChains(LocalChainsConfig(users=0, index_tokens=tuple((k, k) for k in self.baskets)),
                             state_file=tmp / "world.json")
        chains.start()
        chain_name = f"chain-{tag}"
        chain = ChainActor.options(name=chain_name).remote(
            str(tmp / "world.json"), self.redis.url, ChainConfig(confirmations=0, base_confirmations=0,
                                                                  receipt_poll_ms=20), router_name=None)
        self.actors.append(chain)
        self.ray.get(chain.start.remote())
        self.minter = start_minter(MinterOptions(namespace=namespace, chain_name=chain_name, name=self.minter_name,
                                                 order_shards=ORDER_SHARDS))
        self.actors.append(self.minter)
        return chains

    def minted_all(self, timeout_s: float = PHASE_TIMEOUT_S) -> Counter[str]:
        """Wait until every filled order has its invoice (its mint landed), as the users' reports say. Returns the
        actor calls this wait made (not the system's: (4) leaves them out)."""
        made: Counter[str] = Counter()
        if self.chains is None:
            return made
        owed = self.ray.get(self.driver.wait_invoiced.remote(timeout_s))
        made["FlowDriver.wait_invoiced"] = 1
        assert owed == 0, f"{owed} orders still owed their invoice after {timeout_s} s"
        return made

    def close(self) -> None:
        for a in self.actors:
            try:
                self.ray.kill(a, no_restart=True)
            except Exception:  # noqa: BLE001
                pass
        if self.chains is not None:
            self.chains.stop()
        self.sim.stop()
        self.redis.stop()

    # ------------------------------------------------------------------ helpers
    def quiet(self) -> None:
        assert self.ray.get(self.solver.wait_quiet.remote(120.0)), "solver not quiet"
        assert self.ray.get(self.sender.wait_idle.remote(120.0)), "sender not idle"

    def fresh_window(self) -> None:
        """Let the exchange's ORDERS window pass since the last order anyone sent: every timed run starts with the
        whole 100 / 10 s budget, as a basket that arrives on a calm system would."""
        wait = self._last_orders_at + ORDERS_INTERVAL_S + 0.5 - time.monotonic()
        if wait > 0:
            time.sleep(wait)  # not synchronisation: the exchange's rolling window has to elapse

    def exchange_orders(self) -> dict[str, dict[str, Any]]:
        return {o["clientOrderId"]: o for o in self.sim.get("/_admin/test/orders")}

    def solver_info(self) -> dict[str, Any]:
        return self.ray.get(self.solver.inspect.remote())

    def run_users(self, n: int, rounds: int, amount: str, tag: str, spread: bool = False) -> dict[str, Any]:
        """n users, `rounds` orders each; `spread`: user i buys the i-th served index (round robin), else SY100."""
        before = set(self.exchange_orders())
        counts0 = self.solver_info()["counts"]
        names = list(self.baskets)
        index: str | list[str] = [names[i % len(names)] for i in range(n)] if spread else INDEX
        out = self.ray.get(self.driver.run.remote([address(i) for i in range(n)], rounds, amount, index, tag,
                                                  PHASE_TIMEOUT_S))
        self.quiet()
        self._last_orders_at = time.monotonic()
        after = self.exchange_orders()
        new = {c: o for c, o in after.items() if c not in before}
        info = self.solver_info()
        out["exchange_orders"] = new
        out["batches"] = info["counts"]["batches"] - counts0["batches"]
        out["history"] = [h for h in info["history"] if any(c.startswith(h["batch_id"] + ".") for c in new)]
        return out


# ============================================================================================== the floor
class Floor:
    """The floor: the same asset orders straight through ccxt's unified create_order (on the client exchange/gateway.py
    configures), all at once as far as the ORDERS limit allows, ccxt's 50 ms throttle off (Binance does not ask for it).

    `cold` is a bare script as it starts (a connection opened per concurrent request); `warm` kept its connections
    open, as the sender does: the stricter floor for a long-running sender."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.loop = asyncio.new_event_loop()
        self._warm: Any = None

    def _gateway(self, keepalive: bool) -> Any:
        from exchange.gateway import BinanceGateway
        sim = self.world.sim
        return BinanceGateway(sim.url, sim.ws_url, sim.api_key, sim.secret, enable_rate_limit=False,
                              timeout_ms=10_000, http_keepalive_s=300.0 if keepalive else None)

    def cold(self, orders: list[tuple[str, Decimal, Decimal]], tag: str) -> dict[str, Any]:
        async def run() -> dict[str, Any]:
            gw = self._gateway(False)
            try:
                await gw.load_markets()  # outside the timing: a running script has its markets
                return await self._send(gw, orders, tag)
            finally:
                await gw.close()
        return self.loop.run_until_complete(run())

    def warm(self, orders: list[tuple[str, Decimal, Decimal]], tag: str) -> dict[str, Any]:
        async def run() -> dict[str, Any]:
            if self._warm is None:
                self._warm = self._gateway(True)
                await self._warm.load_markets()
            return await self._send(self._warm, orders, tag)
        return self.loop.run_until_complete(run())

    def close(self) -> None:
        if self._warm is not None:
            self.loop.run_until_complete(self._warm.close())
        self.loop.close()

    async def _send(self, gw: Any, orders: list[tuple[str, Decimal, Decimal]], tag: str) -> dict[str, Any]:
        ex = gw.ccxt
        sent_at: list[float] = []

        async def one(i: int, symbol: str, price: Decimal, qty: Decimal) -> Any:
            while len(sent_at) >= ORDERS_LIMIT and time.monotonic() - sent_at[-ORDERS_LIMIT] < ORDERS_INTERVAL_S:
                await asyncio.sleep(ORDERS_INTERVAL_S - (time.monotonic() - sent_at[-ORDERS_LIMIT]))
            sent_at.append(time.monotonic())
            # ccxt's unified call, as a bare script writes it (the sender sends through ccxt's raw endpoint call:
            # exchange/gateway.py create_order)
            order = await ex.create_order(ex.markets_by_id[symbol][0]["symbol"], "limit", "buy", str(qty),
                                          str(price), {"newClientOrderId": f"{tag}.{i}", "timeInForce": "IOC"})
            return order["info"]["status"]

        started, started_ms = time.monotonic(), time.time_ns() // 1_000_000
        answers = await asyncio.gather(*(one(i, *o) for i, o in enumerate(orders)), return_exceptions=True)
        elapsed = time.monotonic() - started
        statuses: dict[str, int] = {}
        for a in answers:
            key = type(a).__name__ if isinstance(a, BaseException) else a
            statuses[key] = statuses.get(key, 0) + 1
        placed = [o["time"] for c, o in self.world.exchange_orders().items() if c.startswith(f"{tag}.")]
        return {"seconds": elapsed, "statuses": statuses,
                "on_exchange_s": (max(placed) - started_ms) / 1000 if placed else None,
                "first_on_exchange_s": (min(placed) - started_ms) / 1000 if placed else None}


# ============================================================================================== phases
def floor_orders(history: list[dict[str, Any]]) -> list[tuple[str, Decimal, Decimal]]:
    """What a bare script buying the same basket sends: ONE order per asset, for the whole quantity the solver
    bought of it across its batches, at the highest limit the solver used (so it fills as the solver's did)."""
    qty: dict[str, Decimal] = {}
    price: dict[str, Decimal] = {}
    for h in history:
        for cid, p, q in h["asset_orders"]:
            symbol = cid.split(".")[1]
            qty[symbol] = qty.get(symbol, Decimal(0)) + Decimal(q)
            price[symbol] = max(price.get(symbol, Decimal(0)), Decimal(p))
    return [(s, price[s], qty[s]) for s in qty]


TIMELINE = ("shard", "planned", "sender", "1st req", "1st exch", "last exch", "last ans", "committed", "solver in",
            "solver out", "filled")


def timeline(stages: dict[str, Any]) -> dict[str, float | None]:
    """The basket's path in ms after the user's request: the shard took it, the solver planned, the sender got the
    batch and sent its first request, the exchange executed the first and last orders, the sender had the last
    answer and had committed it, the solver took the batch's executions and had committed their fills (handed to
    the shards), the user had the 'filled' report."""
    submit = stages.get("sender_submit") or {}
    sender = 1000 * submit["entered"] if "entered" in submit else None
    fills = stages.get("solver_last_fills") or {}
    solver_in = 1000 * fills["entered"] if "entered" in fills else None

    def after_sender(key: str) -> float | None:
        return None if sender is None or key not in submit else sender + submit[key]

    solver_out = None if solver_in is None else solver_in + sum(
        fills.get(k, 0) for k in ("lock_wait_ms", "consume_ms", "commit_ms"))
    values = (1000 * stages["shard"]["entered"] if "shard" in stages else None,
              1000 * stages["planned"] if stages.get("planned") is not None else None, sender,
              after_sender("first_request_ms"), 1000 * stages["first_on_exchange"],
              1000 * stages["last_on_exchange"], after_sender("last_answer_ms"), after_sender("answers_committed_ms"),
              solver_in, solver_out, 1000 * stages["filled_report"])
    return {k: None if v is None else round(v, 1) for k, v in zip(TIMELINE, values)}


def basket_trials(world: World, trials: int, amount: str) -> dict[str, Any]:
    fills, floors, warm_floors, details = [], [], [], []
    floor = Floor(world)
    # One untimed basket and floor first: the first batch after start pays one-time costs on every side (the
    # sender's and the warm script's connections, first Redis script loads, first calls between actors).
    world.fresh_window()
    warmup = world.run_users(1, 1, amount, "basket-warmup")
    world.fresh_window()
    floor.warm(floor_orders(warmup["history"]), "floor-warmup")
    world._last_orders_at = time.monotonic()
    log(f"  warm-up basket (not counted): fill {warmup['records'][0]['closed'] - warmup['records'][0]['sent']:.3f} s")
    for t in range(trials):
        world.fresh_window()
        run = world.run_users(1, 1, amount, f"basket{t}")
        (rec,) = run["records"]
        assert rec["status"] == "filled", rec
        fill_s = rec["closed"] - rec["sent"]
        orders = floor_orders(run["history"])
        first_batch = run["history"][0]["batch_id"]
        first_times = [o["time"] for c, o in run["exchange_orders"].items() if c.startswith(first_batch + ".")]
        first_s = (max(first_times) - rec["sent_ms"]) / 1000
        # Where the time went (wall ms of this machine's processes): request -> planned -> first and last
        # exchange order executed -> the user's 'filled' report.
        planned_ms = run["history"][0].get("planned_ms")
        stages = {"planned": (planned_ms - rec["sent_ms"]) / 1000 if planned_ms else None,
                  "first_on_exchange": (min(first_times) - rec["sent_ms"]) / 1000,
                  "last_on_exchange": first_s, "filled_report": fill_s,
                  "tick_ms": run["history"][0].get("tick_ms"), "step_ms": run["history"][0].get("step_ms")}
        from actors.order_shards import shard_of_user
        handle = world.ray.get(world.shards[shard_of_user(address(0), ORDER_SHARDS)].inspect.remote())["last_handle"]
        submit = world.ray.get(world.sender.inspect.remote()).get("last_submit")
        if submit:
            submit = dict(submit, entered=round((submit.pop("at") - rec["sent_ms"]) / 1000, 4))
        stages["sender_submit"] = submit
        last_fills = world.solver_info().get("last_fills")
        if last_fills and "at" in last_fills:
            last_fills = dict(last_fills, entered=round((last_fills.pop("at") - rec["sent_ms"]) / 1000, 4))
        stages["solver_last_fills"] = last_fills
        if handle:  # the order's own batch is the shard's last one only if nothing came after: true here
            stages["shard"] = {"entered": (handle["at"] - rec["sent_ms"]) / 1000,
                               **{k: handle[k] for k in ("lock_ms", "app_ms", "commit_ms")}}
        stages["timeline_ms"] = timeline(stages)
        world.fresh_window()
        cold = floor.cold(orders, f"floor{t}")
        world._last_orders_at = time.monotonic()
        world.fresh_window()
        warm = floor.warm(orders, f"warmfloor{t}")
        world._last_orders_at = time.monotonic()
        fills.append(fill_s)
        floors.append(cold["seconds"])
        warm_floors.append(warm["seconds"])
        details.append({"fill_s": round(fill_s, 3), "first_batch_s": round(first_s, 3),
                        "floor_s": round(cold["seconds"], 3), "floor_on_exchange_s": cold["on_exchange_s"],
                        "warm_floor_s": round(warm["seconds"], 3), "warm_floor_statuses": warm["statuses"],
                        "batches": run["batches"], "exchange_orders": len(run["exchange_orders"]),
                        "floor_orders": len(orders), "floor_statuses": cold["statuses"], "stages_s": stages})
        log(f"  basket trial {t}: fill {fill_s:.3f} s (first batch on the exchange after {first_s:.3f} s; floor's "
            f"{cold['on_exchange_s']} s) over {run['batches']} "
            f"batch(es), "
            f"{len(run['exchange_orders'])} exchange orders; floor {cold['seconds']:.3f} s {cold['statuses']} "
            f"(its first order on the exchange after {cold['first_on_exchange_s']} s), warm floor "
            f"{warm['seconds']:.3f} s {warm['statuses']}; "
            f"stages (s after the request) {stages}")
    firsts = [d["first_batch_s"] for d in details]
    floor_x = [d["floor_on_exchange_s"] for d in details if d["floor_on_exchange_s"] is not None]
    floor.close()
    return {"fill_s": statistics.median(fills), "floor_s": statistics.median(floors),
            "warm_floor_s": statistics.median(warm_floors),
            "first_s": statistics.median(firsts), "floor_x_s": statistics.median(floor_x) if floor_x else None,
            "trials": details}


def netting(world: World, history: list[dict[str, Any]]) -> dict[str, Any]:
    """Per batch: exchange orders sent, the distinct pairs its orders' baskets hold (netting across indexes: one
    order per pair), the sum of each index's pairs (netting within an index only) and of each order's (none)."""
    rows = []
    for h in history:
        pairs = {k: set(world.baskets[k].symbols) for k in h["indexes"]}
        rows.append({"batch_id": h["batch_id"], "orders": h["orders"], "indexes": h["indexes"],
                     "exchange_orders": len(h["asset_orders"]),
                     "distinct_assets": len(set().union(*pairs.values())) if pairs else 0,
                     "per_index_netting": sum(len(p) for p in pairs.values()),
                     "no_netting": sum(len(pairs[k]) * c for k, c in h["indexes"].items())})

    def mean(key: str) -> float:
        return statistics.mean(r[key] for r in rows) if rows else 0.0
    return {"batches": rows, **{k: round(mean(k), 2) for k in ("exchange_orders", "distinct_assets",
                                                               "per_index_netting", "no_netting")}}


def throughput(world: World, n: int, rounds: int, amount: str, spread: bool = False) -> dict[str, Any]:
    world.fresh_window()
    run = world.run_users(n, rounds, amount, f"u{n}", spread)
    recs = run["records"]
    filled = [r for r in recs if r["status"] == "filled"]
    bad = [r for r in recs if r["status"] != "filled"]
    end = max(r["closed"] for r in filled)
    whole = len(filled) / (end - run["started"]) * 60
    first_round_end = max((r["closed"] for r in filled if r["round"] == 0), default=end)
    later = [r for r in filled if r["round"] > 0]
    sustained = len(later) / (end - first_round_end) * 60 if later and end > first_round_end else whole
    statuses: dict[str, int] = {}
    for o in run["exchange_orders"].values():
        statuses[o["status"]] = statuses.get(o["status"], 0) + 1
    lat = sorted(r["closed"] - r["sent"] for r in filled)
    out = {"users": n, "orders_filled": len(filled), "not_filled": len(bad),
           "not_filled_examples": [r["status"][:200] for r in bad[:3]],
           "seconds": end - run["started"], "per_min_whole": whole, "per_min_sustained": sustained,
           "exchange_orders": len(run["exchange_orders"]), "batches": run["batches"],
           "exchange_per_index_order": len(run["exchange_orders"]) / len(filled) if filled else float("inf"),
           "exchange_statuses": statuses, "fill_p50_s": lat[len(lat) // 2], "fill_max_s": lat[-1],
           "netting": netting(world, run["history"])}
    log(f"  {n} users: {len(filled)} filled ({len(bad)} not) in {out['seconds']:.1f} s, {run['batches']} batches, "
        f"{out['exchange_orders']} exchange orders {statuses}"
        + (f"; not filled: {out['not_filled_examples']}" if bad else ""))
    for h in run["history"]:  # why a phase took the batches it took
        reasons: dict[str, int] = {}
        for _, reason in h["deferred"]:
            reasons[reason] = reasons.get(reason, 0) + 1
        log(f"    {h['batch_id']}: {h['orders']} orders, {len(h['asset_orders'])} asset orders, scale {h['scale']}, "
            f"deferred (first 20) {reasons}")
    return out


# ============================================================================================== main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=5,
                    help="basket fill / floor trials (median; single trials vary by a third on a shared 2-core box)")
    ap.add_argument("--rounds", type=int, default=2, help="orders each user sends one after the other")
    ap.add_argument("--amount", default="1000", help="USDC per index order")
    ap.add_argument("--tick-ms", type=int, default=100, help="the solver's tick interval (config default 100)")
    ap.add_argument("--launch-yield-every", type=int, default=16,
                    help="the sender yields after every N requests it starts (0: starts a whole wave first)")
    ap.add_argument("--users", default=None,
                    help="user counts of the throughput phases (default 1,10,100; with --indexes 100; empty: basket "
                         "trials only, for quick looks)")
    ap.add_argument("--indexes", action="store_true",
                    help="serve the six real indexes, users spread over them; netting across indexes measured")
    ap.add_argument("--no-mint", dest="mint", action="store_false",
                    help="leave the mint leg (anvil, chain actor, minter) out")
    args = ap.parse_args()
    users = args.users if args.users is not None else ("100" if args.indexes else ",".join(map(str, USER_COUNTS)))
    user_counts = [int(x) for x in users.split(",") if x.strip()]

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_MAX_LIMIT_FROM_API_SERVER", "1000000")  # (4) lists every actor task of the run
    import ray

    from bench.counting import actor_calls, per_order, redis_writes
    from chain.keys import DEV_MNEMONIC, MNEMONIC_ENV

    namespace = f"bench-flow-{uuid.uuid4().hex[:6]}"
    t0 = time.monotonic()
    # The dashboard head serves Ray's state API (the actor calls of (4)); the chain actor signs with the local
    # chains' dev mnemonic.
    ray.init(num_cpus=2, include_dashboard=True, object_store_memory=100 * 2**20, logging_level="ERROR",
             log_to_driver=False, namespace=namespace,
             runtime_env={"env_vars": {"PYTHONPATH": str(ROOT), MNEMONIC_ENV: DEV_MNEMONIC}})
    try:
        with tempfile.TemporaryDirectory() as tmp:
            log(f"starting ray, redis, simulator ({'the six real indexes' if args.indexes else 'SY100'}), market "
                f"data, shards, sender, solver ...")
            world = World(ray, namespace, Path(tmp), args)
            try:
                log(f"world up in {time.monotonic() - t0:.1f} s")
                log("(1)+(2) basket fill vs floor")
                basket = basket_trials(world, args.trials, args.amount)
                log("(3) throughput")
                world.minted_all()
                client = world.redis.client()
                calls0, writes0 = actor_calls(), redis_writes(client)
                phases = [throughput(world, n, args.rounds, args.amount, args.indexes) for n in user_counts]
                waited = world.minted_all()
                counted = sum(p["orders_filled"] for p in phases)
                calls = per_order(calls0 + waited, actor_calls(), max(counted, 1))
                writes = per_order(writes0, redis_writes(client), max(counted, 1))
                client.close()
                sender_info = ray.get(world.sender.inspect.remote())
                sim_stats = world.sim.get("/_admin/test/stats")
                solver_info = world.solver_info()
                solver_errors = solver_info["errors"]
                client = world.redis.client()
                solver_state_bytes = client.strlen(f"solver:{world.solver_name}:state")
                client.close()
            finally:
                world.close()
    finally:
        ray.shutdown()
    total_s = time.monotonic() - t0
    assets = len(world.basket.assets)

    served = ", ".join(f"{k} ({len(b.assets)})" for k, b in world.baskets.items())
    print(f"\nwhole flow serving {served}: {len(world.symbols)} pairs; the basket trials buy {INDEX} ({assets} "
          f"assets); {args.amount} USDC per index order, simulator ORDERS limit "
          f"{ORDERS_LIMIT}/{ORDERS_INTERVAL_S} s, solver tick {args.tick_ms} ms, {ORDER_SHARDS} order shards, "
          f"{MARKET_SHARDS} market shards, redis AOF fsync always")
    print("\n(1)+(2) one basket, fresh rate-limit window")
    print(f"{'trial':>5} {'fill s':>8} {'1st batch':>10} {'floor s':>8} {'floor exch':>10} {'ratio':>6} "
          f"{'warm floor':>10} {'ratio':>6} {'batches':>8} {'exch ord':>9} {'floor ord':>9}  floor statuses")
    for i, t in enumerate(basket["trials"]):
        print(f"{i:>5} {t['fill_s']:>8.3f} {t['first_batch_s']:>10.3f} {t['floor_s']:>8.3f} "
              f"{t['floor_on_exchange_s'] or 0:>10.3f} "
              f"{t['fill_s'] / t['floor_s']:>6.2f} {t['warm_floor_s']:>10.3f} {t['fill_s'] / t['warm_floor_s']:>6.2f} "
              f"{t['batches']:>8} {t['exchange_orders']:>9} {t['floor_orders']:>9}  {t['floor_statuses']}")
    ratio = basket["fill_s"] / basket["floor_s"]
    warm_ratio = basket["fill_s"] / basket["warm_floor_s"]
    print(f"median: fill {basket['fill_s']:.3f} s, floor {basket['floor_s']:.3f} s, fill/floor {ratio:.2f} "
          f"(target <= 1.5); warm floor {basket['warm_floor_s']:.3f} s, fill/warm floor {warm_ratio:.2f}")
    print("  floor: a bare script as it starts (markets loaded, connections opened as it sends); warm floor: the same "
          "script with its connections already open, as the sender has them")
    print("  where a basket's time goes, ms after the request: " + " | ".join(TIMELINE))
    for i, t in enumerate(basket["trials"]):
        line = t["stages_s"].get("timeline_ms", {})
        print(f"  {i:>3} " + " ".join(f"{'-' if line.get(k) is None else line[k]:>9}" for k in TIMELINE))
    print(f"  '1st batch': request -> the exchange executed the first batch's last order: median "
          f"{basket['first_s']:.3f} s; 'floor exch': start -> the exchange executed the floor's last order: "
          f"{basket['floor_x_s'] or 0:.3f} s")
    print(f"\n(3) concurrent users, {args.rounds} orders each, one after the other")
    print(f"{'users':>5} {'filled':>7} {'not':>4} {'seconds':>8} {'/min sust':>10} {'/min whole':>11} "
          f"{'batches':>8} {'exch ord':>9} {'exch/idx':>9} {'fill p50':>9} {'fill max':>9}  exchange statuses")
    for p in phases:
        print(f"{p['users']:>5} {p['orders_filled']:>7} {p['not_filled']:>4} {p['seconds']:>8.1f} "
              f"{p['per_min_sustained']:>10.1f} {p['per_min_whole']:>11.1f} {p['batches']:>8} "
              f"{p['exchange_orders']:>9} {p['exchange_per_index_order']:>9.3f} {p['fill_p50_s']:>9.2f} "
              f"{p['fill_max_s']:>9.2f}  {p['exchange_statuses']}")
    target = 1.1 * assets / 100
    if not args.indexes:
        print(f"target at 100 users: exchange orders per filled index order <= 1.1 x {assets}/100 = {target:.3f}")
    for p in phases:
        net = p["netting"]
        print(f"\nnetting, {p['users']} users: per batch, exchange orders sent against the distinct pairs its orders "
              f"needed (perfect netting: equal; inventory may cover some), the orders netting within each index only "
              f"would send, and with no netting")
        print(f"{'batch':>12} {'orders':>7} {'exch ord':>9} {'distinct':>9} {'per index':>10} {'no netting':>11}"
              f"  orders per index")
        for r in net["batches"]:
            print(f"{r['batch_id']:>12} {r['orders']:>7} {r['exchange_orders']:>9} {r['distinct_assets']:>9} "
                  f"{r['per_index_netting']:>10} {r['no_netting']:>11}  {r['indexes']}")
        print(f"{'mean':>12} {'':>7} {net['exchange_orders']:>9} {net['distinct_assets']:>9} "
              f"{net['per_index_netting']:>10} {net['no_netting']:>11}")
    print(f"sender: {sender_info['counts']}; simulator: {sim_stats}; solver errors: {len(solver_errors)}")
    print(f"solver: {solver_info['counts']}; its Redis state blob (rewritten whole on every commit): "
          f"{solver_state_bytes} bytes")
    print(f"\n(4) per index order over the throughput phases ({counted} orders, request to stored invoice"
          f"{'' if args.mint else ', no mint leg'}): actor calls {calls['total']}, Redis writes {writes['total']} "
          f"(the bench's own wait for the mints left out; its few other reads, e.g. Solver.inspect, counted)")
    print(f"{'actor method':>40} {'calls/order':>12}")
    for k, v in calls.items():
        if k != "total":
            print(f"{k:>40} {v:>12.3f}")
    print(f"{'redis command':>40} {'writes/order':>12}")
    for k, v in writes.items():
        if k != "total":
            print(f"{k:>40} {v:>12.3f}")
    print(f"whole run {total_s:.0f} s")

    by_n = {p["users"]: p for p in phases}
    result: dict[str, Any] = {
        "index": INDEX, "assets": assets, "indexes": list(world.baskets), "pairs": len(world.symbols),
        "amount_usdc": args.amount,
        "orders_limit": f"{ORDERS_LIMIT}/{ORDERS_INTERVAL_S}s",
        "basket_fill_s": round(basket["fill_s"], 3), "basket_floor_s": round(basket["floor_s"], 3),
        "basket_vs_floor": round(ratio, 3),
        "basket_warm_floor_s": round(basket["warm_floor_s"], 3), "basket_vs_warm_floor": round(warm_ratio, 3),
        "basket_first_batch_on_exchange_s": round(basket["first_s"], 3),
        "basket_floor_on_exchange_s": None if basket["floor_x_s"] is None else round(basket["floor_x_s"], 3),
        "basket_batches": statistics.median(t["batches"] for t in basket["trials"]),
        "basket_exchange_orders": statistics.median(t["exchange_orders"] for t in basket["trials"]),
    }
    for n in user_counts:
        result[f"exchange_orders_per_index_order_{n}"] = round(by_n[n]["exchange_per_index_order"], 3)
    for n in user_counts:
        result[f"index_orders_per_min_{n}"] = round(by_n[n]["per_min_sustained"], 1)
    for n in user_counts:
        result[f"index_orders_per_min_whole_{n}"] = round(by_n[n]["per_min_whole"], 1)
    if args.indexes and phases:
        top = phases[-1]  # the largest user count
        result.update({"exchange_orders_per_batch": top["netting"]["exchange_orders"],
                       "distinct_assets_per_batch": top["netting"]["distinct_assets"],
                       "per_index_netting_orders": top["netting"]["per_index_netting"],
                       "no_netting_orders": top["netting"]["no_netting"],
                       "index_orders_per_min": round(top["per_min_sustained"], 1),
                       "basket_vs_warm_floor_sy100": round(warm_ratio, 3)})
    else:
        result["exchange_per_index_target_100"] = round(target, 3)
    result["not_filled"] = sum(p["not_filled"] for p in phases)
    result["solver_errors"] = len(solver_errors)
    result["http_429"] = sim_stats.get("http_429", 0) + sim_stats.get("http_418", 0)
    result["solver_state_bytes"] = solver_state_bytes
    result["solver_commits"] = solver_info["counts"]["commits"]
    result["actor_calls_per_order"] = calls
    result["redis_writes_per_order"] = writes
    result["run_s"] = round(total_s, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
