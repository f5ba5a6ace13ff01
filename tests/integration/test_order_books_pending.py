"""A shard wakes the solver as soon as it has taken new orders, before it writes them, so that the solver's reads
of the rate budget and the books overlap the write; its read of the demand waits for the write, so the solver never
plans on an order that is not stored. The shard class runs here outside Ray (the solver is a fake), over a real
redis-server; the write is held open by the test."""
from __future__ import annotations

import asyncio
import pickle
from decimal import Decimal
from types import SimpleNamespace

from actors.order_books import IndexOrderBooks, OrderBooksOptions
from core.chain_events import CollateralDeposit
from core.side import Side
from protocol.envelope import UserRef
from protocol.indexmaker_app import NewOrder, OrderAccepted

INDEX = "SY100"
USER = "0x" + "7c" * 20
WAIT_S = 10


def test_the_solver_is_woken_before_the_write_and_reads_the_demand_after_it(redis_server, monkeypatch):
    redis_server.client().flushall()
    # An actor tunes its own process's collector once started; here that process is pytest's: leave it alone.
    monkeypatch.setattr("actors.order_books.tune_gc_once", lambda: None)

    async def run() -> None:
        shard = IndexOrderBooks.__ray_metadata__.modified_class(
            0, OrderBooksOptions(redis_server.url, 1, (INDEX,), key_prefix="pending-order"))
        woken: list[bool] = []  # for each wake: was the write still open?
        shard._solver = SimpleNamespace(wake=SimpleNamespace(remote=lambda: woken.append(not written.is_set())))
        await shard.credit([CollateralDeposit(42161, "0x01", 0, 1, USER, Decimal("1000"))])

        writing, release, written = asyncio.Event(), asyncio.Event(), asyncio.Event()
        commit = shard._commit

        async def held_commit(*args, **kwargs):  # noqa: ANN002, ANN003
            writing.set()
            await release.wait()
            await commit(*args, **kwargs)
            written.set()

        shard._commit = held_commit
        user = UserRef(42161, USER)
        handled = asyncio.ensure_future(shard.handle([NewOrder(user, "c1", INDEX, Side.BUY, Decimal("400"))]))
        await asyncio.wait_for(writing.wait(), WAIT_S)
        assert woken == [True]  # the wake left while the order was still being written
        read = asyncio.ensure_future(shard.pending(10))
        done, _ = await asyncio.wait({read}, timeout=0.3)
        assert not done  # the demand read waits for the write
        release.set()
        assert await asyncio.wait_for(handled, WAIT_S) == [OrderAccepted(user, "c1")]
        pending = pickle.loads(pickle.dumps(await asyncio.wait_for(read, WAIT_S)))  # as a Ray call unpacks it
        assert written.is_set() and [p.order_id for p in pending] == [f"{USER}:c1"]
        await shard._redis.aclose()

    asyncio.run(asyncio.wait_for(run(), 3 * WAIT_S))
