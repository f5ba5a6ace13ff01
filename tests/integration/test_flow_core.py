"""The core of the whole flow on a real local Ray instance, a real redis-server and the exchange simulator (its own
process): order-book shards, market-data shards, the order sender and the solver, wired by name. Three users are
credited collateral in their shards, each sends a NewIndexOrder on SY100.dev through `handle`, the solver batches
them to the exchange, and the test follows every message: accepted, fill reports that add up to what the exchange
filled, closed as filled, USDC accounted for to the unit, then minted with an invoice that adds up."""
from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Iterator

import pytest

ray = pytest.importorskip("ray")

from actors.market_data import MarketDataOptions, start_market_data  # noqa: E402
from actors.order_books import OrderBooksOptions, ShardReport, start_order_books  # noqa: E402
from actors.order_shards import ShardedApp, shard_of_order, shard_of_user, split_by_shard  # noqa: E402
from core.index_order import user_key  # noqa: E402
from actors.order_sender import OrderSender, SenderOptions  # noqa: E402
from actors.solver import SolverOptions, start_solver  # noqa: E402
from core.shard_assignment import shard_of  # noqa: E402
from core.basket import Basket, load_indexes  # noqa: E402
from core.batch_planner import PlannerLimits  # noqa: E402
from core.chain_events import CollateralDeposit  # noqa: E402
from core.money import quantize_up  # noqa: E402
from core.side import Side  # noqa: E402
from core.symbol_filters import parse_exchange_info  # noqa: E402
from protocol.envelope import UserRef  # noqa: E402
from protocol.reason_codes import ReasonCode  # noqa: E402
from protocol.indexmaker_app import InvoiceIssued, NewOrder, NewQuote, OrderAccepted, OrderProgress  # noqa: E402
from tests.integration.reports_reader import follow_reports  # noqa: E402
from tests.integration.simulator_process import SimulatorProcess  # noqa: E402
from tests.integration.ray_calls import call_until_back, kill_all  # noqa: E402

WAIT_S = 45.0
INDEX = "SY100.dev"
ORDER_SHARDS = 2
MARKET_SHARDS = 2
CHAIN = 42161
USERS = {  # address -> (deposit, order amount)
    "0x1111111111111111111111111111111111111111": (Decimal("1000"), Decimal("400")),
    "0x22222222222222222222222222222222222222aB": (Decimal("1500"), Decimal("650.5")),
    "0x3333333333333333333333333333333333333333": (Decimal("800"), Decimal("800")),
}


def rate_limits() -> list[dict]:
    return [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 1, "limit": 300},
            {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
            {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000}]


@ray.remote(num_cpus=0)
class ReportSink:
    """The gateway's place in the flow: reads the shards' reports hand-offs, keeps every report by (shard, seq)."""

    def __init__(self) -> None:
        self.reports: dict[tuple[int, int], ShardReport] = {}
        self.redelivered = 0
        self._changed = asyncio.Event()

    async def follow(self, redis_url: str, key_prefix: str, shards: int) -> None:
        self._task = follow_reports(redis_url, key_prefix, shards, self.on_reports)

    async def on_reports(self, shard: int, seq_from: int, reports: list) -> None:
        assert reports and reports[0].seq == seq_from and all(r.shard == shard for r in reports)
        for r in reports:
            if (shard, r.seq) in self.reports:
                self.redelivered += 1
            else:
                self.reports[(shard, r.seq)] = r
        self._changed.set()

    def _count(self, kind: str, status: str | None) -> int:
        return sum(1 for r in self.reports.values() if type(r.response).__name__ == kind
                   and (status is None or getattr(r.response, "status", None) == status))

    async def wait_for(self, kind: str, n: int, status: str | None = None, timeout_s: float = WAIT_S) -> int:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self._count(kind, status) < n:
            self._changed.clear()
            if loop.time() >= deadline:
                break
            try:
                await asyncio.wait_for(self._changed.wait(), deadline - loop.time())
            except asyncio.TimeoutError:
                break
        return self._count(kind, status)

    async def dump(self) -> dict:
        return {"reports": [self.reports[k] for k in sorted(self.reports)], "redelivered": self.redelivered}


