"""The application side of the IndexMaker plugin: the requests it hands to the application and the responses it takes
back, as plain typed values (Decimal amounts, core's Side), with no wire format in them.

The application is anything with `handle(requests) -> responses`: protocol/books_app.py over one set of books, or
the index-order shards behind the gateway actor. Later responses (fills, late rejections, invoices) come through
the plugin's sink. Refusals carry a stable `ReasonCode` and a text."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol, Sequence, Union

from core.invoice import MintInvoice as CoreMintInvoice
from core.side import Side
from core.withdrawal import WithdrawalReport as CoreWithdrawalReport
from protocol.envelope import UserRef
from protocol.indexmaker_messages import FillStatus
from protocol.reason_codes import ReasonCode

# --- requests (gateway -> application) ---------------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class NewOrder:
    """A SELL's `amount` is index units; `min_usdc` its least proceeds (None: no minimum; a BUY has none)."""

    user: UserRef
    client_order_id: str
    symbol: str
    side: Side
    amount: Decimal
    min_usdc: Decimal | None = None


@dataclass(slots=True, frozen=True)
class CancelOrder:
    """`amount` None: cancel everything not yet spent (engaged collateral finishes its batch first)."""

    user: UserRef
    client_order_id: str
    symbol: str
    amount: Decimal | None


@dataclass(slots=True, frozen=True)
class NewQuote:
    user: UserRef
    client_quote_id: str
    symbol: str
    side: Side
    amount: Decimal


@dataclass(slots=True, frozen=True)
class CancelQuote:
    user: UserRef
    client_quote_id: str
    symbol: str


@dataclass(slots=True, frozen=True)
class GetInvoice:
    user: UserRef
    client_order_id: str


@dataclass(slots=True, frozen=True)
class Withdraw:
    """A signed WithdrawCollateral: `amount` of available USDC (fees included) to `destination` on `chain_id`."""

    user: UserRef
    withdrawal_id: str
    amount: Decimal
    destination: str
    chain_id: int
    max_fee: Decimal | None


AppRequest = Union[NewOrder, CancelOrder, NewQuote, CancelQuote, GetInvoice, Withdraw]

# --- responses (application -> gateway) --------------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class OrderAccepted:
    user: UserRef
    client_order_id: str


@dataclass(slots=True, frozen=True)
class OrderRefused:
    user: UserRef
    client_order_id: str
    code: ReasonCode
    text: str


@dataclass(slots=True, frozen=True)
class CancelDone:
    user: UserRef
    client_order_id: str
    cancelled: Decimal
    remaining: Decimal  # not yet engaged, after the cancel
    engaged: Decimal  # held by batches in flight


@dataclass(slots=True, frozen=True)
class CancelRefused:
    user: UserRef
    client_order_id: str
    code: ReasonCode
    text: str


@dataclass(slots=True, frozen=True)
class OrderProgress:
    """A fill, a state change or the end of an order. `code`/`text` only with status "rejected"."""

    user: UserRef
    client_order_id: str
    status: FillStatus
    filled_quantity: Decimal
    collateral_spent: Decimal
    collateral_remaining: Decimal
    code: ReasonCode | None = None
    text: str | None = None
    index: str = ""  # the order's index ("" in reports stored before one system served several)
    #: The shortfall so far against the order's arrival value (core.shortfall.running_bps); None: no arrival value
    #: or nothing bought yet.
    shortfall_bps: Decimal | None = None


@dataclass(slots=True, frozen=True)
class InvoiceIssued:
    user: UserRef
    invoice: CoreMintInvoice
    timestamp_ms: int


@dataclass(slots=True, frozen=True)
class InvoiceRefused:
    user: UserRef
    client_order_id: str
    code: ReasonCode
    text: str


@dataclass(slots=True, frozen=True)
class QuoteAccepted:
    user: UserRef
    client_quote_id: str


@dataclass(slots=True, frozen=True)
class QuoteRefused:
    user: UserRef
    client_quote_id: str
    code: ReasonCode
    text: str


@dataclass(slots=True, frozen=True)
class QuoteResult:
    user: UserRef
    client_quote_id: str
    quantity_possible: Decimal
    index: str = ""  # the quoted index ("" in reports stored before one system served several)
    spread_bps: Decimal | None = None  # the basket's spread at the touch, bps of its mid (None: not known)
    wide_market: bool = False  # past [solver] wide_spread_bps


@dataclass(slots=True, frozen=True)
class QuoteCancelled:
    user: UserRef
    client_quote_id: str


@dataclass(slots=True, frozen=True)
class QuoteCancelRefused:
    user: UserRef
    client_quote_id: str
    code: ReasonCode
    text: str


@dataclass(slots=True, frozen=True)
class DepositReversed:
    """A deposit credited before was dropped by a reorg: `amount` left the user's collateral; `cancelled_orders`
    had their not-yet-engaged collateral cut for it (each also reported as a cancel); `debt` is what the user owes
    now (engaged collateral could not give it back: new orders are refused until a deposit pays it)."""

    user: UserRef
    deposit_id: str
    amount: Decimal
    debt: Decimal
    cancelled_orders: tuple[str, ...]
    code: ReasonCode
    timestamp_ms: int


@dataclass(slots=True, frozen=True)
class TokenDepositReport:
    """Index tokens the user sent to custody: "credited" for redemption once confirmed, or "reversed" when a reorg
    dropped the transfer after its credit (`code` DEPOSIT_REVERSED; `debt`: units already sold that the user now
    owes). `available`: the user's units of the index free to sell now (after the whole batch the event came in)."""

    user: UserRef
    deposit_id: str
    index: str
    status: str  # "credited" | "reversed"
    units: Decimal
    available: Decimal
    debt: Decimal
    code: ReasonCode | None
    timestamp_ms: int


@dataclass(slots=True, frozen=True)
class WithdrawalAccepted:
    user: UserRef
    withdrawal_id: str


@dataclass(slots=True, frozen=True)
class WithdrawalRefused:
    user: UserRef
    withdrawal_id: str
    code: ReasonCode
    text: str


@dataclass(slots=True, frozen=True)
class WithdrawalProgress:
    """A withdrawal reached `report.stage` (core.withdrawal); `withdrawal_id` is the user's id of it."""

    user: UserRef
    withdrawal_id: str
    report: CoreWithdrawalReport
    timestamp_ms: int


AppResponse = Union[OrderAccepted, OrderRefused, CancelDone, CancelRefused, OrderProgress, InvoiceIssued,
                    InvoiceRefused, QuoteAccepted, QuoteRefused, QuoteResult, QuoteCancelled, QuoteCancelRefused,
                    DepositReversed, TokenDepositReport, WithdrawalAccepted, WithdrawalRefused,
                    WithdrawalProgress]


class IndexMakerApp(Protocol):
    async def handle(self, requests: Sequence[AppRequest]) -> Sequence[AppResponse]:
        """Take a batch of requests in order; return the immediate responses, in order."""
