"""One realistic value per stored record kind, built by the current code (the fixture test writes and checks them).

Add an entry when you add a kind. When a kind's VERSION goes up, its older fixture stays (it must still load through
the migrations) and the new version gets a fixture of its own."""
from __future__ import annotations

from decimal import Decimal
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


# ------------------------------------------------------------------------------------------------ the order sender
D = Decimal
T0 = 1_700_000_000_000
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
    "delivered": 6, "subscriber": {"name": "solver", "namespace": "indexmaker"},
    "breaker": breaker_tripped().to_dict()})


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
