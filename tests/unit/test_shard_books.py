"""An order shard's books and rules without Ray or Redis (core/shard_books.py): the FIFO the solver reads, engage
capped by a cancel, fill deltas and completion idempotent by their keys, the rest-return rule at its boundary,
give-ups, the invoice built from the lines of every batch, and what the reserves check reads."""
from __future__ import annotations

from decimal import Decimal

import pytest

from core.batch_planner import Engagement
from core.batch_result import BatchOrderResult
from core.chain_events import CollateralDeposit
from core.clock import ManualClock
from core.collateral_route import FeeCharge
from core.index_order import IndexOrder, IndexOrderStatus, OrderStateError
from core.lot_assignment import AssetLine, OrderFill
from core.shard_books import ShardBooks, rest_threshold
from core.side import Side

INDEX = "SY100"
UNIT = Decimal("1e-18")  # the index unit of the fills
A = "0xAaAaaAaaAaAaAaaAAAAaaaaaaAAaaaaAaAaAaAa1"
B = "0xbBbBBbBbBbbbbbBbBbBbbBbbBbbbbBbBBBbbbbB2"
KA, KB = A.lower(), B.lower()


def books(deposit: str = "1000") -> ShardBooks:
    shard = ShardBooks({INDEX}, clock=ManualClock(), unit=Decimal("0.000001"), max_open_orders=10, token_decimals=18,
                       order_dust=Decimal("0.05"), rest_return_ratio=Decimal("0.005"))
    step = shard.credit([CollateralDeposit(42161, "0x01", 0, 1, A, Decimal(deposit)),
                         CollateralDeposit(42161, "0x01", 1, 1, B, Decimal(deposit))], {})
    assert step.errors == []
    return shard


def order(shard: ShardBooks, key: str, cl: str, amount: str) -> str:
    return shard.new_order(key, cl, INDEX, Side.BUY, amount).order_id


def engagement(order_id: str, collateral: str) -> Engagement:
    return Engagement(order_id, INDEX, Decimal("0.001"), Decimal(collateral), Decimal("50000"))


def fill(order_id: str, units: str, value: str, fee: str = "0") -> OrderFill:
    return OrderFill(order_id, INDEX, int(Decimal(units) / UNIT), UNIT, int(Decimal(value).scaleb(24)),
                     int(Decimal(fee).scaleb(24)))


def line(quantity: str, value: str, fee: str, lot: str) -> AssetLine:
    return AssetLine("BTCUSDC", int(Decimal(quantity).scaleb(8)), Decimal(quantity), Decimal(value), Decimal(fee),
                     (lot,))


def get(shard: ShardBooks, order_id: str) -> IndexOrder:
    book, cl = shard.order(order_id)
    found = book.get(cl)
    assert found is not None
    return found


def run_batch(shard: ShardBooks, batch: str, order_id: str, engage: str, cost: str, units: str = "0.002"):  # noqa: ANN201
    """Engage, one fill of `cost`, complete: the usual life of a batch for one order."""
    shard.engage(batch, [engagement(order_id, engage)])
    shard.apply_fills(f"{batch}:1", [fill(order_id, units, cost)])
    return shard.complete_batch(batch, [BatchOrderResult(order_id, Decimal(units),
                                                         (line("0.001", cost, "0", f"{batch}-lot"),))])


# --- the rest-return rule -----------------------------------------------------------------------------------------

def test_rest_threshold_is_the_dust_or_the_ratio_of_what_was_not_cancelled_rounded_up() -> None:
    dust, ratio, unit = Decimal("0.05"), Decimal("0.005"), Decimal("0.000001")
    small = IndexOrder.create(KA, "s", INDEX, Side.BUY, Decimal("2"), 0, unit)
    assert rest_threshold(small, dust, ratio, unit) == dust  # 0.01 of it is below the dust
    odd = IndexOrder.create(KA, "o", INDEX, Side.BUY, Decimal("10.000001"), 0, unit)
    assert rest_threshold(odd, dust, ratio, unit) == Decimal("0.050001")  # 0.050000005 rounded UP
    big = IndexOrder.create(KA, "b", INDEX, Side.BUY, Decimal("100"), 0, unit)
    assert rest_threshold(big, dust, ratio, unit) == Decimal("0.5")
    big.cancel(Decimal("40"))
    assert rest_threshold(big, dust, ratio, unit) == Decimal("0.3")  # of the 60 the user did not cancel


@pytest.mark.parametrize("cost, closed", [("99.5", False), ("99.500001", True)])
def test_a_completed_batch_returns_a_rest_below_the_threshold_and_keeps_one_at_it(cost: str, closed: bool) -> None:
    shard = books()
    oid = order(shard, KA, "a1", "100")
    step = run_batch(shard, "b1", oid, "100", cost)
    o = get(shard, oid)
    rest = Decimal("100") - Decimal(cost)
    if closed:  # 0.499999 < 0.5: finished, the rest back in the user's free collateral, the mint owed
        assert o.status is IndexOrderStatus.FILLED and o.returned == rest and o.remaining == 0
        assert [m.order_id for m in step.mints] == [oid] and step.closed == [o]
        assert shard.books[KA].ledger.available == Decimal("1000") - Decimal(cost)
        assert shard.pending(10) == []
    else:  # exactly at the threshold: it stays open for the next batch
        assert o.status is IndexOrderStatus.PARTIALLY_FILLED and o.remaining == rest
        assert step.mints == [] and step.closed == []
        assert [(p.order_id, p.collateral) for p in shard.pending(10)] == [(oid, rest)]
    shard.books[KA].check()


