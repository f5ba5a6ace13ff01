"""The arrival value and the shortfall against it (core/arrival.py, core/shortfall.py), without Ray: the basket's
value from the tops, a shard stamping accepted orders with the latest value (or none), the batch touch weighted over
an order's batches, and the invoice's exact decomposition and its rounding."""
from __future__ import annotations

import random
from decimal import Decimal

import pytest
from pydantic import ValidationError

from core.arrival import ArrivalBoard, ArrivalValue, basket_touch, basket_value
from core.batch_result import BatchOrderResult
from core.invoice import InvoiceLine, build_invoice
from core.shard_books import ShardBooks
from core.shortfall import decompose, running_bps, total_bps
from core.side import Side
from protocol.books_app import BooksApp
from protocol.indexmaker_app import InvoiceIssued
from protocol.indexmaker_plugin import IndexMakerPlugin
from protocol.envelope import UserRef
from tests.unit.test_shard_books import A, INDEX, KA, books, engagement, fill, get, line

D = Decimal
BASKET = {"BTCUSDC": D("0.0001"), "ETHUSDC": D("0.002")}
TOPS = {"BTCUSDC": ((D("60000"), D("1")), (D("60010"), D("1"))),
        "ETHUSDC": ((D("3000"), D("5")), (D("3001.5"), D("5")))}


# --- the basket's value -------------------------------------------------------------------------------------------

def test_the_basket_value_is_the_quantities_at_mid_and_at_the_best_asks_exactly() -> None:
    v = basket_value(BASKET, TOPS, 7)
    assert v is not None
    assert v.mid == D("0.0001") * D("60005") + D("0.002") * D("3000.75") == D("12.0020")
    assert v.touch == D("0.0001") * D("60010") + D("0.002") * D("3001.5") == D("12.004")
    assert v.at_ms == 7 and v.assets["ETHUSDC"] == (D("3000.75"), D("3001.5"))
    assert basket_touch(BASKET, {s: [ask] for s, (_, ask) in TOPS.items()}) == v.touch
    assert ArrivalValue.from_dict(v.to_dict()) == v


def test_a_basket_with_a_book_side_missing_has_no_value() -> None:
    assert basket_value(BASKET, TOPS | {"ETHUSDC": (None, (D("3001.5"), D("5")))}, 7) is None
    assert basket_value(BASKET, {"BTCUSDC": TOPS["BTCUSDC"]}, 7) is None
    assert basket_touch(BASKET, {"BTCUSDC": [(D("60010"), D("1"))], "ETHUSDC": []}) is None


def test_the_board_stamps_the_latest_value_until_it_ages_out_and_never_a_made_up_one() -> None:
    board = ArrivalBoard({INDEX: BASKET}, max_age_ms=500)
    assert board.stamp(INDEX, 1_000) is None  # nothing known yet
    assert board.refresh(TOPS, 1_000) == []
    assert board.stamp(INDEX, 1_500) == board.values[INDEX] and board.stamp(INDEX, 1_500).at_ms == 1_000
    # A side gone: the index keeps its last value, which ages out.
    assert board.refresh({"BTCUSDC": TOPS["BTCUSDC"]}, 1_200) == [INDEX]
    assert board.stamp(INDEX, 1_500) is not None and board.stamp(INDEX, 1_501) is None
    assert board.stamp("OTHER", 1_000) is None


# --- the arithmetic -----------------------------------------------------------------------------------------------

