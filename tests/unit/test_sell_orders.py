"""Sell orders (Side 2) in the user's shard, without Ray or Redis: units reserved in the token ledger on accept, the
refusals and their wire codes, cancel giving the unsold units back, sells offered apart from buys, a USDC deposit's
reversal leaving them alone, and the order's minimum kept by the user's snapshot. The wire refuses sells until the
path that sells and burns them is wired (BooksApp's `accept_sells`)."""
from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from core.chain_events import CollateralDeposit, DepositReversal, TokenDeposit
from core.clock import ManualClock
from core.index_order import IndexOrderStatus
from core.index_order_book import IndexOrderRefused
from core.sell_plan import PendingSell
from core.shard_books import ShardBooks
from core.side import Side
from protocol.books_app import BooksApp
from protocol.envelope import UserRef
from protocol.indexmaker_app import CancelDone, CancelOrder, NewOrder, OrderAccepted, OrderRefused
from protocol.indexmaker_messages import NewIndexOrder
from protocol.indexmaker_plugin import IndexMakerPlugin
from protocol.plugin import Inbound
from protocol.reason_codes import ReasonCode
from store.shard_records import ShardUser

INDEX, OTHER = "SY100", "SYAI"
A = "0xAaAaaAaaAaAaAaaAAAAaaaaaaAAaaaaAaAaAaAa1"
KA = A.lower()
REF = UserRef(42161, A)
FIXTURES = Path(__file__).parent.parent / "fixtures" / "records"
D = Decimal


def books() -> ShardBooks:
    return ShardBooks({INDEX, OTHER}, clock=ManualClock(), unit=D("0.000001"), max_open_orders=3,
                      token_decimals=18, order_dust=D("0.05"), rest_return_ratio=D("0.005"))


def with_tokens(units: str = "0.01") -> ShardBooks:
    shard = books()
    shard.credit_tokens([TokenDeposit(8453, "0x" + "01" * 32, 0, 100, A, INDEX, D(units))])
    return shard


def tokens(shard: ShardBooks, index: str = INDEX) -> tuple[Decimal, Decimal]:
    t = shard.tokens[KA].of(index)
    return t.available, t.reserved


def refusal(shard: ShardBooks, *args: object) -> str:
    with pytest.raises(IndexOrderRefused) as exc:
        shard.new_order(KA, *args)  # type: ignore[arg-type]
    return exc.value.code


def test_a_sell_reserves_its_units_in_the_token_ledger_and_keeps_its_minimum() -> None:
    shard = with_tokens("0.01")
    order = shard.new_order(KA, "s1", INDEX, Side.SELL, D("0.004"), D("150.5"))
    assert (order.side, order.collateral, order.remaining, order.min_proceeds) == (Side.SELL, D("0.004"),
                                                                                   D("0.004"), D("150.5"))
    assert order.unit == D("1e-18") and order.status is IndexOrderStatus.NEW
    assert tokens(shard) == (D("0.006"), D("0.004"))
    assert shard.books[KA].ledger.reserved == 0  # no USDC is held for a sell
    shard.books[KA].check(shard.tokens[KA])
    shard.new_order(KA, "s2", INDEX, "SELL", "0.006")  # all that is left, no minimum
    assert tokens(shard) == (0, D("0.01"))
    shard.books[KA].check(shard.tokens[KA])


