"""One realistic value per stored record kind, built by the current code (the fixture test writes and checks them).

Add an entry when you add a kind. When a kind's VERSION goes up, its older fixture stays (it must still load through
the migrations) and the new version gets a fixture of its own."""
from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Callable

from core.asset_order import AssetOrder, AssetOrderStatus, ExchangeFill, OrderUpdate, client_order_id
from core.circuit_breaker import CircuitBreaker
from core.clock import ManualClock
from core.collateral_ledger import USDC_UNIT, CollateralLedger
from core.collateral_route import CollateralRoute, RouteStage
from core.route_batch import RouteMember
from core.sender_messages import SubmitResult, order_done, sender_fill
from core.side import Side
from store.chain_records import (BlockCursorRecord, NextNonceRecord, PendingDepositRecord, ReversalRecord,
                                 RoutedNetRecord, RouteRecord, RouterLedgerRecord, StrandedReversalRecord,
                                 TxIntentRecord)
from store.records import Record
from store.sender_records import SenderBatchRecord, SenderExecutionRecord, SenderOrderRecord, SenderStateRecord

#: kind -> a function building one value of it as the current code writes it.
EXAMPLES: dict[str, Callable[[], Record]] = {}


# ------------------------------------------------------------------------------------------ order-book shard
ALICE = "0x1111111111111111111111111111111111111111"
INDEX = "SY100"
T0 = 1_700_000_000_000


def shard_book():
    """A user's book as a shard holds it: a deposit credited with a routing hold, a fee taken from the hold, one
    order partly filled in an engaged batch and one still waiting, a withdrawal paid and one still held."""
    from core.collateral_ledger import USDC_UNIT, CollateralLedger
    from core.index_order_book import UserOrderBook
    from core.side import Side

    book = UserOrderBook(ALICE, CollateralLedger(USDC_UNIT), unit=USDC_UNIT, max_open_orders=10,
                         known_indexes=(INDEX, "SYAI"))
    book.ledger.credit("42161:0xdep:0", "100", hold="1")
    book.ledger.charge_fee("route-1:42161:0xdep:0", "0.25", hold_id="42161:0xdep:0")
    book.ledger.release_hold("42161:0xdep:0")
    book.new_order("c1", INDEX, Side.BUY, Decimal("40"), T0)
    book.get("c1").arrival = arrival_value()
    book.engage("c1", "30")
    book.apply_fill("c1", "0.0005", "29.4000001")
    book.get("c1").note_batch_touch(Decimal("58830.5"), Decimal("0.0005"))
    book.new_order("c2", INDEX, Side.BUY, Decimal("10.5"), T0 + 1)
    book.ledger.hold_withdrawal("w1", "20")
    book.ledger.settle_withdrawal("w1", "18.7", {"withdraw:w1:exchange": "1", "withdraw:w1:bridge": "0.3"})
    book.ledger.hold_withdrawal("w2", "5")
    return book


def arrival_value():
    """The value of one SY100 unit when an order arrived (one asset, for brevity)."""
    from core.arrival import ArrivalValue

    return ArrivalValue(Decimal("58790.25"), Decimal("58800.5"), T0 - 150,
                        {"BTCUSDC": (Decimal("58790250"), Decimal("58800500"))})


def shard_lines() -> dict[str, dict[str, list]]:
    return {f"{ALICE}:c1": {"BTCUSDC": [50, Decimal("0.0000005"), Decimal("29.4000001"), Decimal("0.0294"),
                                        ["BTCUSDC:7", "BTCUSDC:8"]]}}


def shard_tokens(book=None):  # noqa: ANN001, ANN201
    """A token ledger with a credit, a sell's reservation and a reversal: every part set. With the user's book, the
    reservation is a sell order in it (with a minimum), as the shard makes one."""
    from core.chain_events import TokenDeposit
    from core.token_ledger import TokenLedger

    tokens = TokenLedger()
    tokens.credit(TokenDeposit(8453, "0xtok1", 0, 10, ALICE, INDEX, Decimal("0.02")))
    tokens.credit(TokenDeposit(8453, "0xtok2", 1, 11, ALICE, INDEX, Decimal("0.005")))
    if book is None:
        tokens.reserve(INDEX, Decimal("0.01"))
    else:
        book.new_sell("s1", INDEX, Decimal("0.01"), Decimal("400"), T0 + 2, tokens)
    tokens.reverse("8453:0xtok2:1")
    return tokens


