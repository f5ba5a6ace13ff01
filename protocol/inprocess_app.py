"""IndexMaker's order side in one process, over core's `UserOrderBook`: the application for tests, benchmarks and
a local gateway until the order-book actors exist (M6).

It answers requests exactly as the books decide (validation order, reason codes, reservations in the collateral
ledger), and offers the engine's side (engage, fill, finish, reject, mint) as methods that push their reports to
the sink, the way the solver will. Quotes need a price source: an injected `quoter(symbol, amount)` returning the
index units the amount buys now, or None when it cannot say (then MARKET_UNAVAILABLE).
"""
from __future__ import annotations

from decimal import Decimal
from typing import Callable, Collection, Sequence

from core.clock import Clock, SystemClock
from core.collateral_ledger import USDC_UNIT, CollateralLedger
from core.index_order import IndexOrder, IndexOrderStatus
from core.index_order_book import IndexOrderRefused, UserOrderBook
from core.invoice import InvoiceLine, MintInvoice, build_invoice
from core.money import ZERO
from core.side import Side
from protocol.envelope import UserRef
from protocol.indexmaker_app import (AppRequest, AppResponse, CancelDone, CancelOrder, CancelQuote, CancelRefused,
                                     GetInvoice, InvoiceIssued, InvoiceRefused, NewOrder, NewQuote, OrderAccepted,
                                     OrderProgress, OrderRefused, QuoteAccepted, QuoteCancelRefused, QuoteRefused,
                                     QuoteResult)
from protocol.indexmaker_messages import FillStatus
from protocol.reason_codes import ReasonCode, reason_from_core

Sink = Callable[[Sequence[AppResponse]], None]
Quoter = Callable[[str, Decimal], "Decimal | None"]

_CLOSED_STATUS: dict[IndexOrderStatus, FillStatus] = {
    IndexOrderStatus.FILLED: "filled", IndexOrderStatus.CANCELLED: "canceled", IndexOrderStatus.REJECTED: "rejected"}


