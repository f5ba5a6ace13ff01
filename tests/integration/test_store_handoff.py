"""store/handoff.py on a real redis-server: append in the producer's transaction, read after a cursor, ack trims."""
from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from store.handoff import Handoff, execute, read


@pytest.fixture
async def r(redis_client, redis_server):  # noqa: ANN001
    client = aioredis.Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


async def _produce(r: aioredis.Redis, h: Handoff, seqs: range, state: str) -> None:
    async with r.pipeline(transaction=True) as pipe:
        pipe.set("producer:state", state)
        for seq in seqs:
            h.append(pipe, seq, f"item {seq}")
        await pipe.execute()


async def test_entries_come_with_the_producers_seq_after_the_cursor(r: aioredis.Redis) -> None:
    h = Handoff("t:stream")
    await _produce(r, h, range(1, 4), "after 3")
    assert await r.get("producer:state") == b"after 3"  # the state and its items, one transaction
    assert await h.since(r, 0) == [(1, b"item 1"), (2, b"item 2"), (3, b"item 3")]
    assert await h.since(r, 2) == [(3, b"item 3")]
    assert (await read(r, {h: 1}, count=10, block_ms=None)) == {h: [(2, b"item 2"), (3, b"item 3")]}
    assert await h.last_seq(r) == 3


async def test_ack_in_the_consumers_commit_trims_what_it_consumed(r: aioredis.Redis) -> None:
    h = Handoff("t:stream")
    await _produce(r, h, range(1, 6), "after 5")
    async with r.pipeline(transaction=True) as pipe:
        pipe.set("consumer:cursor", 3)
        h.ack(pipe, 3)
        await pipe.execute()
    assert [seq for seq, _ in await h.since(r, 0)] == [4, 5]
    assert await h.backlog(r) == 2
    assert await h.last_seq(r) == 5


async def test_a_blocked_read_wakes_on_the_producers_commit_across_streams(r: aioredis.Redis, redis_server) -> None:  # noqa: ANN001
    a, b = Handoff("t:a"), Handoff("t:b")
    await _produce(r, a, range(1, 3), "a")
    reader = asyncio.ensure_future(read(r, {a: 2, b: 0}, count=100, block_ms=10_000))
    other = aioredis.Redis.from_url(redis_server.url)  # the producer's own connection
    try:
        deadline = asyncio.get_running_loop().time() + 5
        while (await other.info("clients"))["blocked_clients"] < 1:  # the XREAD is blocked in Redis: then write
            assert asyncio.get_running_loop().time() < deadline and not reader.done()
        await _produce(other, b, range(1, 2), "b")
        got = await asyncio.wait_for(reader, 5)
    finally:
        await other.aclose()
    assert got == {b: [(1, b"item 1")]}


async def test_an_append_with_a_used_seq_fails_and_writes_nothing_of_it(r: aioredis.Redis) -> None:
    """A producer must go on from its committed seq: an id not above the last is refused by Redis itself."""
    h = Handoff("t:stream")
    await _produce(r, h, range(1, 3), "ok")
    with pytest.raises(Exception, match="equal or smaller"):
        async with r.pipeline(transaction=False) as pipe:
            h.append(pipe, 2, "again")
            await pipe.execute()
    assert await h.since(r, 0) == [(1, b"item 1"), (2, b"item 2")]


async def test_a_transaction_sent_again_after_a_lost_answer_completes_without_an_error(r: aioredis.Redis) -> None:
    """The producer's retry of a whole transaction: its appends are there already, the rest applies again."""
    h = Handoff("t:stream")
    await _produce(r, h, range(1, 3), "first")
    async with r.pipeline(transaction=True) as pipe:
        pipe.set("producer:state", "again")
        h.append(pipe, 1, "item 1")
        h.append(pipe, 2, "item 2")
        await execute(pipe)
    assert await r.get("producer:state") == b"again"
    assert await h.since(r, 0) == [(1, b"item 1"), (2, b"item 2")]
    async with r.pipeline(transaction=True) as pipe:
        pipe.hset("not-a-stream-op", "k", "v")
        pipe.xadd("producer:state", {"r": "x"})  # a real error (wrong type) is still raised
        with pytest.raises(Exception, match="WRONGTYPE"):
            await execute(pipe)