def _shard_user() -> Record:
    from protocol.envelope import UserRef
    from store.shard_records import ShardUser

    book = shard_book()
    return ShardUser.of(UserRef(42161, ALICE), book, shard_lines(), shard_tokens(book))


def _shard_meta() -> Record:
    from store.shard_records import ShardMeta

    return ShardMeta.model_validate({
        "fifo": [f"{ALICE}:c1", f"{ALICE}:c2"], "engaged": {"b7": [(f"{ALICE}:c1", Decimal("30"))]},
        "routes": {"route-1": {"42161:0xdep:0": "99.75"}}, "report_seq": 12, "step_cursor": 4,
        "errors": ["fills b6:1 on closed order"],
        "reversals": [{"deposit": "42161:0xold:3", "user": ALICE, "amount": "5", "debt_added": "0",
                       "routed": False, "at_ms": T0 + 5}]})


def mint_requests():
    from core.mint_request import MintRequest

    return [MintRequest(f"{ALICE}:c1", ALICE, INDEX, Decimal("0.0005"), 18),
            MintRequest(f"{ALICE}:c3", ALICE, INDEX, Decimal("1.234567891234567891234"), 18)]


def _shard_completed() -> Record:
    from store.shard_records import ShardCompleted

    return ShardCompleted.of(mint_requests())


def invoice(with_arrival: bool = True):
    """An order's invoice; `with_arrival` False: as an invoice of an order that arrived before any value was known
    (and as code before arrival values wrote every invoice)."""
    from core.invoice import InvoiceLine, build_invoice

    line = InvoiceLine(symbol="BTCUSDC", quantity=Decimal("0.0000005"), average_price=Decimal("58800000.2"),
                       value=Decimal("29.4000001"), fee=Decimal("0.0294"), lot_ids=("BTCUSDC:7", "BTCUSDC:8"))
    return build_invoice(order_id=f"{ALICE}:c1", user=ALICE, cl_ord_id="c1", index=INDEX, collateral=Decimal("40"),
                         cancelled=Decimal("10"), returned=Decimal("0.570599"), spent=Decimal("29.429401"),
                         filled_units=Decimal("0.0005"), lines=[line], token_decimals=18, mint_tx="0xabc",
                         minted_ms=T0 + 9, arrival=arrival_value() if with_arrival else None,
                         batch_touch=Decimal("58830.5") if with_arrival else None)


def _shard_invoice() -> Record:
    from store.shard_records import ShardInvoice

    return ShardInvoice(invoice=invoice())


def _shard_report() -> Record:
    from protocol.envelope import UserRef
    from protocol.indexmaker_app import OrderProgress
    from store.shard_records import ShardReportRecord

    return ShardReportRecord.of(12, 0, OrderProgress(UserRef(42161, ALICE), "c1", "in progress", Decimal("0.0005"),
                                                     Decimal("29.429401"), Decimal("10.570599"), index="SY100",
                                                     shortfall_bps=Decimal("10.23")))


EXAMPLES.update({"shard.user": _shard_user, "shard.meta": _shard_meta, "shard.completed": _shard_completed,
                 "shard.invoice": _shard_invoice, "shard.report": _shard_report})


# ------------------------------------------------------------------------------------------ solver
DATA = Path(__file__).parent.parent.parent / "data"