@pytest.mark.parametrize("args, code", [
    (("s1", INDEX, Side.SELL, D("0.0101")), "INSUFFICIENT_TOKENS"),
    (("s1", OTHER, Side.SELL, D("0.001")), "INSUFFICIENT_TOKENS"),  # none of that index credited
    (("s1", "NOPE", Side.SELL, D("0.001")), "UNKNOWN_INDEX"),
    (("s1", INDEX, Side.SELL, D("1e-19")), "TOO_MUCH_PRECISION"),  # finer than the token's unit
    (("s1", INDEX, Side.SELL, D("0")), "NON_POSITIVE_AMOUNT"),
    (("s1", INDEX, Side.SELL, D("0.001"), D("10.0000001")), "TOO_MUCH_PRECISION"),  # finer than USDC's unit
    (("s1", INDEX, Side.SELL, D("0.001"), D("0")), "NON_POSITIVE_AMOUNT"),
    (("s1", INDEX, Side.SELL, D("0.001"), "ten"), "INVALID_AMOUNT"),
    (("b1", INDEX, Side.BUY, D("10"), D("9")), "MIN_USDC_ON_BUY"),
])
def test_a_sell_that_cannot_be_backed_is_refused_with_a_code_and_reserves_nothing(args: tuple, code: str) -> None:
    shard = with_tokens("0.01")
    assert refusal(shard, *args) == code
    assert tokens(shard) == (D("0.01"), 0) and shard.books[KA].get(args[0]) is None


def test_sells_count_against_the_open_orders_limit_and_clordids_are_shared_with_buys() -> None:
    shard = with_tokens("0.01")
    for cl in ("s1", "s2", "s3"):
        shard.new_order(KA, cl, INDEX, Side.SELL, D("0.001"))
    assert refusal(shard, "s4", INDEX, Side.SELL, D("0.001")) == "TOO_MANY_OPEN_ORDERS"
    assert refusal(shard, "s1", INDEX, Side.SELL, D("0.001")) == "DUPLICATE_CL_ORD_ID"
    assert tokens(shard) == (D("0.007"), D("0.003"))


def test_tokens_owed_after_a_reorg_block_new_sells_of_that_index() -> None:
    shard = with_tokens("0.01")
    ledger = shard.tokens[KA]
    ledger.reserve(INDEX, D("0.01"))
    ledger.redeem(INDEX, D("0.01"))  # sold and burnt, then the deposit is dropped by a reorg
    shard.reverse_tokens(["8453:0x" + "01" * 32 + ":0"])
    shard.credit_tokens([TokenDeposit(8453, "0x" + "02" * 32, 0, 101, A, INDEX, D("0.004"))])
    assert ledger.of(INDEX).debt == D("0.006") and ledger.of(INDEX).available == 0
    assert refusal(shard, "s1", INDEX, Side.SELL, D("0.001")) == "TOKEN_DEBT_OUTSTANDING"


def test_cancel_gives_the_unsold_units_back_part_or_all() -> None:
    shard = with_tokens("0.01")
    shard.new_order(KA, "s1", INDEX, Side.SELL, D("0.008"), D("300"))
    order, freed = shard.cancel(KA, "s1", D("0.003"))
    assert (freed, order.remaining, order.status) == (D("0.003"), D("0.005"), IndexOrderStatus.NEW)
    assert tokens(shard) == (D("0.005"), D("0.005"))
    with pytest.raises(IndexOrderRefused) as exc:
        shard.cancel(KA, "s1", D("1e-19"))
    assert exc.value.code == "TOO_MUCH_PRECISION"  # the sell's unit, not USDC's
    order, freed = shard.cancel(KA, "s1", None)
    assert (freed, order.status) == (D("0.005"), IndexOrderStatus.CANCELLED)
    assert tokens(shard) == (D("0.01"), 0)
    shard.books[KA].check(shard.tokens[KA])


def test_a_cancel_while_a_batch_holds_the_sell_frees_the_rest_when_the_batch_completes() -> None:
    shard = with_tokens("0.01")
    shard.new_order(KA, "s1", INDEX, Side.SELL, D("0.01"))
    shard.books[KA].engage("s1", D("0.004"))
    order, freed = shard.cancel(KA, "s1", None)
    assert (freed, order.engaged, order.cancel_pending) == (D("0.006"), D("0.004"), True)
    assert tokens(shard) == (D("0.006"), D("0.004"))
    shard.books[KA].release("s1", D("0.004"), tokens=shard.tokens[KA])  # the batch sold none of it
    assert order.status is IndexOrderStatus.CANCELLED and tokens(shard) == (D("0.01"), 0)
    shard.books[KA].check(shard.tokens[KA])


