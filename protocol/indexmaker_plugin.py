"""The IndexMaker plugin: wire requests -> application requests, application responses -> wire reports.

It is the only place that knows both the FIX/JSON bodies and the application's vocabulary
(protocol/indexmaker_app.py). The application is injected: an object with `async handle(requests)` or a bare async
callable; later responses (fills, late rejections, invoices) come back through `deliver`.
"""
from __future__ import annotations

import logging
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from typing import Any, Awaitable, Callable, Sequence

from core.money import ZERO
from protocol.envelope import Body, UserRef
from protocol.indexmaker_app import (AppRequest, AppResponse, CancelDone, CancelOrder, CancelQuote, CancelRefused,
                                     DepositReversed, GetInvoice, IndexMakerApp, InvoiceIssued, InvoiceRefused, NewOrder, NewQuote,
                                     OrderAccepted, OrderProgress, OrderRefused, QuoteAccepted, QuoteCancelled,
                                     QuoteCancelRefused, QuoteRefused, QuoteResult, TokenDepositReport, Withdraw,
                                     WithdrawalAccepted, WithdrawalProgress, WithdrawalRefused)
from protocol.indexmaker_messages import (INDEXMAKER_REQUESTS, AccountToCustody, CancelIndexOrder,
                                          CancelIndexOrderReport, CancelIndexQuote, CancelQuoteRequest,
                                          CustodyToAccount, GetMintInvoice, IndexOrderFill, IndexQuoteResponse,
                                          InvoiceLine, MintInvoice, MintInvoiceRejected, NewIndexOrder,
                                          NewIndexOrderReport, NewIndexQuote, NewQuoteRequest, WithdrawCollateral,
                                          WithdrawCollateralReport, CollateralWithdrawal)
from protocol.indexmaker_messages import DepositReversed as DepositReversedReport
from protocol.indexmaker_messages import TokenDeposit as TokenDepositWire
from protocol.plugin import BasePlugin, Inbound, Refusal
from protocol.reason_codes import NakCode, ReasonCode
from protocol.wire_types import format_timestamp

log = logging.getLogger(__name__)

#: Fill rates are shown to 6 places, rounded DOWN: a report never overstates how much of an order was done.
RATE_QUANTUM = Decimal("0.000001")
#: An invoice line's average price is value / quantity, a quotient with up to 60 digits; the wire takes at most 30
#: decimals. Shown to 18 places, rounded half-even: it is information (value and fee carry the exact money).
PRICE_QUANTUM = Decimal("1e-18")
_TEXT_MAX = 500

Handler = Callable[[Sequence[AppRequest]], Awaitable[Sequence[AppResponse]]]


def _rate(part: Decimal, whole: Decimal) -> Decimal:
    if whole <= 0:
        return ZERO
    return (part / whole).quantize(RATE_QUANTUM, rounding=ROUND_DOWN)


def _text(text: str) -> str:
    return text if len(text) <= _TEXT_MAX else text[: _TEXT_MAX - 3] + "..."


