"""Taking a reversed deposit back out of one user's book (a reorg deeper than the confirmations dropped it).

The ledger takes the amount from the deposit's hold, then free collateral. Reserved but unengaged collateral is
still the user's to give back, so open orders are cut first, newest first and only as much as needed: the oldest
orders, first in line for a batch, go on. Sells hold index tokens, not USDC: a reversed token deposit cuts them the
same way (core/shard_books.py). What batches already engaged or spent becomes debt, which blocks new orders."""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from core.index_order import IndexOrder
from core.index_order_book import UserOrderBook
from core.side import Side
from core.token_ledger import TokenLedger


@dataclass(slots=True)
class BookReversal:
    deposit_key: str
    amount: Decimal
    debt: Decimal  # added by this reversal
    cancelled: list[tuple[IndexOrder, Decimal]] = field(default_factory=list)  # (order, collateral cancelled)


def reverse_in_book(book: UserOrderBook, deposit_key: str, now_ms: int) -> BookReversal | None:
    """Cancel what the shortfall needs from the open orders, then reverse the deposit in the ledger. None (nothing
    changes) when the deposit is unknown to this book or was reversed before."""
    ledger = book.ledger
    amount = ledger.deposit(deposit_key)
    if amount == 0 or ledger.is_reversed(deposit_key):
        return None
    short = amount - ledger.hold(deposit_key) - ledger.available
    cancelled = cut_open_orders(book, short, now_ms, side=Side.BUY)  # a sell holds tokens, not USDC
    debt = ledger.reverse_deposit(deposit_key)
    return BookReversal(deposit_key, amount, debt, cancelled)


def cut_open_orders(book: UserOrderBook, short: Decimal, now_ms: int, *, side: Side, index: str | None = None,
                    tokens: TokenLedger | None = None) -> list[tuple[IndexOrder, Decimal]]:
    """Cancel up to `short` of the not-yet-engaged part of the book's open orders of `side` (and `index`, if
    given), newest first; a sell's units go back to `tokens`. Returns (order, what its cancel freed) pairs."""
    cancelled: list[tuple[IndexOrder, Decimal]] = []
    for order in reversed(book.open_orders()):
        if short <= 0:
            break
        if order.side is not side or (index is not None and order.index != index):
            continue
        take = min(order.remaining, short)
        if take <= 0:
            continue
        # All of it (None) when nothing is engaged, so the order closes; else exactly `take`, and the engaged part
        # finishes its batch.
        whole = take == order.remaining and order.engaged == 0
        order, freed = book.cancel(order.cl_ord_id, None if whole else take, now_ms, tokens)
        cancelled.append((order, freed))
        short -= freed
    return cancelled
