"""MarketData shards on a real local Ray instance against the exchange simulator (its own process): books equal
the exchange's, a gap is resynced, a dropped websocket is recovered, a silent feed is flagged stale."""
from __future__ import annotations

from decimal import Decimal

import pytest

ray = pytest.importorskip("ray")

from actors.market_data import MarketDataOptions, shard_for, start_market_data  # noqa: E402
from core.shard_assignment import shard_of  # noqa: E402
from core.side import Side  # noqa: E402
from tests.integration.simulator_process import SimulatorProcess  # noqa: E402

SHARDS = 2
DEPTH = 20
WAIT_S = 30.0  # upper bound on any single wait; the waits themselves are on conditions
STALE_MS = 1_500


@pytest.fixture(scope="module")
def sim():
    with SimulatorProcess(n_symbols=100, update_ms=100, depth_interval_ms=100) as s:
        yield s


@pytest.fixture(scope="module")
def shards(ray_cluster, sim):
    options = MarketDataOptions(sim.url, sim.ws_url, book_limit=100, stale_after_ms=STALE_MS)
    handles = start_market_data(options, sim.symbols, SHARDS, namespace=ray_cluster)
    assert all(ray.get([h.wait_ready.remote(WAIT_S) for h in handles]))
    yield handles
    ray.get([h.stop.remote() for h in handles])
    for h in handles:
        ray.kill(h, no_restart=True)


def levels(rows: list[list[str]]) -> list[tuple[Decimal, Decimal]]:
    return [(Decimal(p), Decimal(q)) for p, q in rows]


def quiesce_and_compare(sim: SimulatorProcess, shards: list, symbols: list[str] | None = None) -> None:
    """Pause the simulator's feed, wait until every shard applied the last published update id of each of its
    books, then compare the top DEPTH levels of both sides with the exchange's own book."""
    targets = sim.post("/_admin/test/quiesce")
    try:
        symbols = symbols or sim.symbols
        by_shard: dict[int, dict[str, int]] = {}
        for s in symbols:
            by_shard.setdefault(shard_of(s, SHARDS), {})[s] = targets[s]
        assert all(ray.get([shards[k].wait_for_update_ids.remote(t, WAIT_S) for k, t in by_shard.items()]))
        exchange = sim.get(f"/_admin/test/books?limit={DEPTH}")
        for k, t in by_shard.items():
            asks = ray.get(shards[k].liquidity.remote(sorted(t), Side.BUY, DEPTH))  # a buyer takes the asks
            bids = ray.get(shards[k].liquidity.remote(sorted(t), Side.SELL, DEPTH))
            for s in t:
                assert asks[s] == levels(exchange[s]["asks"]), s
                assert bids[s] == levels(exchange[s]["bids"]), s
                assert all(isinstance(p, Decimal) and isinstance(q, Decimal) for p, q in asks[s] + bids[s])
    finally:
        sim.post("/_admin/test/resume")


def test_100_books_equal_the_exchange_and_top_matches(sim, shards):
    owned = [ray.get(h.inspect.remote())["symbols"] for h in shards]
    assert sum(owned) == len(sim.symbols) == 100 and all(n > 0 for n in owned)
    # let the books move away from their snapshots first: the comparison is about the diffs applied since
    assert all(ray.get([h.wait_diffs.remote(100, WAIT_S) for h in shards]))
    quiesce_and_compare(sim, shards)
    top = {}
    for h in shards:
        top.update(ray.get(h.top.remote()))
    exchange = sim.get("/_admin/test/books?limit=1")
    for s in sim.symbols[:10]:
        bid, ask = top[s]
        assert bid is not None and ask is not None and bid[0] < ask[0]
    stats = [ray.get(h.stats.remote()) for h in shards]
    assert all(st["diffs"] > 0 and st["lag_p50_ms"] is not None for st in stats)
    assert set(exchange) == set(sim.symbols)
    found = shard_for(sim.symbols[0], SHARDS)  # by name, in the session's namespace
    assert found._actor_id == shards[shard_of(sim.symbols[0], SHARDS)]._actor_id
    with pytest.raises(ray.exceptions.RayTaskError):  # a symbol the shard does not own is a caller bug
        foreign = next(s for s in sim.symbols if shard_of(s, SHARDS) == 1)
        ray.get(shards[0].liquidity.remote([foreign], Side.BUY, 5))


def test_a_gap_triggers_a_resync_of_that_book(sim, shards):
    symbol = sim.symbols[3]
    shard = shards[shard_of(symbol, SHARDS)]
    gaps_before = ray.get(shard.inspect.remote())["gaps_by_symbol"].get(symbol, 0)
    lost = sim.post("/_admin/test/gap", {"symbol": symbol})
    assert lost["lost_from"] is not None  # ids the client will never see: the next diff cannot chain
    assert ray.get(shard.wait_gap_resynced.remote(symbol, gaps_before, WAIT_S))
    after = ray.get(shard.inspect.remote())
    assert after["gaps_by_symbol"][symbol] == gaps_before + 1
    assert sum(after["gaps_by_symbol"].values()) == after["gaps"]  # no other book was touched by it
    quiesce_and_compare(sim, shards, [symbol])


def test_a_dropped_websocket_is_recovered_and_books_rebuilt(sim, shards):
    before = [ray.get(h.inspect.remote())["reconnects"] for h in shards]
    dropped = sim.post("/_admin/drop_ws", {"which": "market", "abrupt": True})
    assert dropped["dropped"] >= SHARDS
    assert all(ray.get([h.wait_reconnected.remote(b, WAIT_S) for h, b in zip(shards, before)]))
    quiesce_and_compare(sim, shards)


def test_a_silent_feed_is_flagged_stale_and_recovers(sim, shards):
    mine = [s for s in sim.symbols if shard_of(s, SHARDS) == 0]
    shard = shards[0]
    counts = ray.get(shard.inspect.remote())["diffs_by_symbol"]
    active = [s for s in mine if counts.get(s, 0) >= 1]  # some simulated markets never change: always stale
    assert len(active) >= len(mine) // 4
    assert ray.get(shard.wait_stale.remote(active, False, WAIT_S))  # live feed: none of them stale
    sim.post("/_admin/test/quiesce")
    try:
        assert ray.get(shard.wait_stale.remote(mine, True, WAIT_S))
        assert set(ray.get(shard.stale.remote())) == set(mine)
    finally:
        sim.post("/_admin/test/resume")
    assert ray.get(shard.wait_stale.remote(active, False, WAIT_S))
