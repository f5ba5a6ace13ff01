"""Bodies of IndexMaker's application messages, both directions (spec/fix-json.md §5, §6, §10.5-§10.7).

Names and fields follow the reference so that its clients need only the signing change, except where §10 changes
the protocol: `reason_code` beside `reason`, a late failure as an `IndexOrderFill` "rejected", an optional cancel
amount, and a `MintInvoice` with one line per asset. Server bodies sharing a msg_type with a request are named
`...Report` here; the wire keeps the reference's msg_type."""
from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, model_validator

from protocol.envelope import Body, WireModel
from protocol.reason_codes import ReasonCode
from protocol.wire_types import (Address, EnumValue, DecimalStr, Id, LooseId, SignedDecimalStr, Symbol, Text,
                                 Timestamp, TxHash, WireSide)

# --- client -> server --------------------------------------------------------------------------------------------


class NewIndexOrder(Body):
    """Side 1: spend `amount` of collateral (USDC) on index `symbol`. Side 2: redeem `amount` index units (at most
    the tokens credited for redemption) for at least `min_usdc` USDC, when given (a sell's only)."""

    MSG_TYPE: ClassVar[str] = "NewIndexOrder"
    client_order_id: Id
    symbol: Symbol
    side: WireSide
    amount: DecimalStr
    min_usdc: DecimalStr | None = None


class CancelIndexOrder(Body):
    """Cancel `amount` of the order's not-yet-engaged collateral; absent, or at least what is left: all of it."""

    MSG_TYPE: ClassVar[str] = "CancelIndexOrder"
    client_order_id: Id
    symbol: Symbol
    amount: DecimalStr | None = None


class NewQuoteRequest(Body):
    MSG_TYPE: ClassVar[str] = "NewQuoteRequest"
    client_quote_id: Id
    symbol: Symbol
    side: WireSide
    amount: DecimalStr


class CancelQuoteRequest(Body):
    MSG_TYPE: ClassVar[str] = "CancelQuoteRequest"
    client_quote_id: Id
    symbol: Symbol


class GetMintInvoice(Body):
    """Ask again for the invoice of a minted order (§10.7)."""

    MSG_TYPE: ClassVar[str] = "GetMintInvoice"
    client_order_id: Id


class AccountToCustody(Body):
    """A placeholder of the reference (no fields, no id); decoded so that it gets UNSUPPORTED, not UNKNOWN."""

    MSG_TYPE: ClassVar[str] = "AccountToCustody"


class CustodyToAccount(Body):
    MSG_TYPE: ClassVar[str] = "CustodyToAccount"


class WithdrawCollateral(Body):
    """Withdraw `amount` of available USDC (routing fees included) to `destination` on chain
    `destination_chain_id` (Arbitrum). `withdrawal_id` is the user's id of it (unique per user: a repeat gets the
    first answer); `max_fee`: the most the user accepts in routing fees."""

    MSG_TYPE: ClassVar[str] = "WithdrawCollateral"
    withdrawal_id: Id
    amount: DecimalStr
    destination: Address
    destination_chain_id: int = Field(gt=0)
    max_fee: DecimalStr | None = None


# --- server -> client --------------------------------------------------------------------------------------------


TradingMode = Literal["paper"]


class _Report(Body):
    """A server's business message. `trading_mode` "paper" says the system runs in paper mode (nothing it reports
    was traded on the exchange: fills are matched locally on its market data); absent on a live system."""

    trading_mode: TradingMode | None = None


class _Refusable(_Report):
    """A report whose status may be "rejected": then, and only then, a reason code and text come with it."""

    REJECTED: ClassVar[str] = "rejected"
    reason_code: Annotated[ReasonCode | None, EnumValue] = None
    reason: Text | None = None

    @model_validator(mode="after")
    def _reason_iff_rejected(self) -> "_Refusable":
        rejected = getattr(self, "status") == self.REJECTED
        if rejected != (self.reason_code is not None):
            raise ValueError("reason_code is required with status 'rejected' and only then")
        return self


class NewIndexOrderReport(_Refusable):
    MSG_TYPE: ClassVar[str] = "NewIndexOrder"
    status: Literal["new", "rejected"]
    client_order_id: Id