@contextlib.contextmanager
def index_simulator(data_dir: Path, index: str) -> Iterator[tuple[Basket, list[str], SimulatorProcess]]:
    """An index's basket, its symbols and the exchange simulator trading them (books updated every 100 ms)."""
    basket = load_indexes(data_dir / "indexes")[index]
    symbols = [a.symbol for a in basket.assets]
    with SimulatorProcess(symbols=symbols, update_ms=100, rate_limits=rate_limits()) as sim:
        yield basket, symbols, sim


def start_markets(sim: SimulatorProcess, symbols: list[str], shards: int, namespace: str) -> tuple[dict, list]:
    """The simulator's filters and the market-data shards of `symbols`, started on its books."""
    filters = parse_exchange_info(sim.get("/api/v3/exchangeInfo"))
    return filters, start_market_data(MarketDataOptions(sim.url, sim.ws_url, book_limit=100), symbols, shards,
                                      namespace=namespace)


def start_sender_and_shard(sim: SimulatorProcess, redis_url: str, tag: str, account: str, namespace: str,
                           actors: list, **shard_options) -> tuple[str, object, object, object]:
    """The order sender (started) and one order shard (`orders-<tag>`) whose reports a ReportSink follows, each
    added to `actors`: (sender name, sender, shard, sink)."""
    sender_name = f"sender-{tag}"
    sender = OrderSender.options(name=sender_name).remote(SenderOptions(
        sim.url, sim.ws_url, sim.api_key, sim.secret, redis_url=redis_url, account=account))
    actors.append(sender)
    (shard,) = start_order_books(OrderBooksOptions(redis_url, 1, shard_options.pop("indexes"),
                                                   key_prefix=f"orders-{tag}", **shard_options), namespace=namespace)
    actors.append(shard)
    sink = ReportSink.options(name=f"reports-{tag}").remote()
    actors.append(sink)
    ray.get(sink.follow.remote(redis_url, f"orders-{tag}", 1))
    ray.get(sender.start.remote())
    return sender_name, sender, shard, sink