def solver_world():
    """A solver engine after one batch filled wholly (inventory carried) and a second one half filled (a round of
    lots in flight), and the outbox actions such a history queues: one of every kind."""
    from core.basket import load_indexes
    from core.batch_planner import PendingOrder, PlannerLimits
    from core.batch_result import BatchOrderResult
    from core.asset_order import ExchangeFill
    from core.sell_plan import PendingSell
    from core.solver_cycle import OutboxCall
    from core.solver_engine import SolverEngine
    from core.symbol_filters import parse_exchange_info
    from tests.unit.test_solver_engine import BEST, exchange_fills

    filters = parse_exchange_info(json.loads((DATA / "binance" / "exchangeInfo_spot_2024-09-08_usdt_usdc.json")
                                             .read_text()))
    baskets = {"SY100.dev": load_indexes(DATA / "indexes")["SY100.dev"]}
    asks = {s: [(Decimal(p) + filters[s].tick_size * i, Decimal(10**5)) for i in range(5)] for s, p in BEST.items()}
    engine = SolverEngine(baskets, filters, PlannerLimits())
    b1, _ = engine.plan([PendingOrder(f"{ALICE}:c1", "SY100.dev", Decimal(300))], asks, order_budget=10)
    engine.on_fills(exchange_fills(engine, b1, filters, 100, 1000))
    (done,) = engine.on_settled(s.client_order_id for s in engine.sent_orders(b1))
    b2, plan = engine.plan([PendingOrder(f"{ALICE}:c2", "SY100.dev", Decimal(500))], asks, order_budget=10)
    deltas = engine.on_fills(exchange_fills(engine, b2, filters, 50, 2000))
    # A third batch of a buy and a sell of the same index: its sells, their release and the crossings are kept.
    bids = {s: [(Decimal(p) - filters[s].tick_size * i, Decimal(10**5)) for i in range(5)] for s, p in BEST.items()}
    b3, _ = engine.plan([PendingOrder(f"{ALICE}:c3", "SY100.dev", Decimal(400))], asks, order_budget=10,
                        sells=[PendingSell(f"{ALICE}:c4", "SY100.dev", Decimal("0.5"), Decimal(100))], bids=bids)
    sold = next(s for s in engine.sent_orders(b3) if s.order.side.value == "SELL")  # one sale fill, fee in USDC
    engine.on_fills([(sold.client_order_id, ExchangeFill(3000, bids[sold.order.symbol][0][0], sold.order.quantity,
                                                         Decimal("0.01"), "USDC"))])
    results = [BatchOrderResult(e.order_id, done.filled_units[e.order_id], tuple(done.lines[e.order_id]),
                                done.touch.get(e.index)) for e in done.engagements]
    outbox = [OutboxCall("complete", b1, {0: results}),
              OutboxCall("engage", b2, {0: list(plan.engagements)}, with_submit=True),
              OutboxCall("submit", b2, {}, tuple(s.order for s in engine.sent_orders(b2))),
              OutboxCall("fills", f"{b2}:1", {0: deltas}),
              OutboxCall("reject", "reject:solver:1700000000000:1", {0: [(f"{ALICE}:c9", "NO_LIQUIDITY:XRPUSDC")]})]
    return engine, outbox


def _solver_state() -> Record:
    from store.solver_records import SolverState, step_data

    engine, outbox = solver_world()
    return SolverState.model_validate({"engine": engine.snapshot(), "cursor": 41,
                                       "outbox": [step_data(a) for a in outbox if a.kind in ("engage", "submit")],
                                       "step_seqs": {0: 4, 1: 2},
                                       "counts": {"ticks": 9, "batches": 2, "commits": 17},
                                       "errors": ["fills b0:1 dropped: KeyError('b0')"]})


def history_entry() -> dict:
    """A planned batch as the solver's tick records it."""
    return {"batch_id": "b2", "planned_ms": T0 + 20, "orders": 1, "indexes": {"SY100": 1},
            "asset_orders": [["b2.BTCUSDC.0", "60000.00", "0.00417"], ["b2.ETHUSDC.0", "2500.00", "0.0412"]],
            "inventory_used": {"BTCUSDC": 12}, "scale": "1",
            "deferred": [[f"{ALICE}:c9", "NO_LIQUIDITY:XRPUSDC"]],
            "tick_ms": {"woken": 0.4, "fetched": 3.1, "fetch": {"pending": 1.2, "asks": 2.9},
                        "early_reads": {"pending": 0.8}, "planned": 4.7},
            "touch": {"SY100": "5012.625"}}