def test_the_parts_are_rounded_as_written_and_add_up_to_the_total_exactly() -> None:
    # A = 100, Ta = 100.05 (spread 5 bps), Tb = 100.08 (delay 3 bps), P = 100.10 (impact 2 bps), F = 0.1001 (10.01)
    s = decompose(D("100"), D("100.05"), D("100.08"), D("100.10"), D("0.1001"))
    assert (s.total_bps, s.spread_bps, s.delay_bps, s.impact_bps, s.fee_bps) == (
        D("20.01"), D("5.00"), D("3.00"), D("2.00"), D("10.01"))
    # The total is rounded UP: 1/3 bp over the arrival is quoted 0.34, never 0.33; impact takes the remainder.
    third = decompose(D("3"), D("3"), D("3"), D("3.0001"), D("0"))
    assert third.total_bps == D("0.34") and third.impact_bps == D("0.34")
    below = decompose(D("3"), D("3"), D("3"), D("2.9999"), D("0"))
    assert below.total_bps == D("-0.33")  # ceiling of -0.333..: toward the cost, not away from it


def test_random_orders_always_decompose_exactly() -> None:
    rng = random.Random(13)
    for _ in range(2_000):
        mid = D(rng.randrange(1, 10**9)) / D(10**rng.randrange(0, 6))
        ta = mid * (1 + D(rng.randrange(0, 500)) / D(10**6))
        tb = ta * (1 + D(rng.randrange(-3000, 3000)) / D(10**6))
        paid = tb * (1 + D(rng.randrange(-200, 2000)) / D(10**6))
        fee = paid * D(rng.randrange(0, 20)) / D(10**4)
        s = decompose(mid, ta, tb if rng.random() < 0.9 else None, paid, fee)
        assert s.spread_bps + (s.delay_bps or 0) + s.impact_bps + s.fee_bps == s.total_bps
        assert s.total_bps == s.total_bps.quantize(D("0.01")) and s.total_bps >= (paid + fee - mid) * 10_000 / mid
        assert s.total_bps - (paid + fee - mid) * 10_000 / mid < D("0.01")


def test_without_an_arrival_value_or_units_there_is_no_shortfall() -> None:
    assert total_bps(None, D("100")) is None and running_bps(None, D("10"), D("0.1")) is None
    assert running_bps(D("100"), D("0"), D("0")) is None
    assert running_bps(D("100"), D("10.01"), D("0.1")) == D("10.00")
    with pytest.raises(ValueError):
        decompose(D("0"), D("1"), None, D("1"), D("0"))


# --- a shard's orders ---------------------------------------------------------------------------------------------

def board() -> ArrivalBoard:
    return ArrivalBoard({INDEX: {"BTCUSDC": D("0.5")}}, max_age_ms=1_000)


def shard_with_board() -> ShardBooks:
    shard = books()
    shard.arrivals = board()
    return shard


def test_an_order_accepted_before_any_value_carries_none_and_its_invoice_says_so() -> None:
    shard = shard_with_board()
    oid = shard.new_order(KA, "a1", INDEX, Side.BUY, "100").order_id
    assert get(shard, oid).arrival is None
    shard.engage("b1", [engagement(oid, "60")])
    shard.apply_fills("b1:1", [fill(oid, "0.001", "50")])
    shard.complete_batch("b1", [BatchOrderResult(oid, D("0.001"), (line("0.0005", "50", "0", "l1"),), D("49000"))])
    shard.books[KA].cancel("a1")
    invoice, _ = shard.minted(oid, "0xtx")
    assert invoice.arrival_value is None and invoice.shortfall_bps is None and invoice.delay_bps is None
    assert invoice.lines[0].arrival_mid is None and invoice.lines[0].shortfall_bps is None