def test_a_sell_given_up_on_returns_its_units() -> None:
    shard = with_tokens("0.01")
    shard.new_order(KA, "s1", INDEX, Side.SELL, D("0.01"), D("900"))
    step = shard.reject_orders("late:1", [(f"{KA}:s1", "BELOW_MINIMUM")])
    [order] = step.closed
    assert (order.status, order.reject_reason, step.mints) == (IndexOrderStatus.REJECTED, "BELOW_MINIMUM", [])
    assert tokens(shard) == (D("0.01"), 0)


def test_the_solver_is_offered_buys_and_sells_apart_in_fifo_order() -> None:
    shard = with_tokens("0.01")
    shard.credit([CollateralDeposit(42161, "0xd", 0, 1, A, D("100"))], {})
    shard.new_order(KA, "s1", INDEX, Side.SELL, D("0.004"), D("200"))
    shard.new_order(KA, "b1", INDEX, Side.BUY, D("50"))
    shard.new_order(KA, "s2", INDEX, Side.SELL, D("0.002"))
    assert [p.order_id for p in shard.pending(10)] == [f"{KA}:b1"]
    assert shard.pending_sells(10) == [PendingSell(f"{KA}:s1", INDEX, D("0.004"), D("200")),
                                       PendingSell(f"{KA}:s2", INDEX, D("0.002"), None)]
    assert shard.pending_sells(1) == [PendingSell(f"{KA}:s1", INDEX, D("0.004"), D("200"))]
    shard.books[KA].engage("s1", D("0.004"))  # in a batch: not offered again
    shard.cancel(KA, "s2", None)
    assert shard.pending_sells(10) == []


def test_a_reversed_usdc_deposit_cuts_buys_and_leaves_sells_alone() -> None:
    shard = with_tokens("0.01")
    shard.credit([CollateralDeposit(42161, "0xd", 0, 1, A, D("100"))], {})
    shard.new_order(KA, "s1", INDEX, Side.SELL, D("0.01"))
    shard.new_order(KA, "b1", INDEX, Side.BUY, D("100"))
    key_of = CollateralDeposit(42161, "0xd", 0, 1, A, D("100")).key
    [(key, done)] = shard.reverse([DepositReversal(key_of, A, D("100"))])
    assert [(o.cl_ord_id, freed) for o, freed in done.cancelled] == [("b1", D("100"))]
    assert shard.books[KA].get("s1").status is IndexOrderStatus.NEW and tokens(shard) == (0, D("0.01"))
    shard.books[KA].check(shard.tokens[KA])


def test_the_wire_refuses_sells_until_they_are_served_and_maps_the_codes_when_they_are() -> None:
    closed = BooksApp(with_tokens("0.01"), default_chain_id=42161)
    [[refused]] = closed.handle_each([NewOrder(REF, "s1", INDEX, Side.SELL, D("0.001"))])
    assert isinstance(refused, OrderRefused) and refused.code is ReasonCode.UNSUPPORTED_SIDE
    assert closed.books.tokens[KA].of(INDEX).reserved == 0

    shard = with_tokens("0.01")
    app = BooksApp(shard, default_chain_id=42161, accept_sells=True)
    out = app.handle_each([NewOrder(REF, "s1", INDEX, Side.SELL, D("0.004"), D("120")),
                           NewOrder(REF, "s2", INDEX, Side.SELL, D("0.007")),
                           NewOrder(REF, "b1", INDEX, Side.BUY, D("5"), D("1")),
                           CancelOrder(REF, "s1", INDEX, D("0.001"))])
    assert isinstance(out[0][0], OrderAccepted)
    assert [(r.code, r.client_order_id) for [r] in out[1:3]] == [(ReasonCode.INSUFFICIENT_TOKENS, "s2"),
                                                                (ReasonCode.MIN_USDC_ON_BUY, "b1")]
    [done] = out[3]
    assert isinstance(done, CancelDone) and (done.cancelled, done.remaining) == (D("0.001"), D("0.003"))
    assert shard.books[KA].get("s1").min_proceeds == D("120") and tokens(shard) == (D("0.007"), D("0.003"))


