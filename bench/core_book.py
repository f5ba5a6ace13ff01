"""Benchmark: core OrderBook diff handling against a naive dict book re-sorted on every update.

The stream is seeded and shaped like Binance's `@depth@100ms` events: 1-5 level changes each, as lists of string
pairs, mostly near the top of a ~`levels`-per-side book, with removals and new levels. Both books parse the same
strings into Decimal and read the best bid and ask after every event; only the book structure differs. An "update"
is one diff event. Generation is not timed; both books must end identical or the run fails.

Run standalone: `python bench/core_book.py` (prints a table, then the JSON result as the last line).
"""
from __future__ import annotations

import json
import random
import sys
import time
from decimal import Decimal
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sortedcontainers import SortedDict  # noqa: E402

import core  # noqa: E402,F401  (installs the decimal context)
from core.order_book import OrderBook  # noqa: E402

Event = tuple[int, int, list[list[str]], list[list[str]]]

MID_TICK = 3_000_000  # 30,000.00 with a 0.01 tick
SNAPSHOT_ID = 1_000_000


def _price(tick: int) -> str:
    return f"{Decimal(tick).scaleb(-2):.8f}"


def _qty(lots: int) -> str:
    return f"{Decimal(lots).scaleb(-5):.8f}"


def generate_stream(n_updates: int, levels: int, seed: int) -> tuple[list[list[str]], list[list[str]], list[Event]]:
    """A snapshot (bids, asks) at SNAPSHOT_ID and `n_updates` chained diff events after it."""
    rng = random.Random(seed)
    bids: SortedDict = SortedDict()  # tick -> lots, the generator's own truth
    asks: SortedDict = SortedDict()
    tick = MID_TICK
    for _ in range(levels):
        tick -= rng.randint(1, 3)
        bids[tick] = rng.randint(1, 100_000)
    tick = MID_TICK
    for _ in range(levels):
        tick += rng.randint(1, 3)
        asks[tick] = rng.randint(1, 100_000)
    snapshot_bids = [[_price(t), _qty(q)] for t, q in reversed(bids.items())]
    snapshot_asks = [[_price(t), _qty(q)] for t, q in asks.items()]

    events: list[Event] = []
    next_id = SNAPSHOT_ID + 1
    for _ in range(n_updates):
        touched: dict[str, dict[int, int]] = {"b": {}, "a": {}}
        n_changes = rng.randint(1, 5)
        for _ in range(n_changes):
            is_bid = rng.random() < 0.5
            book, other = (bids, asks) if is_bid else (asks, bids)
            depth = min(int(rng.expovariate(1 / 4)), len(book) - 1)  # most changes near the top
            best_index = -1 - depth if is_bid else depth
            level_tick = book.keys()[best_index]
            r = rng.random()
            if len(book) < levels - 5:
                r = 0.95  # thin side: add
            elif len(book) > levels + 5:
                r = 0.7  # thick side: remove
            if r < 0.6:
                lots = rng.randint(1, 100_000)  # re-quote an existing level
            elif r < 0.77:
                lots = 0  # the level is gone
            else:
                # A new level near the top; a step of -1 improves the best price, never crossing the other side.
                step = int(rng.expovariate(1 / 3)) - 1
                candidate = level_tick - step if is_bid else level_tick + step
                crosses = other and (candidate >= other.keys()[0] if is_bid else candidate <= other.keys()[-1])
                if candidate in book or crosses or candidate <= 0:
                    lots = rng.randint(1, 100_000)  # no room: re-quote instead
                else:
                    level_tick = candidate
                    lots = rng.randint(1, 100_000)
            if lots:
                book[level_tick] = lots
            elif len(book) > 1:
                del book[level_tick]
            else:
                continue  # never empty a side
            touched["b" if is_bid else "a"][level_tick] = lots
        span = n_changes  # one update id per change, as on the exchange
        events.append(
            (
                next_id,
                next_id + span - 1,
                [[_price(t), _qty(q)] for t, q in touched["b"].items()],
                [[_price(t), _qty(q)] for t, q in touched["a"].items()],
            )
        )
        next_id += span
    return snapshot_bids, snapshot_asks, events


