"""Execution quality under changing markets: the same seeded stream of index orders (users spread over the six real
indexes) served under each market regime of the simulator (calm, volatile, thin, wide, trending, and a gap: every
price jumps 5 % just as the orders arrive, so the arrival value is the new one and the system must plan on books
that catch up with it), against a floor: a bare script that reads the exchange's books at arrival and sweeps the
same basket with one IOC order per asset, at the same slippage cap.

Shortfall, in basis points of the basket's value at the mids when the order arrived (read from the exchange's books,
by this bench, not by the system): paid per index unit (spent / units, fees included) against that value. Per regime:
shortfall p50/p95, the floor's p50, fill time p50/p95, batches per order, collateral returned, rejects, the solver's
inventory left (its cost). Targets: no order charged beyond its collateral; in the calm regime shortfall p50 at most
half the basket's spread plus the fee; in every regime at most the floor's p50 + 5 bps.

The orders run the whole system, mint included, with the arrival value stamped as the launcher configures it, so
every order's Mint Invoice reports its own shortfall and split (spread, delay, impact, fee). `--out FILE.json`
writes one row per order (the invoice's figures, the bench's own, time to fill, batches, per-asset lines) and the
floor's sweeps, for notebooks/execution_quality.ipynb; the table and the last JSON line are the same with or without.

    .venv/bin/python bench/quality.py [--users 12] [--amount 300[,1000,...]] [--floor-samples 2]
                                      [--regimes calm,wide,...] [--indexes SYAI,SYL2,...] [--out FILE.json]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
import uuid
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import sys

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.flow import CHAIN, REAL_INDEXES, ROOT, World, address, log  # noqa: E402

REGIMES = ("calm", "volatile", "thin", "wide", "trending", "gap")
BPS = Decimal(10_000)
CAP = Decimal("0.01")  # the planner's slippage cap (config default): the floor's limits use the same
FEE = Decimal("0.001")  # the simulator's taker commission
SETTLE_S = 0.5  # after a regime switch, the requoted books reach the market shards (pacing, not a wait on an event)
#: The --out file's format and version (notebooks/quality_data.py reads this version only).
DATA_FORMAT = "indexmaker.execution_quality"
DATA_VERSION = 1


def bps(x: Decimal) -> Decimal:
    return (x * BPS).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)  # a report figure: nearest, ties even


def pct(values: list[Decimal], q: float) -> Decimal | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Market:
    """The exchange's books as the bench reads them (the simulator's own, one request for every pair)."""

    def __init__(self, world: World) -> None:
        self.world = world

    def snapshot(self) -> dict[str, tuple[Decimal, Decimal]]:
        books = self.world.sim.get("/_admin/test/books?limit=1")
        return {s: (Decimal(b["bids"][0][0]), Decimal(b["asks"][0][0])) for s, b in books.items()
                if b["bids"] and b["asks"]}

    @staticmethod
    def value(basket: Any, tops: dict[str, tuple[Decimal, Decimal]]) -> tuple[Decimal, Decimal]:
        """(mid value, half-spread) of one index unit."""
        bid = sum((a.quantity * tops[a.symbol][0] for a in basket.assets), Decimal(0))
        ask = sum((a.quantity * tops[a.symbol][1] for a in basket.assets), Decimal(0))
        mid = (bid + ask) / 2
        return mid, (ask - mid) / mid


class FloorSweep:
    """A bare script: one IOC order per asset for `units` of the basket at best ask x (1 + cap), sent at once."""

    def __init__(self, world: World) -> None:
        from exchange.gateway import BinanceGateway

        sim = world.sim
        self.world = world
        self.loop = asyncio.new_event_loop()

        async def connect() -> Any:  # the client's session belongs to this loop
            gw = BinanceGateway(sim.url, sim.ws_url, sim.api_key, sim.secret, enable_rate_limit=False,
                                timeout_ms=10_000, http_keepalive_s=300.0)
            await gw.load_markets()
            return gw
        self.gw = self.loop.run_until_complete(connect())
        self.seq = 0

    def sweep(self, basket: Any, units: Decimal, tops: dict[str, tuple[Decimal, Decimal]]) -> Decimal | None:
        """Paid per index unit (the whole baskets it got, fees included), or None if it got none."""
        from core.side import Side
        from core.money import quantize_down
        from core.symbol_filters import min_quantity_for, quantity_step, round_price

        filters = self.world.filters
        self.seq += 1
        tag = f"q{self.seq}"

        async def one(a: Any) -> tuple[Any, Decimal, Decimal]:
            f = filters[a.symbol]
            price = round_price(f, tops[a.symbol][1] * (1 + CAP), Side.BUY)
            # Padded to the exchange's minimum as the planner pads (what is bought beyond the basket is not counted)
            qty = max(quantize_down(a.quantity * units, quantity_step(f)), min_quantity_for(f, price))
            answer = await self.gw.create_order(a.symbol, Side.BUY, "LIMIT", qty, price,
                                                client_order_id=f"{tag}.{a.symbol}", time_in_force="IOC")
            return a, answer.executed_qty, answer.cum_quote

        async def run() -> list[Any]:
            return await asyncio.gather(*(one(a) for a in basket.assets), return_exceptions=True)

        results = self.loop.run_until_complete(run())
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            log(f"    floor sweep: {len(failed)} orders failed, e.g. {failed[0]!r}")
            return None
        whole = min(got / a.quantity for a, got, _ in results)  # the baskets it can hand out
        if whole <= 0:
            return None
        paid = sum((paid * min(Decimal(1), whole * a.quantity / got) for a, got, paid in results if got > 0),
                   Decimal(0))
        return paid * (1 + FEE) / whole

    def close(self) -> None:
        self.loop.run_until_complete(self.gw.close())
        self.loop.close()


def amounts_of(users: int, amounts: list[str], indexes: int) -> list[str]:
    """User i's order amount: the amounts in turn, shifted by one every round of the indexes, so that an index is
    not always bought at the same size (user i buys the i-th index)."""
    return [amounts[(i + i // indexes) % len(amounts)] for i in range(users)]


def run_regime(world: World, market: Market, floor: FloorSweep, name: str, users: int, amounts: list[str],
               floor_samples: int, round_no: int) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """The regime's table row, one row per order (order_rows) and one per floor sweep."""
    ray = world.ray
    world.sim.post("/_admin/regime", {"name": "calm"})
    if name != "gap":
        world.sim.post("/_admin/regime", {"name": name})
    time.sleep(SETTLE_S)
    world.fresh_window()
    names = list(world.baskets)
    indexes = [names[i % len(names)] for i in range(users)]
    sizes = amounts_of(users, amounts, len(names))
    info0 = world.solver_info()
    counts0, batches0 = info0["counts"], {h["batch_id"] for h in info0["history"]}
    inventory0 = Decimal(ray.get(world.solver.holdings.remote())["inventory_cost"])
    if name == "gap":
        world.sim.post("/_admin/regime", {"name": "gap"})  # the jump, then at once the orders
    tops = market.snapshot()
    arrival = {ix: Market.value(world.baskets[ix], tops) for ix in set(indexes)}
    out = ray.get(world.driver.run.remote([address(i) for i in range(users)], 1, sizes, indexes,
                                          f"{name}{round_no}", 300.0))
    world.quiet()
    world.minted_all()
    world._last_orders_at = time.monotonic()
    records = out["records"]
    shortfalls, times, returned, rejects, overcharged = [], [], Decimal(0), 0, 0
    for r in records:
        if r["status"] != "filled":
            rejects += 1
            continue
        units, spent = Decimal(r["filled_units"]), Decimal(r["spent"])
        mid, _ = arrival[r["index"]]
        shortfalls.append(bps((spent / units - mid) / mid))
        times.append(r["closed"] - r["sent"])
        returned += Decimal(r["amount"]) - spent
        overcharged += spent > Decimal(r["amount"])
    info = world.solver_info()
    batches = info["counts"]["batches"] - counts0["batches"]
    history = [h for h in info["history"] if h["batch_id"] not in batches0]
    inventory = Decimal(ray.get(world.solver.holdings.remote())["inventory_cost"]) - inventory0
    invoices = ray.get(world.driver.invoices.remote([(r["user"], r["cl_ord_id"]) for r in records]))
    orders = order_rows(name, records, invoices, arrival, history)
    # The floor: the same baskets, the same size as our median order, swept at arrival by a bare script.
    floor_values: list[Decimal] = []
    floor_rows: list[dict[str, Any]] = []
    units_p50 = pct([Decimal(r["filled_units"]) for r in records if r["status"] == "filled"], 0.5) or Decimal(0)
    for k in range(floor_samples if units_p50 > 0 else 0):
        world.sim.post("/_admin/regime", {"name": "calm"})
        if name != "gap":
            world.sim.post("/_admin/regime", {"name": name})
        time.sleep(SETTLE_S)
        world.fresh_window()
        ix = names[k % len(names)]
        if name == "gap":
            world.sim.post("/_admin/regime", {"name": "gap"})
        tops = market.snapshot()
        mid, _ = Market.value(world.baskets[ix], tops)
        paid = floor.sweep(world.baskets[ix], units_p50, tops)
        world._last_orders_at = time.monotonic()
        if paid is not None:
            floor_values.append(bps((paid - mid) / mid))
            floor_rows.append({"regime": name, "index": ix, "units": units_p50, "arrival_mid": mid,
                               "cost_per_unit": paid, "shortfall_bps": floor_values[-1]})
    half_spread = statistics.median([hs for _, hs in arrival.values()])
    row = {"regime": name, "orders": len(records), "filled": len(shortfalls), "rejects": rejects,
           "overcharged": overcharged,
           "shortfall_bps_p50": pct(shortfalls, 0.5), "shortfall_bps_p95": pct(shortfalls, 0.95),
           "floor_shortfall_bps_p50": pct(floor_values, 0.5), "floor_samples": len(floor_values),
           "fill_s_p50": pct([Decimal(str(round(t, 3))) for t in times], 0.5),
           "fill_s_p95": pct([Decimal(str(round(t, 3))) for t in times], 0.95),
           "batches_per_order": round(batches / max(1, len(records)), 3), "returned_usdc": returned,
           "inventory_cost_usdc": inventory.quantize(Decimal("0.01")),
           "half_spread_plus_fee_bps": bps(half_spread + FEE)}
    return row, orders, floor_rows


