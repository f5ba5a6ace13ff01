"""The IndexMaker application over core's `ShardBooks`: what an order shard runs, and what tests and benches drive.

Requests are answered as the books decide (validation order, reason codes); core's steps (orders filled or closed)
become the users' reports here. It is in protocol/ because it speaks AppRequest/AppResponse and UserRef, which core
may not import. Quotes need an injected `quoter(symbol, amount)` (index units, or None: MARKET_UNAVAILABLE); the
shards have none, the gateway sends quotes to the solver. Sells are refused (UNSUPPORTED_SIDE) unless
`accept_sells`: the books take them, the path that sells, burns and pays them is wired only when that is set.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Callable, Iterable, Mapping, Sequence

from core.chain_events import CollateralDeposit
from core.clock import Clock
from core.deposit_reversal import BookReversal
from core.index_order import IndexOrder, IndexOrderStatus, user_key
from core.index_order_book import IndexOrderRefused, UserOrderBook
from core.shard_books import ShardBooks, Step, TokenStep
from core.shortfall import running_bps
from core.side import Side
from core.withdrawal import WithdrawalReport, WithdrawalRequest
from protocol.envelope import UserRef
from protocol.indexmaker_app import (AppRequest, AppResponse, CancelDone, CancelOrder, CancelQuote, CancelRefused,
                                     DepositReversed, GetInvoice, InvoiceIssued, InvoiceRefused, NewOrder, NewQuote,
                                     OrderAccepted, OrderProgress, OrderRefused, QuoteAccepted, QuoteCancelRefused,
                                     QuoteRefused, QuoteResult, TokenDepositReport, Withdraw, WithdrawalAccepted,
                                     WithdrawalProgress, WithdrawalRefused)
from protocol.indexmaker_messages import FillStatus
from protocol.reason_codes import ReasonCode, reason_from_core

Quoter = Callable[[str, Decimal], "Decimal | None"]

_CLOSED_STATUS: dict[IndexOrderStatus, FillStatus] = {
    IndexOrderStatus.FILLED: "filled", IndexOrderStatus.CANCELLED: "canceled", IndexOrderStatus.REJECTED: "rejected"}


class BooksApp:
    def __init__(self, books: ShardBooks, *, default_chain_id: int, quoter: Quoter | None = None,
                 withdrawal_minimum: Decimal | None = None, withdrawal_chains: frozenset[int] = frozenset(),
                 accept_sells: bool = False) -> None:
        """`default_chain_id`: the chain of a user known only by key (the engine's steps name orders, not
        sessions); a request or a deposit brings the user's own. `withdrawal_minimum` (`[withdrawal] minimum`;
        None: withdrawals are not offered) and `withdrawal_chains`: the destination chains withdrawals pay on."""
        self.books = books
        self.default_chain_id = default_chain_id
        self.quoter = quoter
        self.withdrawal_minimum = withdrawal_minimum
        self.withdrawal_chains = withdrawal_chains
        self.accept_sells = accept_sells
        self.refs: dict[str, UserRef] = {}  # user key -> the UserRef its reports go to

    @property
    def clock(self) -> Clock:
        return self.books.clock

    def ref(self, key: str) -> UserRef:
        return self.refs.get(key) or UserRef(self.default_chain_id, key)

    def book(self, user: UserRef) -> UserOrderBook:
        key = user_key(user.address)
        self.refs.setdefault(key, user)
        return self.books.book(key)

    # --- requests ---------------------------------------------------------------------------------------------------

    async def handle(self, requests: Sequence[AppRequest]) -> list[AppResponse]:
        return [resp for group in self.handle_each(requests) for resp in group]

    def handle_each(self, requests: Sequence[AppRequest]) -> list[list[AppResponse]]:
        """The responses of each request apart (a cancel may answer twice), in request order."""
        out: list[list[AppResponse]] = []
        for request in requests:
            self.refs[user_key(request.user.address)] = request.user  # the session's own UserRef, for later reports
            if isinstance(request, NewOrder):
                out.append([self._new_order(request)])
            elif isinstance(request, CancelOrder):
                out.append(self._cancel(request))
            elif isinstance(request, NewQuote):
                out.append(self._quote(request))
            elif isinstance(request, CancelQuote):
                out.append([QuoteCancelRefused(request.user, request.client_quote_id, ReasonCode.UNKNOWN_QUOTE,
                                               "quotes are answered at once; none is pending")])
            elif isinstance(request, GetInvoice):
                out.append([self._invoice(request)])
            elif isinstance(request, Withdraw):
                out.append([self._withdraw(request)])
            else:
                out.append([])
        return out

    def _new_order(self, r: NewOrder) -> AppResponse:
        if r.side is Side.SELL and not self.accept_sells:
            return OrderRefused(r.user, r.client_order_id, ReasonCode.UNSUPPORTED_SIDE, "sells are not served yet")
        try:
            self.books.new_order(user_key(r.user.address), r.client_order_id, r.symbol, r.side, r.amount,
                                 r.min_usdc)
        except IndexOrderRefused as exc:
            return OrderRefused(r.user, r.client_order_id, reason_from_core(exc.code), exc.text)
        return OrderAccepted(r.user, r.client_order_id)

    def _withdraw(self, r: Withdraw) -> AppResponse:
        """Hold the amount for the withdrawal, or refuse it (nothing held). A repeat of an accepted one is accepted
        again (nothing more held); a refused one held nothing, so a repeat is looked at anew."""
        if self.withdrawal_minimum is None or r.chain_id not in self.withdrawal_chains:
            return WithdrawalRefused(r.user, r.withdrawal_id, ReasonCode.UNSUPPORTED_DESTINATION,
                                     f"withdrawals are paid on chain(s) {sorted(self.withdrawal_chains)}, "
                                     f"not {r.chain_id}")
        key = user_key(r.user.address)
        request = WithdrawalRequest(key, r.withdrawal_id, r.destination, r.chain_id, r.amount, r.max_fee,
                                    self.clock.now_ms())
        try:
            self.books.accept_withdrawal(request, self.withdrawal_minimum)
        except IndexOrderRefused as exc:
            return WithdrawalRefused(r.user, r.withdrawal_id, reason_from_core(exc.code), exc.text)
        return WithdrawalAccepted(r.user, r.withdrawal_id)

    def withdrawal_reports(self, reports: Iterable[WithdrawalReport]) -> list[AppResponse]:
        """Each stage a withdrawal reached, as its user's report (named by the user's own withdrawal id)."""
        now = self.clock.now_ms()
        out: list[AppResponse] = []
        for rep in reports:
            request = self.books.withdrawals.get(rep.withdrawal_id)
            if request is None:
                continue  # not this shard's (the caller routes by user): nobody to tell
            out.append(WithdrawalProgress(self.ref(request.user), request.client_id, rep, now))
        return out

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
            order, cancelled = self.books.cancel(book.user, r.client_order_id, amount)
        except IndexOrderRefused as exc:
            return [CancelRefused(r.user, r.client_order_id, reason_from_core(exc.code), exc.text)]
        out: list[AppResponse] = [CancelDone(r.user, r.client_order_id, cancelled, order.remaining, order.engaged)]
        if order.is_terminal:
            out.append(self.progress(r.user, order))
        return out

    def _quote(self, r: NewQuote) -> list[AppResponse]:
        if r.side is not Side.BUY:
            return [QuoteRefused(r.user, r.client_quote_id, ReasonCode.UNSUPPORTED_SIDE, "only buy quotes")]
        if r.symbol not in self.books.known_indexes:
            return [QuoteRefused(r.user, r.client_quote_id, ReasonCode.UNKNOWN_INDEX,
                                 f"unknown index {r.symbol!r}; served: {', '.join(sorted(self.books.known_indexes))}")]
        quantity = self.quoter(r.symbol, r.amount) if self.quoter is not None else None
        if quantity is None:
            return [QuoteRefused(r.user, r.client_quote_id, ReasonCode.MARKET_UNAVAILABLE, "no prices to quote from")]
        return [QuoteAccepted(r.user, r.client_quote_id), QuoteResult(r.user, r.client_quote_id, quantity, r.symbol)]

    def _invoice(self, r: GetInvoice) -> AppResponse:
        invoice = self.books.invoices.get((user_key(r.user.address), r.client_order_id))
        if invoice is not None:
            return InvoiceIssued(r.user, invoice, self.clock.now_ms())
        if self.book(r.user).get(r.client_order_id) is None:
            return InvoiceRefused(r.user, r.client_order_id, ReasonCode.UNKNOWN_ORDER,
                                  f"no order {r.client_order_id!r} for this user")
        return InvoiceRefused(r.user, r.client_order_id, ReasonCode.NOT_MINTED, "the order has not been minted")

    # --- the engine's side: deposits, and core's steps as reports ---------------------------------------------------

    def book_deposits(self, deposits: Sequence[CollateralDeposit], holds: Mapping[str, Decimal]) -> Step:
        """Confirmed deposits (core.shard_books.ShardBooks.credit); the user's reports go to the deposit's chain
        until a session of theirs says otherwise."""
        for d in deposits:
            self.refs.setdefault(user_key(d.user), UserRef(d.chain_id, d.user))
        return self.books.credit(deposits, holds)

    @staticmethod
    def progress(user: UserRef, order: IndexOrder, status: FillStatus | None = None,
                 code: ReasonCode | None = None, text: str | None = None) -> OrderProgress:
        """An order's progress report; `status` None: from the order's state (a rejection carries its reason)."""
        if status is None:
            status = _CLOSED_STATUS.get(order.status, "in progress")
        if status == "rejected" and code is None:
            code, text = ReasonCode.ENGINE_FAILED, order.reject_reason or "the order could not be filled"
        arrival = None if order.arrival is None else order.arrival.mid
        return OrderProgress(user, order.cl_ord_id, status, order.filled_units, order.spent,
                             order.remaining + order.engaged, code, text, order.index,
                             running_bps(arrival, order.cost_exact, order.filled_units))

    def step_reports(self, step: Step) -> list[AppResponse]:
        """A step's reports: each fill ("in progress"), then each order it closed."""
        reports: list[AppResponse] = [self.progress(self.ref(o.user), o, "in progress") for o in step.filled]
        reports += [self.progress(self.ref(o.user), o) for o in step.closed]
        return reports

    def reversal_reports(self, done: Iterable[tuple[str, BookReversal]]) -> list[AppResponse]:
        """Per reversed deposit: a cancel report per order cut (and its close), then the DepositReversed."""
        now = self.clock.now_ms()
        reports: list[AppResponse] = []
        for key, reversal in done:
            ref = self.ref(key)
            for order, freed in reversal.cancelled:
                reports.append(CancelDone(ref, order.cl_ord_id, freed, order.remaining, order.engaged))
                if order.is_terminal:
                    reports.append(self.progress(ref, order))
            reports.append(DepositReversed(ref, reversal.deposit_key, reversal.amount,
                                           self.books.books[key].ledger.debt,
                                           tuple(o.cl_ord_id for o, _ in reversal.cancelled),
                                           ReasonCode.DEPOSIT_REVERSED, now))
        return reports

    def token_reports(self, step: TokenStep) -> list[AppResponse]:
        """A TokenDepositReport per deposit credited ("credited") or taken back by a reorg ("reversed"), with the
        units of its index free to sell now (after the whole step); before the reversals, a cancel report per sell
        they cut (and its close)."""
        now = self.clock.now_ms()
        reports: list[AppResponse] = []
        for key, d in step.credited:
            held = self.books.tokens[key].of(d.index)
            reports.append(TokenDepositReport(self.ref(key), d.key, d.index, "credited", d.units, held.available,
                                              held.debt, None, now))
        for key, order, freed in step.cut:
            ref = self.ref(key)
            reports.append(CancelDone(ref, order.cl_ord_id, freed, order.remaining, order.engaged))
            if order.is_terminal:
                reports.append(self.progress(ref, order))
        for key, r in step.reversed:
            held = self.books.tokens[key].of(r.index)
            reports.append(TokenDepositReport(self.ref(key), r.deposit_key, r.index, "reversed", r.units,
                                              held.available, held.debt, ReasonCode.DEPOSIT_REVERSED, now))
        return reports
