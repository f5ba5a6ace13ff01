"""Quotes are sized exactly like a batch of one order, and say why when they cannot be given."""
from __future__ import annotations

from decimal import Decimal

import pytest

from core.basket import Basket, BasketAsset
from core.batch_planner import PendingOrder, PlannerLimits, plan_batch
from core.index_quote import quote_index
from core.symbol_filters import parse_exchange_info

PAIR = Basket("PAIR", (BasketAsset("BTCUSDC", Decimal("0.001")), BasketAsset("LINKUSDC", Decimal(3))))


@pytest.fixture(scope="module")
def filters(exchange_info):
    return parse_exchange_info(exchange_info)


def asks(depth: Decimal) -> dict[str, list[tuple[Decimal, Decimal]]]:
    return {"BTCUSDC": [(Decimal("60000.00") + k, depth / 1000) for k in range(5)],
            "LINKUSDC": [(Decimal("14.50") + Decimal("0.01") * k, depth * 4) for k in range(5)]}


def test_a_quote_is_what_a_batch_of_one_would_engage(filters):
    limits = PlannerLimits()
    q = quote_index("PAIR", Decimal(500), {"PAIR": PAIR}, asks(Decimal(100)), filters, limits)
    plan = plan_batch([PendingOrder("x", "PAIR", Decimal(500))], {"PAIR": PAIR}, asks(Decimal(100)), filters,
                      order_budget=10, limits=limits)
    assert q.problem is None and not q.limited_by_liquidity
    assert q.units == plan.engagements[0].units > 0
    # About 500 / (103.5 * 1.002 * 1.0005): the units cost no more than the amount at the expected price.
    assert q.units * q.index_price * limits.fee_factor <= Decimal(500)
    assert q.units * q.index_price * limits.fee_factor > Decimal(499)


def test_thin_books_cut_the_quote_and_say_so(filters):
    deep = quote_index("PAIR", Decimal(5000), {"PAIR": PAIR}, asks(Decimal(1000)), filters, PlannerLimits())
    thin = quote_index("PAIR", Decimal(5000), {"PAIR": PAIR}, asks(Decimal(5)), filters, PlannerLimits())
    assert thin.limited_by_liquidity and not deep.limited_by_liquidity
    assert 0 < thin.units < deep.units


def test_no_book_no_quote_and_unknown_index(filters):
    books = asks(Decimal(100))
    del books["LINKUSDC"]
    assert quote_index("PAIR", Decimal(500), {"PAIR": PAIR}, books, filters, PlannerLimits()).problem == \
        "NO_LIQUIDITY:LINKUSDC"
    assert quote_index("NOPE", Decimal(500), {"PAIR": PAIR}, books, filters, PlannerLimits()).problem == \
        "UNKNOWN_INDEX"


def test_a_stale_book_refuses_the_quote_naming_it(filters):
    """Asks at hand do not matter: a stale book gives no quote, and the problem names every stale book needed."""
    q = quote_index("PAIR", Decimal(500), {"PAIR": PAIR}, asks(Decimal(100)), filters, PlannerLimits(),
                    stale={"LINKUSDC", "BTCUSDC", "ETHUSDC"})
    assert q.problem == "STALE_BOOK:BTCUSDC,LINKUSDC" and q.units == 0
    other = quote_index("PAIR", Decimal(500), {"PAIR": PAIR}, asks(Decimal(100)), filters, PlannerLimits(),
                        stale={"ETHUSDC"})
    assert other.problem is None and other.units > 0
