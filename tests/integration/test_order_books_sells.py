"""A shard's sell orders over a real redis-server (the shard class outside Ray, the solver a fake): a sell accepted
against tokens credited for redemption is offered to the solver apart from buys, stored with its minimum and its
reservation, and after a restart of the shard the reload has both; a cancel gives the units back, stored too. While
sells are not served (the shard's default) the same request is refused and reserves nothing."""
from __future__ import annotations

import asyncio
import pickle
from decimal import Decimal
from types import SimpleNamespace

from actors.order_books import IndexOrderBooks, OrderBooksOptions
from core.chain_events import CollateralDeposit, TokenDeposit
from core.sell_plan import PendingSell
from core.side import Side
from protocol.envelope import UserRef
from protocol.indexmaker_app import CancelDone, CancelOrder, NewOrder, OrderAccepted, OrderRefused
from protocol.reason_codes import ReasonCode

INDEX = "SY100"
USER = "0x" + "5e" * 20
WAIT_S = 10
D = Decimal


async def offered(shard, side: str) -> list:  # noqa: ANN001
    """The `side` ("buys" or "sells") of what the solver gets from the shard's `demand`, unpacked as a Ray call
    unpacks it."""
    buys, sells = pickle.loads(pickle.dumps(await shard.demand(10)))
    return {"buys": buys, "sells": sells}[side]


def test_a_sell_is_offered_apart_stored_with_its_reservation_and_cancelled_back(redis_server, monkeypatch):
    redis_server.client().flushall()
    monkeypatch.setattr("actors.order_books.tune_gc_once", lambda: None)  # pytest's process: leave its collector
    options = OrderBooksOptions(redis_server.url, 1, (INDEX,), key_prefix="sells")
    user = UserRef(42161, USER)

    def shard_instance():  # noqa: ANN202
        shard = IndexOrderBooks.__ray_metadata__.modified_class(0, options)
        shard._solver = SimpleNamespace(wake=SimpleNamespace(remote=lambda: None))
        return shard

    async def run() -> None:
        shard = shard_instance()
        await shard.credit([CollateralDeposit(42161, "0x01", 0, 1, USER, D("1000"))])
        await shard.credit_tokens([TokenDeposit(8453, "0x" + "02" * 32, 0, 5, USER, INDEX, D("0.01"))])
        sell = NewOrder(user, "s1", INDEX, Side.SELL, D("0.004"), D("150"))
        [refused] = await shard.handle([sell])
        assert isinstance(refused, OrderRefused) and refused.code is ReasonCode.UNSUPPORTED_SIDE
        assert await offered(shard, "sells") == []

        shard.app.accept_sells = True
        answers = await shard.handle([sell, NewOrder(user, "b1", INDEX, Side.BUY, D("400")),
                                      NewOrder(user, "s2", INDEX, Side.SELL, D("0.007"))])
        assert answers[:2] == [OrderAccepted(user, "s1"), OrderAccepted(user, "b1")]
        assert isinstance(answers[2], OrderRefused) and answers[2].code is ReasonCode.INSUFFICIENT_TOKENS
        sells = await offered(shard, "sells")
        assert sells == [PendingSell(f"{USER}:s1", INDEX, D("0.004"), D("150"))]
        assert [p.order_id for p in await offered(shard, "buys")] == [f"{USER}:b1"]
        await shard._redis.aclose()

        restarted = shard_instance()  # reads what the first one stored
        restarted.app.accept_sells = True
        assert await offered(restarted, "sells") == sells
        held = restarted.shard.tokens[USER].of(INDEX)
        assert (held.available, held.reserved) == (D("0.006"), D("0.004"))
        restarted.shard.books[USER].check(restarted.shard.tokens[USER])
        [done, *_] = await restarted.handle([CancelOrder(user, "s1", INDEX, None)])
        assert isinstance(done, CancelDone) and done.cancelled == D("0.004")
        await restarted._redis.aclose()

        again = shard_instance()
        held = again.shard.tokens[USER].of(INDEX)
        assert (held.available, held.reserved) == (D("0.01"), 0) and await offered(again, "sells") == []
        await again._redis.aclose()

    asyncio.run(asyncio.wait_for(run(), 6 * WAIT_S))
