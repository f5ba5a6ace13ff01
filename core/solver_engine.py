"""The solver's state and rules, without I/O: batches in flight, the fills that reach them, inventory.

The `solver` actor is a thin owner of one SolverEngine: demand and books in, a batch to send out; fills and settled
orders in, fill deltas, completed batches and mintable orders out. Everything is deterministic, so the snapshot
plus a replay of each batch's lots rebuilds the same assignment after a restart."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, Collection, Iterable, Mapping, Sequence

from core.arrival import basket_touch
from core.asset_order import ExchangeFill, client_order_id
from core.basket import Basket
from core.batch_planner import BasketLeg, BatchPlan, Engagement, Level, PendingOrder, PlannerLimits, plan_batch
from core.crossing import Crossing, crossing_lots, crossing_price, plan_mixed, sell_quantity
from core.lot_assignment import AssetLine, BatchAllocation, AssignedFill
from core.lots import Lot, lot_from_fill
from core.money import D, quantize_down, quantize_up
from core.reserves import assigned_in, lots_cost, lots_held
from core.sell_assignment import SellAssignment, assign_sells, sale_lot_from_fill
from core.sell_plan import PendingSell, SellEngagement, release_of
from core.side import Side
from core.symbol_filters import SymbolFilters


@dataclass(frozen=True, slots=True)
class SentOrder:
    """A batch's leg with the client order id it is sent under."""

    client_order_id: str
    order: BasketLeg