def _solver_history() -> Record:
    from store.solver_records import SolverHistoryEntry

    return SolverHistoryEntry.model_validate(history_entry())


def _shard_step() -> Record:
    from store.solver_records import ShardStepRecord

    _, outbox = solver_world()
    done = next(a for a in outbox if a.kind == "complete")  # its results carry the batch touch
    from core.sell_assignment import SellLine, SellResult
    line = SellLine("BTCUSDC", 400000, Decimal("0.004"), Decimal("240.0016"), Decimal("0.24"), Decimal("0.001"),
                    ("BTCUSDC:77", "cross:b1:BTCUSDC"))
    sale = SellResult(f"{ALICE}:c4", "SY100.dev", Decimal("0.01"), Decimal("0.01"), (line,), Decimal("239.7616"),
                      Decimal("239.761600"))
    return ShardStepRecord.model_validate({"step": {"kind": "complete", "key": done.key,
                                                    "results": done.by_shard[0], "sales": [sale]}})


EXAMPLES.update({"solver.state": _solver_state, "solver.history": _solver_history,
                 "solver.shard_step": _shard_step})


# ------------------------------------------------------------------------------------------------ the order sender
D = Decimal
USER = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"
DEPOSIT = "42161:0x5c504ed432cb51138bcf09aa5e8a410dd4a1e204ef84bfed1be16dfba1b22060:3"
USER2 = "0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc"
DEPOSIT2 = "42161:0x9a0e3c4b1f5e7d2a6c8b0e1f3a5d7c9b2e4f6a8c0d2e4f6a8b0c2d4e6f8a0b2c:1"


def asset_order_partly_filled() -> AssetOrder:
    """An IOC buy sent, then partly filled by one trade (the exchange's answer merged)."""
    order = AssetOrder(client_order_id("b7", "ETHUSDC"), "b7", "ETHUSDC", Side.BUY, "LIMIT", D("0.5000"),
                       D("2500.01"))
    order.mark_sent()
    order.apply(OrderUpdate(order.client_order_id, AssetOrderStatus.PARTIALLY_FILLED, D("0.2"), 4021,
                            (ExchangeFill(901, D("2499.99"), D("0.2"), D("0.0002"), "ETH", T0 + 12, False),)))
    return order


def asset_order_filled() -> AssetOrder:
    order = asset_order_partly_filled()
    order.apply(OrderUpdate(order.client_order_id, AssetOrderStatus.FILLED, D("0.5"), 4021,
                            (ExchangeFill(902, D("2500.01"), D("0.3"), D("0.0003"), "ETH", T0 + 13, True),)))
    return order


def breaker_tripped() -> CircuitBreaker:
    breaker = CircuitBreaker(2, 60_000, ManualClock(T0))
    breaker.on_reject("SOLUSDC", "-2010: Order would immediately match and take.")
    for _ in range(2):
        breaker.on_reject("BTCUSDC", "-1013: Filter failure: PERCENT_PRICE_BY_SIDE")
    return breaker


EXAMPLES["sender.order"] = lambda: SenderOrderRecord(order=asset_order_partly_filled(), replaced_by=None,
                                                             sent_at=T0 + 10)
EXAMPLES["sender.batch"] = lambda: SenderBatchRecord.of([
    SubmitResult("ETHUSDC", Side.BUY, True, "b7.ETHUSDC.0", D("0.5000"), D("2500.01"), "INTENDED"),
    SubmitResult("DOGEUSDC", Side.BUY, False, None, None, None, "REJECTED",
                 "quantity 0.4 is below the minimum 1", "LOT_SIZE")])
EXAMPLES["sender.execution"] = lambda: SenderExecutionRecord.of(
    sender_fill(7, asset_order_filled(), asset_order_filled().fills[902]))
EXAMPLES["sender.state"] = lambda: SenderStateRecord.model_validate({
    "log_seq": 7, "breaker": breaker_tripped().to_dict()})