def test_a_stamped_order_gets_the_weighted_batch_touch_and_an_invoice_that_adds_up() -> None:
    shard = shard_with_board()
    clock = shard.clock
    shard.arrivals.refresh({"BTCUSDC": ((D("99990"), D("1")), (D("100010"), D("1")))}, clock.now_ms())
    clock.advance(200)
    oid = shard.new_order(KA, "a1", INDEX, Side.BUY, "100").order_id
    order = get(shard, oid)
    assert order.arrival is not None and (order.arrival.mid, order.arrival.touch) == (D("50000"), D("50005"))
    assert clock.now_ms() - order.arrival.at_ms == 200  # its age is known
    # Two batches: 0.001 units planned at a touch of 50010, then 0.0005 at 50040 -> Tb = 50020 (units-weighted).
    shard.engage("b1", [engagement(oid, "60")])
    shard.apply_fills("b1:1", [fill(oid, "0.001", "50.02", "0.05")])
    shard.complete_batch("b1", [BatchOrderResult(oid, D("0.001"), (line("0.0005", "50.02", "0.05", "l1"),),
                                                 D("50010"))])
    shard.engage("b2", [engagement(oid, "30")])
    shard.apply_fills("b2:1", [fill(oid, "0.0005", "25.03", "0.025")])
    shard.complete_batch("b2", [BatchOrderResult(oid, D("0.0005"), (line("0.00025", "25.03", "0.025", "l2"),),
                                                 D("50040"))])
    assert order.batch_touch == D("50020")
    shard.books[KA].cancel("a1")
    invoice, _ = shard.minted(oid, "0xtx")
    # P = 75.05 / 0.0015 = 50033.33..; F = 0.075 / 0.0015 = 50 per unit; A = 50000.
    assert invoice.arrival_value == D("50000") and invoice.arrival_touch == D("50005")
    assert invoice.batch_touch == D("50020") and invoice.paid_per_unit == D("75.05") / D("0.0015")
    assert (invoice.spread_bps, invoice.delay_bps, invoice.fee_bps) == (D("1.00"), D("3.00"), D("10.00"))
    assert invoice.shortfall_bps == D("16.67")  # 16.666.. rounded UP
    assert invoice.impact_bps == D("2.67")  # (P - Tb) / A = 2.666..: the remainder carries the total's rounding
    assert invoice.spread_bps + invoice.delay_bps + invoice.impact_bps + invoice.fee_bps == invoice.shortfall_bps
    [row] = invoice.lines
    assert (row.arrival_mid, row.arrival_ask) == (D("100000"), D("100010"))
    # Invoiced: the order keeps its per-unit arrival values, not the per-asset prices the invoice now holds.
    assert (order.arrival.mid, order.arrival.assets) == (D("50000"), {})
    assert row.shortfall_bps == total_bps(D("100000"), row.average_price)


def test_a_value_that_aged_out_is_not_stamped() -> None:
    shard = shard_with_board()
    shard.arrivals.refresh({"BTCUSDC": ((D("99990"), D("1")), (D("100010"), D("1")))}, shard.clock.now_ms())
    shard.clock.advance(1_001)
    assert shard.new_order(KA, "a1", INDEX, Side.BUY, "100").arrival is None


def test_fill_reports_carry_the_running_shortfall() -> None:
    shard = shard_with_board()
    shard.arrivals.refresh({"BTCUSDC": ((D("99990"), D("1")), (D("100010"), D("1")))}, shard.clock.now_ms())
    app = BooksApp(shard, default_chain_id=42161)
    oid = shard.new_order(KA, "a1", INDEX, Side.BUY, "100").order_id
    shard.engage("b1", [engagement(oid, "60")])
    step = shard.apply_fills("b1:1", [fill(oid, "0.001", "50.02", "0.05")])
    [report] = app.step_reports(step)
    assert report.shortfall_bps == D("14.00")  # (50.07 / 0.001 - 50000) / 50000
    wire = IndexMakerPlugin.to_wire(report)
    assert wire.shortfall_bps == D("14.00")


# --- the invoice --------------------------------------------------------------------------------------------------

