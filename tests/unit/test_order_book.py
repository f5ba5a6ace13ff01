"""The local order book against the real Binance payloads and against brute-force models of the same stream."""
from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from core.order_book import BookGap, DepthWalk, OrderBook
from core.side import Side

TICK = Decimal("0.01")
LOT = Decimal("0.001")
BID_TICKS = st.integers(1, 40)
ASK_TICKS = st.integers(41, 80)  # every ask above every bid: generated books never cross
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def price_text(tick: int) -> str:
    return f"{tick * TICK:.8f}"


def qty_text(units: int) -> str:
    return f"{units * LOT:.8f}"


# ---- a generated stream: snapshot state, one level change per update id, changes grouped into events ---------------


@dataclass
class Event:
    first: int
    last: int
    bids: list[list[str]]
    asks: list[list[str]]


@dataclass
class Stream:
    base_id: int  # the id of the initial state
    initial_bids: dict[int, int]  # tick -> lots
    initial_asks: dict[int, int]
    changes: list[tuple[str, int, int]]  # change number k has update id base_id + 1 + k
    events: list[Event]

    @property
    def end_id(self) -> int:
        return self.base_id + len(self.changes)

    def state_at(self, update_id: int) -> tuple[dict[int, int], dict[int, int]]:
        """Brute force: replay every single change up to `update_id` into plain dicts."""
        bids, asks = dict(self.initial_bids), dict(self.initial_asks)
        for side, tick, lots in self.changes[: update_id - self.base_id]:
            book = bids if side == "b" else asks
            if lots == 0:
                book.pop(tick, None)
            else:
                book[tick] = lots
        return bids, asks

    def expected(self, update_id: int) -> tuple[list, list]:
        """The model's levels, sorted only at the end: bids high to low, asks low to high."""
        bids, asks = self.state_at(update_id)
        as_levels = lambda book: [(t * TICK, q * LOT) for t, q in book.items()]  # noqa: E731
        return sorted(as_levels(bids), reverse=True), sorted(as_levels(asks))

    def snapshot(self, update_id: int) -> tuple[int, list[list[str]], list[list[str]]]:
        """A REST snapshot taken at `update_id`, as Binance sends it (strings, best first)."""
        bids, asks = self.state_at(update_id)
        return (
            update_id,
            [[price_text(t), qty_text(q)] for t, q in sorted(bids.items(), reverse=True)],
            [[price_text(t), qty_text(q)] for t, q in sorted(asks.items())],
        )


LOTS_OR_REMOVE = st.one_of(st.just(0), st.integers(1, 5000))


@st.composite
def streams(draw, min_changes: int = 1, max_changes: int = 60) -> Stream:
    base_id = draw(st.integers(1, 2**40))
    initial_bids = draw(st.dictionaries(BID_TICKS, st.integers(1, 5000), max_size=30))
    initial_asks = draw(st.dictionaries(ASK_TICKS, st.integers(1, 5000), max_size=30))
    change = st.one_of(
        st.tuples(st.just("b"), BID_TICKS, LOTS_OR_REMOVE), st.tuples(st.just("a"), ASK_TICKS, LOTS_OR_REMOVE)
    )
    changes = draw(st.lists(change, min_size=min_changes, max_size=max_changes))
    events: list[Event] = []
    i = 0
    while i < len(changes):
        chunk = changes[i : i + draw(st.integers(1, 5))]
        # One event carries the final quantity of each price it touched (quantities are absolute).
        finals: dict[str, dict[int, int]] = {"b": {}, "a": {}}
        for side, tick, lots in chunk:
            finals[side][tick] = lots
        events.append(
            Event(
                first=base_id + 1 + i,
                last=base_id + i + len(chunk),
                bids=[[price_text(t), qty_text(q)] for t, q in finals["b"].items()],
                asks=[[price_text(t), qty_text(q)] for t, q in finals["a"].items()],
            )
        )
        i += len(chunk)
    return Stream(base_id, initial_bids, initial_asks, changes, events)


def assert_book_is(book: OrderBook, stream: Stream, update_id: int) -> None:
    bids, asks = stream.expected(update_id)
    assert book.bids() == bids
    assert book.asks() == asks
    assert book.best_bid() == (bids[0] if bids else None)
    assert book.best_ask() == (asks[0] if asks else None)


