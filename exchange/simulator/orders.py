"""The matching engine's order and trade records (mutable, engine-owned; payloads.py turns them into JSON)."""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from core.money import ZERO
from core.side import Side

# Order statuses (Binance ENUM definitions).
NEW = "NEW"
PARTIALLY_FILLED = "PARTIALLY_FILLED"
FILLED = "FILLED"
CANCELED = "CANCELED"
EXPIRED = "EXPIRED"
EXPIRED_IN_MATCH = "EXPIRED_IN_MATCH"
REJECTED = "REJECTED"
OPEN_STATUSES = frozenset({NEW, PARTIALLY_FILLED})

LIMIT = "LIMIT"
MARKET = "MARKET"
LIMIT_MAKER = "LIMIT_MAKER"
GTC, IOC, FOK = "GTC", "IOC", "FOK"


@dataclass(slots=True, eq=False)
class Order:
    symbol: str
    order_id: int
    client_order_id: str
    account: str
    side: Side
    type: str
    time_in_force: str
    price: Decimal  # 0 for MARKET
    orig_qty: Decimal  # 0 for a MARKET by quoteOrderQty until it executes
    orig_quote_qty: Decimal  # quoteOrderQty, 0 if not used
    time: int
    executed_qty: Decimal = ZERO
    cum_quote: Decimal = ZERO
    status: str = NEW
    update_time: int = 0
    working_time: int = -1
    #: Remaining amount locked for this order, in `locked_asset` (quote for BUY, base for SELL).
    locked: Decimal = ZERO
    locked_asset: str = ""
    #: Quantity still resting on the book (only meaningful while on the book).
    remaining: Decimal = ZERO
    self_trade_prevention: str = "EXPIRE_MAKER"
    expiry_reason: str | None = None
    #: True once the order has had a first fill (the ORDERS rate counter gives the slot back then).
    filled_once: bool = False
    #: Market-maker orders belong to the simulator itself: no balances, no user events.
    system: bool = False

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


@dataclass(slots=True)
class Fill:
    """One execution from one side's point of view (an order's `fills[]` entry and a myTrades row)."""

    symbol: str
    trade_id: int
    order_id: int
    price: Decimal
    qty: Decimal
    quote_qty: Decimal
    commission: Decimal
    commission_asset: str
    time: int
    is_buyer: bool
    is_maker: bool


@dataclass(slots=True)
class Deposit:
    """A credited deposit (GET /sapi/v1/capital/deposit/hisrec row)."""

    id: str
    coin: str
    network: str
    amount: Decimal
    address: str
    tx_id: str
    insert_time: int
    status: int = 1  # 1 = success (credited)
    confirmations: str = "1/1"
    extra: dict = field(default_factory=dict)


# Withdrawal statuses (GET /sapi/v1/capital/withdraw/history: 0 Email Sent, 1 Cancelled, 2 Awaiting Approval,
# 3 Rejected, 4 Processing, 5 Failure, 6 Completed).
W_EMAIL_SENT, W_CANCELLED, W_AWAITING_APPROVAL, W_REJECTED, W_PROCESSING, W_FAILURE, W_COMPLETED = range(7)
W_FINAL = frozenset({W_CANCELLED, W_REJECTED, W_FAILURE, W_COMPLETED})


@dataclass(slots=True)
class Withdrawal:
    """One withdrawal (a GET /sapi/v1/capital/withdraw/history row). `amount` is what reaches the address; the
    account paid `amount + fee`."""

    id: str
    coin: str
    network: str
    address: str
    amount: Decimal
    fee: Decimal
    apply_time: int
    withdraw_order_id: str = ""
    wallet_type: int = 0
    status: int = W_AWAITING_APPROVAL
    tx_id: str = ""
    #: The payout's signed transaction (chain_withdrawals.py): broadcast again, never signed again.
    raw_tx: str = ""
    complete_time: int | None = None
    info: str = ""
    #: When the status last changed (the simulator's clock), to move it on after the configured delays.
    status_time: int = 0
