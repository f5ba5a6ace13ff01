"""The report store on Redis: one sorted set per user and direction, scored by seq_num.

Why this shape:
* a whole batch is ONE command (a Lua script): atomic like MULTI/EXEC, and the client encodes one request instead
  of thousands (at 5,000 orders/s the per-command overhead of redis-py would cost more CPU than the writes);
* ZADD with the seq_num as score is idempotent: a batch retried after an ambiguous failure adds nothing twice;
* the last seq_num of each direction is the highest score, so the sequence state needs no extra key;
* with `appendfsync always` Redis answers only after the batch is on disk: one fsync per batch (group commit).

Keys are `<prefix>{<user>}:in` and `<prefix>{<user>}:out`; the braces keep a user's keys in one cluster slot, but
the script takes its keys from ARGV, so it is meant for one Redis node (what DESIGN.md runs).
"""
from __future__ import annotations

from typing import Sequence

import redis.asyncio as aioredis

from protocol.redis_appender import RawRedisConnection, RedisError
from protocol.report_store import ReportStore, StreamWrite

# ARGV[1] = key prefix; ARGV[3] = messages kept per stream ('' keeps all: retention); ARGV[2] = the batch, every field terminated by NUL, five fields per write:
# user, inbound seq, inbound frame, outbound seq, outbound frame (empty seq: no such part). One argument instead of
# five per write: redis-py packs each argument in Python (~2 us), which at 1,000 writes per batch cost more than
# Redis spent executing them. NUL cannot occur in a frame (JSON forbids raw control characters) nor in a user key.
_APPEND = """
local p = ARGV[1]
local data = ARGV[2]
local keep = tonumber(ARGV[3])
local pos = 1
local n = 0
local function field()
  local e = string.find(data, '\\0', pos, true)
  local f = string.sub(data, pos, e - 1)
  pos = e + 1
  return f
end
while pos <= #data do
  local u = field()
  local in_seq = field()
  local in_frame = field()
  local out_seq = field()
  local out_frame = field()
  if in_seq ~= '' then
    redis.call('ZADD', p .. '{' .. u .. '}:in', in_seq, in_frame)
    if keep then redis.call('ZREMRANGEBYRANK', p .. '{' .. u .. '}:in', 0, -keep - 1) end
  end
  if out_seq ~= '' then
    redis.call('ZADD', p .. '{' .. u .. '}:out', out_seq, out_frame)
    if keep then redis.call('ZREMRANGEBYRANK', p .. '{' .. u .. '}:out', 0, -keep - 1) end
  end
  n = n + 1
end
return n
"""


class RedisReportStore(ReportStore):
    def __init__(self, client: aioredis.Redis, prefix: str = "fix:", keep: int | None = None) -> None:
        self._redis = client
        self._prefix = prefix
        self._keep = "" if keep is None else str(keep)
        self._append = client.register_script(_APPEND)
        self._sha = self._append.sha.encode("ascii")
        pool = client.connection_pool
        # The batch write skips redis-py (protocol/redis_appender.py says why) when the connection allows it.
        self._raw = (RawRedisConnection(dict(pool.connection_kwargs))
                     if RawRedisConnection.supported(pool.connection_kwargs, pool.connection_class) else None)
        self.appends = 0

    @classmethod
    def from_url(cls, url: str, prefix: str = "fix:", keep: int | None = None) -> "RedisReportStore":
        return cls(aioredis.Redis.from_url(url), prefix, keep)

    def _key(self, user: str, direction: str) -> str:
        return f"{self._prefix}{{{user}}}:{direction}"

    async def append(self, writes: Sequence[StreamWrite]) -> None:
        if not writes:
            return
        parts: list[str] = []
        for w in writes:
            parts.append(w.user)
            if w.inbound is None:
                parts += ("", "")
            else:
                parts += (str(w.inbound[0]), w.inbound[1])
            if w.outbound is None:
                parts += ("", "")
            else:
                parts += (str(w.outbound[0]), w.outbound[1])
        parts.append("")  # the last field's terminator
        data = "\0".join(parts)
        if self._raw is not None:
            args = (b"EVALSHA", self._sha, b"0", self._prefix.encode("utf-8"), data.encode("utf-8"),
                    self._keep.encode("ascii"))
            try:
                result = await self._raw.execute(*args)
            except RedisError as exc:
                if not str(exc).startswith("NOSCRIPT"):
                    raise
                await self._redis.script_load(_APPEND)  # a restarted Redis forgot the script
                result = await self._raw.execute(*args)
        else:
            result = await self._append(keys=[], args=[self._prefix, data, self._keep])
        if int(result) != len(writes):  # a frame with a NUL in it would shift every field after it
            raise RuntimeError(f"store wrote {result} of {len(writes)} writes")
        self.appends += 1

    async def last_seqs(self, user: str) -> tuple[int, int]:
        pipe = self._redis.pipeline(transaction=False)
        pipe.zrange(self._key(user, "in"), -1, -1, withscores=True)
        pipe.zrange(self._key(user, "out"), -1, -1, withscores=True)
        inbound, outbound = await pipe.execute()
        return (int(inbound[0][1]) if inbound else 0, int(outbound[0][1]) if outbound else 0)

    async def _after(self, key: str, after_seq: int, limit: int | None) -> list[tuple[int, str]]:
        rows = await self._redis.zrangebyscore(key, f"({after_seq}", "+inf", withscores=True,
                                               start=0 if limit is not None else None, num=limit)
        return [(int(score), member.decode("utf-8") if isinstance(member, bytes) else member)
                for member, score in rows]

    async def outbound_after(self, user: str, after_seq: int, limit: int | None = None) -> list[tuple[int, str]]:
        return await self._after(self._key(user, "out"), after_seq, limit)

    async def inbound_after(self, user: str, after_seq: int, limit: int | None = None) -> list[tuple[int, str]]:
        return await self._after(self._key(user, "in"), after_seq, limit)

    async def first_outbound(self, user: str) -> int:
        rows = await self._redis.zrange(self._key(user, "out"), 0, 0, withscores=True)
        return int(rows[0][1]) if rows else 0

    async def close(self) -> None:
        if self._raw is not None:
            self._raw.close()
        await self._redis.aclose()