def feed(book: OrderBook, event: Event) -> bool:
    return book.on_diff(event.first, event.last, event.bids, event.asks)


# ---- the real payloads ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def depth_update(data_dir) -> dict:
    return json.loads((data_dir / "binance" / "depth_update_BTCUSDT_2025-02-10_partial.json").read_text())["data"]


def test_real_snapshot_builds_the_book(depth_snapshot):
    book = OrderBook("BTCUSDT")
    book.apply_snapshot(depth_snapshot["lastUpdateId"], depth_snapshot["bids"], depth_snapshot["asks"])
    assert book.synced and not book.needs_snapshot
    assert book.last_update_id == depth_snapshot["lastUpdateId"]
    assert book.best_bid() == (Decimal("60650.00"), Decimal("0.00213"))
    assert book.best_ask() == (Decimal("60650.01"), Decimal("0.61982"))
    assert book.mid() == Decimal("60650.005")
    bid_prices = [p for p, _ in book.bids()]
    ask_prices = [p for p, _ in book.asks()]
    assert bid_prices == sorted((Decimal(p) for p, _ in depth_snapshot["bids"]), reverse=True)
    assert ask_prices == sorted(Decimal(p) for p, _ in depth_snapshot["asks"])
    assert bid_prices[0] < ask_prices[0]
    # The inspection view gives back the exchange's own strings, best first.
    view = book.snapshot_levels(None)
    assert view["bids"] == depth_snapshot["bids"] and view["asks"] == depth_snapshot["asks"]
    assert len(book.snapshot_levels(3)["asks"]) == 3


def test_real_diff_before_an_older_snapshot_is_a_gap_then_a_fitting_snapshot_applies_it(depth_snapshot, depth_update):
    book = OrderBook("BTCUSDT")
    U, u = depth_update["U"], depth_update["u"]
    assert book.on_diff(U, u, depth_update["b"], depth_update["a"]) is False  # no snapshot yet: buffered
    assert book.buffered == 1
    # The stored snapshot is from months earlier: far older than the buffered stream.
    with pytest.raises(BookGap) as gap:
        book.apply_snapshot(depth_snapshot["lastUpdateId"], depth_snapshot["bids"], depth_snapshot["asks"])
    assert (gap.value.expected, gap.value.got) == (depth_snapshot["lastUpdateId"] + 1, U)
    assert not book.synced and book.best_bid() is None and book.buffered == 1
    # A snapshot that ends inside the event's range lets the buffered event apply on top of it.
    book.apply_snapshot(U + 5, [], [["97060.00000000", "1.00000000"]])
    assert book.synced and book.last_update_id == u and book.buffered == 0
    assert book.bids() == [(Decimal(p), Decimal(q)) for p, q in depth_update["b"]]  # Binance sends them best first
    assert book.best_bid() == (Decimal("97053.55"), Decimal("4.06247"))
    assert book.best_ask() == (Decimal("97060"), Decimal("1"))


def test_real_diff_applies_live_and_its_replay_is_stale(depth_update):
    book = OrderBook("BTCUSDT")
    U, u = depth_update["U"], depth_update["u"]
    book.apply_snapshot(U - 1, [], [])
    assert book.on_diff(U, u, depth_update["b"], depth_update["a"]) is True
    assert len(book.bids()) == len(depth_update["b"]) and book.asks() == []
    assert book.on_diff(U, u, depth_update["b"], depth_update["a"]) is False  # u <= last_update_id: dropped
    removal = [[depth_update["b"][0][0], "0.00000000"]]
    assert book.on_diff(u + 1, u + 1, removal, []) is True
    assert book.best_bid() == (Decimal(depth_update["b"][1][0]), Decimal(depth_update["b"][1][1]))


# ---- generated streams against the brute-force model -----------------------------------------------------------


