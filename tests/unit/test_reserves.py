"""core/reserves.py: the books' holdings from what was delivered, assigned, in inventory and in flight; the comparison with
the exchange per asset and with the token supply per index; reads that disagree only once are not a difference."""
from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st

from core.lots import Lot
from core.reserves import (
    ReserveRow, assigned_in, books_holdings, by_asset, compare, confirmed, lots_cost, lots_held, net_received,
    problems, quote_spent, render, supply_row,
)

D = Decimal
amounts = st.decimals(min_value=0, max_value=10**6, places=8, allow_nan=False, allow_infinity=False)


def test_books_are_the_sum_of_the_parts_per_asset() -> None:
    books = books_holdings([{"BTC": D("0.00512487")}, {"BTC": D("0.00001"), "XRP": D("1")}, {},
                            {"XRP": D("2.5"), "ETH": D("0.2")}])
    assert books == {"BTC": D("0.00513487"), "XRP": D("3.5"), "ETH": D("0.2")}
    assert by_asset({"BTCUSDC": D("1"), "BTCUSDT": D("2"), "XRPUSDC": D("3")},
                    {"BTCUSDC": "BTC", "BTCUSDT": "BTC", "XRPUSDC": "XRP"}) == {"BTC": D(3), "XRP": D(3)}


def test_what_open_batches_assigned_counts_in_whole_base_units() -> None:
    from core.basket import Basket, BasketAsset
    from core.batch_planner import Engagement
    from core.lot_assignment import BatchAllocation

    filters = {"BTCUSDC": SimpleNamespace(base_asset="BTC", base_unit=D("1e-8"))}  # what it reads of the filters
    basket = Basket("IDX", (BasketAsset("BTCUSDC", D("0.3333333")),))
    alloc = BatchAllocation("b1", [Engagement("u:1", "IDX", D(1), D(30000), D(20000))], {"IDX": basket},
                            {"BTCUSDC": D("1e-8")}, D("1e-18"))
    alloc.add_lots([Lot("BTCUSDC:1", "BTCUSDC", 20_000_000, D("1e-8"), D(60000), D(0))])
    alloc.assign()

    class Open:
        allocation = alloc

    got = assigned_in([Open()], filters)
    assert got == {"BTC": D(alloc.assigned_units()["BTCUSDC"]) * D("1e-8")} and 0 < got["BTC"] <= D("0.2")


def test_lots_held_counts_what_is_left_in_whole_base_units() -> None:
    a = Lot("BTCUSDC:1", "BTCUSDC", 1000, D("1e-8"), D("60000"), D("0.01"), consumed=400)
    b = Lot("XRPUSDC:2", "XRPUSDC", 7, D("0.1"), D("0.5"), D(0), consumed=7)
    assert lots_held([a, b], {"BTCUSDC": "BTC", "XRPUSDC": "XRP"}) == {"BTC": D("0.00000600")}


@given(st.integers(1, 10**6), st.integers(0, 10**6), st.decimals(min_value="0.01", max_value=100000, places=2),
       st.integers(0, 10**8))
def test_the_cost_of_what_is_left_and_of_what_was_taken_is_what_the_lot_cost(quantity, taken, price, fee_q) -> None:
    """Units taken from a lot (slices) cost their share; what is left costs the rest, to the last 1e-24."""
    taken = min(taken, quantity)
    lot = Lot("BTCUSDC:1", "BTCUSDC", quantity, D("1e-8"), price, D(fee_q).scaleb(-8))
    whole = lots_cost([lot])
    assert whole == price * D("1e-8") * quantity + lot.fee
    out = lot.take(taken) if taken else None
    assert lots_cost([lot]) + (out.value + out.fee if out else 0) == whole
    assert lots_cost([lot.leftover()]) == lots_cost([lot])


def test_a_fill_costs_its_quote_plus_a_commission_in_quote() -> None:
    assert quote_spent(D("0.5"), D("60000.01"), D("0.0005"), "BTC", "USDC") == D("30000.005")
    assert quote_spent(D("0.5"), D("60000.01"), D("30"), "USDC", "USDC") == D("30030.005")


