"""A recorded depth stream driving one symbol's book: the market maker's ladder is withdrawn and each step applies
the next recorded diff (absolute quantity per level, 0 removes it); when it ends, the walk goes on from there.

`rebase` scales recorded prices by (best bid now / the recording's first best bid): a capture of another pair or
year drives this pair at its own level. Prices round down to the tick, quantities down to the step."""
from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from core.money import ZERO, D, quantize_down
from core.side import Side
from exchange.simulator.price_process import MarketMakerPort


def depth_events(raw: Any) -> list[dict[str, Any]]:
    """The depthUpdate events of a capture: one event or a list of them, bare or in the combined-stream envelope
    ({"stream", "data"}). Anything else is refused with the reason."""
    items = raw if isinstance(raw, list) else [raw]
    out = []
    for n, item in enumerate(items):
        event = item.get("data", item) if isinstance(item, Mapping) else None
        if not isinstance(event, Mapping) or event.get("e") != "depthUpdate":
            raise ValueError(f"event {n} is not a depthUpdate")
        for key in ("b", "a"):
            if not isinstance(event.get(key, []), list):
                raise ValueError(f"event {n}: {key!r} is not a list of [price, quantity]")
        out.append(dict(event))
    if not out:
        raise ValueError("the capture holds no event")
    return out


def load_depth_events(path: Path) -> list[dict[str, Any]]:
    """A capture file: JSON (an event or a list) or JSON lines, one event per line."""
    text = Path(path).read_text()
    try:
        return depth_events(json.loads(text))
    except json.JSONDecodeError:
        return depth_events([json.loads(line) for line in text.splitlines() if line.strip()])


class DepthReplay:
    def __init__(self, symbol: str, events: Sequence[Mapping[str, Any]], tick: Decimal, step: Decimal) -> None:
        self.symbol = symbol
        self.events = list(events)
        self.tick, self.step_qty = tick, step
        self.applied = 0
        self.ratio = Decimal(1)

    def start(self, mm: MarketMakerPort, rebase: bool) -> None:
        """Withdraw the ladder (the book is the recording's from now on); with `rebase`, fix the price ratio."""
        if rebase:
            now = mm.mm_levels(self.symbol, Side.BUY)
            first = _first_best(self.events)
            if now and first:
                self.ratio = max(now) / first
        for side in Side:
            for price in mm.mm_levels(self.symbol, side):
                mm.mm_set_level(self.symbol, side, price, ZERO)

    @property
    def done(self) -> bool:
        return self.applied >= len(self.events)

    def step(self, mm: MarketMakerPort) -> None:
        """Apply the next recorded diff (nothing once the recording is over)."""
        if self.done:
            return
        event = self.events[self.applied]
        self.applied += 1
        for side, key in ((Side.BUY, "b"), (Side.SELL, "a")):
            for level in _levels(event.get(key, ())):
                price = quantize_down(level[0] * self.ratio, self.tick)
                if price > 0:
                    mm.mm_set_level(self.symbol, side, price, quantize_down(level[1], self.step_qty))


def _levels(rows: Iterable[Sequence[str]]) -> list[tuple[Decimal, Decimal]]:
    return [(D(p), D(q)) for p, q in rows]


def _first_best(events: Sequence[Mapping[str, Any]]) -> Decimal | None:
    """The recording's first best bid (its first event with a live bid)."""
    for event in events:
        bids = [p for p, q in _levels(event.get("b", ())) if q > 0]
        if bids:
            return max(bids)
    return None