class InProcessIndexMakerApp:
    def __init__(self, known_indexes: Collection[str], *, clock: Clock | None = None, unit: Decimal = USDC_UNIT,
                 max_open_orders: int = 100, quoter: Quoter | None = None, token_decimals: int = 18) -> None:
        self.known_indexes = frozenset(known_indexes)
        self.clock = clock or SystemClock()
        self.unit = unit
        self.max_open_orders = max_open_orders
        self.quoter = quoter
        self.token_decimals = token_decimals
        self.books: dict[str, UserOrderBook] = {}
        self.invoices: dict[tuple[str, str], MintInvoice] = {}
        self.handled = 0
        self._sink: Sink | None = None

    def set_sink(self, sink: Sink) -> None:
        """Where later reports go: `IndexMakerPlugin.deliver`."""
        self._sink = sink

    def book(self, user: UserRef) -> UserOrderBook:
        book = self.books.get(user.key)
        if book is None:
            book = UserOrderBook(user.key, CollateralLedger(self.unit), unit=self.unit,
                                 max_open_orders=self.max_open_orders, known_indexes=self.known_indexes)
            self.books[user.key] = book
        return book

    def credit(self, user: UserRef, deposit_id: str, amount: Decimal | str) -> None:
        """A confirmed deposit (the chain listener's job in the system)."""
        self.book(user).ledger.credit(deposit_id, amount)

    # --- requests ---------------------------------------------------------------------------------------------------

    async def handle(self, requests: Sequence[AppRequest]) -> list[AppResponse]:
        responses: list[AppResponse] = []
        for request in requests:
            self.handled += 1
            if isinstance(request, NewOrder):
                responses.append(self._new_order(request))
            elif isinstance(request, CancelOrder):
                responses.extend(self._cancel(request))
            elif isinstance(request, NewQuote):
                responses.extend(self._quote(request))
            elif isinstance(request, CancelQuote):
                responses.append(QuoteCancelRefused(request.user, request.client_quote_id, ReasonCode.UNKNOWN_QUOTE,
                                                    "quotes are answered at once; none is pending"))
            elif isinstance(request, GetInvoice):
                responses.append(self._invoice(request))
        return responses

    def _new_order(self, r: NewOrder) -> AppResponse:
        try:
            self.book(r.user).new_order(r.client_order_id, r.symbol, r.side, r.amount, self.clock.now_ms())
        except IndexOrderRefused as exc:
            return OrderRefused(r.user, r.client_order_id, reason_from_core(exc.code), exc.text)
        return OrderAccepted(r.user, r.client_order_id)

    def _cancel(self, r: CancelOrder) -> list[AppResponse]:
        book = self.book(r.user)
        order = book.get(r.client_order_id)
        if order is None or order.index != r.symbol:
            # Looked up in this user's book only: another user's ClOrdID is simply unknown here.
            return [CancelRefused(r.user, r.client_order_id, ReasonCode.UNKNOWN_ORDER,
                                  f"no order {r.client_order_id!r} on {r.symbol} for this user")]
        # At least what is left (or no amount): cancel all of it, including what engaged batches leave unspent.
        amount = None if r.amount is None or r.amount >= order.remaining else r.amount
        try:
            order, cancelled = book.cancel(r.client_order_id, amount, self.clock.now_ms())
        except IndexOrderRefused as exc:
            return [CancelRefused(r.user, r.client_order_id, reason_from_core(exc.code), exc.text)]
        out: list[AppResponse] = [CancelDone(r.user, r.client_order_id, cancelled, order.remaining, order.engaged)]
        if order.is_terminal:
            out.append(self._progress(r.user, order))
        return out

    def _quote(self, r: NewQuote) -> list[AppResponse]:
        if r.side is not Side.BUY:
            return [QuoteRefused(r.user, r.client_quote_id, ReasonCode.UNSUPPORTED_SIDE, "only buy quotes")]
        if r.symbol not in self.known_indexes:
            return [QuoteRefused(r.user, r.client_quote_id, ReasonCode.UNKNOWN_INDEX, f"unknown index {r.symbol!r}")]
        quantity = self.quoter(r.symbol, r.amount) if self.quoter is not None else None
        if quantity is None:
            return [QuoteRefused(r.user, r.client_quote_id, ReasonCode.MARKET_UNAVAILABLE, "no prices to quote from")]
        return [QuoteAccepted(r.user, r.client_quote_id), QuoteResult(r.user, r.client_quote_id, quantity)]

    def _invoice(self, r: GetInvoice) -> AppResponse:
        invoice = self.invoices.get((r.user.key, r.client_order_id))
        if invoice is not None:
            return InvoiceIssued(r.user, invoice, self.clock.now_ms())
        if self.book(r.user).get(r.client_order_id) is None:
            return InvoiceRefused(r.user, r.client_order_id, ReasonCode.UNKNOWN_ORDER,
                                  f"no order {r.client_order_id!r} for this user")
        return InvoiceRefused(r.user, r.client_order_id, ReasonCode.NOT_MINTED, "the order has not been minted")

    # --- the engine's side (what the solver does in the system) -----------------------------------------------------

    @staticmethod
    def _progress(user: UserRef, order: IndexOrder, status: FillStatus | None = None,
                  code: ReasonCode | None = None, text: str | None = None) -> OrderProgress:
        if status is None:
            status = _CLOSED_STATUS.get(order.status, "in progress")
        if status == "rejected" and code is None:
            code, text = ReasonCode.ENGINE_FAILED, order.reject_reason or "the order could not be filled"
        return OrderProgress(user, order.cl_ord_id, status, order.filled_units, order.spent,
                             order.remaining + order.engaged, code, text)

    def _push(self, responses: list[AppResponse]) -> list[AppResponse]:
        if self._sink is not None:
            self._sink(responses)
        return responses

    def engage(self, user: UserRef, cl_ord_id: str, amount: Decimal | str) -> list[AppResponse]:
        book = self.book(user)
        book.engage(cl_ord_id, amount, self.clock.now_ms())
        return self._push([self._progress(user, book.get(cl_ord_id), "in progress")])  # type: ignore[arg-type]

    def fill(self, user: UserRef, cl_ord_id: str, units: Decimal | str, cost: Decimal | str) -> list[AppResponse]:
        book = self.book(user)
        book.apply_fill(cl_ord_id, units, cost, self.clock.now_ms())
        return self._push([self._progress(user, book.get(cl_ord_id), "in progress")])  # type: ignore[arg-type]

    def finish(self, user: UserRef, cl_ord_id: str, dust: Decimal | str) -> list[AppResponse]:
        """Release what is engaged and close the order; the unspent rest goes back to the user."""
        book = self.book(user)
        order = book.get(cl_ord_id)
        if order is not None and order.engaged > 0:
            book.release(cl_ord_id, order.engaged, self.clock.now_ms())
        if order is not None and not order.is_terminal:
            book.finish(cl_ord_id, dust, self.clock.now_ms())
        return self._push([self._progress(user, book.get(cl_ord_id))])  # type: ignore[arg-type]

    def reject(self, user: UserRef, cl_ord_id: str, reason: str) -> list[AppResponse]:
        """The engine gives up on the order (late rejection, §10.5)."""
        book = self.book(user)
        book.reject(cl_ord_id, reason, self.clock.now_ms())
        order = book.get(cl_ord_id)
        status: FillStatus = "rejected" if order.status is IndexOrderStatus.REJECTED else "filled"  # type: ignore
        return self._push([self._progress(user, order, status, ReasonCode.ENGINE_FAILED if status == "rejected"
                                          else None, reason if status == "rejected" else None)])  # type: ignore

    def mint(self, user: UserRef, cl_ord_id: str, lines: Sequence[InvoiceLine], tx: str,
             routing_fee: Decimal = ZERO) -> list[AppResponse]:
        book = self.book(user)
        book.mark_minted(cl_ord_id, tx)
        order = book.get(cl_ord_id)
        assert order is not None
        now = self.clock.now_ms()
        invoice = build_invoice(order_id=order.order_id, user=user.key, cl_ord_id=cl_ord_id, index=order.index,
                                collateral=order.collateral, cancelled=order.cancelled, returned=order.returned,
                                spent=order.spent, filled_units=order.filled_units, lines=list(lines),
                                token_decimals=self.token_decimals, routing_fee=routing_fee, mint_tx=tx,
                                minted_ms=now)
        self.invoices[(user.key, cl_ord_id)] = invoice
        return self._push([InvoiceIssued(user, invoice, now)])