def test_a_commission_in_the_base_asset_is_not_held() -> None:
    assert net_received(D("1.5"), D("0.0015"), "BTC", "BTC") == D("1.4985")
    assert net_received(D("1.5"), D("0.09"), "USDC", "BTC") == D("1.5")
    assert net_received(D("1.5"), D(0), None, "BTC") == D("1.5")


def test_compare_names_the_asset_beyond_its_tolerance() -> None:
    rows = compare({"BTC": D("1.00000000"), "XRP": D("100")}, {"BTC": D("0.99999999"), "XRP": D("99.9"),
                                                               "USDC": D("5")},
                   {"BTC", "XRP", "SOL"}, D("0.00000001"), {"XRP": D("0.01")})
    assert rows == [ReserveRow("BTC", D("1.00000000"), D("0.99999999"), D("-1E-8"), True),
                    ReserveRow("SOL", D(0), D(0), D(0), True),
                    ReserveRow("XRP", D("100"), D("99.9"), D("-0.1"), False)]
    assert problems(rows) == ["reserves: XRP books 100 exchange 99.9 difference -0.1"]
    assert [ReserveRow.from_dict(r.to_dict()) for r in rows] == rows


@given(st.dictionaries(st.sampled_from(["BTC", "ETH", "XRP"]), amounts, max_size=3),
       st.dictionaries(st.sampled_from(["BTC", "ETH", "XRP", "USDC"]), amounts, max_size=4), amounts)
def test_compare_is_exact_and_ok_means_within_tolerance(books, exchange, tolerance) -> None:
    rows = compare(books, exchange, {"BTC", "ETH"}, tolerance)
    assert [r.asset for r in rows] == sorted({"BTC", "ETH"} | set(books))
    for r in rows:
        assert r.books == books.get(r.asset, 0) and r.exchange == exchange.get(r.asset, 0)
        assert r.books + r.difference == r.exchange
        assert r.ok == (abs(r.difference) <= tolerance)


@given(amounts, amounts, amounts)
def test_supply_lies_between_minted_and_minted_plus_owed(minted, owed, supply) -> None:
    row = supply_row("IDX", minted, owed, supply, D(0))
    assert row.asset == "IDX supply" and row.difference == supply - minted
    assert row.ok == (minted <= supply <= minted + owed)


def test_a_supply_above_what_was_filled_is_a_difference() -> None:
    assert not supply_row("IDX", D("1.5"), D("0.5"), D("2.000000000000000001"), D(0)).ok
    assert supply_row("IDX", D("1.5"), D("0.5"), D("2.000000000000000001"), D("1e-18")).ok
    assert not supply_row("IDX", D("1.5"), D("0.5"), D("1.4"), D(0)).ok


def test_only_a_difference_every_read_saw_stays() -> None:
    first = [ReserveRow("BTC", D(1), D("0.9"), D("-0.1"), False), ReserveRow("ETH", D(1), D(0), D(-1), False)]
    second = [ReserveRow("BTC", D(1), D(1), D(0), True), ReserveRow("ETH", D(1), D(0), D(-1), False)]
    assert confirmed([first, second]) == second
    third = [ReserveRow("BTC", D(1), D("0.8"), D("-0.2"), False), ReserveRow("ETH", D(1), D(1), D(0), True)]
    assert [r.ok for r in confirmed([second, third])] == [True, True]
    assert confirmed([third]) == third
    assert confirmed([]) == []


def test_the_table_has_one_line_per_row_and_marks_the_different() -> None:
    lines = render([ReserveRow("BTC", D("1.5"), D("1.5"), D(0), True),
                    ReserveRow("SY100DEV supply", D("2"), D("1"), D("-1"), False)])
    assert lines[0].split() == ["asset", "books", "exchange", "difference"]
    assert lines[1].split() == ["BTC", "1.5", "1.5", "0", "ok"]
    assert lines[2].split() == ["SY100DEV", "supply", "2", "1", "-1", "DIFFERENT"]
