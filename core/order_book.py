"""A local L2 order book kept in step with Binance: REST snapshot + diff stream, gap-checked (spec/binance.md §e).

Binance's procedure: buffer diff events, fetch a snapshot, drop buffered events with `u <= lastUpdateId`, apply the
first event only if it straddles `lastUpdateId + 1` (`U <= lastUpdateId + 1 <= u`), then require every later event
to chain exactly (`U == previous u + 1`). Any break means levels were missed: the book cannot be trusted, so it
empties itself, raises `BookGap`, and buffers again until the next snapshot.

Prices and quantities are exact `Decimal`s parsed once from the exchange's strings. Each side is a `SortedDict`
keyed by price, so a level change is O(log n) and the best price is at one end, without re-sorting anything.
"""
from __future__ import annotations

import decimal
from collections import deque
from dataclasses import dataclass
from decimal import Decimal
from itertools import islice
from typing import Any, Iterable, Iterator, Sequence

from sortedcontainers import SortedDict

from core.money import PRECISION, ZERO, D, quantize_down
from core.side import Side

#: Levels as the exchange sends them: `[["60650.00000000", "0.00213000"], ...]` (Decimals are accepted too).
Levels = Iterable[Sequence[Any]]
Level = tuple[Decimal, Decimal]

#: Default quantum for quantities taken under a notional cap (Binance's finest step size).
DEFAULT_QUANTITY_STEP = Decimal("1e-8")

#: Events kept while waiting for a snapshot. Older ones are dropped first: a snapshot older than what is still
#: buffered is refused (BookGap) and refetched, so dropping the oldest never makes the book wrong.
DEFAULT_MAX_BUFFER = 10_000

# Parses exchange text into Decimal without rounding: floats (already lossy), inexact or malformed input raise.
# A dedicated context, because `Decimal(x)` silently accepts a float and the project context does not trap that.
_PARSE_CONTEXT = decimal.Context(
    prec=PRECISION,
    traps=[decimal.FloatOperation, decimal.InvalidOperation, decimal.Inexact, decimal.Rounded],
)
_parse = _PARSE_CONTEXT.create_decimal


class BookGap(Exception):
    """Update ids do not chain: levels were missed and the book must be rebuilt from a new snapshot."""

    def __init__(self, symbol: str, expected: int, got: int, reason: str) -> None:
        super().__init__(symbol, expected, got, reason)  # all in args, so it pickles across Ray process boundaries
        self.symbol = symbol
        self.expected = expected
        self.got = got
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.symbol}: {self.reason} (expected update id {self.expected}, got {self.got})"


@dataclass(frozen=True, slots=True)
class DepthWalk:
    """What a taker would get by sweeping one side of the book: totals, average and worst price, levels touched."""

    quantity: Decimal
    notional: Decimal
    average_price: Decimal | None  # notional / quantity at the project precision; None if nothing was taken
    worst_price: Decimal | None  # the last (least favourable) level taken from; None if nothing was taken
    levels_used: int