def test_min_usdc_travels_from_the_wire_to_the_application() -> None:
    body = NewIndexOrder.model_validate({"client_order_id": "s1", "symbol": INDEX, "side": "2", "amount": "0.01",
                                         "min_usdc": "400"})
    assert (body.side, body.min_usdc) == (Side.SELL, D("400"))
    buy = NewIndexOrder.model_validate({"client_order_id": "b1", "symbol": INDEX, "side": "1", "amount": "10"})
    assert buy.min_usdc is None and "min_usdc" not in buy.model_dump(mode="json", exclude_none=True)

    request = IndexMakerPlugin.to_app(Inbound(REF, 1, body, 0))
    assert request == NewOrder(REF, "s1", INDEX, Side.SELL, D("0.01"), D("400"))


def test_a_sell_and_its_minimum_come_back_from_the_users_snapshot() -> None:
    shard = with_tokens("0.01")
    shard.new_order(KA, "s1", INDEX, Side.SELL, D("0.004"), D("150.5"))
    user = ShardUser.load(ShardUser.of(REF, shard.books[KA], {}, shard.tokens[KA]).dump())
    book = user.user_book(max_open_orders=3, known_indexes=(INDEX, OTHER))
    assert book == shard.books[KA]
    book.check(user.token_ledger())
    assert book.get("s1").min_proceeds == D("150.5")


@pytest.mark.parametrize("version", [3, 4])
def test_an_older_user_snapshot_loads_its_orders_as_buys_without_a_minimum(version: int) -> None:
    old = json.loads((FIXTURES / f"shard.user.v{version}.json").read_text())
    user = ShardUser.load(json.dumps(old))
    assert user.book.orders and all(o.min_proceeds is None and o.side is Side.BUY for o in user.book.orders)


def test_a_reorg_that_takes_tokens_back_cuts_the_open_sells_of_that_index_first_and_tells_the_user() -> None:
    shard = with_tokens("0.01")
    shard.credit_tokens([TokenDeposit(8453, "0x" + "03" * 32, 0, 102, A, OTHER, D("0.002"))])
    app = BooksApp(shard, default_chain_id=42161, accept_sells=True)
    app.refs[KA] = REF
    shard.new_order(KA, "s1", INDEX, Side.SELL, D("0.004"))
    shard.new_order(KA, "s2", INDEX, Side.SELL, D("0.005"))
    shard.new_order(KA, "o1", OTHER, Side.SELL, D("0.002"))  # another index: not cut
    shard.books[KA].engage("s2", D("0.002"))  # a batch holds part of s2: that part finishes its batch
    step = shard.reverse_tokens(["8453:0x" + "01" * 32 + ":0"])
    assert [(o.cl_ord_id, freed) for _, o, freed in step.cut] == [("s2", D("0.003")), ("s1", D("0.004"))]
    [(_, r)] = step.reversed
    assert (r.units, r.debt) == (D("0.01"), D("0.002"))  # only what the batch holds is owed
    assert tokens(shard) == (0, D("0.002")) and tokens(shard, OTHER) == (0, D("0.002"))
    s1, s2 = shard.books[KA].get("s1"), shard.books[KA].get("s2")
    assert s1.status is IndexOrderStatus.CANCELLED and (s2.remaining, s2.engaged) == (0, D("0.002"))
    shard.books[KA].check(shard.tokens[KA])
    reports = app.token_reports(step)
    assert [type(r).__name__ for r in reports] == ["CancelDone", "CancelDone", "OrderProgress", "TokenDepositReport"]
    assert (reports[0].client_order_id, reports[0].cancelled, reports[0].engaged) == ("s2", D("0.003"), D("0.002"))
    assert (reports[2].client_order_id, reports[2].status) == ("s1", "canceled")
    assert shard.reverse_tokens(["8453:0x" + "01" * 32 + ":0"]).cut == []  # a replay cuts nothing more