def test_an_invoice_whose_parts_do_not_add_up_is_refused() -> None:
    inv = build_invoice(order_id=f"{KA}:a1", user=KA, cl_ord_id="a1", index=INDEX, collateral=D("100"),
                        cancelled=D("0"), returned=D("49.9"), spent=D("50.1"), filled_units=D("0.001"),
                        lines=[InvoiceLine(symbol="BTCUSDC", quantity=D("0.0005"), average_price=D("100000"),
                                           value=D("50"), fee=D("0.05"))],
                        arrival=ArrivalValue(D("49990"), D("50000"), 1, {"BTCUSDC": (D("99980"), D("100000"))}),
                        batch_touch=D("50000"))
    assert inv.shortfall_bps == D("12.01")  # (50050 - 49990) / 49990 = 12.0024.. rounded up
    with pytest.raises(ValidationError):
        type(inv).model_validate(inv.model_dump() | {"impact_bps": inv.impact_bps + D("0.01")})
    wire = IndexMakerPlugin.to_wire(InvoiceIssued(UserRef(42161, A), inv, 5))
    assert (wire.arrival_value, wire.shortfall_bps, wire.delay_bps) == (D("49990"), D("12.01"), D("0.00"))
    assert wire.arrival_time is not None and wire.lines[0].arrival_ask == D("100000")
    assert wire.spread_bps + wire.delay_bps + wire.impact_bps + wire.fee_bps == wire.shortfall_bps


def test_a_negative_shortfall_goes_on_the_wire_signed_and_comes_back() -> None:
    from protocol.indexmaker_messages import IndexOrderFill

    body = IndexOrderFill(client_order_id="a1", status="in progress", filled_quantity=D("1"), collateral_spent=D("1"),
                          collateral_remaining=D("0"), fill_rate=D("1"), shortfall_bps=D("-3.25"))
    data = body.model_dump(mode="json")
    assert data["shortfall_bps"] == "-3.25"
    assert IndexOrderFill.model_validate(data).shortfall_bps == D("-3.25")
    for bad in ("--1", "-", "-01", "1e3", "+1"):
        with pytest.raises(ValidationError):
            IndexOrderFill.model_validate(data | {"shortfall_bps": bad})
    with pytest.raises(ValidationError):  # an amount stays unsigned
        IndexOrderFill.model_validate(data | {"filled_quantity": "-1"})


# --- the batch touch, from the solver's planning to the shard ------------------------------------------------------

def test_the_solver_records_each_index_touch_at_planning_and_hands_it_with_the_completion() -> None:
    from core.solver_cycle import SolverCycle
    from core.solver_engine import SolverEngine
    from tests.unit.store_examples import solver_world
    from tests.unit.test_solver_engine import BEST

    engine, outbox = solver_world()
    b2 = engine.batches["b2"]  # a buy batch in flight, planned from the asks whose best level is BEST
    quantities = engine.baskets["SY100.dev"].quantities()
    assert b2.touch == {"SY100.dev": sum((q * D(BEST[s]) for s, q in quantities.items()), D(0))}
    # Kept across a restart: the snapshot holds it, the restore gives it back.
    again = SolverEngine(engine.baskets, engine.filters, engine.limits)
    again.restore(engine.snapshot())
    assert again.batches[b2.batch_id].touch == b2.touch
    # The completion of the first batch (planned from the same asks) carried its touch to the order's result.
    (complete,) = [a for a in outbox if a.kind == "complete"]
    assert [r.touch for r in complete.by_shard[0]] == [b2.touch["SY100.dev"]]
    # The history entry says it too.
    cycle = SolverCycle(again, shard_of_order=lambda _: 0, name="s", reject_after_ms=1, stale_reject_after_ms=1,
                        max_in_flight_notional=D("1e9"))
    entry = cycle.remember(b2.batch_id, b2.plan, 1, {})
    assert entry["touch"] == {"SY100.dev": str(b2.touch["SY100.dev"])}


def test_the_shard_options_take_the_arrival_settings() -> None:
    from actors.order_books import OrderBooksOptions
    from core.config import Settings

    s = Settings()
    o = OrderBooksOptions.from_settings(s, (INDEX,), 2, redis_url="redis://x", baskets={INDEX: BASKET})
    assert (o.arrival_refresh_ms, o.arrival_max_age_ms) == (s.arrival.refresh_ms, s.arrival.max_age_ms) == (200, 2000)
    assert o.market_shards == s.exchange.market_shards and o.baskets == {INDEX: BASKET}
