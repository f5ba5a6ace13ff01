"""The chain listener's persisted position: next block to read, hashes of processed blocks, keys already handed out.

All three in Redis, in one MULTI: a restart resumes exactly where the last committed read ended; the hashes reveal
replaced blocks (nodes do not send `removed` logs reliably: spec/chain.md §9); the keys make a re-read deliver
nothing twice. Only a window of recent blocks is kept."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from redis.asyncio import Redis

from store.chain_records import BlockCursorRecord


@dataclass(slots=True)
class CursorState:
    next_block: int
    hashes: dict[int, str] = field(default_factory=dict)  # processed block -> its hash when processed
    seen: dict[str, int] = field(default_factory=dict)  # event key -> block it was in


class LogCursorStore:
    def __init__(self, redis: Redis, namespace: str) -> None:
        self.redis = redis
        self.namespace = namespace

    def _k(self, what: str) -> str:
        return f"{self.namespace}:{what}"

    async def load(self, start_block: int) -> CursorState:
        pipe = self.redis.pipeline(transaction=True)
        pipe.get(self._k("next"))
        pipe.hgetall(self._k("hashes"))
        pipe.hgetall(self._k("seen"))
        nxt, hashes, seen = await pipe.execute()
        return CursorState(
            next_block=BlockCursorRecord.load(nxt).next_block if nxt is not None else start_block,
            hashes={int(k): v.decode() for k, v in hashes.items()},
            seen={k.decode(): int(v) for k, v in seen.items()},
        )

    async def save(self, state: CursorState, *, dropped_blocks: list[int], dropped_keys: list[str],
                   new_hashes: dict[int, str], new_seen: dict[str, int]) -> None:
        """One atomic step: the cursor never moves without its hashes and seen keys (and vice versa)."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(self._k("next"), BlockCursorRecord(next_block=state.next_block).dump())
        if dropped_blocks:
            pipe.hdel(self._k("hashes"), *dropped_blocks)
        if dropped_keys:
            pipe.hdel(self._k("seen"), *dropped_keys)
        if new_hashes:
            pipe.hset(self._k("hashes"), mapping={str(k): v for k, v in new_hashes.items()})
        if new_seen:
            pipe.hset(self._k("seen"), mapping={k: str(v) for k, v in new_seen.items()})
        await pipe.execute()

    async def dump(self) -> str:
        state = await self.load(0)
        return json.dumps({"next": state.next_block, "hashes": state.hashes, "seen": state.seen})
