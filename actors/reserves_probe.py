"""Reads a running system's reserves (core/reserves.py compares them): the books from the index-order shards and the
solver, routed deposits from the router, the exchange balances through the sender (the only holder of the exchange
keys), the token supply through the chain actor.

Used by the monitor and by `indexmaker reconcile` through one `call(actor, method, *args)` coroutine. Read-only,
and one call per actor per read, never one per order."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Awaitable, Callable, Mapping, Sequence

from actors.order_shards import orders_shard_name
from core.reserves import (
    ReserveRow, add_into, books_holdings, by_asset, compare, confirmed, net_received, quote_spent, supply_row,
)
from core.sender_messages import SenderFill

Call = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class ReservesOptions:
    order_shards: int
    #: The indexes served: each token's supply is compared with the units the books minted for it.
    indexes: tuple[str, ...]
    interval_s: float = 60.0
    confirm_reads: int = 2
    reread_ms: int = 1000
    tolerance: Decimal = Decimal("0.00000001")
    tolerances: Mapping[str, Decimal] = field(default_factory=dict)
    supply_tolerance: Decimal = Decimal(0)
    read_timeout_s: float = 10.0
    #: Balances the account held before the system (settings.reserves.opening); the quote asset is compared
    #: only when it is named here.
    opening: Mapping[str, Decimal] = field(default_factory=dict)
    solver_name: str = "solver"
    sender_name: str = "sender"
    chain_name: str = "chain"
    router_name: str = "router"

    @classmethod
    def from_settings(cls, settings: Any, order_shards: int, indexes: Sequence[str], **overrides: Any
                      ) -> "ReservesOptions":
        r = settings.reserves
        values: dict[str, Any] = {
            "order_shards": order_shards, "indexes": tuple(indexes), "interval_s": r.interval_s,
            "confirm_reads": r.confirm_reads, "reread_ms": r.reread_ms, "tolerance": r.tolerance,
            "tolerances": dict(r.tolerances), "supply_tolerance": r.supply_tolerance,
            "read_timeout_s": r.read_timeout_s, "opening": dict(r.opening)}
        values.update(overrides)
        return cls(**values)


async def read_reserves(call: Call, o: ReservesOptions) -> list[ReserveRow]:
    """One read of every part, compared: a row per basket asset (and the quote asset when its opening balance is
    configured), then each index token's supply."""
    def timed(name: str, method: str, *args: Any) -> Awaitable[Any]:
        return asyncio.wait_for(call(name, method, *args), o.read_timeout_s)

    # The exchange first: a fill landing during the read then shows as books ahead, never as money missing twice.
    balances = await timed(o.sender_name, "balances")
    solver, supplies, router, *shards = await asyncio.gather(
        timed(o.solver_name, "holdings"), timed(o.chain_name, "index_supplies"), timed(o.router_name, "inspect"),
        *(timed(orders_shard_name(k), "holdings") for k in range(o.order_shards)))
    # Executions the sender logged that the solver has not consumed yet: bought, in no lot of the solver's.
    unseen = solver["unconsumed"]
    base, quote = solver["base_assets"], solver["quote_asset"]
    logged: dict[str, Decimal] = {}
    spent = Decimal(solver["inventory_cost"]) + Decimal(solver["in_flight_cost"])
    for e in unseen:
        if isinstance(e, SenderFill) and e.symbol in base:
            asset = base[e.symbol]
            f = e.fill
            add_into(logged, {asset: net_received(f.quantity, f.commission, f.commission_asset, asset)})
            spent += quote_spent(f.quantity, f.price, f.commission, f.commission_asset, quote)
    filled: dict[str, Decimal] = {}
    minted: dict[str, Decimal] = {}
    delivered: dict[str, Decimal] = {}
    for held in shards:
        for index, parts in held["indexes"].items():
            add_into(filled, {index: Decimal(parts["minted"]) + Decimal(parts["unminted"])})
            add_into(minted, {index: Decimal(parts["minted"])})
            spent += Decimal(parts["cost"])
        add_into(delivered, by_asset(_decimals(held["delivered"]), base))
    books = books_holdings([delivered, _decimals(solver["assigned"]), _decimals(solver["inventory"]),
                            _decimals(solver["in_flight"]), logged])
    assets = {a for bk in solver["baskets"].values() for a in bk}
    if quote in o.opening:
        books[quote] = o.opening[quote] + credited(router.get("routes") or []) - spent
        assets.add(quote)
    rows = compare(books, _decimals(balances), assets, o.tolerance, o.tolerances)
    for index in sorted(set(o.indexes) | set(supplies)):  # a served index without a token shows as supply 0
        m = minted.get(index, Decimal(0))
        rows.append(supply_row(index, m, filled.get(index, Decimal(0)) - m, Decimal(supplies.get(index, "0")),
                               o.supply_tolerance))
    return rows


def credited(routes: Sequence[Mapping[str, Any]]) -> Decimal:
    """What the exchange credited to the account for the routes that reached it (the router's records)."""
    return sum((Decimal(r["credit"]["amount_credited"]) for r in routes if (r.get("credit") or {})
                .get("amount_credited") is not None), Decimal(0))


def _decimals(values: Mapping[str, str]) -> dict[str, Decimal]:
    return {k: Decimal(v) for k, v in values.items()}


async def check_reserves(call: Call, o: ReservesOptions) -> tuple[list[ReserveRow], int]:
    """A verdict and the reads it took: up to `confirm_reads` reads `reread_ms` apart, stopping at the first read
    with no difference; a row is not ok only if every read saw it so (core.reserves.confirmed)."""
    reads = [await read_reserves(call, o)]
    while len(reads) < o.confirm_reads and not all(r.ok for r in reads[-1]):
        await asyncio.sleep(o.reread_ms / 1000)  # the time a fill in flight needs to reach the books
        reads.append(await read_reserves(call, o))
    return confirmed(reads), len(reads)