@SETTINGS
@given(streams())
def test_chained_diffs_match_a_brute_force_rebuild(stream):
    book = OrderBook("TEST")
    book.apply_snapshot(*stream.snapshot(stream.base_id))
    assert_book_is(book, stream, stream.base_id)
    for event in stream.events:
        assert feed(book, event) is True
        assert book.last_update_id == event.last
        assert_book_is(book, stream, event.last)
        bid, ask = book.best_bid(), book.best_ask()
        if bid and ask:
            assert bid[0] < ask[0]
            assert book.mid() == (bid[0] + ask[0]) / 2
    # Replaying any old event is stale and changes nothing.
    assert feed(book, stream.events[len(stream.events) // 2]) is False
    assert_book_is(book, stream, stream.end_id)


@SETTINGS
@given(stream=streams(), data=st.data())
def test_buffering_before_the_snapshot_follows_binance_rules(stream, data):
    """Subscribe at event j, take a snapshot at any id L after k events were buffered, then stream the rest."""
    n = len(stream.events)
    j = data.draw(st.integers(0, n), label="first event received")
    k = data.draw(st.integers(j, n), label="events received before the snapshot")
    L = data.draw(st.integers(stream.base_id, stream.end_id), label="snapshot id")
    delivered = stream.events[j:]
    # Independent statement of the rule: the first received event newer than L must straddle L + 1.
    first_newer = next((e for e in delivered if e.last > L), None)
    too_old = first_newer is not None and first_newer.first > L + 1

    book = OrderBook("TEST")
    for event in stream.events[j:k]:
        assert feed(book, event) is False
    gap = None
    try:
        book.apply_snapshot(*stream.snapshot(L))
        for event in stream.events[k:]:
            feed(book, event)
    except BookGap as exc:
        gap = exc
    if not too_old:
        assert gap is None
        assert book.synced
        final = max(L, delivered[-1].last) if delivered else L
        assert book.last_update_id == final
        assert_book_is(book, stream, final)
        return
    assert gap is not None and (gap.expected, gap.got) == (L + 1, first_newer.first)
    if k > j:  # refused at the snapshot: the buffer is kept, minus what the refused snapshot already covered
        assert book.buffered == sum(1 for e in stream.events[j:k] if e.last > L)
    assert not book.synced and book.needs_snapshot and book.bids() == [] and book.asks() == []
    # Everything still arriving is buffered, and a snapshot new enough for the buffer recovers the book.
    for event in stream.events:
        if event.first > first_newer.first:
            assert feed(book, event) is False
    L2 = data.draw(st.integers(first_newer.first - 1, stream.end_id), label="second snapshot id")
    book.apply_snapshot(*stream.snapshot(L2))
    assert book.synced
    assert_book_is(book, stream, stream.end_id)


@SETTINGS
@given(stream=streams(min_changes=2), data=st.data())
def test_a_skipped_event_raises_and_the_book_refuses_diffs_until_a_new_snapshot(stream, data):
    assume(len(stream.events) >= 2)
    skipped = data.draw(st.integers(0, len(stream.events) - 2), label="skipped event")
    book = OrderBook("TEST")
    book.apply_snapshot(*stream.snapshot(stream.base_id))
    for event in stream.events[:skipped]:
        assert feed(book, event) is True
    lost, revealing = stream.events[skipped], stream.events[skipped + 1]
    with pytest.raises(BookGap) as gap:
        feed(book, revealing)
    assert (gap.value.expected, gap.value.got) == (lost.first, revealing.first)
    assert not book.synced and book.needs_snapshot
    assert book.bids() == [] and book.asks() == [] and book.best_bid() is None and book.mid() is None
    for event in stream.events[skipped + 2 :]:
        assert feed(book, event) is False
        assert book.bids() == [] and book.asks() == []
    # The event that revealed the gap stays buffered: a snapshot just before it rebuilds the whole book.
    book.apply_snapshot(*stream.snapshot(revealing.first - 1))
    assert book.synced and book.last_update_id == stream.end_id
    assert_book_is(book, stream, stream.end_id)


def test_book_gap_survives_pickling_with_its_ids():
    gap = pickle.loads(pickle.dumps(BookGap("BTCUSDT", 11, 13, "diff does not chain")))
    assert (gap.symbol, gap.expected, gap.got) == ("BTCUSDT", 11, 13)
    assert "expected update id 11, got 13" in str(gap)


def test_buffer_keeps_only_the_newest_unbroken_chain():
    book = OrderBook("TEST", max_buffer=3)
    one = [["1.00", "1"]]
    for first in range(101, 106):  # five chained single-id events; only the last three are kept
        book.on_diff(first, first, one, [])
    assert book.buffered == 3
    with pytest.raises(BookGap):
        book.apply_snapshot(101, [], [])  # needs id 102, oldest kept event starts at 103
    assert book.buffered == 3 and not book.synced  # the refused snapshot costs nothing already buffered
    book.on_diff(110, 111, [["2.00", "1"]], [])  # a break: 106..109 never came
    assert book.buffered == 1
    book.on_diff(111, 111, one, [])  # a duplicate of what is buffered is ignored
    assert book.buffered == 1
    book.apply_snapshot(109, [["1.50", "3"]], [])
    assert book.last_update_id == 111
    assert book.bids() == [(Decimal(2), Decimal(1)), (Decimal("1.5"), Decimal(3))]


def test_first_live_event_after_a_snapshot_may_straddle_but_later_ones_must_chain():
    book = OrderBook("TEST")
    book.apply_snapshot(105, [["1.00", "1"]], [["2.00", "1"]])
    assert book.on_diff(100, 104, [["1.00", "9"]], []) is False  # older than the snapshot
    assert book.best_bid() == (Decimal(1), Decimal(1))
    assert book.on_diff(103, 108, [["1.10", "2"]], []) is True  # covers 106: applies
    with pytest.raises(BookGap) as gap:
        book.on_diff(108, 110, [], [])  # overlaps: only the first event may straddle
    assert (gap.value.expected, gap.value.got) == (109, 108)


def test_levels_as_decimals_apply_and_floats_or_garbage_force_a_resync():
    book = OrderBook("TEST")
    book.apply_snapshot(1, [(Decimal("10.5"), Decimal("2"))], [(Decimal("11"), Decimal("0.5"))])
    assert book.on_diff(2, 2, [], [(Decimal("11"), Decimal("0"))]) is True
    assert book.best_ask() is None
    with pytest.raises(TypeError):
        book.on_diff(3, 3, [[10.5, "1"]], [])  # a float has already lost the exchange's digits
    assert book.needs_snapshot and book.bids() == []
    book.apply_snapshot(10, [["10.5", "2"]], [])
    with pytest.raises(ValueError):
        book.on_diff(11, 11, [["10.5", "-1"]], [])
    assert book.needs_snapshot
    book.reset()
    assert book.last_update_id == 0 and book.buffered == 0 and not book.synced


# ---- walking the book --------------------------------------------------------------------------------------------


def brute_force_walk(lots_best_first, *, qty_lots, notional_cap, limit_tick, max_levels, taker_side):
    """Take one lot at a time, best first, while the next lot still fits every cap."""
    taken: list[tuple[int, int]] = []  # (level index, tick) per lot
    spent = Decimal(0)
    for index, (tick, lots) in enumerate(lots_best_first):
        if max_levels is not None and index >= max_levels:
            break
        if limit_tick is not None and (tick > limit_tick if taker_side is Side.BUY else tick < limit_tick):
            break
        stopped = False
        for _ in range(lots):
            price = tick * TICK
            if qty_lots is not None and len(taken) + 1 > qty_lots:
                stopped = True
                break
            if notional_cap is not None and spent + price * LOT > notional_cap:
                stopped = True
                break
            taken.append((index, tick))
            spent += price * LOT
        if stopped:
            break
    if not taken:
        return DepthWalk(Decimal(0), Decimal(0), None, None, 0)
    quantity = len(taken) * LOT
    notional = sum((t * TICK * LOT for _, t in taken), Decimal(0))
    return DepthWalk(quantity, notional, notional / quantity, taken[-1][1] * TICK, len({i for i, _ in taken}))


@SETTINGS
@given(
    bids=st.dictionaries(BID_TICKS, st.integers(1, 30), max_size=15),
    asks=st.dictionaries(ASK_TICKS, st.integers(1, 30), max_size=15),
    taker_side=st.sampled_from([Side.BUY, Side.SELL]),
    qty_lots=st.none() | st.integers(0, 400),
    notional_units=st.none() | st.integers(0, 2_000),  # up to 0.2: often binding
    limit_tick=st.none() | st.integers(1, 80),
    max_levels=st.none() | st.integers(0, 8),
)
def test_walk_matches_a_lot_by_lot_brute_force(
    bids, asks, taker_side, qty_lots, notional_units, limit_tick, max_levels
):
    book = OrderBook("TEST")
    as_text = lambda levels: [[price_text(t), qty_text(q)] for t, q in levels.items()]  # noqa: E731
    book.apply_snapshot(1, as_text(bids), as_text(asks))
    notional_cap = None if notional_units is None else notional_units * Decimal("0.0001")
    got = book.walk(
        taker_side,
        quantity=None if qty_lots is None else qty_lots * LOT,
        notional=notional_cap,
        limit_price=None if limit_tick is None else limit_tick * TICK,
        max_levels=max_levels,
        quantity_step=LOT,
    )
    opposite = sorted(asks.items()) if taker_side is Side.BUY else sorted(bids.items(), reverse=True)
    want = brute_force_walk(
        opposite,
        qty_lots=qty_lots,
        notional_cap=notional_cap,
        limit_tick=limit_tick,
        max_levels=max_levels,
        taker_side=taker_side,
    )
    assert got == want
    if notional_cap is not None:
        assert got.notional <= notional_cap
    # The levels a walk may use are exactly what liquidity_for reports.
    limit = None if limit_tick is None else limit_tick * TICK
    available = book.liquidity_for(taker_side, max_levels, limit_price=limit)
    assert got.quantity <= sum((q for _, q in available), Decimal(0))
    if qty_lots is None and notional_cap is None:
        assert got.quantity == sum((q for _, q in available), Decimal(0))


def test_walk_notional_cap_rounds_the_last_level_down_to_the_step():
    book = OrderBook("TEST")
    book.apply_snapshot(1, [["2.00", "4"]], [["3.00", "10"]])
    walk = book.walk(Side.BUY, notional=Decimal(1))  # 1/3 of a unit, default step 1e-8
    assert walk == DepthWalk(Decimal("0.33333333"), Decimal("0.99999999"), Decimal(3), Decimal(3), 1)
    sell = book.walk(Side.SELL, quantity=Decimal("1.23456789123"))  # a quantity cap is exact, never rounded
    assert sell.quantity == Decimal("1.23456789123") and sell.notional == Decimal("2.46913578246")
    assert book.walk(Side.BUY, limit_price=Decimal("2.99")).levels_used == 0
    assert book.walk(Side.BUY, limit_price=Decimal("3")).quantity == 10  # a level at the limit is inside it
    assert book.walk(Side.SELL, limit_price=Decimal("2")).quantity == 4
    assert book.walk(Side.BUY, limit_price=Decimal("2.99")).average_price is None
    assert book.liquidity_for(Side.SELL) == [(Decimal(2), Decimal(4))]
    assert book.liquidity_for("BUY") == [(Decimal(3), Decimal(10))]


def test_walk_stops_at_a_partly_taken_level_even_if_a_cheaper_one_would_fit():
    book = OrderBook("TEST")
    book.apply_snapshot(1, [["3.00", "10"], ["1.00", "10"]], [])
    walk = book.walk(Side.SELL, notional=Decimal(4), quantity_step=Decimal(1))
    # 4 / 3 rounds down to 1 unit at 3.00; the unit at 1.00 would fit the notional left, but a real order that
    # did not exhaust the 3.00 level never reaches 1.00.
    assert walk == DepthWalk(Decimal(1), Decimal(3), Decimal(3), Decimal(3), 1)


def test_walk_notional_cap_holds_when_the_division_rounds_onto_a_step():
    book = OrderBook("TEST")
    book.apply_snapshot(1, [], [["3.00", "10"]])
    cap = Decimal("0.99999998" + "9" * 52)  # 0.99999999 - 1e-60: 60 significant digits, exact in the context
    walk = book.walk(Side.BUY, notional=cap)
    # cap / 3 = 0.33333332999...97, which the 60-digit division rounds up to exactly 0.33333333.
    assert walk.quantity == Decimal("0.33333332") and walk.notional <= cap


def test_bench_runs_small_and_both_books_agree():
    from bench.core_book import bench_book

    result = bench_book(n_updates=300, levels=20, repeats=1)
    assert set(result) == {"book_updates_per_s", "naive_updates_per_s", "book_speedup"}
    assert result["book_updates_per_s"] > 0 and result["naive_updates_per_s"] > 0
