"""The shards' reports as the gateway reads them: their hand-offs (store/streams.py) from the first entry, handed
to a test sink's `on_reports(shard, seq_from, reports)`. Nothing is acknowledged: the streams keep every entry."""
from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

import redis.asyncio as aioredis

from actors.order_books import ShardReport, report_of
from store.handoff import Entry, Handoff, follow
from store.streams import shard_reports

OnReports = Callable[[int, int, list[ShardReport]], Awaitable[Any]]


def follow_reports(redis_url: str, key_prefix: str, shards: int, on_reports: OnReports) -> asyncio.Task:
    """Start reading (in the caller's loop: a sink actor's); cancel the task to stop."""
    handoffs = {shard_reports(key_prefix, k): k for k in range(shards)}
    cursors = {h: 0 for h in handoffs}
    client = aioredis.Redis.from_url(redis_url)

    async def apply(handoff: Handoff, entries: list[Entry]) -> None:
        reports = [report_of(raw) for _, raw in entries]
        await on_reports(handoffs[handoff], reports[0].seq, reports)
        cursors[handoff] = entries[-1][0]

    async def pause(e: Exception) -> None:
        raise e  # a test's store does not go away: fail loudly

    return asyncio.ensure_future(follow(client, lambda: cursors, apply, count=5_000, block_ms=1_000, pause=pause))
