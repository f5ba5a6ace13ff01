"""core.deposit_reversal: a reversed deposit cancels only the unengaged collateral the shortfall needs, newest order
first; what is engaged stays and the rest is debt; the ledger identity holds; a second reversal changes nothing."""
from __future__ import annotations

from decimal import Decimal

from core.collateral_ledger import USDC_UNIT, CollateralLedger
from core.deposit_reversal import reverse_in_book
from core.index_order import IndexOrderStatus
from core.index_order_book import UserOrderBook

U = USDC_UNIT
ALICE = "0x1111111111111111111111111111111111111111"
T0 = 1_700_000_000_000


def book_with(*deposits: tuple[str, str, str]) -> UserOrderBook:
    book = UserOrderBook(ALICE, CollateralLedger(U), unit=U, max_open_orders=10, known_indexes=("SY100",))
    for key, amount, hold in deposits:
        book.ledger.credit(key, Decimal(amount), Decimal(hold))
    return book


def test_free_collateral_covers_it_and_no_order_is_touched():
    book = book_with(("d1", "100", "1"), ("d2", "50", "0"))
    book.new_order("o1", "SY100", "BUY", "40", T0)
    out = reverse_in_book(book, "d1", T0 + 1)
    assert out is not None and out.debt == 0 and out.cancelled == []
    assert book.ledger.available == Decimal("10") and book.get("o1").remaining == Decimal("40")
    book.ledger.check()
    assert book.ledger.credited == Decimal("50")


def test_newest_orders_are_cut_first_and_only_by_the_shortfall():
    book = book_with(("d1", "100", "1.5"))
    book.new_order("old", "SY100", "BUY", "50", T0)
    book.new_order("mid", "SY100", "BUY", "30", T0 + 1)
    book.new_order("new", "SY100", "BUY", "10", T0 + 2)  # available left: 100 - 1.5 - 90 = 8.5
    out = reverse_in_book(book, "d1", T0 + 3)
    assert out is not None
    # short = 100 - 1.5 (hold) - 8.5 (free) = 90: new (10) closes, mid (30) closes, old gives 50 of 50
    assert [(o.cl_ord_id, a) for o, a in out.cancelled] == [("new", Decimal("10")), ("mid", Decimal("30")),
                                                            ("old", Decimal("50"))]
    assert out.debt == 0 and all(book.get(c).status == IndexOrderStatus.CANCELLED for c in ("new", "mid", "old"))
    book.ledger.check()
    assert book.ledger.credited == 0 and book.ledger.available == 0 and book.ledger.debt == 0


def test_partial_cut_keeps_the_older_order_open():
    book = book_with(("d1", "60", "0"), ("d2", "40", "0"))
    book.new_order("old", "SY100", "BUY", "70", T0)
    book.new_order("new", "SY100", "BUY", "20", T0 + 1)  # free: 10
    out = reverse_in_book(book, "d2", T0 + 2)  # short 30: new gives 20, old 10
    assert out is not None and out.debt == 0
    assert [(o.cl_ord_id, a) for o, a in out.cancelled] == [("new", Decimal("20")), ("old", Decimal("10"))]
    old = book.get("old")
    assert old.status not in (IndexOrderStatus.CANCELLED,) and old.remaining == Decimal("60")
    book.ledger.check()


def test_engaged_collateral_stays_and_the_rest_is_debt_then_replay_is_a_no_op():
    book = book_with(("d1", "100", "0"))
    book.new_order("o1", "SY100", "BUY", "100", T0)
    book.engage("o1", "70", T0 + 1)
    out = reverse_in_book(book, "d1", T0 + 2)
    assert out is not None and [(o.cl_ord_id, a) for o, a in out.cancelled] == [("o1", Decimal("30"))]
    assert out.debt == Decimal("70")
    ledger = book.ledger
    ledger.check()
    assert ledger.debt == Decimal("70") and ledger.reserved == Decimal("70") and ledger.available == 0
    assert book.get("o1").engaged == Decimal("70")  # the batch in flight finishes
    before = ledger.to_dict()
    assert reverse_in_book(book, "d1", T0 + 3) is None and ledger.to_dict() == before
    assert reverse_in_book(book, "unknown", T0 + 3) is None
