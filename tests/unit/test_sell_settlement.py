"""A shard books its sells' sales when the solver completes their batch: the units redeemed leave the token ledger
(to be burnt), the payout is credited to the user's USDC once, what was not sold goes back to the order (or to the
user's free tokens when the rest is small), and a sold sell is never owed a mint."""
from __future__ import annotations

from decimal import Decimal

from core.batch_planner import Engagement
from core.index_order import IndexOrder, IndexOrderStatus
from core.sell_assignment import STOPPED_BELOW_MINIMUM, SellResult
from core.side import Side
from store.shard_records import ShardUser
from tests.unit.test_sell_orders import A, INDEX, KA, books, tokens, with_tokens

D = Decimal
OID = f"{KA}:s1"


def _engaged(units: str, minimum: str | None = None):
    shard = with_tokens("0.01")
    shard.new_order(KA, "s1", INDEX, Side.SELL, D(units), None if minimum is None else D(minimum))
    step = shard.engage("b1", [Engagement(OID, INDEX, D(units), D(units), D(0))])
    assert step.engaged == [(OID, D(units))]
    return shard


def _sale(units: str, asked: str, payout: str, stopped: str | None = None) -> SellResult:
    return SellResult(OID, INDEX, D(units), D(asked), (), D(payout) + D("0.0000004"), D(payout), stopped)


def test_a_whole_sale_redeems_the_units_credits_the_payout_and_owes_no_mint():
    shard = _engaged("0.004")
    usdc = shard.books[KA].ledger.available
    step = shard.complete_batch("b1", [], [_sale("0.004", "0.004", "160.25")])
    [order] = step.closed
    assert order.status is IndexOrderStatus.FILLED and order.filled_units == D("0.004")
    assert order.proceeds == D("160.25") and not order.mint_pending and step.mints == []
    assert shard.books[KA].ledger.available == usdc + D("160.25")
    assert tokens(shard) == (D("0.006"), 0) and shard.tokens[KA].of(INDEX).redeemed == D("0.004")
    shard.books[KA].check(shard.tokens[KA])
    shard.books[KA].ledger.check()
    again = shard.complete_batch("b1", [], [_sale("0.004", "0.004", "160.25")])  # a replay books nothing twice
    assert again.replays == 1 and shard.books[KA].ledger.available == usdc + D("160.25")


def test_a_partial_sale_puts_the_unsold_units_back_on_the_order():
    shard = _engaged("0.004")
    step = shard.complete_batch("b1", [], [_sale("0.001", "0.004", "40")])
    [order] = step.filled
    assert step.closed == [] and order.status is IndexOrderStatus.PARTIALLY_FILLED
    assert (order.remaining, order.engaged, order.filled_units) == (D("0.003"), 0, D("0.001"))
    assert tokens(shard) == (D("0.006"), D("0.003"))
    assert [s.order_id for s in shard.pending_sells(10)] == [OID]  # offered again
    shard.books[KA].check(shard.tokens[KA])


def test_a_small_unsold_rest_goes_back_to_the_free_tokens():
    shard = _engaged("0.004")
    step = shard.complete_batch("b1", [], [_sale("0.00399", "0.004", "159")])  # 0.00001 < 0.5% of 0.004
    [order] = step.closed
    assert order.status is IndexOrderStatus.FILLED and order.returned == D("0.00001")
    assert tokens(shard) == (D("0.00601"), 0)
    shard.books[KA].check(shard.tokens[KA])


def test_a_sale_stopped_below_the_minimum_books_nothing_and_the_sell_waits_again():
    shard = _engaged("0.004", "500")
    usdc = shard.books[KA].ledger.available
    step = shard.complete_batch("b1", [], [_sale("0", "0.004", "0", STOPPED_BELOW_MINIMUM)])
    assert step.filled == [] and step.closed == [] and step.errors == []
    order = shard.books[KA].get("s1")
    assert (order.remaining, order.engaged, order.filled_units, order.proceeds) == (D("0.004"), 0, 0, 0)
    assert shard.books[KA].ledger.available == usdc and tokens(shard) == (D("0.006"), D("0.004"))


def test_a_sale_of_an_order_that_is_no_sell_is_an_error_not_a_credit():
    shard = books()
    step = shard.complete_batch("b1", [], [_sale("0.001", "0.001", "40")])
    assert step.errors and step.filled == []


def test_a_sold_sell_is_stored_with_its_proceeds_and_older_orders_load_with_none():
    shard = _engaged("0.004")
    shard.complete_batch("b1", [], [_sale("0.004", "0.004", "160.25")])
    order = shard.books[KA].get("s1")
    assert IndexOrder.from_dict(order.to_dict()) == order
    data = order.to_dict()
    del data["proceeds"]
    assert IndexOrder.from_dict(data).proceeds == 0
    from pathlib import Path
    old = (Path(__file__).parent.parent / "fixtures" / "records" / "shard.user.v5.json").read_text()
    assert all(o.proceeds == 0 for o in ShardUser.load(old).book.orders)


def test_the_reserves_see_what_a_sale_took_and_no_sell_as_a_buy():
    from core.batch_result import BatchOrderResult
    from core.lot_assignment import AssetLine
    from core.sell_assignment import SellLine

    from core.chain_events import CollateralDeposit

    shard = _engaged("0.004")
    shard.credit([CollateralDeposit(42161, "0x01", 0, 1, A, D(1000))], {})
    shard.new_order(KA, "b1", INDEX, Side.BUY, D(300))
    shard.engage("b0", [Engagement(f"{KA}:b1", INDEX, D("0.005"), D(300), D(60000))])
    bought = AssetLine("BTCUSDC", 500000, D("0.005"), D("300"), D("0.3"), ("BTCUSDC:1", "cross:b0:BTCUSDC"))
    shard.complete_batch("b0", [BatchOrderResult(f"{KA}:b1", D(0), (bought,))])
    sold = SellLine("BTCUSDC", 400000, D("0.004"), D("240"), D("0.24"), D("0.004"), ("cross:b0:BTCUSDC",))
    sale = SellResult(OID, INDEX, D("0.004"), D("0.004"), (sold,), D("239.76"), D("239.76"))
    shard.complete_batch("b1", [], [sale])
    indexes, delivered = shard.holdings()
    assert delivered == {"BTCUSDC": D("0.001")}  # 0.005 delivered to the buy, 0.004 sold for the redemption
    assert indexes == {}  # the buy filled nothing; the sell's units and proceeds are no buy's
    assert shard.lines[OID]["BTCUSDC"][4] == ["cross:b0:BTCUSDC"]  # the crossed lot is named on the sell's side