class NaiveBook:
    """The baseline: a dict per side, fully re-sorted to read the best bid and ask."""

    def __init__(self, last_update_id: int, bids: list[list[str]], asks: list[list[str]]) -> None:
        self.last_update_id = last_update_id
        self.bids = {Decimal(p): Decimal(q) for p, q in bids}
        self.asks = {Decimal(p): Decimal(q) for p, q in asks}

    def on_diff(self, first_id: int, last_id: int, bids: list[list[str]], asks: list[list[str]]) -> None:
        if first_id != self.last_update_id + 1:
            raise RuntimeError("naive book: gap")
        for side, levels in ((self.bids, bids), (self.asks, asks)):
            for p, q in levels:
                price, qty = Decimal(p), Decimal(q)
                if qty:
                    side[price] = qty
                else:
                    side.pop(price, None)
        self.last_update_id = last_id

    def best_bid(self) -> tuple[Decimal, Decimal] | None:
        if not self.bids:
            return None
        price = sorted(self.bids)[-1]
        return price, self.bids[price]

    def best_ask(self) -> tuple[Decimal, Decimal] | None:
        if not self.asks:
            return None
        price = sorted(self.asks)[0]
        return price, self.asks[price]


def _time_core(snapshot_bids, snapshot_asks, events) -> tuple[float, OrderBook]:
    book = OrderBook("BENCHUSDT")
    book.apply_snapshot(SNAPSHOT_ID, snapshot_bids, snapshot_asks)
    on_diff, best_bid, best_ask = book.on_diff, book.best_bid, book.best_ask
    start = time.perf_counter()
    for first_id, last_id, bids, asks in events:
        on_diff(first_id, last_id, bids, asks)
        best_bid()
        best_ask()
    return time.perf_counter() - start, book


def _time_naive(snapshot_bids, snapshot_asks, events) -> tuple[float, NaiveBook]:
    book = NaiveBook(SNAPSHOT_ID, snapshot_bids, snapshot_asks)
    on_diff, best_bid, best_ask = book.on_diff, book.best_bid, book.best_ask
    start = time.perf_counter()
    for first_id, last_id, bids, asks in events:
        on_diff(first_id, last_id, bids, asks)
        best_bid()
        best_ask()
    return time.perf_counter() - start, book


def bench_book(n_updates: int = 50_000, levels: int = 100, *, seed: int = 20250210, repeats: int = 3) -> dict:
    """Diff events per second for the core book and the naive book (best of `repeats` runs, interleaved)."""
    snapshot_bids, snapshot_asks, events = generate_stream(n_updates, levels, seed)
    core_best = naive_best = float("inf")
    for _ in range(repeats):
        core_s, book = _time_core(snapshot_bids, snapshot_asks, events)
        naive_s, naive = _time_naive(snapshot_bids, snapshot_asks, events)
        core_best, naive_best = min(core_best, core_s), min(naive_best, naive_s)
    # Both must have built the same book, or the comparison means nothing.
    if book.bids() != sorted(naive.bids.items(), reverse=True) or book.asks() != sorted(naive.asks.items()):
        raise AssertionError("core and naive books disagree after the same stream")
    if not book.best_bid()[0] < book.best_ask()[0]:
        raise AssertionError("generated book crossed")
    book_rate = len(events) / core_best
    naive_rate = len(events) / naive_best
    return {
        "book_updates_per_s": round(book_rate, 1),
        "naive_updates_per_s": round(naive_rate, 1),
        "book_speedup": round(book_rate / naive_rate, 2),
    }


def main() -> None:
    result = bench_book()
    print(f"{'book':<24}{'diff events/s':>16}")
    print(f"{'core OrderBook':<24}{result['book_updates_per_s']:>16,.0f}")
    print(f"{'naive dict + sort':<24}{result['naive_updates_per_s']:>16,.0f}")
    print(f"{'speedup':<24}{result['book_speedup']:>15.2f}x")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