@dataclass(frozen=True, slots=True)
class CompletedBatch:
    batch_id: str
    engagements: tuple[Engagement, ...]
    filled_units: Mapping[str, Decimal]  # per index order of the batch
    lines: Mapping[str, tuple[AssetLine, ...]]  # per index order: what it got of each asset
    inventory_in: Mapping[str, int]  # base units per symbol inventory gained (net: a sale may take some back)
    #: Fill deltas of the lots still unassigned when the batch completed (carried inventory that no exchange fill
    #: came after): the shards must get them before the completion.
    last_fills: tuple[AssignedFill, ...] = ()
    rounds: int = 0  # assignment rounds the batch had (the last one's number keys those fills)
    #: Per index of the batch, one unit at the best asks when it was planned (core.arrival.basket_touch).
    touch: Mapping[str, Decimal] = field(default_factory=dict)
    #: The sale of the batch's sells (core.sell_assignment, checked): per order the units to redeem and the payout.
    sale: SellAssignment | None = None
    crossings: Mapping[str, Crossing] = field(default_factory=dict)
    #: Base units per symbol sold of units not redeemed that inventory could not give back to the unburnt tokens'
    #: backing (the reserves check shows them short); empty when inventory covered it, as it should.
    backing_short: Mapping[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class _Batch:
    batch_id: str
    plan: BatchPlan
    allocation: BatchAllocation
    sent: dict[str, SentOrder]  # symbol -> order (a resend under a new attempt keeps the symbol)
    open: set[str]  # symbols whose exchange order is not settled yet
    rounds: list[list[Lot]] = field(default_factory=list)  # lots given to each assign() round, for replay
    pending_lots: list[Lot] = field(default_factory=list)  # arrived since the last round
    touch: dict[str, Decimal] = field(default_factory=dict)  # index -> one unit at the best asks at planning
    #: The batch's sells (core.sell_plan), what they release per index and asset, and each released asset's netting.
    sells: tuple[SellEngagement, ...] = ()
    release: dict[str, dict[str, int]] = field(default_factory=dict)
    crossings: dict[str, Crossing] = field(default_factory=dict)
    sale_lots: dict[str, list[Lot]] = field(default_factory=dict)  # the exchange sells' fills, per symbol
    #: (price, gross quantity) of every exchange fill of a released asset, either side: its crossing price.
    traded: dict[str, list[tuple[Decimal, Decimal]]] = field(default_factory=dict)


class SolverEngine:
    def __init__(self, baskets: Mapping[str, Basket], filters: Mapping[str, SymbolFilters], limits: PlannerLimits,
                 *, quote_asset: str = "USDC") -> None:
        self.baskets = dict(baskets)
        self.filters = dict(filters)
        self.limits = limits
        self.quote_asset = quote_asset
        self.batch_seq = 0
        self.batches: dict[str, _Batch] = {}
        self.inventory: dict[str, list[Lot]] = {}

    @staticmethod
    def parse_client_order_id(cid: str) -> tuple[str, str]:
        """(batch id, symbol) of a client order id made by core.asset_order.client_order_id, whatever the attempt."""
        parts = cid.split(".")
        if len(parts) != 3:
            raise KeyError(f"not one of the solver's exchange orders: {cid}")
        return parts[0], parts[1]

    def _batch_of(self, cid: str) -> tuple["_Batch", str]:
        batch_id, symbol = self.parse_client_order_id(cid)
        batch = self.batches.get(batch_id)
        if batch is None or symbol not in batch.sent:
            raise KeyError(f"exchange order {cid} belongs to no open batch")
        return batch, symbol

    # ---- views --------------------------------------------------------------------------------------------------
    def engaged_order_ids(self) -> set[str]:
        return {e.order_id for b in self.batches.values() for e in (*b.plan.engagements, *b.sells)}

    def sells_of(self, batch_id: str) -> tuple[SellEngagement, ...]:
        return self.batches[batch_id].sells

    def crossings_of(self, batch_id: str) -> dict[str, Crossing]:
        return dict(self.batches[batch_id].crossings)

    def engage_requests(self, batch_id: str) -> tuple[Engagement, ...]:
        """What the shards engage for the batch: each buy's collateral, then each sell's index units (a shard engages
        a sell by its units: core.shard_books.engage caps at what the order has left either way)."""
        batch = self.batches[batch_id]
        return batch.plan.engagements + tuple(Engagement(e.order_id, e.index, e.units, e.units, Decimal(0))
                                              for e in batch.sells)

    def inventory_units(self) -> dict[str, int]:
        return {s: sum(l.remaining for l in lots) for s, lots in self.inventory.items() if lots}

    def inventory_prices(self) -> dict[str, Decimal]:
        """What inventory cost per whole asset (value + fee over quantity): the planner prices it at that."""
        out: dict[str, Decimal] = {}
        for s, lots in self.inventory.items():
            units = sum(l.remaining for l in lots)
            if units:
                cost = sum((l.price * l.unit * l.remaining + l.fee - l.fee_upto(l.consumed) for l in lots), Decimal(0))
                out[s] = cost / (units * lots[0].unit)
        return out

    def in_flight_notional(self) -> Decimal:
        return sum((b.plan.notional for b in self.batches.values()), Decimal(0))

    def units(self) -> dict[str, Decimal]:
        return {s: f.base_unit for s, f in self.filters.items()}

    def holdings(self) -> dict[str, Any]:
        """For the reserves check, per base asset: inventory, in flight and assigned lots (what completed batches
        delivered the shards count), the cost of the first two, and the baskets."""
        base = {s: f.base_asset for s, f in self.filters.items()}
        stock = [lot for lots in self.inventory.values() for lot in lots]
        moving = [lot for b in self.batches.values() for lot in (*b.pending_lots, *b.allocation.leftovers())]
        return {"base_assets": base, "quote_asset": self.quote_asset,
                "inventory": {a: str(q) for a, q in lots_held(stock, base).items()},
                "in_flight": {a: str(q) for a, q in lots_held(moving, base).items()},
                "inventory_cost": str(lots_cost(stock)), "in_flight_cost": str(lots_cost(moving)),
                "assigned": {a: str(q) for a, q in assigned_in(self.batches.values(), self.filters).items()},
                "baskets": {i: {base[s]: str(q) for s, q in bk.quantities().items()}
                            for i, bk in self.baskets.items()}}

    # ---- planning -----------------------------------------------------------------------------------------------
    def plan(self, pending: Sequence[PendingOrder], asks: Mapping[str, Sequence[Level]], order_budget: int,
             limits: PlannerLimits | None = None, stale: Collection[str] = frozenset(),
             closed: Collection[str] = frozenset(), *, sells: Sequence[PendingSell] = (),
             bids: Mapping[str, Sequence[Level]] | None = None,
             avg_prices: Mapping[str, Decimal] | None = None) -> tuple[str | None, BatchPlan]:
        """Plan the next batch from the orders not already in one (`stale`: symbols whose book may not be planned
        on; `closed`: pairs the exchange halted). Returns (batch_id or None, plan). With free `sells` (and the
        `bids` they sell into), buys and sells are planned together (core.crossing.plan_mixed): the plan's legs
        carry the net sells too, its deferred the sells' deferrals; the batch keeps the sells and the crossings
        (sells_of, crossings_of). Without them the batch is planned exactly as buys alone always were.

        No balance is asked of the exchange before a SELL goes out: its quantity is at most what the engaged sells
        release (core.crossing.Crossing), the release at most what the redeemed tokens hold (rounded down), and
        the house keeps those assets on the exchange from the buys that minted the tokens (the reserves check
        watches it). A SELL refused for balance all the same (-2010) trips the sender's account breaker: the
        books and the exchange disagree, and nothing more is sent until an operator looks."""
        busy = self.engaged_order_ids()
        free = [o for o in pending if o.order_id not in busy]
        free_sells = [s for s in sells if s.order_id not in busy]
        limits = limits or self.limits
        if not free_sells:
            plan = plan_batch(free, self.baskets, asks, self.filters, inventory_units=self.inventory_units(),
                              inventory_prices=self.inventory_prices(), order_budget=order_budget,
                              limits=limits, stale=stale, closed=closed)
            if plan.is_empty:
                return None, plan
            return self._new_batch(plan, asks), plan
        mixed = plan_mixed(free, free_sells, self.baskets, self.filters, bids or {}, asks, limits=limits,
                           order_budget=order_budget, stale=stale, closed=closed, avg_prices=avg_prices,
                           inventory_units=self.inventory_units(), inventory_prices=self.inventory_prices())
        plan = replace(mixed.batch, deferred=mixed.deferred)
        if mixed.is_empty:
            return None, plan
        batch_id = self._new_batch(plan, asks)
        batch = self.batches[batch_id]
        batch.sells = mixed.sells.engagements
        batch.release = {i: dict(r) for i, r in mixed.sells.release.items()}
        batch.crossings = dict(mixed.crossings)
        return batch_id, plan

    def _new_batch(self, plan: BatchPlan, asks: Mapping[str, Sequence[Level]]) -> str:
        self.batch_seq += 1
        batch_id = f"b{self.batch_seq}"
        batch = self._open_batch(batch_id, plan)
        for index in dict.fromkeys(e.index for e in plan.engagements):
            touch = basket_touch(self.baskets[index].quantities(), asks)
            if touch is not None:
                batch.touch[index] = touch
        return batch_id

    def _open_batch(self, batch_id: str, plan: BatchPlan, carried: Sequence[Lot] | None = None) -> _Batch:
        allocation = BatchAllocation(batch_id, plan.engagements, self.baskets, self.units(), self.limits.index_unit,
                                     self.limits.fee_factor)
        if carried is None:
            carried = self._take_inventory(plan.inventory_used)
        sent = {o.symbol: SentOrder(client_order_id(batch_id, o.symbol), o) for o in plan.legs}
        batch = _Batch(batch_id, plan, allocation, sent, set(sent))
        batch.pending_lots.extend(carried)
        self.batches[batch_id] = batch
        return batch

    def _take_inventory(self, wanted: Mapping[str, int]) -> list[Lot]:
        """Move `wanted` units per symbol out of inventory, oldest lots first, splitting the last one exactly."""
        taken: list[Lot] = []
        for symbol, units in wanted.items():
            lots = self.inventory.get(symbol, [])
            while units:
                lot = lots[0]
                n = min(units, lot.remaining)
                head, tail = lot.split(n)
                taken.append(head)
                units -= n
                if tail is None:
                    lots.pop(0)
                else:
                    lots[0] = tail
        return taken

    def adjust_engagements(self, batch_id: str, engaged: Mapping[str, Decimal], *, orders_out: bool = False) -> bool:
        """The shards engaged `engaged` per order, maybe less than planned (a cancel came first). A short order is
        resized by the planner's rule; orders that got nothing leave the batch; the asset orders stay as planned (what
        nobody needs becomes inventory). Run before any lot is assigned. Returns False if no order is left: the batch
        closes, unless `orders_out` (its exchange orders left with the engage): then it stays open and all it receives
        becomes inventory."""
        batch = self.batches[batch_id]
        if batch.rounds:
            raise AssertionError(f"batch {batch_id}: engagements change after lots were assigned")
        iu, cu, ff = self.limits.index_unit, self.limits.collateral_unit, self.limits.fee_factor
        kept: list[Engagement] = []
        changed = False
        for e in batch.plan.engagements:
            got = engaged.get(e.order_id, Decimal(0))
            if got >= e.collateral:
                kept.append(e)
                continue
            changed = True
            units = min(e.units, quantize_down((got - cu) / (e.index_price * ff), iu)) if got > cu else Decimal(0)
            if units > 0:
                kept.append(e._replace(units=units, collateral=got))
        sells_changed = self._resize_sells(batch, engaged, orders_out)
        if not changed and not sells_changed:
            return True
        if not kept and not batch.sells and not orders_out:
            self._return_to_stock(batch.pending_lots)  # carried inventory goes back to the front, as it came
            del self.batches[batch_id]
            return False
        if changed:
            batch.plan = replace(batch.plan, engagements=tuple(kept))
            batch.allocation = BatchAllocation(batch_id, batch.plan.engagements, self.baskets, self.units(),
                                               self.limits.index_unit, self.limits.fee_factor)
        return bool(kept or batch.sells)

    def _resize_sells(self, batch: _Batch, engaged: Mapping[str, Decimal], orders_out: bool) -> bool:
        """Sells engaged short (a cancel came first) keep the units the shards engaged, down to the index unit, their
        minimum pro rata UP (never looser) and their expected payout pro rata DOWN; the release shrinks with them,
        what the buys take of it first, then the exchange sell, and the rest is inventory's. A sell that already
        left cannot shrink: a batch with sells is engaged before its exchange orders go out (else it would sell
        assets backing tokens that stay in circulation), so a shrink then is a defect, raised."""
        iu, cu = self.limits.index_unit, self.limits.collateral_unit
        kept: list[SellEngagement] = []
        changed = False
        for e in batch.sells:
            got = quantize_down(min(engaged.get(e.order_id, Decimal(0)), e.units), iu)
            if got >= e.units:
                kept.append(e)
                continue
            changed = True
            if got > 0:
                minimum = None if e.min_proceeds is None else quantize_up(e.min_proceeds * got / e.units, cu)
                kept.append(e._replace(units=got, min_proceeds=minimum,
                                       expected=quantize_down(e.expected * got / e.units, cu)))
        if not changed:
            return False
        sell_legs = [s for s in batch.sent.values() if s.order.side is Side.SELL]
        if orders_out and sell_legs:
            raise AssertionError(f"batch {batch.batch_id}: sells engaged short after their exchange orders left")
        units_by_index: dict[str, Decimal] = {}
        for e in kept:
            units_by_index[e.index] = units_by_index.get(e.index, Decimal(0)) + e.units
        batch.sells = tuple(kept)
        batch.release = {i: release_of(self.baskets[i], u, self.filters) for i, u in units_by_index.items()}
        released: dict[str, int] = {}
        for per_symbol in batch.release.values():
            for symbol, n in per_symbol.items():
                released[symbol] = released.get(symbol, 0) + n
        for symbol, c in list(batch.crossings.items()):
            r = released.get(symbol, 0)
            crossed = min(c.crossed, r)  # the buys were sized on the release: they take it first, as planned
            rest = r - crossed
            sent = batch.sent.get(symbol)
            qty = 0
            if sent is not None and sent.order.side is Side.SELL:
                f = self.filters[symbol]
                qty = min(c.to_exchange, sell_quantity(f, rest, sent.order.price, self.limits))
                if qty:
                    batch.sent[symbol] = replace(sent, order=replace(sent.order, quantity=qty * f.base_unit,
                                                                     need=rest * f.base_unit))
                else:
                    del batch.sent[symbol]
                    batch.open.discard(symbol)
            batch.crossings[symbol] = Crossing(symbol, r, crossed, qty, rest - qty, c.mid)
        legs = tuple(s.order for s in batch.sent.values())
        batch.plan = replace(batch.plan, legs=legs)
        return True

    def _return_to_stock(self, lots: Sequence[Lot]) -> None:
        by_symbol: dict[str, list[Lot]] = {}
        for lot in lots:
            by_symbol.setdefault(lot.symbol, []).append(lot)
        for symbol, back in by_symbol.items():
            self.inventory[symbol] = back + self.inventory.get(symbol, [])

    def sent_orders(self, batch_id: str) -> list[SentOrder]:
        return list(self.batches[batch_id].sent.values())

    # ---- fills in -----------------------------------------------------------------------------------------------
    def on_fills(self, fills: Iterable[tuple[str, ExchangeFill]]) -> list[AssignedFill]:
        """(client order id, fill) pairs from the sender; unknown client ids (not ours) are skipped by the caller's
        choice: they raise here, so nothing is silently dropped. Returns the fill deltas of every touched batch."""
        touched: list[_Batch] = []
        for cid, f in fills:
            batch, symbol = self._batch_of(cid)
            fl = self.filters[symbol]
            if symbol in batch.crossings:
                batch.traded.setdefault(symbol, []).append((f.price, f.quantity))
            if batch.sent[symbol].order.side is Side.SELL:  # a sale lot: the sells' pool, not the buys' stock
                batch.sale_lots.setdefault(symbol, []).append(sale_lot_from_fill(
                    trade_id=f.trade_id, symbol=symbol, quote_asset=self.quote_asset, price=f.price,
                    quantity=f.quantity, commission=f.commission, commission_asset=f.commission_asset,
                    unit=fl.base_unit, timestamp_ms=f.time_ms))
                continue
            lot = lot_from_fill(trade_id=f.trade_id, symbol=symbol, base_asset=fl.base_asset,
                                quote_asset=self.quote_asset, price=f.price, quantity=f.quantity,
                                commission=f.commission, commission_asset=f.commission_asset, unit=fl.base_unit,
                                timestamp_ms=f.time_ms)
            batch.pending_lots.append(lot)
            if batch not in touched:
                touched.append(batch)
        out: list[AssignedFill] = []
        for batch in touched:
            out.extend(self._assign(batch))
        return out

    def assign_carried(self, batch_id: str) -> list[AssignedFill]:
        """Inventory carried into a batch fills orders now (else it is assigned with the batch's first exchange
        fills, in the same round, or at completion)."""
        return self._assign(self.batches[batch_id])

    def _assign(self, batch: _Batch, *, closing: bool = False) -> list[AssignedFill]:
        """A batch whose buys cross sells assigns once, when it closes: its crossed lot is priced by all its fills,
        and the buys take it first (crossing before inventory, before the exchange, as they were planned)."""
        if not batch.pending_lots or (not closing and any(c.crossed for c in batch.crossings.values())):
            return []
        lots, batch.pending_lots = batch.pending_lots, []
        batch.allocation.add_lots(lots)
        batch.rounds.append(lots)
        return batch.allocation.assign()

    # ---- completion ---------------------------------------------------------------------------------------------
    def on_settled(self, client_order_ids: Iterable[str]) -> list[CompletedBatch]:
        """Exchange orders that are final with all their fills in hand. A batch whose orders are all settled is
        complete: its leftovers go to inventory and its orders' results come out."""
        done: list[CompletedBatch] = []
        for cid in client_order_ids:
            try:
                batch, symbol = self._batch_of(cid)
            except KeyError:
                continue  # already completed: a settlement seen twice after a restart
            batch.open.discard(symbol)
            if not batch.open:
                done.append(self._complete(batch))
        return done

    def complete_if_no_orders(self, batch_id: str) -> CompletedBatch | None:
        """A batch served wholly from inventory has nothing to wait for."""
        batch = self.batches[batch_id]
        if batch.open:
            return None
        return self._complete(batch)

    def _complete(self, batch: _Batch) -> CompletedBatch:
        pools = self._cross(batch)
        last_fills = tuple(self._assign(batch, closing=True))  # what is still pending is assigned before it closes
        alloc = batch.allocation
        alloc.check()
        back: dict[str, int] = {}
        for lot in alloc.leftovers():
            self.inventory.setdefault(lot.symbol, []).append(lot)
            back[lot.symbol] = back.get(lot.symbol, 0) + lot.quantity
        sale, short = self._sell(batch, pools, back) if batch.sells or batch.crossings else (None, {})
        filled = {e.order_id: alloc.filled_units(e.order_id) for e in batch.plan.engagements}
        lines = {e.order_id: tuple(alloc.breakdown(e.order_id)) for e in batch.plan.engagements}
        del self.batches[batch.batch_id]
        return CompletedBatch(batch.batch_id, batch.plan.engagements, filled, lines, back, last_fills,
                              len(batch.rounds), dict(batch.touch), sale, dict(batch.crossings), short)

    def _cross(self, batch: _Batch) -> dict[str, list[Lot]]:
        """Each released asset's crossing at its price (core.crossing.crossing_price: the batch's exchange fills of it,
        either side, else the mid): the buys get their crossed lot first, and the sells' pool is the exchange sells' lots
        with the crossed and inventory-taken lots (lots of their own: a lot is consumed as it is assigned)."""
        pools: dict[str, list[Lot]] = {}
        first: list[Lot] = []
        for symbol, c in batch.crossings.items():
            price = crossing_price(c.mid, batch.traded.get(symbol, ()))
            unit = self.filters[symbol].base_unit
            crossed, _ = crossing_lots(batch.batch_id, c, price, unit)
            if crossed is not None:
                first.append(crossed)
            pools[symbol] = [*batch.sale_lots.get(symbol, ()),
                             *(lot for lot in crossing_lots(batch.batch_id, c, price, unit) if lot is not None)]
        batch.pending_lots[:0] = first
        return pools

    def _sell(self, batch: _Batch, pools: Mapping[str, list[Lot]],
              back: dict[str, int]) -> tuple[SellAssignment, dict[str, int]]:
        """The sale assigned to the sells, exactly (checked). Inventory takes what the exchange could not (the
        inventory-taken lot, at the crossing price) and gives back what was sold of units not redeemed (a partial
        IOC, an order stopped below its minimum): those units back the tokens that stay. `back` counts the net
        change (it may go negative)."""
        sale = assign_sells(batch.sells, self.baskets, batch.release, pools, self.units(),
                            index_unit=self.limits.index_unit, collateral_unit=self.limits.collateral_unit)
        sale.check()
        for symbol, c in batch.crossings.items():
            price = crossing_price(c.mid, batch.traded.get(symbol, ()))
            _, taken = crossing_lots(batch.batch_id, c, price, self.filters[symbol].base_unit)
            if taken is not None:
                self.inventory.setdefault(symbol, []).append(taken)
                back[symbol] = back.get(symbol, 0) + taken.quantity
        short: dict[str, int] = {}
        for symbol, p in sale.pools.items():
            owed = p.house_units
            if owed <= 0:
                continue
            given = min(owed, self.inventory_units().get(symbol, 0))
            self._take_inventory({symbol: given})
            back[symbol] = back.get(symbol, 0) - given
            if owed > given:
                short[symbol] = owed - given
        return sale, short

    # ---- persistence --------------------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """Plain data: enough to rebuild every batch by replaying its rounds of lots."""
        return {
            "batch_seq": self.batch_seq,
            "inventory": {s: [l.to_dict() for l in lots] for s, lots in self.inventory.items()},
            "batches": [
                {
                    "batch_id": b.batch_id,
                    "engagements": [[e.order_id, e.index, str(e.units), str(e.collateral), str(e.index_price)]
                                    for e in b.plan.engagements],
                    "asset_orders": [[s.client_order_id, s.order.symbol, s.order.side.value, str(s.order.price),
                                      str(s.order.quantity), str(s.order.need)] for s in b.sent.values()],
                    "notional": str(b.plan.notional),
                    "open": sorted(b.open),
                    # As they ARRIVED (nothing consumed): the replay hands them out again from scratch.
                    "rounds": [[l.to_dict() | {"consumed": 0} for l in r] for r in b.rounds],
                    "pending_lots": [l.to_dict() for l in b.pending_lots],
                    "touch": {i: str(t) for i, t in sorted(b.touch.items())},
                    # [order id, index, units, minimum or None, expected payout]
                    "sells": [[e.order_id, e.index, str(e.units), None if e.min_proceeds is None else
                               str(e.min_proceeds), str(e.expected)] for e in b.sells],
                    "release": {i: dict(r) for i, r in b.release.items()},  # in plan order: the sale's line order
                    # [symbol, released, crossed, to exchange, to inventory, mid]
                    "crossings": [[c.symbol, c.released, c.crossed, c.to_exchange, c.to_inventory, str(c.mid)]
                                  for c in b.crossings.values()],
                    "sale_lots": {s: [l.to_dict() for l in lots] for s, lots in b.sale_lots.items()},
                    "traded": {s: [[str(p), str(q)] for p, q in fills] for s, fills in b.traded.items()},
                }
                for b in self.batches.values()
            ],
        }

    def restore(self, data: Mapping[str, Any]) -> None:
        self.batch_seq = int(data["batch_seq"])
        self.inventory = {s: [Lot.from_dict(l) for l in lots] for s, lots in data["inventory"].items()}
        self.batches = {}
        for b in data["batches"]:
            engagements = tuple(Engagement(o, i, D(u), D(c), D(p)) for o, i, u, c, p in b["engagements"])
            orders = tuple(BasketLeg(sym, Side(side), D(price), D(qty), D(need))
                           for _, sym, side, price, qty, need in b["asset_orders"])
            plan = BatchPlan(orders, engagements, {}, (), Decimal(1), D(b["notional"]))
            batch = self._open_batch(b["batch_id"], plan, carried=[])
            for r in b["rounds"]:  # replay: the same lots in the same rounds give the same assignment
                batch.pending_lots = [Lot.from_dict(l) for l in r]
                self._assign(batch)
            batch.pending_lots = [Lot.from_dict(l) for l in b["pending_lots"]]
            batch.open = set(b["open"])
            batch.touch = {i: D(t) for i, t in b.get("touch", {}).items()}
            batch.sells = tuple(SellEngagement(o, i, D(u), None if m is None else D(m), D(x))
                                for o, i, u, m, x in b.get("sells", ()))
            batch.release = {i: {s: int(n) for s, n in r.items()} for i, r in b.get("release", {}).items()}
            batch.crossings = {c[0]: Crossing(c[0], int(c[1]), int(c[2]), int(c[3]), int(c[4]), D(c[5]))
                               for c in b.get("crossings", ())}
            batch.sale_lots = {s: [Lot.from_dict(l) for l in lots] for s, lots in b.get("sale_lots", {}).items()}
            batch.traded = {s: [(D(p), D(q)) for p, q in fills] for s, fills in b.get("traded", {}).items()}