class IndexMakerPlugin(BasePlugin):
    requests = INDEXMAKER_REQUESTS
    #: Per-message weights for the per-user limit (§10.8): the reference's configured table, actually used.
    message_weights = {"NewIndexOrder": 10, "CancelIndexOrder": 5, "NewQuoteRequest": 5, "CancelQuoteRequest": 3,
                       "GetMintInvoice": 2, "WithdrawCollateral": 10}
    unsigned_ok = frozenset({"NewQuoteRequest", "CancelQuoteRequest"})

    def __init__(self, app: IndexMakerApp | Handler, *, trading_mode: str | None = None) -> None:
        """`trading_mode` "paper": every business report says so (its `trading_mode` field)."""
        super().__init__()
        self._handle: Handler = app.handle if hasattr(app, "handle") else app  # type: ignore[union-attr,assignment]
        self.delivered = 0
        self.trading_mode = trading_mode

    # --- wire -> application ----------------------------------------------------------------------------------------

    def precheck(self, user: UserRef, body: Body) -> Refusal | None:
        if isinstance(body, (AccountToCustody, CustodyToAccount)):
            return Refusal(NakCode.UNSUPPORTED, f"{body.MSG_TYPE} is not offered: collateral moves on chain")
        return None

    @staticmethod
    def to_app(inbound: Inbound) -> AppRequest:
        body, user = inbound.body, inbound.user
        if isinstance(body, NewIndexOrder):
            return NewOrder(user, body.client_order_id, body.symbol, body.side, body.amount, body.min_usdc)
        if isinstance(body, CancelIndexOrder):
            return CancelOrder(user, body.client_order_id, body.symbol, body.amount)
        if isinstance(body, NewQuoteRequest):
            return NewQuote(user, body.client_quote_id, body.symbol, body.side, body.amount)
        if isinstance(body, CancelQuoteRequest):
            return CancelQuote(user, body.client_quote_id, body.symbol)
        if isinstance(body, GetMintInvoice):
            return GetInvoice(user, body.client_order_id)
        if isinstance(body, WithdrawCollateral):
            return Withdraw(user, body.withdrawal_id, body.amount, body.destination, body.destination_chain_id,
                            body.max_fee)
        raise TypeError(f"no application request for {body.MSG_TYPE}")  # precheck refused the others

    async def on_requests(self, batch: Sequence[Inbound]) -> None:
        requests = [self.to_app(inbound) for inbound in batch]
        try:
            responses = await self._handle(requests)
        except Exception as exc:
            log.exception("application failed on a batch of %d", len(requests))
            responses = [_internal_error(r, f"application error: {type(exc).__name__}") for r in requests]
        self.deliver(responses)

    # --- application -> wire ----------------------------------------------------------------------------------------

    def deliver(self, responses: Sequence[AppResponse]) -> None:
        """Send application responses to their users (the sink for later reports). Gateway event loop only."""
        outbox = self.outbox
        if outbox is None:
            raise RuntimeError("plugin not attached to a gateway")
        for response in responses:
            try:
                body = self.to_wire(response)
                if self.trading_mode is not None and "trading_mode" in type(body).model_fields:
                    body = body.model_copy(update={"trading_mode": self.trading_mode})
            except Exception:  # one malformed response must not cost the others their reports
                log.exception("cannot turn %r into a wire message", response)
                continue
            outbox.emit(response.user, body)
            self.delivered += 1

    @staticmethod
    def to_wire(r: AppResponse) -> Body:
        if isinstance(r, (OrderAccepted, OrderRefused)):
            return _answer(NewIndexOrderReport, client_order_id=r.client_order_id, refused=r)
        if isinstance(r, CancelDone):
            return CancelIndexOrderReport(status="canceled", client_order_id=r.client_order_id,
                                          cancelled_amount=r.cancelled, collateral_remaining=r.remaining,
                                          collateral_engaged=r.engaged)
        if isinstance(r, CancelRefused):
            return CancelIndexOrderReport(status="rejected", client_order_id=r.client_order_id, reason_code=r.code,
                                          reason=_text(r.text))
        if isinstance(r, OrderProgress):
            return IndexOrderFill(
                client_order_id=r.client_order_id, symbol=r.index or None, status=r.status, filled_quantity=r.filled_quantity,
                collateral_spent=r.collateral_spent, collateral_remaining=r.collateral_remaining,
                fill_rate=_rate(r.collateral_spent, r.collateral_spent + r.collateral_remaining),
                reason_code=r.code, reason=None if r.text is None else _text(r.text), shortfall_bps=r.shortfall_bps)
        if isinstance(r, InvoiceIssued):
            return _invoice(r)
        if isinstance(r, InvoiceRefused):
            return MintInvoiceRejected(client_order_id=r.client_order_id, reason_code=r.code, reason=_text(r.text))
        if isinstance(r, QuoteAccepted):
            return NewIndexQuote(status="new", client_quote_id=r.client_quote_id)
        if isinstance(r, QuoteRefused):
            return NewIndexQuote(status="rejected", client_quote_id=r.client_quote_id, reason_code=r.code,
                                 reason=_text(r.text))
        if isinstance(r, QuoteResult):
            return IndexQuoteResponse(client_quote_id=r.client_quote_id, symbol=r.index or None,
                                      quantity_possible=r.quantity_possible, spread_bps=r.spread_bps,
                                      wide_market=r.wide_market or None)
        if isinstance(r, QuoteCancelled):
            return CancelIndexQuote(status="canceled", client_quote_id=r.client_quote_id)
        if isinstance(r, QuoteCancelRefused):
            return CancelIndexQuote(status="rejected", client_quote_id=r.client_quote_id, reason_code=r.code,
                                    reason=_text(r.text))
        if isinstance(r, DepositReversed):
            return DepositReversedReport(
                deposit_id=r.deposit_id, amount=r.amount, debt=r.debt, cancelled_orders=list(r.cancelled_orders),
                reason_code=r.code, reason=_text(f"deposit {r.deposit_id} was dropped by a chain reorg: {r.amount} "
                                                  f"taken back from your collateral"),
                timestamp=format_timestamp(r.timestamp_ms))
        if isinstance(r, TokenDepositReport):
            reversed_ = r.status == "reversed"
            return TokenDepositWire(
                deposit_id=r.deposit_id, symbol=r.index, status=r.status, quantity=r.units, available=r.available,
                debt=r.debt, reason_code=r.code if reversed_ else None,
                reason=_text(f"token deposit {r.deposit_id} was dropped by a chain reorg: {r.units} {r.index} "
                             f"taken back") if reversed_ else None,
                timestamp=format_timestamp(r.timestamp_ms))
        if isinstance(r, (WithdrawalAccepted, WithdrawalRefused)):
            return _answer(WithdrawCollateralReport, withdrawal_id=r.withdrawal_id, refused=r)
        if isinstance(r, WithdrawalProgress):
            rep = r.report
            return CollateralWithdrawal(withdrawal_id=r.withdrawal_id, stage=rep.stage.value, amount=rep.amount,
                                        fees=rep.fees, payout=rep.payout, tx_hash=rep.tx_hash,
                                        reason=None if rep.reason is None else _text(rep.reason),
                                        timestamp=format_timestamp(r.timestamp_ms))
        raise TypeError(f"unknown application response {type(r).__name__}")