# ------------------------------------------------------------------------------------------------ the chain side
def ledger_after_credit_hold_fee() -> CollateralLedger:
    ledger = CollateralLedger(USDC_UNIT)
    ledger.credit(DEPOSIT, "250", hold="0.5")
    ledger.charge_fee("route-3:across", "0.120001", hold_id=DEPOSIT)
    ledger.reserve(f"{USER}:c-9", "100")
    ledger.spend(f"{USER}:c-9", "40.25")
    return ledger


def route_bridged() -> CollateralRoute:
    """Bridged and filled on the destination, the bridge's cost charged to its two members."""
    members = [RouteMember(DEPOSIT, USER, D("250"), T0), RouteMember(DEPOSIT2, USER2, D("50"), T0 + 300)]
    route = CollateralRoute.open("route-3", members, origin_chain_id=42161, destination_chain_id=8453,
                                 unit=USDC_UNIT, now_ms=T0 + 1000)
    route.bridge_sent(tx_hash="0x" + "ab" * 32, deposit_id=17, input_amount=D("300"), output_amount=D("299.88"),
                      gas=D("0.004211"), now_ms=T0 + 5000, block=1234)
    route.bridge_filled(tx_hash="0x" + "ef" * 32, amount_received=D("299.87"), now_ms=T0 + 9000, block=88)
    route.mark_charged([c.fee_id for c in route.charges()])
    return route


EXAMPLES["router.ledger"] = lambda: RouterLedgerRecord.of(ledger_after_credit_hold_fee())
EXAMPLES["router.routed"] = lambda: RoutedNetRecord(net_by_deposit={DEPOSIT: D("249.875789")})
EXAMPLES["router.route"] = lambda: RouteRecord(route=route_bridged())
EXAMPLES["router.pending"] = lambda: PendingDepositRecord(member=RouteMember(DEPOSIT, USER, D("250"), T0),
                                                          chain_id=42161)
EXAMPLES["router.reversal"] = lambda: ReversalRecord(user=USER, amount=D("250"), routed=True, route="route-3",
                                                     stage=RouteStage.BRIDGING)
EXAMPLES["router.stranded_reversal"] = lambda: StrandedReversalRecord(user=USER, amount=D("250"), route="route-3",
                                                                      stage=RouteStage.BRIDGING)
EXAMPLES["tx.intent"] = lambda: TxIntentRecord.of({
    "key": "route-3:bridge:deposit", "nonce": 12, "tx_hash": "0x" + "ab" * 32, "raw": "0x02f87182a4b10c" + "00" * 40,
    "state": "mined", "meta": {"recipient": USER, "input": "250", "output": "249.88", "destination_block": 88},
    "block": 1234, "status": 1})
EXAMPLES["tx.next_nonce"] = lambda: NextNonceRecord(next_nonce=13)
EXAMPLES["chain.block_cursor"] = lambda: BlockCursorRecord(next_block=1235)


# ------------------------------------------------------------------------------------------ withdrawals
def withdrawal_bridged():
    from core.withdrawal import BridgeDeposited, BridgeFilled, ExchangeApplied, ExchangeCompleted, Reserve, Withdrawal

    w = Withdrawal.request("wd-7", ALICE, "0x2222222222222222222222222222222222222222", Decimal("250"),
                           Decimal("0.1"))
    for event in (Reserve(Decimal("900")), ExchangeApplied("cdf3f799d10432434c695bef374d9deb"),
                  ExchangeCompleted("cdf3f799d10432434c695bef374d9deb", "0x" + "cd" * 32),
                  BridgeDeposited("4242", Decimal("249.85")), BridgeFilled("4242", Decimal("0.0123456"))):
        w.apply(event)
    return w


def _withdrawal() -> Record:
    from store.withdrawal_records import WithdrawalRecord

    return WithdrawalRecord(withdrawal=withdrawal_bridged())


EXAMPLES["withdrawal"] = _withdrawal


def _shard_withdrawal() -> Record:
    from core.withdrawal import WithdrawalRequest
    from store.withdrawal_records import ShardWithdrawal

    return ShardWithdrawal(request=WithdrawalRequest(ALICE, "w-7", "0x" + "22" * 20, 42161, Decimal("250"),
                                                     Decimal("1.5"), T0 + 9))


EXAMPLES["shard.withdrawal"] = _shard_withdrawal
