"""`GET /indexes`: each served index's assets and its price per unit on the live books, rounded as written."""
from __future__ import annotations

from decimal import Decimal

from core.basket import Basket, BasketAsset
from core.index_listing import list_index

D = Decimal
UNIT = D("0.000001")
BASKET = Basket("T", (BasketAsset("BTCUSDC", D("0.5"), D("60")), BasketAsset("ETHUSDC", D("3.0000001"), D("40"))))


def test_prices_at_the_mids_and_at_the_asks() -> None:
    tops = {"BTCUSDC": ((D("60000"), D(1)), (D("60002"), D(1))), "ETHUSDC": ((D("2500"), D(1)), (D("2500.1"), D(1)))}
    got = list_index(BASKET, "Test", tops, UNIT)
    # mid: 0.5 * 60001 + 3.0000001 * 2500.05 = 37500.650250005; ask: 0.5 * 60002 + 3.0000001 * 2500.1 = 37501.30025001
    assert got["mid_price"] == "37500.650250"  # to the nearest micro-USDC
    assert got["ask_price"] == "37501.300251"  # up: a cost is never shown lower than it is
    assert [a["mid"] for a in got["assets"]] == ["60001", "2500.05"] and got["missing_books"] == []
    assert got["name"] == "Test" and got["assets"][1]["quantity"] == "3.0000001"


def test_an_asset_without_a_two_sided_book_leaves_no_price() -> None:
    tops = {"BTCUSDC": ((D("60000"), D(1)), None)}
    got = list_index(BASKET, "", tops, UNIT)
    assert got["mid_price"] is None and got["ask_price"] is None
    assert got["missing_books"] == ["BTCUSDC", "ETHUSDC"]