def test_the_threshold_counts_only_what_the_user_did_not_cancel() -> None:
    shard = books()
    oid = order(shard, KA, "a1", "100")
    shard.books[KA].cancel("a1", Decimal("40"))
    run_batch(shard, "b1", oid, "60", "59.6")  # 0.4 left: below 0.5 (of 100), not below 0.3 (of 60)
    assert get(shard, oid).remaining == Decimal("0.4") and not get(shard, oid).is_terminal


# --- the solver's side --------------------------------------------------------------------------------------------

def test_pending_is_fifo_across_users_and_forgets_closed_orders() -> None:
    shard = books()
    a1, b1, a2 = order(shard, KA, "a1", "10"), order(shard, KB, "b1", "20"), order(shard, KA, "a2", "30")
    assert [(p.order_id, p.collateral) for p in shard.pending(10)] == [(a1, Decimal(10)), (b1, Decimal(20)),
                                                                       (a2, Decimal(30))]
    assert [p.order_id for p in shard.pending(2)] == [a1, b1]
    shard.books[KB].cancel("b1")
    assert [p.order_id for p in shard.pending(10)] == [a1, a2]
    assert list(shard.fifo) == [a1, a2]


def test_engage_is_capped_by_a_cancel_since_pending_and_replays_by_batch_id() -> None:
    shard = books()
    oid = order(shard, KA, "a1", "100")
    closed = order(shard, KB, "b1", "10")
    shard.books[KB].cancel("b1")
    shard.books[KA].cancel("a1", Decimal("70"))  # after the solver read 100 as pending
    step = shard.engage("e1", [engagement(oid, "100"), engagement(closed, "10")])
    assert step.engaged == [(oid, Decimal("30"))] and step.replays == 0
    assert len(step.notes) == 1 and "30 of 100" in step.notes[0]
    assert len(step.errors) == 1 and closed in step.errors[0]
    assert get(shard, oid).engaged == Decimal("30") and get(shard, oid).remaining == 0
    again = shard.engage("e1", [engagement(oid, "100")])
    assert (again.engaged, again.replays) == ([(oid, Decimal("30"))], 1)
    assert get(shard, oid).engaged == Decimal("30")
    shard.complete_batch("e1", [])
    assert shard.engage("e1", [engagement(oid, "100")]).engaged is None  # completed: nothing engages again


def test_fill_deltas_apply_once_per_key() -> None:
    shard = books()
    oid = order(shard, KA, "a1", "100")
    shard.engage("b1", [engagement(oid, "100")])
    deltas = [fill(oid, "0.001", "49.5", "0.05"), fill(oid, "0", "0", "0")]
    step = shard.apply_fills("b1:1", deltas)
    assert step.filled == [get(shard, oid)] and step.replays == 0
    assert get(shard, oid).spent == Decimal("49.55") and get(shard, oid).filled_units == Decimal("0.001")
    again = shard.apply_fills("b1:1", deltas)
    assert (again.filled, again.replays) == ([], 1)
    assert get(shard, oid).spent == Decimal("49.55")
    assert "b1:1" in shard.new_fill_keys  # the owner's next write stores the key


def test_a_fill_on_a_closed_order_is_an_error_not_a_crash() -> None:
    shard = books()
    oid = order(shard, KA, "a1", "100")
    shard.books[KA].cancel("a1")
    step = shard.apply_fills("b1:1", [fill(oid, "0.001", "1")])
    assert step.filled == [] and len(step.errors) == 1 and oid in step.errors[0]


def test_completion_replays_its_first_answer_and_merges_lines_once() -> None:
    shard = books()
    oid = order(shard, KA, "a1", "100")
    first = run_batch(shard, "b1", oid, "100", "99.9")
    before = (get(shard, oid).returned, shard.holdings())
    again = shard.complete_batch("b1", [BatchOrderResult(oid, Decimal("0.002"), (line("0.001", "99.9", "0", "x"),))])
    assert again.replays == 1 and again.mints == first.mints and again.closed == []
    assert (get(shard, oid).returned, shard.holdings()) == before  # no second release, no line counted twice
    assert "b1" in shard.new_completed


def test_settle_is_fills_then_completion_each_idempotent() -> None:
    shard = books()
    oid = order(shard, KA, "a1", "100")
    shard.engage("b1", [engagement(oid, "100")])
    results = [BatchOrderResult(oid, Decimal("0.002"), (line("0.001", "99.99", "0", "L"),))]
    step = shard.settle("b1:9", [fill(oid, "0.002", "99.99")], "b1", results)
    o = get(shard, oid)
    assert step.filled == [o] and step.closed == [o] and [m.order_id for m in step.mints] == [oid]
    assert o.status is IndexOrderStatus.FILLED and o.returned == Decimal("0.01")
    again = shard.settle("b1:9", [fill(oid, "0.002", "99.99")], "b1", results)
    assert (again.replays, again.filled, again.closed, again.mints) == (2, [], [], step.mints)
    assert get(shard, oid).spent == Decimal("99.99")


