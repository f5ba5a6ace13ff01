"""Reads one chain's logs: bounded block ranges from a persisted cursor, only confirmed blocks, reorg-safe.

`eth_getLogs` polling is stateless and survives restarts of both sides (spec/chain.md §9). A log is handed out once
its block is confirmed, at most once per (chain id, tx hash, log index); a reorg is noticed by comparing stored
block hashes (anvil sends no `removed` logs). The cursor commits after the consumer handled a batch; its
idempotency absorbs a re-read."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from redis.asyncio import Redis
from web3 import AsyncWeb3
from web3.exceptions import BlockNotFound

from chain.log_cursor import CursorState, LogCursorStore
from core.chain_events import ChainReorg, event_key


@dataclass(frozen=True, slots=True)
class LogSource:
    """One kind of log to read: a contract event class (`contract.events.Transfer`) and indexed-argument filters."""

    name: str
    event: Any
    argument_filters: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ChainLog:
    source: str
    chain_id: int
    tx_hash: str  # 0x..., lower case
    log_index: int
    block_number: int
    block_hash: str
    args: dict[str, Any]

    @property
    def key(self) -> str:
        return event_key(self.chain_id, self.tx_hash, self.log_index)


@dataclass(slots=True)
class LogBatch:
    chain_id: int
    head: int
    from_block: int
    to_block: int  # from_block - 1 when there was nothing confirmed to read
    logs: list[ChainLog] = field(default_factory=list)
    reorg: ChainReorg | None = None
    _hashes: dict[int, str] = field(default_factory=dict)
    _seen: dict[str, int] = field(default_factory=dict)
    _dropped_blocks: list[int] = field(default_factory=list)
    _base_next: int = 0  # the cursor this batch was read from: commit refuses a stale batch


class ChainConnector:
    """One chain, one cursor namespace. Single owner: one listener task per (chain, name) at a time."""

    def __init__(self, w3: AsyncWeb3, chain_id: int, redis: Redis, sources: list[LogSource], *,
                 start_block: int, confirmations: int, name: str = "listener", max_block_range: int = 2000,
                 reorg_window: int = 256, key_prefix: str = "chain") -> None:
        if confirmations < 0 or max_block_range < 1 or reorg_window < 1:
            raise ValueError("confirmations >= 0, max_block_range >= 1 and reorg_window >= 1 are required")
        self.w3 = w3
        self.chain_id = chain_id
        self.sources = list(sources)
        self.start_block = start_block
        self.confirmations = confirmations
        self.max_block_range = max_block_range
        self.reorg_window = reorg_window
        self.store = LogCursorStore(redis, f"{key_prefix}:{chain_id}:{name}")
        self._state: CursorState | None = None

    async def state(self) -> CursorState:
        if self._state is None:
            self._state = await self.store.load(self.start_block)
        return self._state

    async def head(self) -> int:
        return await self.w3.eth.block_number

    async def _hash_of(self, number: int) -> str | None:
        try:
            block = await self.w3.eth.get_block(number)
        except BlockNotFound:
            return None
        return block["hash"].to_0x_hex()

    async def _find_ancestor(self, state: CursorState) -> int | None:
        """The newest processed block whose stored hash the chain still has; None if none in the window does."""
        for number in sorted(state.hashes, reverse=True):
            if await self._hash_of(number) == state.hashes[number]:
                return number
        return None

    async def fetch(self) -> LogBatch:
        """Read the next confirmed range (without committing it). Call `commit(batch)` once it is handled."""
        state = await self.state()
        head = await self.head()
        next_block = state.next_block
        reorg = None
        dropped: list[int] = []
        seen = dict(state.seen)
        last = next_block - 1
        if last in state.hashes and await self._hash_of(last) != state.hashes[last]:
            ancestor = await self._find_ancestor(state)
            if ancestor is None:
                # Hashes are kept only for range ends and blocks with logs; none survived. Re-read the whole kept
                # window: every key handed out within it is still in `seen`, so nothing comes out twice.
                ancestor = max(self.start_block - 1, last - self.reorg_window)
            dropped = [n for n in state.hashes if n > ancestor]
            orphaned = {k for k, n in seen.items() if n > ancestor}
            reorg = ChainReorg(self.chain_id, ancestor, last - ancestor, tuple(sorted(orphaned)))
            next_block = ancestor + 1

        safe = head - self.confirmations
        to_block = min(safe, next_block + self.max_block_range - 1)
        batch = LogBatch(self.chain_id, head, next_block, max(to_block, next_block - 1), reorg=reorg,
                         _dropped_blocks=dropped, _base_next=state.next_block)
        if to_block < next_block:
            return batch
        before = await self._hash_of(to_block)
        results = await asyncio.gather(*(
            s.event().get_logs(from_block=next_block, to_block=to_block, argument_filters=s.argument_filters)
            for s in self.sources))
        after = await self._hash_of(to_block)
        if before is None or before != after:
            # The range changed under the read (a reorg deeper than the confirmations, right now): hand out
            # nothing and read again next time rather than mix two chains.
            batch.to_block = next_block - 1
            return batch
        found: list[ChainLog] = []
        for source, logs in zip(self.sources, results):
            for entry in logs:
                log = ChainLog(source.name, self.chain_id, entry["transactionHash"].to_0x_hex().lower(),
                               entry["logIndex"], entry["blockNumber"], entry["blockHash"].to_0x_hex(),
                               dict(entry["args"]))
                batch._hashes[log.block_number] = log.block_hash
                if log.key in seen:  # handed out before (re-read after a reorg or a crash): record, do not repeat
                    batch._seen[log.key] = log.block_number
                    continue
                batch._seen[log.key] = log.block_number
                found.append(log)
        found.sort(key=lambda x: (x.block_number, x.log_index))
        batch.logs = found
        batch._hashes[to_block] = after
        if reorg is not None and reorg.orphaned:
            # Only blocks this batch re-read can prove a key gone; later ones are judged by the next batches.
            still_gone = tuple(k for k in reorg.orphaned if k not in batch._seen and seen[k] <= to_block)
            batch.reorg = ChainReorg(reorg.chain_id, reorg.ancestor, reorg.depth, still_gone)
        return batch

    async def commit(self, batch: LogBatch) -> None:
        """Move the cursor past the batch (and forget what the kept window no longer needs)."""
        state = await self.state()
        if batch._base_next != state.next_block:
            raise RuntimeError(f"stale batch: read from cursor {batch._base_next}, cursor is {state.next_block}")
        next_block = batch.to_block + 1
        hashes = {n: h for n, h in state.hashes.items() if n not in batch._dropped_blocks}
        hashes.update(batch._hashes)
        floor = next_block - self.reorg_window
        dropped_blocks = list(batch._dropped_blocks) + [n for n in hashes if n < floor]
        hashes = {n: h for n, h in hashes.items() if n >= floor}
        seen = dict(state.seen)
        seen.update(batch._seen)
        dropped_keys = [k for k, n in seen.items() if n < floor]
        seen = {k: n for k, n in seen.items() if n >= floor}
        new_state = CursorState(next_block, hashes, seen)
        await self.store.save(new_state, dropped_blocks=dropped_blocks, dropped_keys=dropped_keys,
                              new_hashes=batch._hashes, new_seen=batch._seen)
        self._state = new_state

    async def poll(self, handler: Callable[[LogBatch], Awaitable[None]] | None = None) -> LogBatch:
        """fetch -> handler(batch) -> commit. If the handler raises, nothing is committed (the batch comes again)."""
        batch = await self.fetch()
        if handler is not None:
            await handler(batch)
        await self.commit(batch)
        return batch

    async def catch_up(self, handler: Callable[[LogBatch], Awaitable[None]] | None = None) -> list[LogBatch]:
        """Poll until the cursor reaches the confirmed head (several bounded ranges after a long stop)."""
        batches = []
        while True:
            batch = await self.poll(handler)
            batches.append(batch)
            if batch.to_block >= batch.head - self.confirmations:
                return batches
