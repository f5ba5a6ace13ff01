"""The order shards' application (protocol.books_app.BooksApp) in one process, with the engine's steps done by hand.

Tests of the gateway and the plugin need an application and a way to move an order along without a solver: these
shortcuts engage, fill, finish, reject and mint one order directly on its core book and push the report through the
sink, as the shard's delivery would. Requests go through the same `handle` the shards run.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Callable, Collection, Sequence

from core.clock import Clock, SystemClock
from core.collateral_ledger import USDC_UNIT
from core.config import CollateralConfig
from core.index_order import IndexOrderStatus, user_key
from core.invoice import InvoiceLine, build_invoice
from core.money import ZERO
from core.shard_books import ShardBooks
from protocol.books_app import BooksApp, Quoter
from protocol.envelope import UserRef
from protocol.indexmaker_app import AppResponse, InvoiceIssued
from protocol.indexmaker_messages import FillStatus
from protocol.reason_codes import ReasonCode

Sink = Callable[[Sequence[AppResponse]], None]

#: The chain of the test users (the gateway tests sign on Base).
TEST_CHAIN_ID = 8453


class HandDrivenApp(BooksApp):
    def __init__(self, known_indexes: Collection[str], *, clock: Clock | None = None, unit: Decimal = USDC_UNIT,
                 max_open_orders: int = 100, quoter: Quoter | None = None, token_decimals: int = 18) -> None:
        defaults = CollateralConfig()
        books = ShardBooks(known_indexes, clock=clock or SystemClock(), unit=unit, max_open_orders=max_open_orders,
                           token_decimals=token_decimals, order_dust=defaults.order_dust,
                           rest_return_ratio=defaults.rest_return_ratio)
        super().__init__(books, default_chain_id=TEST_CHAIN_ID, quoter=quoter)
        self._sink: Sink | None = None

    def set_sink(self, sink: Sink) -> None:
        """Where the shortcuts' reports go: `IndexMakerPlugin.deliver`."""
        self._sink = sink

    def credit(self, user: UserRef, deposit_id: str, amount: Decimal | str) -> None:
        """A confirmed deposit under a test's own id (the chain listener's job in the system)."""
        self.book(user).ledger.credit(deposit_id, amount)

    def _push(self, responses: list[AppResponse]) -> list[AppResponse]:
        if self._sink is not None:
            self._sink(responses)
        return responses

    def engage(self, user: UserRef, cl_ord_id: str, amount: Decimal | str) -> list[AppResponse]:
        book = self.book(user)
        book.engage(cl_ord_id, amount, self.clock.now_ms())
        return self._push([self.progress(user, book.get(cl_ord_id), "in progress")])  # type: ignore[arg-type]

    def fill(self, user: UserRef, cl_ord_id: str, units: Decimal | str, cost: Decimal | str) -> list[AppResponse]:
        book = self.book(user)
        book.apply_fill(cl_ord_id, units, cost, self.clock.now_ms())
        return self._push([self.progress(user, book.get(cl_ord_id), "in progress")])  # type: ignore[arg-type]

    def finish(self, user: UserRef, cl_ord_id: str, dust: Decimal | str) -> list[AppResponse]:
        """Release what is engaged and close the order; the unspent rest goes back to the user."""
        book = self.book(user)
        order = book.get(cl_ord_id)
        if order is not None and order.engaged > 0:
            book.release(cl_ord_id, order.engaged, self.clock.now_ms())
        if order is not None and not order.is_terminal:
            book.finish(cl_ord_id, dust, self.clock.now_ms())
        return self._push([self.progress(user, book.get(cl_ord_id))])  # type: ignore[arg-type]

    def reject(self, user: UserRef, cl_ord_id: str, reason: str) -> list[AppResponse]:
        """The engine gives up on the order (late rejection, §10.5)."""
        book = self.book(user)
        book.reject(cl_ord_id, reason, self.clock.now_ms())
        order = book.get(cl_ord_id)
        status: FillStatus = "rejected" if order.status is IndexOrderStatus.REJECTED else "filled"  # type: ignore
        return self._push([self.progress(user, order, status, ReasonCode.ENGINE_FAILED if status == "rejected"
                                         else None, reason if status == "rejected" else None)])  # type: ignore

    def mint(self, user: UserRef, cl_ord_id: str, lines: Sequence[InvoiceLine], tx: str,
             routing_fee: Decimal = ZERO) -> list[AppResponse]:
        book = self.book(user)
        book.mark_minted(cl_ord_id, tx)
        order = book.get(cl_ord_id)
        assert order is not None
        now = self.clock.now_ms()
        key = user_key(user.address)
        invoice = build_invoice(order_id=order.order_id, user=key, cl_ord_id=cl_ord_id, index=order.index,
                                collateral=order.collateral, cancelled=order.cancelled, returned=order.returned,
                                spent=order.spent, filled_units=order.filled_units, lines=list(lines),
                                token_decimals=self.books.token_decimals, routing_fee=routing_fee, mint_tx=tx,
                                minted_ms=now)
        self.books.add_invoice(key, cl_ord_id, invoice)
        return self._push([InvoiceIssued(user, invoice, now)])
