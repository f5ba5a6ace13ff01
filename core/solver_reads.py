"""What the solver makes of its reads, without I/O: the shards' demand, the market shards' asks, the sender's budget.

The actor (actors/solver.py) asks its peers; these rules decide which symbols it asks for, how the answers merge
and what a quote request is refused for, so that they are the same for a tick and for a quote."""
from __future__ import annotations

from decimal import Decimal
from typing import Any, Callable, Collection, Iterable, Mapping, NamedTuple, Sequence

from core.basket import Basket
from core.batch_planner import PendingOrder, PlannerLimits
from core.index_quote import IndexQuote, quote_index
from core.market_status import is_closed_reason
from core.shard_assignment import shard_of
from core.side import Side
from core.symbol_filters import SymbolFilters
from core.stale_books import is_stale_reason, symbols_of


class Books(NamedTuple):
    """One read of the market shards: the asks of the symbols asked (stale ones left out) and which are stale."""

    asks: dict[str, list[tuple[Decimal, Decimal]]]
    stale: frozenset[str]


def group_by_shard(items: Iterable[Any], shard_of_item: Callable[[Any], int]) -> dict[int, list[Any]]:
    """Items per shard, in their order: one call (or one step) per shard that has some."""
    out: dict[int, list[Any]] = {}
    for item in items:
        out.setdefault(shard_of_item(item), []).append(item)
    return out


def by_market_shard(symbols: Iterable[str], shards: int) -> dict[int, list[str]]:
    """The symbols each market shard is asked for."""
    return group_by_shard(symbols, lambda s: shard_of(s, shards))


def merge_liquidity(answers: Iterable[tuple[Mapping[str, Any], Iterable[str]]]) -> Books:
    """The market shards' (levels, stale symbols) answers as one read: a stale book is never planned on."""
    asks: dict[str, list[tuple[Decimal, Decimal]]] = {}
    stale: set[str] = set()
    for levels, stale_here in answers:
        asks.update(levels)
        stale.update(stale_here)
    for s in stale:
        asks.pop(s, None)
    return Books(asks, frozenset(stale))


def interleave(lists: Sequence[Sequence[PendingOrder]]) -> list[PendingOrder]:
    """The shards' pending lists as one: shards are FIFO each, and interleaving them keeps every shard's oldest
    orders at the front (no shard waits behind another's backlog)."""
    out: list[PendingOrder] = []
    for i in range(max((len(x) for x in lists), default=0)):
        out.extend(x[i] for x in lists if i < len(x))
    return out


def order_budget(available: int, capacity: int, most: int) -> int:
    """Exchange orders the next batch may carry: what the sender can send now. An index too big for even an empty
    window is not held back: with the window empty it may take everything (the sender paces it)."""
    if available >= capacity:
        return most
    return min(most, available)


def every_symbol(baskets: Mapping[str, Basket]) -> list[str]:
    return sorted({a.symbol for b in baskets.values() for a in b.assets})


def symbols_for(pending: Iterable[PendingOrder], baskets: Mapping[str, Basket]) -> list[str]:
    """The books a plan of these orders needs: those of their indexes' assets (unknown indexes need none)."""
    return sorted({a.symbol for o in pending if o.index in baskets for a in baskets[o.index].assets})


def quote_refusal(index: str, q: IndexQuote, served: Iterable[str] = ()) -> tuple[str, str] | None:
    """(reason code name, text) of a quote that cannot be given (an unknown index: with the `served` ones); None:
    `q.units` is the answer."""
    if q.problem == "UNKNOWN_INDEX":
        return "UNKNOWN_INDEX", f"unknown index {index!r}; served: {', '.join(sorted(served))}"
    if q.problem is not None and is_stale_reason(q.problem):
        return ("MARKET_UNAVAILABLE",
                f"stale book: {', '.join(symbols_of(q.problem))} (no quote until it is fresh again)")
    if q.problem is not None and is_closed_reason(q.problem):
        pairs = q.problem.partition(":")[2].replace(",", ", ")
        return "MARKET_UNAVAILABLE", f"halted on the exchange: {pairs} (no quote until it trades again)"
    if q.problem is not None:
        return "MARKET_UNAVAILABLE", f"no price to quote from ({q.problem})"
    return None


def answer_quote(side: Side, index: str, amount: Decimal, baskets: Mapping[str, Basket], books: Books,
                 filters: Mapping[str, SymbolFilters], limits: PlannerLimits, *,
                 closed: Collection[str] = frozenset(), best_bids: Mapping[str, Decimal] | None = None,
                 wide_spread_bps: Decimal | None = None) -> tuple[IndexQuote, tuple[str, str] | None]:
    """(the quote: index units `amount` buys now, sized like a batch of that order alone on `books`, and the
    market's width; why no quote is given, as in quote_refusal, or None)."""
    if side is not Side.BUY:
        return IndexQuote(index, amount, Decimal(0), Decimal(0), False), ("UNSUPPORTED_SIDE", "only buy quotes")
    q = quote_index(index, amount, baskets, books.asks, filters, limits, stale=books.stale, closed=closed,
                    best_bids=best_bids, wide_spread_bps=wide_spread_bps)
    return q, quote_refusal(index, q, baskets)