@pytest.mark.parametrize("kill_solver", [False, True], ids=["undisturbed", "solver-killed-mid-batch"])
def test_three_users_orders_filled_reported_and_minted(ray_cluster, redis_server, data_dir, kill_solver):
    started = time.monotonic()
    tag = uuid.uuid4().hex[:8]
    actors: list = []
    with index_simulator(data_dir, INDEX) as (basket, symbols, sim):
        try:
            filters, markets = start_markets(sim, symbols, MARKET_SHARDS, ray_cluster)
            actors += markets
            sender_name = f"sender-{tag}"
            sender = OrderSender.options(name=sender_name).remote(SenderOptions(
                sim.url, sim.ws_url, sim.api_key, sim.secret, redis_url=redis_server.url, account=f"flow{tag}"))
            actors.append(sender)
            shards = start_order_books(OrderBooksOptions(redis_server.url, ORDER_SHARDS, (INDEX,),
                                                         key_prefix=f"orders-{tag}"), namespace=ray_cluster)
            actors += shards
            sink = ReportSink.options(name=f"reports-{tag}").remote()
            actors.append(sink)
            ray.get(sink.follow.remote(redis_server.url, f"orders-{tag}", ORDER_SHARDS))
            ray.get(sender.start.remote())
            assert all(ray.get([m.wait_ready.remote(WAIT_S) for m in markets]))

            # Collateral: one confirmed deposit per user, credited in the user's own shard (one call per shard).
            deposits = [CollateralDeposit(CHAIN, f"0x{i:064x}", 0, 1, addr, dep)
                        for i, (addr, (dep, _)) in enumerate(USERS.items(), 1)]
            for k, items in split_by_shard(deposits, ORDER_SHARDS, lambda d: d.user).items():
                ray.get(shards[k].credit.remote(items))
                ray.get(shards[k].credit.remote(items))  # a replayed deposit books nothing twice

            solver = start_solver(SolverOptions(redis_server.url, ORDER_SHARDS, MARKET_SHARDS, namespace=ray_cluster,
                                                name=f"solver-{tag}", sender_name=sender_name, tick_interval_ms=50,
                                                sender_account=f"flow{tag}", shard_prefix=f"orders-{tag}"),
                                  {INDEX: basket}, filters, PlannerLimits())
            actors.append(solver)
            ray.get(solver.start.remote())

            if not kill_solver:  # quotes come from the live books, through the gateway's application interface
                user = UserRef(CHAIN, next(iter(USERS)))
                answers = asyncio.run(ShardedApp(shards, quoter=solver).handle([
                    NewQuote(user, "q1", INDEX, Side.BUY, Decimal(1000)),
                    NewQuote(user, "q2", "NOPE", Side.BUY, Decimal(1000))]))
                accepted, result, refused = answers
                assert type(accepted).__name__ == "QuoteAccepted" and result.client_quote_id == "q1"
                assert result.index == INDEX  # the quote names its index
                # 1000 USDC buys ~1000 / (index value at the asks * 1.002 * 1.0005) units: within 2 % of that.
                book = {}
                for k, m in enumerate(markets):
                    mine = [x for x in symbols if shard_of(x, MARKET_SHARDS) == k]
                    book.update(ray.get(m.liquidity.remote(mine, Side.BUY, 1)))
                at_asks = sum(a.quantity * book[a.symbol][0][0] for a in basket.assets if a.symbol in book)
                assert Decimal("0.98") < result.quantity_possible * at_asks / Decimal(1000) < Decimal("1.0")
                assert refused.code is ReasonCode.UNKNOWN_INDEX and refused.text.endswith(f"served: {INDEX}")

            if kill_solver:  # the exchange answers the first batch late, so that the kill finds it in flight
                sim.post("/_admin/faults", {"order_delay_ms": 800, "order_delay_count": len(symbols)})
            # Orders, through the application interface of each user's shard: accepted at once.
            requests = [NewOrder(UserRef(CHAIN, addr), "c1", INDEX, Side.BUY, amount)
                        for addr, (_, amount) in USERS.items()]
            for r in requests:
                (answer,) = ray.get(shards[shard_of_user(r.user.address, ORDER_SHARDS)].handle.remote([r]))
                assert answer == OrderAccepted(r.user, "c1")
            dup = requests[0]
            (again,) = ray.get(shards[shard_of_user(dup.user.address, ORDER_SHARDS)].handle.remote([dup]))
            assert type(again).__name__ == "OrderRefused" and again.code is ReasonCode.DUPLICATE_CLORDID

            if kill_solver:
                deadline = time.monotonic() + WAIT_S
                while not ray.get(solver.inspect.remote())["batches_in_flight"]:  # a condition on its state
                    assert time.monotonic() < deadline
                ray.kill(solver, no_restart=False)
            assert ray.get(sink.wait_for.remote("OrderProgress", len(USERS), "filled")) == len(USERS)
            assert call_until_back(solver.wait_quiet, WAIT_S)
            # The shards owe the mints (no minter here: this test plays its part, one call per shard).
            mints = [m for s in shards for m in ray.get(s.mint_pending.remote())]
            assert sorted(m.user for m in mints) == sorted(user_key(a) for a in USERS)
            info = ray.get(solver.inspect.remote())
            assert info["restarted"] == kill_solver
            assert info["errors"] == [] and info["outbox"] == []
            assert ray.get(sender.wait_idle.remote(WAIT_S))

            # ---- the exchange's record against the solver's batches: at most one order per symbol per batch
            exchange = [o for o in sim.get("/_admin/test/orders") if o["clientOrderId"].startswith("b")]
            per_intent: dict[tuple[str, str], int] = defaultdict(int)
            for o in exchange:
                batch_id, symbol, _attempt = o["clientOrderId"].split(".")
                per_intent[(batch_id, symbol)] += 1
            assert exchange and set(per_intent.values()) == {1}
            assert {b for b, _ in per_intent} <= {h["batch_id"] for h in info["history"]}
            received: dict[str, Decimal] = defaultdict(Decimal)  # net of the commission kept in the asset
            sender_orders = [o for b in {b for b, _ in per_intent} for o in ray.get(sender.orders.remote(b))]
            assert {o["client_order_id"] for o in sender_orders} >= {o["clientOrderId"] for o in exchange}
            dump = ray.get(sink.dump.remote())
            assert dump["redelivered"] == 0

            # ---- per user: message by message
            shard_views = {addr: ray.get(shards[shard_of_user(addr, ORDER_SHARDS)].user.remote(addr))
                           for addr in USERS}
            assigned: dict[str, Decimal] = defaultdict(Decimal)
            for addr, (deposit, amount) in USERS.items():
                mine = [r.response for r in dump["reports"] if r.response.user.address.lower() == addr.lower()]
                progress = [m for m in mine if isinstance(m, OrderProgress)]
                assert progress and all(p.client_order_id == "c1" for p in progress)
                assert [p.status for p in progress[:-1]] == ["in progress"] * (len(progress) - 1)
                assert progress[-1].status == "filled"
                filled = [p.filled_quantity for p in progress]
                assert filled == sorted(filled) and filled[0] > 0  # cumulative, never backwards
                view = shard_views[addr]
                (order,) = view["orders"]
                assert Decimal(order["filled_units"]) == filled[-1]
                assert Decimal(order["spent"]) == progress[-1].collateral_spent
                assert Decimal(order["spent"]) == quantize_up(Decimal(order["cost_exact"]), Decimal("0.000001"))
                # USDC: the order's collateral is spent or returned, to the unit; the ledger holds the rest.
                assert Decimal(order["remaining"]) == Decimal(order["engaged"]) == 0
                assert Decimal(order["spent"]) + Decimal(order["returned"]) == amount
                # What a batch sized at the expected cost leaves (buffer + fee headroom) goes back at once.
                assert Decimal(order["returned"]) < max(Decimal("0.05"), amount * Decimal("0.005"))
                ledger = view["ledger"]
                assert Decimal(ledger["credited"]) == deposit
                assert Decimal(ledger["reserved"]) == 0
                assert Decimal(ledger["available"]) + Decimal(ledger["spent"]) == deposit
                assert Decimal(ledger["spent"]) == Decimal(order["spent"])
                assert not view["invoices"]

            # ---- mint, then invoices
            txs = {m.order_id: f"0x{i + 100:064x}" for i, m in enumerate(mints)}
            landed: dict[int, list[tuple[str, str]]] = defaultdict(list)
            for m in mints:
                landed[shard_of_order(m.order_id, ORDER_SHARDS)].append((m.order_id, txs[m.order_id]))
            for k, items in landed.items():
                answers = ray.get(shards[k].minted_batch.remote(items))
                for (oid, _), invoice in zip(items, answers):
                    m = next(x for x in mints if x.order_id == oid)
                    assert invoice.filled_units == m.filled_units and invoice.minted_units == m.minted_units
                assert ray.get(shards[k].minted_batch.remote(items)) == answers  # idempotent
            assert ray.get(sink.wait_for.remote("InvoiceIssued", len(USERS))) == len(USERS)
            assert [m for s in shards for m in ray.get(s.mint_pending.remote())] == []
            dump = ray.get(sink.dump.remote())
            invoices = {r.response.invoice.user: r.response.invoice for r in dump["reports"]
                        if isinstance(r.response, InvoiceIssued)}
            assert len(invoices) == len(USERS)
            for addr, (_, amount) in USERS.items():
                inv = invoices[user_key(addr)]
                view = ray.get(shards[shard_of_user(addr, ORDER_SHARDS)].user.remote(addr))
                (order,) = view["orders"]
                assert inv.collateral == amount and inv.spent == Decimal(order["spent"])
                assert inv.spent == quantize_up(inv.assets_value + inv.exchange_fee, Decimal("0.000001"))
                assert inv.filled_units == Decimal(order["filled_units"]) and inv.minted_units <= inv.filled_units
                assert {l.symbol for l in inv.lines} == set(symbols)
                rounds = sum(1 for r in dump["reports"] if isinstance(r.response, OrderProgress)
                             and r.response.user.address.lower() == addr.lower())
                for line in inv.lines:
                    # The assets it got back the index units it was given: a cohort takes floor(q * filled) base
                    # units per round (core.lot_assignment), so each round may leave it short by under one unit.
                    q = next(a.quantity for a in basket.assets if a.symbol == line.symbol)
                    short = inv.filled_units * q - line.quantity
                    assert -filters[line.symbol].base_unit * rounds < short < filters[line.symbol].base_unit * rounds
                    assigned[line.symbol] += line.quantity
                assert view["invoices"]["c1"]["invoice_id"] == inv.invoice_id

            # ---- every base unit the exchange delivered is in some order's lines or in the solver's inventory
            for o in sender_orders:
                if o["status"] in ("FILLED", "PARTIALLY_FILLED", "EXPIRED", "CANCELED"):
                    for f in o["fills"]:
                        received[o["symbol"]] += Decimal(f["quantity"]) - Decimal(f["commission"])
            inventory = ray.get(solver.inspect.remote())["inventory_units"]
            for s in symbols:
                held = Decimal(inventory.get(s, 0)) * filters[s].base_unit
                assert assigned[s] + held == received[s], s
        finally:
            kill_all(actors)
    assert time.monotonic() - started < 90
