"""core/reserves.py: the books' holdings from filled units, inventory and what is in flight; the comparison with
the exchange per asset and with the token supply per index; reads that disagree only once are not a difference."""
from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from core.lots import Lot
from core.reserves import (
    ReserveRow, books_holdings, compare, confirmed, lots_held, net_received, problems, render, supply_row,
)

D = Decimal
BASKETS = {"IDX": {"BTC": D("0.5806885"), "XRP": D("1092.4467975")}, "TWO": {"BTC": D("0.1")}}
amounts = st.decimals(min_value=0, max_value=10**6, places=8, allow_nan=False, allow_infinity=False)


def test_books_are_the_baskets_behind_filled_units_plus_the_parts() -> None:
    books = books_holdings({"IDX": D("2.000000000000000001"), "TWO": D(3)}, BASKETS,
                           {"BTC": D("0.00001")}, {"XRP": D("1"), "ETH": D("0.2")})
    assert books == {"BTC": D("2.000000000000000001") * D("0.5806885") + D("0.3") + D("0.00001"),
                     "XRP": D("2.000000000000000001") * D("1092.4467975") + 1, "ETH": D("0.2")}


def test_an_index_with_nothing_filled_needs_no_basket() -> None:
    assert books_holdings({"GONE": D(0)}, BASKETS) == {}


def test_lots_held_counts_what_is_left_in_whole_base_units() -> None:
    a = Lot("BTCUSDC:1", "BTCUSDC", 1000, D("1e-8"), D("60000"), D("0.01"), consumed=400)
    b = Lot("XRPUSDC:2", "XRPUSDC", 7, D("0.1"), D("0.5"), D(0), consumed=7)
    assert lots_held([a, b], {"BTCUSDC": "BTC", "XRPUSDC": "XRP"}) == {"BTC": D("0.00000600")}


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