class CancelIndexOrderReport(_Refusable):
    """`cancelled_amount`: collateral this cancel freed; `collateral_remaining`: not yet engaged after it;
    `collateral_engaged`: held by batches in flight (it finishes its batch)."""

    MSG_TYPE: ClassVar[str] = "CancelIndexOrder"
    status: Literal["canceled", "rejected"]
    client_order_id: Id
    cancelled_amount: DecimalStr | None = None
    collateral_remaining: DecimalStr | None = None
    collateral_engaged: DecimalStr | None = None


FillStatus = Literal["collateral ready", "in progress", "mintable", "fully mintable", "filled", "canceled",
                     "rejected"]


class IndexOrderFill(_Refusable):
    """Progress of one order: cumulative `filled_quantity` (index units) and `collateral_spent`;
    `collateral_remaining` is engaged plus not yet engaged; `fill_rate` = spent / (spent + remaining), rounded down
    to 6 places. Status "filled" / "canceled" / "rejected" closes the order ("rejected" carries the reason)."""

    MSG_TYPE: ClassVar[str] = "IndexOrderFill"
    client_order_id: Id
    #: The order's index (absent only in reports stored before the system served several indexes).
    symbol: Symbol | None = None
    status: FillStatus
    filled_quantity: DecimalStr
    collateral_spent: DecimalStr
    collateral_remaining: DecimalStr
    fill_rate: DecimalStr
    #: The shortfall so far, in bps, against the basket's value when the order arrived (absent: none known).
    shortfall_bps: SignedDecimalStr | None = None


class InvoiceLine(WireModel):
    symbol: Symbol
    quantity: DecimalStr
    average_price: DecimalStr | None = None
    value: DecimalStr
    fee: DecimalStr
    lot_ids: list[LooseId] = Field(default_factory=list, max_length=10_000)
    #: The asset's mid and best ask when the order arrived, and average_price against that mid in bps.
    arrival_mid: DecimalStr | None = None
    arrival_ask: DecimalStr | None = None
    shortfall_bps: SignedDecimalStr | None = None


class MintInvoice(_Report):
    """What the order bought and what it cost. total_amount = collateral_spent + amount_cancelled + amount_returned
    (exact); the routing fee was charged to the user's collateral on top, when the deposit was routed."""

    MSG_TYPE: ClassVar[str] = "MintInvoice"
    client_order_id: Id
    symbol: Symbol
    total_amount: DecimalStr
    collateral_spent: DecimalStr
    amount_cancelled: DecimalStr
    amount_returned: DecimalStr
    assets_value: DecimalStr
    exchange_fee: DecimalStr
    routing_fee: DecimalStr
    filled_quantity: DecimalStr
    minted_quantity: DecimalStr
    fill_rate: DecimalStr
    lines: list[InvoiceLine] = Field(max_length=1_000)
    mint_tx: TxHash | None = None
    timestamp: Timestamp
    #: Execution quality per index unit (protocol/README.md, "Arrival value and shortfall"): absent when the order
    #: arrived before any value of its basket was known.
    arrival_value: DecimalStr | None = None
    arrival_touch: DecimalStr | None = None
    arrival_time: Timestamp | None = None
    batch_touch: DecimalStr | None = None
    paid_per_unit: DecimalStr | None = None
    shortfall_bps: SignedDecimalStr | None = None
    spread_bps: SignedDecimalStr | None = None
    delay_bps: SignedDecimalStr | None = None
    impact_bps: SignedDecimalStr | None = None
    fee_bps: SignedDecimalStr | None = None

    @model_validator(mode="after")
    def _adds_up(self) -> "MintInvoice":
        if self.collateral_spent + self.amount_cancelled + self.amount_returned != self.total_amount:
            raise ValueError("collateral_spent + amount_cancelled + amount_returned must equal total_amount")
        if self.minted_quantity > self.filled_quantity:
            raise ValueError("minted_quantity exceeds filled_quantity")
        if self.shortfall_bps is not None:
            parts = (self.spread_bps, self.delay_bps or 0, self.impact_bps, self.fee_bps)
            if any(p is None for p in parts) or sum(parts) != self.shortfall_bps:  # type: ignore[arg-type]
                raise ValueError("spread_bps + delay_bps + impact_bps + fee_bps must equal shortfall_bps")
        return self


class MintInvoiceRejected(_Report):
    """Answer to GetMintInvoice when there is no invoice (UNKNOWN_ORDER, NOT_MINTED)."""

    MSG_TYPE: ClassVar[str] = "MintInvoiceRejected"
    client_order_id: Id
    reason_code: Annotated[ReasonCode, EnumValue]
    reason: Text


