"""The durable hand-off from a producer to its consumer: one Redis Stream per pair, entry ids = the producer's seqs.

The producer appends in the transaction of the state change that made the items (its seq is part of that state).
The consumer reads after its stored cursor, applies, and in its own transaction stores the cursor and acknowledges
(XTRIM). Killed before its commit, it reads the entries again; after, never. Catch-up after a restart is that read.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping

#: One entry: the producer's sequence number and the payload (a stored record, store/records.py).
Entry = tuple[int, bytes]

_FIELD = b"r"


@dataclass(frozen=True)
class Handoff:
    """One producer -> consumer pair: the stream's key."""

    key: str

    def append(self, pipe: Any, seq: int, payload: str | bytes) -> None:
        """Queue the item `seq` in the producer's transaction (ids must grow: the producer's committed seq + 1...)."""
        pipe.xadd(self.key, {_FIELD: payload}, id=f"{seq}-0")

    def ack(self, pipe: Any, upto: int) -> None:
        """Queue, in the consumer's transaction, the release of every entry up to `upto` (its new cursor)."""
        pipe.xtrim(self.key, minid=f"{upto + 1}-0", approximate=False)  # exact: the backlog count is true

    async def since(self, redis: Any, after: int, count: int | None = None) -> list[Entry]:
        """Entries after `after`, oldest first (without blocking: a view, or a consumer's first read)."""
        rows = await redis.xrange(self.key, min=f"({after}-0" if after else "-", max="+", count=count)
        return [_entry(entry_id, fields) for entry_id, fields in rows]

    async def last_seq(self, redis: Any) -> int:
        """The newest entry's seq, 0 if the stream is empty (a consumer that acknowledged everything)."""
        rows = await redis.xrevrange(self.key, max="+", min="-", count=1)
        return _entry(*rows[0])[0] if rows else 0

    async def backlog(self, redis: Any) -> int:
        """Entries not yet acknowledged (the monitor's undelivered count)."""
        return int(await redis.xlen(self.key))


async def execute(pipe: Any) -> list[Any]:
    """Run a producer's transaction. An append refused because its seq is not above the stream's last is an entry an
    earlier attempt of this same transaction wrote (its answer was lost, the caller sent it again): not an error.
    Every other command of the transaction applies either way (Redis runs them all), so the retry is complete."""
    results = await pipe.execute(raise_on_error=False)
    for r in results:
        if isinstance(r, Exception) and "equal or smaller than the target stream top item" not in str(r):
            raise r
    return results


def _entry(entry_id: bytes | str, fields: Mapping[bytes, bytes]) -> Entry:
    raw = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(raw.split("-", 1)[0]), fields[_FIELD]


async def read(redis: Any, cursors: Mapping[Handoff, int], *, count: int, block_ms: int | None
               ) -> dict[Handoff, list[Entry]]:
    """Entries after each cursor, up to `count` per stream, in ONE round trip; with `block_ms`, wait that long for
    the first entry of any of them (0: forever). Streams with nothing new are left out of the answer."""
    if not cursors:
        return {}
    by_key = {h.key: h for h in cursors}
    answer = await redis.xread({h.key: f"{seq}-0" for h, seq in cursors.items()}, count=count, block=block_ms)
    out: dict[Handoff, list[Entry]] = {}
    for key, rows in answer or []:  # RESP2: [(key, [(id, fields), ...]), ...]
        name = key.decode() if isinstance(key, bytes) else key
        out[by_key[name]] = [_entry(entry_id, fields) for entry_id, fields in rows]
    return out


async def follow(redis: Any, cursors: Callable[[], Mapping[Handoff, int]],
                 apply: Callable[[Handoff, list[Entry]], Awaitable[None]], *, count: int, block_ms: int,
                 pause: Callable[[Exception], Awaitable[Any]], healthy: Callable[[], None] = lambda: None) -> None:
    """A consumer's loop, until cancelled: read after the cursors (asked anew each time), `apply` what came per
    hand-off (it stores the new cursor), and on a failure `pause` (the retry policy's pacer) and read again from
    the stored cursors. `block_ms` bounds each wait; the read returns as soon as a producer commits."""
    while True:
        try:
            got = await read(redis, cursors(), count=count, block_ms=block_ms)
            for handoff, entries in got.items():
                await apply(handoff, entries)
            healthy()
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001  (the store or a peer away: the same entries are read again)
            await pause(e)