def test_give_ups_close_only_open_unengaged_orders_and_owe_the_mint_of_what_was_bought() -> None:
    shard = books()
    engaged, fresh, bought = order(shard, KA, "a1", "100"), order(shard, KA, "a2", "10"), order(shard, KB, "b1", "100")
    run_batch(shard, "b0", bought, "50", "49.9")  # bought some; 50.1 left, open
    shard.engage("b1", [engagement(engaged, "100")])
    step = shard.reject_orders("give-up:1", [(engaged, "no liquidity"), (fresh, "no liquidity"),
                                             (bought, "no liquidity")])
    assert [o.order_id for o in step.closed] == [fresh, bought]
    assert get(shard, fresh).status is IndexOrderStatus.REJECTED
    assert get(shard, bought).status is IndexOrderStatus.FILLED and get(shard, bought).reject_reason == "no liquidity"
    assert [m.order_id for m in step.mints] == [bought]
    assert get(shard, engaged).engaged == Decimal("100")  # planned meanwhile: left alone
    assert shard.books[KB].ledger.available == Decimal("1000") - Decimal("49.9")
    again = shard.reject_orders("give-up:1", [(engaged, "no liquidity")])
    assert (again.replays, again.closed, again.mints) == (1, [], [])


# --- mints, invoices, holdings ------------------------------------------------------------------------------------

def test_the_invoice_adds_up_the_lines_of_every_batch_and_a_mint_is_idempotent_by_tx() -> None:
    shard = books()
    oid = order(shard, KA, "a1", "100")
    run_batch(shard, "b1", oid, "50", "40", units="0.001")
    run_batch(shard, "b2", oid, "60", "59.99", units="0.001")  # 0.01 left of 100: returned
    assert [m.order_id for m in shard.mint_pending()] == [oid]
    invoice, new = shard.minted(oid, "0xtx")
    assert new and invoice.mint_tx == "0xtx" and invoice.returned == Decimal("0.01")
    [row] = invoice.lines
    assert (row.quantity, row.value, row.lot_ids) == (Decimal("0.002"), Decimal("99.99"), ("b1-lot", "b2-lot"))
    assert row.average_price == Decimal("99.99") / Decimal("0.002")
    assert shard.new_invoices == {(KA, "a1")} and shard.invoices_of[KA]["a1"] == invoice
    shard.touched.clear()
    assert shard.minted(oid, "0xtx") == (invoice, False)
    assert shard.touched == set()  # a replay has nothing to store
    with pytest.raises(OrderStateError):
        shard.minted(oid, "0xother")
    with pytest.raises(KeyError):
        shard.minted(f"{KA}:nope", "0xtx")
    assert shard.mint_pending() == []


def test_an_order_with_nothing_to_mint_is_refused_and_gets_no_invoice() -> None:
    shard = books()
    oid = order(shard, KA, "a1", "100")
    with pytest.raises(OrderStateError):
        shard.minted(oid, "0xtx")
    assert shard.invoices == {} and get(shard, oid).minted_tx is None


def test_holdings_split_minted_from_unminted_and_sum_what_batches_delivered() -> None:
    shard = books()
    a1, b1 = order(shard, KA, "a1", "100"), order(shard, KB, "b1", "100")
    run_batch(shard, "b1", a1, "100", "99.99")
    run_batch(shard, "b2", b1, "100", "99.99", units="0.003")
    shard.minted(a1, "0xtx")
    indexes, delivered = shard.holdings()
    assert indexes == {INDEX: {"minted": Decimal("0.002"), "unminted": Decimal("0.003"), "cost": Decimal("199.98")}}
    assert delivered == {"BTCUSDC": Decimal("0.002")}


def test_deposits_fees_and_routes_move_the_ledger_and_report_problems() -> None:
    shard = books(deposit="100")
    step = shard.credit([CollateralDeposit(42161, "0x02", 0, 2, A, Decimal("-1"))], {})
    assert len(step.errors) == 1  # refused, and said so
    held = CollateralDeposit(42161, "0x03", 0, 3, A, Decimal("10"))
    shard.credit([held], {held.key: Decimal("2")})
    assert shard.books[KA].ledger.available == Decimal("108")
    step = shard.charge([FeeCharge("f1", A, held.key, "hop", Decimal("1.5"))])
    assert step.errors == [] and step.warnings == []
    shard.routed("r1", {held.key: Decimal("9")}, {held.key: A})
    assert shard.books[KA].ledger.available == Decimal("108.5") and shard.routes == {"r1": {held.key: "9"}}
    step = shard.charge([FeeCharge("f2", A, held.key, "hop", Decimal("200"))])
    assert len(step.warnings) == 1 and shard.books[KA].ledger.debt > 0  # beyond the hold and free collateral