class NewIndexQuote(_Refusable):
    MSG_TYPE: ClassVar[str] = "NewIndexQuote"
    status: Literal["new", "rejected"]
    client_quote_id: Id


class IndexQuoteResponse(_Report):
    """Index units that the quoted amount would buy now."""

    MSG_TYPE: ClassVar[str] = "IndexQuoteResponse"
    client_quote_id: Id
    #: The quoted index (absent only in reports stored before the system served several indexes).
    symbol: Symbol | None = None
    quantity_possible: DecimalStr
    #: The basket's spread at the touch, in basis points of its mid value (rounded up), when the books gave both
    #: sides; `wide_market` true when it is past the system's width for a normal market (`[solver] wide_spread_bps`).
    spread_bps: DecimalStr | None = None
    wide_market: bool | None = None


class CancelIndexQuote(_Refusable):
    MSG_TYPE: ClassVar[str] = "CancelIndexQuote"
    status: Literal["canceled", "rejected"]
    client_quote_id: Id


class DepositReversed(_Report):
    """Server-initiated: a deposit credited before was dropped by a reorg deeper than the confirmations. `amount`
    left the user's collateral; the orders in `cancelled_orders` had their not-yet-engaged collateral cut for it
    (each with its own CancelIndexOrder report); `debt` is what the user now owes (collateral already engaged by a
    batch): new orders are refused with DEBT_OUTSTANDING until a deposit pays it."""

    MSG_TYPE: ClassVar[str] = "DepositReversed"
    deposit_id: LooseId
    amount: DecimalStr
    debt: DecimalStr
    cancelled_orders: list[Id] = Field(default_factory=list, max_length=1_000)
    reason_code: Annotated[ReasonCode, EnumValue]
    reason: Text
    timestamp: Timestamp


class TokenDeposit(_Refusable):
    """Server-initiated: index tokens the user sent to our custody address on Base. "credited": confirmed and
    credited for redemption; "reversed" (with `reason_code` DEPOSIT_REVERSED): a reorg deeper than the
    confirmations dropped the transfer after its credit, and the units were taken back (`debt`: units of the index
    already sold that the user now owes; new sells of it are refused until a deposit pays it). `quantity`: the
    deposit's index units; `available`: the user's units of `symbol` free to sell now (after every deposit of the
    batch this one was confirmed in)."""

    MSG_TYPE: ClassVar[str] = "TokenDeposit"
    REJECTED: ClassVar[str] = "reversed"
    deposit_id: LooseId
    symbol: Symbol
    status: Literal["credited", "reversed"]
    quantity: DecimalStr
    available: DecimalStr
    debt: DecimalStr
    timestamp: Timestamp


class WithdrawCollateralReport(_Refusable):
    """The answer to WithdrawCollateral: "new" (the amount is held for it) or "rejected" with the reason."""

    MSG_TYPE: ClassVar[str] = "WithdrawCollateral"
    status: Literal["new", "rejected"]
    withdrawal_id: Id


WithdrawalStageName = Literal["reserved", "applied", "on_base", "bridging", "bridged", "paid", "released",
                              "refunded", "refused"]


class CollateralWithdrawal(_Report):
    """Server-initiated: a withdrawal reached `stage` (core/withdrawal.py). `fees` are the routing fees known so
    far; `payout` what the user receives (from "bridged"); `tx_hash` the payment's transaction ("paid"); `reason`
    why it ended without paying ("released", "refunded") or paid nothing."""

    MSG_TYPE: ClassVar[str] = "CollateralWithdrawal"
    withdrawal_id: Id
    stage: WithdrawalStageName
    amount: DecimalStr
    fees: DecimalStr
    payout: DecimalStr | None = None
    tx_hash: TxHash | None = None
    reason: Text | None = None
    timestamp: Timestamp


INDEXMAKER_REQUESTS: dict[str, type[Body]] = {
    m.MSG_TYPE: m for m in (NewIndexOrder, CancelIndexOrder, NewQuoteRequest, CancelQuoteRequest, GetMintInvoice,
                            AccountToCustody, CustodyToAccount, WithdrawCollateral)}
INDEXMAKER_REPORTS: dict[str, type[Body]] = {
    m.MSG_TYPE: m for m in (NewIndexOrderReport, CancelIndexOrderReport, IndexOrderFill, MintInvoice,
                            MintInvoiceRejected, NewIndexQuote, IndexQuoteResponse, CancelIndexQuote,
                            DepositReversed, TokenDeposit, WithdrawCollateralReport, CollateralWithdrawal)}
