"""The durable hand-off from a producer to its consumer: one Redis Stream per pair, whose entry ids are the
producer's own sequence numbers.

The rules it makes the same for every pair:
* The producer appends in the SAME transaction as the state change that produced the items (`append` into its
  MULTI), so an item exists exactly when the change does. Its sequence number is part of its state: a reloaded
  producer goes on from the committed number, never reusing or skipping one.
* The consumer reads after its stored cursor (`read`, one blocking XREAD over all its streams), applies what it
  read, and in ITS OWN transaction stores the new cursor and acknowledges (`ack`: XTRIM MINID drops what it has
  consumed, so a stream holds only what is not yet consumed). A consumer killed before its commit reads the same
  entries again from the same cursor; one killed after it never sees them again.
* Catch-up after either side restarts is the same read from the stored cursor: there is no separate path.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

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