class OrderBook:
    """One symbol's book. Not thread-safe: one owner (the market-data actor) feeds and reads it."""

    __slots__ = ("symbol", "_bids", "_asks", "_last_update_id", "_synced", "_straddle_ok", "_buffer")

    def __init__(self, symbol: str, *, max_buffer: int = DEFAULT_MAX_BUFFER) -> None:
        self.symbol = symbol
        self._bids: SortedDict = SortedDict()  # ascending price: best bid is the last key
        self._asks: SortedDict = SortedDict()  # ascending price: best ask is the first key
        self._last_update_id = 0
        self._synced = False
        # True right after a snapshot until one event is applied: that first event may straddle the snapshot id.
        self._straddle_ok = False
        self._buffer: deque[tuple[int, int, Levels, Levels]] = deque(maxlen=max_buffer)

    # ---- state -----------------------------------------------------------------------------------------------

    @property
    def synced(self) -> bool:
        """The levels reflect every change up to `last_update_id`."""
        return self._synced

    @property
    def needs_snapshot(self) -> bool:
        """Not synced: the owner should fetch a REST snapshot and call `apply_snapshot` (diffs are being buffered)."""
        return not self._synced

    @property
    def last_update_id(self) -> int:
        """Id of the last change applied (0 before the first snapshot). Meaningful only while `synced`."""
        return self._last_update_id

    @property
    def buffered(self) -> int:
        """Number of diff events waiting for a snapshot."""
        return len(self._buffer)

    def reset(self) -> None:
        """Forget everything: empty book, empty buffer, waiting for a snapshot."""
        self._bids.clear()
        self._asks.clear()
        self._buffer.clear()
        self._last_update_id = 0
        self._synced = False
        self._straddle_ok = False

    # ---- feeding -----------------------------------------------------------------------------------------------

    def on_diff(self, first_id: int, last_id: int, bids: Levels, asks: Levels) -> bool:
        """Apply one diff event (`U`, `u`, `b`, `a`). Returns True if it changed the book.

        Not synced: the event is buffered for the next snapshot (False). Synced: events with `u <= last_update_id`
        are stale (False); otherwise `U` must be `last_update_id + 1` (or, for the first event after a snapshot,
        at most that), else the book empties, keeps this event buffered and raises `BookGap`. Buffered events keep
        the caller's level lists by reference: do not reuse them.
        """
        if not self._synced:
            self._buffer_event(first_id, last_id, bids, asks)
            return False
        last = self._last_update_id
        if last_id <= last:
            return False
        if first_id != last + 1 and not (self._straddle_ok and first_id <= last + 1):
            self._lose_sync()
            # The event that revealed the gap is still good for a newer snapshot: keep it.
            self._buffer_event(first_id, last_id, bids, asks)
            raise BookGap(self.symbol, last + 1, first_id, "diff does not chain")
        self._apply_event(bids, asks)
        self._last_update_id = last_id
        self._straddle_ok = False
        return True

    def apply_snapshot(self, last_update_id: int, bids: Levels, asks: Levels) -> None:
        """Replace the book with a REST snapshot, then replay the buffered events that come after it.

        Raises `BookGap` if the snapshot is older than the first buffered event still needed (`U > lastUpdateId+1`):
        the buffer is kept and a newer snapshot will be accepted. A snapshot newer than everything buffered is fine:
        the next live event must then straddle it.
        """
        snapshot_id = int(last_update_id)
        pending = [event for event in self._buffer if event[1] > snapshot_id]
        if pending and pending[0][0] > snapshot_id + 1:
            self._bids.clear()
            self._asks.clear()
            self._synced = False
            self._buffer = deque(pending, maxlen=self._buffer.maxlen)
            raise BookGap(self.symbol, snapshot_id + 1, pending[0][0], "snapshot older than the buffered stream")
        new_bids = self._parse_snapshot_side(bids)
        new_asks = self._parse_snapshot_side(asks)
        self._buffer.clear()
        self._bids = new_bids
        self._asks = new_asks
        self._last_update_id = snapshot_id
        self._synced = True
        self._straddle_ok = True
        for first_id, last_id, event_bids, event_asks in pending:
            # Buffering keeps the buffer a chain, so this only guards against misuse; on_diff does the checks.
            self.on_diff(first_id, last_id, event_bids, event_asks)

    # ---- reading -----------------------------------------------------------------------------------------------

    def best_bid(self) -> Level | None:
        bids = self._bids
        return bids.peekitem(-1) if bids else None

    def best_ask(self) -> Level | None:
        asks = self._asks
        return asks.peekitem(0) if asks else None

    def mid(self) -> Decimal | None:
        """(best bid + best ask) / 2, exact (halving a short decimal never rounds at 60 digits)."""
        if not self._bids or not self._asks:
            return None
        return (self._bids.peekitem(-1)[0] + self._asks.peekitem(0)[0]) / 2

    def bids(self, n: int | None = None) -> list[Level]:
        """Bid levels, best (highest) first."""
        book = self._bids
        return [(price, book[price]) for price in islice(reversed(book), n)]

    def asks(self, n: int | None = None) -> list[Level]:
        """Ask levels, best (lowest) first."""
        book = self._asks
        return [(price, book[price]) for price in islice(book, n)]

    def liquidity_for(
        self, taker_side: Side, n: int | None = None, *, limit_price: Decimal | None = None
    ) -> list[Level]:
        """Levels a taker of `taker_side` would trade against, best first: a BUY taker lifts the asks, a SELL taker
        hits the bids. With `limit_price`, only levels at or better than it (BUY: price <= limit; SELL: >=)."""
        taker_side = Side(taker_side)
        limit = None if limit_price is None else D(limit_price)
        out: list[Level] = []
        for price, qty in islice(self._opposite_levels(taker_side), n):
            if limit is not None and _beyond(taker_side, price, limit):
                break
            out.append((price, qty))
        return out

    def walk(
        self,
        taker_side: Side,
        *,
        quantity: Decimal | None = None,
        notional: Decimal | None = None,
        limit_price: Decimal | None = None,
        max_levels: int | None = None,
        quantity_step: Decimal = DEFAULT_QUANTITY_STEP,
    ) -> DepthWalk:
        """Sweep the side a `taker_side` order trades against, best level first.

        Stops at the first of: `quantity` filled, `notional` (quote) spent, a level beyond `limit_price` (BUY: price
        above it; SELL: price below it), `max_levels` levels used, the side exhausted. A level only partly taken ends
        the walk (a real order would not reach deeper levels). Under a quantity cap the last level gives exactly the
        remaining quantity. Under a notional cap it gives `notional_left / price` rounded DOWN to `quantity_step`,
        so the notional spent never exceeds the cap. No caps at all: the whole side (within limit and max_levels).
        """
        taker_side = Side(taker_side)
        qty_cap = None if quantity is None else D(quantity)
        notional_cap = None if notional is None else D(notional)
        limit = None if limit_price is None else D(limit_price)
        step = D(quantity_step)
        if (qty_cap is not None and qty_cap < 0) or (notional_cap is not None and notional_cap < 0):
            raise ValueError("walk caps must not be negative")
        if step <= 0:
            raise ValueError("quantity_step must be positive")
        filled = ZERO
        spent = ZERO
        worst: Decimal | None = None
        used = 0
        for price, level_qty in self._opposite_levels(taker_side):
            if max_levels is not None and used >= max_levels:
                break
            if limit is not None and _beyond(taker_side, price, limit):
                break
            take = level_qty
            if qty_cap is not None and qty_cap - filled < take:
                take = qty_cap - filled
            if notional_cap is not None:
                left = notional_cap - spent
                if take * price > left:
                    # Round DOWN: the quantity bought with what is left must not cost more than what is left.
                    take = quantize_down(left / price, step)
                    if take * price > left:  # the 60-digit division rounded up onto a step boundary
                        take -= step
            if take <= 0:
                break
            filled += take
            spent += take * price
            worst = price
            used += 1
            if take < level_qty:
                break
        return DepthWalk(
            quantity=filled,
            notional=spent,
            average_price=spent / filled if filled else None,  # rounds at the project precision (60 digits)
            worst_price=worst,
            levels_used=used,
        )

    def snapshot_levels(self, depth: int | None = 10) -> dict[str, Any]:
        """Plain, JSON-ready data for inspection: prices and quantities as the exchange's decimal strings."""
        return {
            "symbol": self.symbol,
            "synced": self._synced,
            "last_update_id": self._last_update_id,
            "buffered": len(self._buffer),
            "bids": [[str(p), str(q)] for p, q in self.bids(depth)],
            "asks": [[str(p), str(q)] for p, q in self.asks(depth)],
        }

    def __repr__(self) -> str:
        return (
            f"OrderBook({self.symbol!r}, synced={self._synced}, last_update_id={self._last_update_id}, "
            f"best_bid={self.best_bid()}, best_ask={self.best_ask()})"
        )

    # ---- internals ---------------------------------------------------------------------------------------------

    def _buffer_event(self, first_id: int, last_id: int, bids: Levels, asks: Levels) -> None:
        """Keep the buffer one unbroken chain: a duplicate is ignored; after a break only the newer part can ever
        be used (any snapshot that fits it must be newer than the break), so the older part is dropped."""
        buffer = self._buffer
        if buffer:
            previous_last = buffer[-1][1]
            if last_id <= previous_last:
                return
            if first_id != previous_last + 1:
                buffer.clear()
        buffer.append((first_id, last_id, bids, asks))

    def _lose_sync(self) -> None:
        """Levels after a gap are unknown: readers get an empty book, not a stale one."""
        self._bids.clear()
        self._asks.clear()
        self._buffer.clear()
        self._synced = False
        self._straddle_ok = False

    def _apply_event(self, bids: Levels, asks: Levels) -> None:
        try:
            _apply_levels(self._bids, bids)
            _apply_levels(self._asks, asks)
        except (ValueError, TypeError, ArithmeticError):
            # A half-applied malformed event leaves the book unknown: resync rather than serve it.
            self._lose_sync()
            raise

    @staticmethod
    def _parse_snapshot_side(levels: Levels) -> SortedDict:
        book = SortedDict()
        _apply_levels(book, levels)
        return book

    def _opposite_levels(self, taker_side: Side) -> Iterator[Level]:
        if taker_side is Side.BUY:
            book = self._asks
            return ((price, book[price]) for price in book)
        if taker_side is Side.SELL:
            book = self._bids
            return ((price, book[price]) for price in reversed(book))
        raise ValueError(f"not a side: {taker_side!r}")


def _apply_levels(book: SortedDict, levels: Levels, parse: Any = _parse) -> None:
    """The hot loop: absolute quantities, 0 removes the level (removing an absent level is a no-op, as on Binance)."""
    for price_text, qty_text in levels:
        price = parse(price_text)
        qty = parse(qty_text)
        if qty > 0:
            if not price > 0:
                raise ValueError(f"level price must be positive, got {price_text!r}")
            book[price] = qty
        elif qty == 0:
            book.pop(price, None)
        else:
            raise ValueError(f"level quantity must not be negative, got {qty_text!r}")


def _beyond(taker_side: Side, price: Decimal, limit: Decimal) -> bool:
    """True if a taker of `taker_side` with this limit would not trade at `price`."""
    return price > limit if taker_side is Side.BUY else price < limit
