"""The order shards' application (protocol/books_app.py) without Ray: requests keyed by the lower-cased address,
the engine's steps turned into reports for the UserRef the user's session gave (or the deposit's chain), and a
reversed deposit's reports in the order the user should read them."""
from __future__ import annotations

import asyncio
from decimal import Decimal

from core.batch_planner import Engagement
from core.batch_result import BatchOrderResult
from core.chain_events import CollateralDeposit, DepositReversal
from core.clock import ManualClock
from core.config import CollateralConfig
from core.lot_assignment import OrderFill
from core.shard_books import ShardBooks
from core.side import Side
from protocol.books_app import BooksApp
from protocol.envelope import UserRef
from protocol.indexmaker_app import (CancelDone, DepositReversed, GetInvoice, NewOrder, OrderAccepted, OrderProgress,
                                     OrderRefused)
from protocol.reason_codes import ReasonCode

INDEX = "SY100"
ADDRESS = "0xAaAaaAaaAaAaAaaAAAAaaaaaaAAaaaaAaAaAaAa1"
KEY = ADDRESS.lower()
SESSION = UserRef(8453, ADDRESS)


def app() -> BooksApp:
    c = CollateralConfig()
    books = ShardBooks({INDEX}, clock=ManualClock(), unit=c.unit, max_open_orders=10, token_decimals=18,
                       order_dust=c.order_dust, rest_return_ratio=c.rest_return_ratio)
    application = BooksApp(books, default_chain_id=42161)
    deposit = CollateralDeposit(42161, "0x01", 0, 1, KEY, Decimal("100"))
    assert application.book_deposits([deposit], {}).errors == []
    return application


def test_a_user_is_one_book_whatever_the_address_casing_and_reports_go_to_the_session() -> None:
    a = app()
    assert a.ref(KEY) == UserRef(42161, KEY)  # known from the deposit only: its chain
    answers = asyncio.run(a.handle([NewOrder(SESSION, "a1", INDEX, Side.BUY, Decimal("60")),
                                    NewOrder(UserRef(8453, KEY), "a2", INDEX, Side.BUY, Decimal("60"))]))
    assert answers[0] == OrderAccepted(SESSION, "a1")
    assert isinstance(answers[1], OrderRefused) and answers[1].code is ReasonCode.INSUFFICIENT_COLLATERAL
    assert list(a.books.books) == [KEY] and list(a.books.fifo) == [f"{KEY}:a1"]
    assert a.ref(KEY) == UserRef(8453, KEY)  # the latest session's UserRef


def test_step_reports_are_fills_in_progress_then_closes_with_their_status() -> None:
    a = app()
    asyncio.run(a.handle([NewOrder(SESSION, "a1", INDEX, Side.BUY, Decimal("50")),
                          NewOrder(SESSION, "a2", INDEX, Side.BUY, Decimal("10"))]))
    oid = f"{KEY}:a1"
    a.books.engage("b1", [Engagement(oid, INDEX, Decimal("0.001"), Decimal("50"), Decimal("50000"))])
    unit = Decimal("1e-18")
    fills = [OrderFill(oid, INDEX, int(Decimal("0.001") / unit), unit, int(Decimal("49.99").scaleb(24)), 0)]
    step = a.books.settle("b1:1", fills, "b1", [BatchOrderResult(oid, Decimal("0.001"), ())])
    step.closed += a.books.reject_orders("gu:1", [(f"{KEY}:a2", "no liquidity")]).closed
    reports = a.step_reports(step)
    assert [(r.client_order_id, r.status) for r in reports] == [("a1", "in progress"), ("a1", "filled"),
                                                                ("a2", "rejected")]
    assert all(isinstance(r, OrderProgress) and r.user == SESSION for r in reports)
    assert (reports[2].code, reports[2].text) == (ReasonCode.ENGINE_FAILED, "no liquidity")
    assert (reports[1].collateral_spent, reports[1].collateral_remaining) == (Decimal("49.99"), Decimal(0))


def test_a_reversed_deposit_reports_each_cut_order_then_the_reversal() -> None:
    a = app()
    asyncio.run(a.handle([NewOrder(SESSION, "old", INDEX, Side.BUY, Decimal("30")),
                          NewOrder(SESSION, "new", INDEX, Side.BUY, Decimal("50"))]))
    deposit = CollateralDeposit(42161, "0x01", 0, 1, KEY, Decimal("100"))
    done = a.books.reverse([DepositReversal(deposit.key, KEY, Decimal("100"))])
    reports = a.reversal_reports(done)
    kinds = [(type(r).__name__, getattr(r, "client_order_id", None)) for r in reports]
    assert kinds == [("CancelDone", "new"), ("OrderProgress", "new"), ("CancelDone", "old"),
                     ("OrderProgress", "old"), ("DepositReversed", None)]
    assert isinstance(reports[0], CancelDone) and reports[0].cancelled == Decimal("50")
    last = reports[-1]
    assert isinstance(last, DepositReversed) and last.cancelled_orders == ("new", "old") and last.debt == 0
    assert a.books.reverse([DepositReversal(deposit.key, KEY, Decimal("100"))]) == []  # once per deposit


def test_an_invoice_is_refused_until_minted_and_unknown_orders_are_unknown() -> None:
    a = app()
    asyncio.run(a.handle([NewOrder(SESSION, "a1", INDEX, Side.BUY, Decimal("50"))]))
    refused = asyncio.run(a.handle([GetInvoice(SESSION, "a1"), GetInvoice(SESSION, "zz")]))
    assert [r.code for r in refused] == [ReasonCode.NOT_MINTED, ReasonCode.UNKNOWN_ORDER]