def seconds(later: float | None, earlier: float) -> Decimal | None:
    """A duration to the millisecond (a report figure: nearest)."""
    return None if later is None else Decimal(str(round(later - earlier, 3)))


def order_rows(regime: str, records: list[dict[str, Any]], invoices: list[dict[str, Any] | None],
               arrival: dict[str, tuple[Decimal, Decimal]], history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per order: what it asked and got, its invoice's execution quality (as the user received it), the bench's own
    shortfall (against the mids it read from the exchange just before sending), time to fill, and its per-asset
    lines. `batches`: the regime's batches that engaged orders of its index, per such order (the solver's history
    counts orders engaged per index, not which): exact for an order alone in its index, as in a run with at most
    one user per index."""
    per_index = {ix: sum(1 for r in records if r.get("index") == ix) for ix in {r.get("index") for r in records}}
    engaged = {ix: sum(h["indexes"].get(ix, 0) for h in history) for ix in per_index}
    rows = []
    for r, inv in zip(records, invoices):
        filled = r["status"] == "filled"
        units = Decimal(r["filled_units"]) if filled else Decimal(0)
        spent = Decimal(r["spent"]) if filled else Decimal(0)
        mid = arrival[r["index"]][0] if r.get("index") in arrival else None
        row: dict[str, Any] = {
            "regime": regime, "index": r.get("index"), "user": r["user"], "cl_ord_id": r["cl_ord_id"],
            "amount_usdc": Decimal(r["amount"]), "status": r["status"], "filled_units": units, "spent": spent,
            "bench_arrival_mid": mid,
            "cost_per_unit": spent / units if units > 0 else None,
            "bench_shortfall_bps": bps((spent / units - mid) / mid) if units > 0 and mid else None,
            "fill_s": seconds(r["closed"], r["sent"]),
            "first_fill_s": seconds(r.get("first_fill"), r["sent"]),
            "batches": (Decimal(engaged[r["index"]]) / per_index[r["index"]]).quantize(Decimal("0.01"))
            if r.get("index") in engaged else None}
        for k in ("arrival_value", "arrival_touch", "arrival_ms", "batch_touch", "paid_per_unit", "shortfall_bps",
                  "spread_bps", "delay_bps", "impact_bps", "fee_bps"):
            row[k] = None if inv is None else inv[k]
        row["lines"] = [] if inv is None else [asset_line(line, Decimal(inv["filled_units"]), inv["arrival_value"])
                                               for line in inv["lines"]]
        rows.append(row)
    return rows


def asset_line(line: dict[str, Any], units: Decimal, arrival_value: str | None) -> dict[str, Any]:
    """One asset of an invoice, and its contribution to the order's shortfall: what it cost above its arrival mid,
    per index unit, in bps of the basket's arrival value, rounded to the nearest 0.01 (a report figure). The
    contributions add up to the shortfall without the fee (to their rounding)."""
    out = {k: line[k] for k in ("symbol", "quantity", "average_price", "value", "fee", "arrival_mid", "arrival_ask",
                                "shortfall_bps")}
    if line["arrival_mid"] is None or arrival_value is None or units <= 0:
        out["contribution_bps"] = None
    else:
        over = Decimal(line["value"]) - Decimal(line["quantity"]) * Decimal(line["arrival_mid"])
        out["contribution_bps"] = bps(over / (units * Decimal(arrival_value)))
    return out


def write_data(path: Path, args: argparse.Namespace, indexes: list[str], rows: list[dict[str, Any]],
               orders: list[dict[str, Any]], floor: list[dict[str, Any]]) -> None:
    """The --out file (DATA_FORMAT, DATA_VERSION): exact decimals as strings."""
    data = {"format": DATA_FORMAT, "version": DATA_VERSION, "written_ms": time.time_ns() // 1_000_000,
            "run": {"users": args.users, "amounts_usdc": args.amount.split(","), "floor_samples": args.floor_samples,
                    "indexes": indexes, "chain": CHAIN, "fee": FEE, "slippage_cap": CAP},
            "regimes": rows, "orders": orders, "floor": floor}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, default=str, indent=1))
    tmp.replace(path)  # whole or not at all: a reader never sees half a file
    log(f"wrote {len(orders)} orders and {len(floor)} floor sweeps to {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=12, help="users per regime, spread over the six indexes")
    ap.add_argument("--amount", default="300",
                    help="USDC per index order; several (comma-separated): the users' orders take them in turn")
    ap.add_argument("--floor-samples", type=int, default=2, help="floor sweeps per regime")
    ap.add_argument("--regimes", default=",".join(REGIMES))
    ap.add_argument("--indexes", default=",".join(REAL_INDEXES), help="the indexes served (users spread over them)")
    ap.add_argument("--out", type=Path, default=None,
                    help="write the per-order rows here (JSON) for notebooks/execution_quality.ipynb")
    args = ap.parse_args()
    regimes = [r for r in args.regimes.split(",") if r]
    amounts = [a for a in args.amount.split(",") if a]
    served = [i for i in args.indexes.split(",") if i]
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    from chain.keys import DEV_MNEMONIC, MNEMONIC_ENV

    namespace = f"bench-quality-{uuid.uuid4().hex[:6]}"
    # The chain actor signs the mints with the local chains' dev mnemonic.
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 2**20, logging_level="ERROR",
             log_to_driver=False, namespace=namespace,
             runtime_env={"env_vars": {"PYTHONPATH": str(ROOT), MNEMONIC_ENV: DEV_MNEMONIC}})
    # World's deposits cover 1 + trials + rounds x 3 orders per user (of the largest amount): one per regime.
    world_args = argparse.Namespace(indexes=served, mint=True, arrival=True, trials=0,
                                    rounds=(len(regimes) + 2) // 3, amount=max(amounts, key=Decimal), tick_ms=100,
                                    launch_yield_every=16)
    rows, orders, floor_rows = [], [], []
    t0 = time.monotonic()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            log(f"starting the world: {', '.join(served)} ...")
            world = World(ray, namespace, Path(tmp), world_args)
            floor = None
            try:
                floor = FloorSweep(world)
                market = Market(world)
                for n, name in enumerate(regimes):
                    log(f"regime {name}")
                    row, got, swept = run_regime(world, market, floor, name, args.users, amounts,
                                                 args.floor_samples, n)
                    rows.append(row)
                    orders += got
                    floor_rows += swept
            finally:
                if floor is not None:
                    floor.close()
                world.close()
    finally:
        ray.shutdown()
    cols = ("regime", "filled", "rejects", "overcharged", "shortfall_bps_p50", "shortfall_bps_p95",
            "floor_shortfall_bps_p50", "half_spread_plus_fee_bps", "fill_s_p50", "fill_s_p95", "batches_per_order",
            "returned_usdc", "inventory_cost_usdc")
    if args.out is not None:
        write_data(args.out, args, served, rows, orders, floor_rows)
    print(f"\n{args.users} users per regime over {len(served)} indexes, {args.amount} USDC each; "
          f"{args.floor_samples} floor sweeps per regime; shortfall in bps of the arrival mid value (fees in); "
          f"CHAIN {CHAIN}")
    print(" ".join(f"{c[:14]:>14}" for c in cols))
    for r in rows:
        print(" ".join(f"{'-' if r[c] is None else str(r[c])[:14]:>14}" for c in cols))
    gaps = [r["shortfall_bps_p50"] - r["floor_shortfall_bps_p50"] for r in rows
            if r["shortfall_bps_p50"] is not None and r["floor_shortfall_bps_p50"] is not None]
    calm = next((r for r in rows if r["regime"] == "calm"), None)
    summary = {
        "shortfall_bps_p50": {r["regime"]: r["shortfall_bps_p50"] for r in rows},
        "floor_shortfall_bps_p50": {r["regime"]: r["floor_shortfall_bps_p50"] for r in rows},
        "overcharged_orders": sum(r["overcharged"] for r in rows),
        "shortfall_vs_floor_bps_max": max(gaps) if gaps else None,
        "calm_target_bps": calm["half_spread_plus_fee_bps"] if calm else None,
        "regimes": rows, "run_s": round(time.monotonic() - t0, 1)}
    print("targets: overcharged 0; calm shortfall p50 <= half spread + fee; every regime <= floor p50 + 5 bps")
    print(json.dumps(summary, default=str))


if __name__ == "__main__":
    main()
