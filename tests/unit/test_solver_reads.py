"""What the solver makes of its reads (core/solver_reads.py): the shards' demand interleaved, the market shards'
answers merged with stale books left out, the sender's budget, the symbols asked, and the quote refusals."""
from __future__ import annotations

from decimal import Decimal

from core.basket import load_indexes
from core.batch_planner import PendingOrder, PlannerLimits
from core.index_quote import IndexQuote
from core.shard_assignment import shard_of
from core.side import Side
from core.stale_books import stale_reason
from core.solver_reads import (Books, answer_quote, by_market_shard, every_symbol, interleave, merge_liquidity,
                               order_budget, quote_refusal, symbols_for)
from tests.unit.test_solver_engine import world  # noqa: F401  (the fixture)

ZERO = Decimal(0)


def orders(user: str, n: int) -> list[PendingOrder]:
    return [PendingOrder(f"{user}:c{i}", "SY100.dev", Decimal(100 + i)) for i in range(n)]


def test_the_shards_demand_interleaves_oldest_first() -> None:
    a, b, c = orders("a", 3), orders("b", 1), []
    merged = interleave([a, b, c])
    assert [o.order_id for o in merged] == ["a:c0", "b:c0", "a:c1", "a:c2"]
    assert interleave([]) == [] and interleave([[], []]) == []


def test_a_stale_book_is_left_out_of_the_merged_read() -> None:
    level = [(Decimal("1.5"), Decimal(10))]
    books = merge_liquidity([({"BTCUSDC": level, "ETHUSDC": level}, ["ETHUSDC"]), ({"XRPUSDC": level}, [])])
    assert books.asks == {"BTCUSDC": level, "XRPUSDC": level}
    assert books.stale == frozenset({"ETHUSDC"})


def test_the_budget_is_what_the_sender_can_send_unless_its_window_is_empty() -> None:
    assert order_budget(3, 10, 50) == 3
    assert order_budget(80, 100, 50) == 50  # capped by the batch's most
    assert order_budget(10, 10, 50) == 50  # an empty window takes everything: the sender paces it
    assert order_budget(0, 10, 50) == 0


def test_the_symbols_asked_are_those_of_the_pending_indexes(data_dir) -> None:
    baskets = {"SY100.dev": load_indexes(data_dir / "indexes")["SY100.dev"]}
    symbols = every_symbol(baskets)
    assert symbols == sorted(a.symbol for a in baskets["SY100.dev"].assets) and len(symbols) > 1
    assert symbols_for(orders("a", 2), baskets) == symbols
    assert symbols_for([PendingOrder("a:c9", "NOPE", Decimal(1))], baskets) == []
    groups = by_market_shard(symbols, 3)
    assert sorted(s for rows in groups.values() for s in rows) == symbols
    assert all(shard_of(s, 3) == k for k, rows in groups.items() for s in rows) and all(groups.values())


def test_a_quote_is_refused_with_the_reason_of_its_problem() -> None:
    def q(problem: str | None) -> IndexQuote:
        return IndexQuote("SY100.dev", Decimal(100), ZERO, ZERO, False, problem)

    assert quote_refusal("SY100.dev", q(None)) is None
    assert quote_refusal("X", q("UNKNOWN_INDEX"), ["SYAI", "SY100"]) == ("UNKNOWN_INDEX",
                                                                   "unknown index 'X'; served: SY100, SYAI")
    code, text = quote_refusal("SY100.dev", q(stale_reason(["ETHUSDC", "BTCUSDC"])))
    assert code == "MARKET_UNAVAILABLE" and "stale book: BTCUSDC, ETHUSDC" in text
    assert quote_refusal("SY100.dev", q("NO_LIQUIDITY:XRPUSDC")) == (
        "MARKET_UNAVAILABLE", "no price to quote from (NO_LIQUIDITY:XRPUSDC)")


def test_a_buy_quote_is_sized_on_the_books_and_a_sell_or_a_stale_book_is_refused(world) -> None:  # noqa: F811
    filters, baskets, asks = world
    quote, refusal = answer_quote(Side.BUY, "SY100.dev", Decimal(1000), baskets, Books(asks, frozenset()), filters,
                                  PlannerLimits())
    assert refusal is None and quote.units > 0 and quote.spread_bps is None  # no bids given: no width said
    more, _ = answer_quote(Side.BUY, "SY100.dev", Decimal(2000), baskets, Books(asks, frozenset()), filters,
                           PlannerLimits())
    assert more.units > quote.units
    sell, refusal = answer_quote(Side.SELL, "SY100.dev", Decimal(1000), baskets, Books(asks, frozenset()), filters,
                                 PlannerLimits())
    assert sell.units == ZERO and refusal == ("UNSUPPORTED_SIDE", "only buy quotes")
    stale = Books({s: levels for s, levels in asks.items() if s != "BTCUSDC"}, frozenset({"BTCUSDC"}))
    quote, refusal = answer_quote(Side.BUY, "SY100.dev", Decimal(1000), baskets, stale, filters, PlannerLimits())
    assert quote.units == 0 and refusal is not None and refusal[0] == "MARKET_UNAVAILABLE" and "BTCUSDC" in refusal[1]


def test_a_quote_says_how_wide_the_market_is_and_a_halted_pair_has_none(world) -> None:  # noqa: F811
    """The basket's spread at the touch in bps of its mid (rounded up), past `wide_spread_bps`: wide. An index
    holding a halted pair gets no quote, the pair named."""
    filters, baskets, asks = world
    basket = baskets["SY100.dev"]
    books = Books(asks, frozenset())
    best_ask = {s: levels[0][0] for s, levels in asks.items()}
    tight = {s: p * Decimal("0.999") for s, p in best_ask.items()}  # 10 bps under each ask
    quote, _ = answer_quote(Side.BUY, "SY100.dev", Decimal(1000), baskets, books, filters, PlannerLimits(),
                            best_bids=tight, wide_spread_bps=Decimal(50))
    ask = sum(a.quantity * best_ask[a.symbol] for a in basket.assets)
    bid = sum(a.quantity * tight[a.symbol] for a in basket.assets)
    exact = (ask - bid) / ((ask + bid) / 2) * 10_000
    assert quote.spread_bps == exact.quantize(Decimal("0.01"), rounding="ROUND_UP") >= exact and not quote.wide
    wide = {s: p * Decimal("0.99") for s, p in best_ask.items()}  # 100 bps
    quote, refusal = answer_quote(Side.BUY, "SY100.dev", Decimal(1000), baskets, books, filters, PlannerLimits(),
                                  best_bids=wide, wide_spread_bps=Decimal(50))
    assert refusal is None and quote.wide and quote.spread_bps > 100 and quote.units > 0
    halted, refusal = answer_quote(Side.BUY, "SY100.dev", Decimal(1000), baskets, books, filters, PlannerLimits(),
                                   closed={"BTCUSDC"})
    assert halted.units == 0 and refusal == ("MARKET_UNAVAILABLE",
                                             "halted on the exchange: BTCUSDC (no quote until it trades again)")
