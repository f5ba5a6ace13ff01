"""The report store contract, on the memory store and on a real redis-server: batches are atomic and idempotent,
reads are ordered by seq_num, the last numbers are the sequence state, and Redis keeps it all through a SIGKILL."""
from __future__ import annotations

import asyncio

import pytest
import redis.exceptions
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.redis_report_store import RedisReportStore
from protocol.report_store import MemoryReportStore, ReportStore, StreamWrite
from world.redis_server import RedisServer


@pytest.fixture(params=["memory", "redis"])
def make_store(request, redis_server, redis_client):
    def make(keep: int | None = None) -> ReportStore:
        if request.param == "memory":
            return MemoryReportStore(keep)
        return RedisReportStore.from_url(redis_server.url, keep=keep)

    return make


def frame_text(user: str, direction: str, seq: int) -> str:
    return f'{{"user":"{user}","dir":"{direction}","seq":{seq},"text":"é \\" ü"}}'


async def test_streams_round_trip_in_order_and_batches_are_idempotent(make_store) -> None:
    store = make_store()
    try:
        users = ["8453:0xA", "42161:0xB"]
        writes = [StreamWrite(u, (i, frame_text(u, "in", i)) if i % 3 else None, (i, frame_text(u, "out", i)))
                  for i in range(1, 40) for u in users]
        await store.append(writes[:50])
        await store.append(writes[40:])  # overlaps the first batch: a retry after an ambiguous failure
        for u in users:
            outbound = await store.outbound_after(u, 0)
            assert outbound == [(i, frame_text(u, "out", i)) for i in range(1, 40)]
            inbound = await store.inbound_after(u, 10)
            assert inbound == [(i, frame_text(u, "in", i)) for i in range(11, 40) if i % 3]
            assert await store.last_seqs(u) == (38, 39)
            assert await store.outbound_after(u, 5, limit=3) == [(i, frame_text(u, "out", i)) for i in (6, 7, 8)]
        assert await store.last_seqs("8453:0xNEW") == (0, 0)
        assert await store.outbound_after("8453:0xNEW", 0) == []
    finally:
        await store.close()


async def test_retention_keeps_the_newest_messages_of_each_stream(make_store) -> None:
    store = make_store(keep=5)
    try:
        for start in (1, 8):  # two batches: the second trims what the first left beyond the rule
            await store.append([StreamWrite(u, (i, f"in{i}"), (i, f"out{i}")) for i in range(start, start + 7)
                                for u in ("a", "b")])
        for u in ("a", "b"):
            assert [s for s, _ in await store.outbound_after(u, 0)] == [10, 11, 12, 13, 14]
            assert [s for s, _ in await store.inbound_after(u, 0)] == [10, 11, 12, 13, 14]
            assert await store.first_outbound(u) == 10
            assert await store.last_seqs(u) == (14, 14)  # the sequence state survives trimming
        assert await store.first_outbound("nobody") == 0
    finally:
        await store.close()


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(1, 200), min_size=1, max_size=60, unique=True), st.integers(0, 200))
def test_reads_after_any_point_return_exactly_the_later_frames(seqs: list[int], after: int) -> None:
    async def scenario() -> None:
        store = MemoryReportStore()
        for s in seqs:  # written in any order, one by one
            await store.append([StreamWrite("u", None, (s, f"f{s}"))])
        assert await store.outbound_after("u", after) == [(s, f"f{s}") for s in sorted(seqs) if s > after]
        assert (await store.last_seqs("u"))[1] == max(seqs)

    asyncio.run(scenario())


def test_redis_store_survives_a_kill(tmp_path) -> None:
    server = RedisServer(tmp_path / "r").start()
    try:
        async def write() -> None:
            store = RedisReportStore.from_url(server.url)
            await store.append([StreamWrite("8453:0xA", (i, f"in{i}"), (i, f"out{i}")) for i in range(1, 501)])
            await store.close()

        asyncio.run(write())
        server.kill()  # appendfsync always: everything acknowledged is on disk
        server.start()

        async def read() -> tuple[tuple[int, int], list[tuple[int, str]]]:
            store = RedisReportStore.from_url(server.url)
            try:
                return await store.last_seqs("8453:0xA"), await store.outbound_after("8453:0xA", 498)
            finally:
                await store.close()

        seqs, tail = asyncio.run(read())
        assert seqs == (500, 500) and tail == [(499, "out499"), (500, "out500")]
    finally:
        server.stop()


def test_the_batch_write_reconnects_and_reloads_its_script_after_a_redis_restart(tmp_path) -> None:
    """The batch write has a connection of its own (protocol/redis_appender.py): a restart breaks it; the write in
    flight fails (the group commit retries it), the next opens a new connection and loads the script again."""
    server = RedisServer(tmp_path / "r").start()
    try:
        async def scenario() -> tuple[tuple[int, int], list[tuple[int, str]]]:
            store = RedisReportStore.from_url(server.url)
            try:
                await store.append([StreamWrite("8453:0xA", (1, "in1"), (1, "out1"))])
                server.kill()
                server.start()  # an empty script cache; the old connection is dead
                failures = 0
                while True:
                    try:
                        await store.append([StreamWrite("8453:0xA", (2, "in2"), (2, "out2"))])
                        break
                    except (ConnectionError, redis.exceptions.ConnectionError):  # ours, or redis-py's (the script load)
                        failures += 1
                        assert failures < 3
            finally:
                await store.close()
            reader = RedisReportStore.from_url(server.url)  # (redis-py's own pooled connection died too)
            try:
                return await reader.last_seqs("8453:0xA"), await reader.outbound_after("8453:0xA", 0)
            finally:
                await reader.close()

        seqs, frames = asyncio.run(scenario())
        assert seqs == (2, 2) and frames == [(1, "out1"), (2, "out2")]
    finally:
        server.stop()


def test_replies_split_anywhere_are_matched_to_requests_in_order() -> None:
    from protocol.redis_appender import RedisError, _Connection  # noqa: PLC0415

    async def scenario() -> list[object]:
        conn = _Connection()
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in range(4)]
        conn.waiting.extend(futures)
        futures[1].cancel()  # a caller that gave up: its reply is consumed, not given to the next one
        for chunk in (b":1", b"2\r\n:7\r", b"\n-NOSCRIPT No matching script\r\n+O", b"K\r\n"):
            conn.data_received(chunk)
        out: list[object] = [futures[0].result(), futures[3].result()]
        with pytest.raises(RedisError, match="NOSCRIPT"):
            futures[2].result()
        return out

    assert asyncio.run(scenario()) == [12, "OK"]