def _answer(report: type[Body], *, refused: Any, **ident: str) -> Body:
    """A request's answer: status "new", or "rejected" with the refusal's code and text (a response with `code`)."""
    if hasattr(refused, "code"):
        return report(status="rejected", reason_code=refused.code, reason=_text(refused.text), **ident)
    return report(status="new", **ident)


def _price(p: Decimal | None) -> Decimal | None:
    return None if p is None else p.quantize(PRICE_QUANTUM, rounding=ROUND_HALF_EVEN)


def _invoice(r: InvoiceIssued) -> MintInvoice:
    inv = r.invoice
    return MintInvoice(
        client_order_id=inv.cl_ord_id, symbol=inv.index, total_amount=inv.collateral, collateral_spent=inv.spent,
        amount_cancelled=inv.cancelled, amount_returned=inv.returned, assets_value=inv.assets_value,
        exchange_fee=inv.exchange_fee, routing_fee=inv.routing_fee, filled_quantity=inv.filled_units,
        minted_quantity=inv.minted_units,
        # Of what the user did not cancel, the share that was spent (the rest came back as dust).
        fill_rate=_rate(inv.spent, inv.collateral - inv.cancelled),
        lines=[InvoiceLine(symbol=line.symbol, quantity=line.quantity, average_price=_price(line.average_price),
                           value=line.value, fee=line.fee, lot_ids=list(line.lot_ids),
                           arrival_mid=_price(line.arrival_mid), arrival_ask=_price(line.arrival_ask),
                           shortfall_bps=line.shortfall_bps) for line in inv.lines],
        mint_tx=inv.mint_tx, timestamp=format_timestamp(inv.minted_ms if inv.minted_ms is not None
                                                        else r.timestamp_ms),
        # Per-unit prices are exact quotients in the invoice: shown to the price quantum, like a line's average.
        arrival_value=_price(inv.arrival_value), arrival_touch=_price(inv.arrival_touch),
        arrival_time=None if inv.arrival_ms is None else format_timestamp(inv.arrival_ms),
        batch_touch=_price(inv.batch_touch), paid_per_unit=_price(inv.paid_per_unit), shortfall_bps=inv.shortfall_bps,
        spread_bps=inv.spread_bps, delay_bps=inv.delay_bps, impact_bps=inv.impact_bps, fee_bps=inv.fee_bps)


def _internal_error(request: AppRequest, text: str) -> Any:
    user = request.user
    if isinstance(request, NewOrder):
        return OrderRefused(user, request.client_order_id, ReasonCode.INTERNAL_ERROR, text)
    if isinstance(request, CancelOrder):
        return CancelRefused(user, request.client_order_id, ReasonCode.INTERNAL_ERROR, text)
    if isinstance(request, NewQuote):
        return QuoteRefused(user, request.client_quote_id, ReasonCode.INTERNAL_ERROR, text)
    if isinstance(request, CancelQuote):
        return QuoteCancelRefused(user, request.client_quote_id, ReasonCode.INTERNAL_ERROR, text)
    if isinstance(request, Withdraw):
        return WithdrawalRefused(user, request.withdrawal_id, ReasonCode.INTERNAL_ERROR, text)
    return InvoiceRefused(user, request.client_order_id, ReasonCode.INTERNAL_ERROR, text)
