"""`minter`: the mint step (DESIGN.md step 7), between the order-book shards and `chain`.

Shards push orders that became mintable (one call per commit); the minter queues them by order id
(core/mint_queue.py), mints up to `batch` in ONE `chain.mint` call (keyed per order, nonces in batch order: they
land together, a restart never mints twice) and tells each shard what landed in ONE `minted_batch` call. Nothing
is polled. It stores nothing: on each (re)start it asks every shard `mint_pending()` once.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Sequence

import ray
from web3 import Web3

import core  # noqa: F401  (decimal context in the worker)
from actors.chain_actor import TokenMint
from actors.logs import setup_logging
from actors.metrics import process_metrics
from actors.order_shards import orders_shard_name, shard_of_order
from actors.ray_context import start_named
from core.mint_queue import MintQueue
from core.mint_request import MintRequest

log = logging.getLogger(__name__)

MINTER_NAME = "minter"


@dataclass(frozen=True)
class MinterOptions:
    namespace: str | None = None
    chain_name: str = "chain"
    name: str = MINTER_NAME
    #: The order-book shards asked for what they owe on a (re)start, and told what landed.
    order_shards: int = 1
    #: Most mints in one call to `chain`.
    batch: int = 100
    linger_ms: int = 20
    retry_initial_ms: int = 200
    retry_max_ms: int = 5_000

    @classmethod
    def from_settings(cls, settings: Any, order_shards: int, **overrides: Any) -> "MinterOptions":
        values: dict[str, Any] = {"order_shards": order_shards, "batch": settings.mint.batch,
                                  "linger_ms": settings.mint.linger_ms,
                                  "retry_initial_ms": settings.mint.retry_initial_ms,
                                  "retry_max_ms": settings.mint.retry_max_ms}
        values.update(overrides)
        return cls(**values)


def _now_ms() -> int:
    return int(time.monotonic() * 1000)


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0)
class Minter:
    def __init__(self, options: MinterOptions) -> None:
        setup_logging(options.name)
        self.o = options
        self.queue = MintQueue(options.retry_initial_ms, options.retry_max_ms)
        self.counts = {"pushes": 0, "pushed": 0, "caught_up": 0, "mint_calls": 0, "minted": 0, "failed": 0,
                       "skipped_zero": 0, "report_calls": 0}
        self.errors: list[str] = []
        self.minted_txs: dict[str, str] = {}
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._catch_up: list[asyncio.Task] = []
        try:
            asyncio.get_running_loop()
            self._begin()  # on creation and on every restart (Ray re-runs __init__ on the actor's loop)
        except RuntimeError:
            pass

    def _begin(self) -> None:
        self._stop.clear()
        self._catch_up = [asyncio.ensure_future(self._ask_shard(k)) for k in range(self.o.order_shards)]
        self._task = asyncio.ensure_future(self._run())

    async def start(self) -> bool:
        if self._task is None or self._task.done():
            self._begin()
        return True

    async def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        for t in self._catch_up:
            t.cancel()
        if self._task is not None:
            await self._task

    # ------------------------------------------------------------------ in: pushes and catch-up
    async def mint(self, shard: int, requests: Sequence[MintRequest]) -> int:
        """A shard's orders that became mintable (fire and forget). Returns how many were new here."""
        self.counts["pushes"] += 1
        added = self.queue.add(requests)
        self.counts["pushed"] += added
        if added:
            self._wake.set()
        return added

    async def _ask_shard(self, k: int) -> None:
        """What shard k owes, once (its own pushes cover what comes after); retried while it is not there."""
        failures = 0
        while not self._stop.is_set():
            try:
                shard = ray.get_actor(orders_shard_name(k), namespace=self.o.namespace)
                owed = await shard.mint_pending.remote()
                added = self.queue.add(owed)
                self.counts["caught_up"] += added
                if added:
                    self._wake.set()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001  (not started yet, or restarting: asked again after a backoff)
                failures += 1
                log.warning("minter: cannot ask %s what it owes (%s); retrying", orders_shard_name(k), exc)
                try:
                    await asyncio.wait_for(self._stop.wait(), self.queue.delay_ms(failures) / 1000)
                except asyncio.TimeoutError:
                    pass

    async def _pause(self, ms: int | None) -> None:
        """Sleep until woken (a push, stop) or `ms` passed (None: until woken)."""
        try:
            await asyncio.wait_for(self._wake.wait(), None if ms is None else ms / 1000)
        except asyncio.TimeoutError:
            pass

    # ------------------------------------------------------------------ out: mint and report
    async def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            batch = self.queue.take(self.o.batch, _now_ms())
            if not batch:
                ready = self.queue.next_ready_ms()
                await self._pause(None if ready is None else max(1, ready - _now_ms()))  # a retry's backoff
                continue
            if len(batch) < self.o.batch and self.o.linger_ms > 0:
                await asyncio.sleep(self.o.linger_ms / 1000)  # let the other shards' pushes of this batch arrive
                batch += self.queue.take(self.o.batch - len(batch), _now_ms())
            try:
                await self._mint_batch(batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001  (a bug here must not stop minting: retried after a backoff)
                self._note_error(f"mint batch failed: {type(exc).__name__}: {exc}")
                self.queue.failed([m.order_id for m in batch], _now_ms())

    def _note_error(self, text: str) -> None:
        self.errors = (self.errors + [text])[-20:]
        log.warning("minter: %s", text)

    async def _mint_batch(self, batch: list[MintRequest]) -> None:
        # minted_units is already rounded DOWN to the token's decimals (core.mint_request): never above the fills.
        zero = [m.order_id for m in batch if m.minted_units <= 0]
        if zero:
            self.counts["skipped_zero"] += len(zero)
            self.queue.dropped(zero)
        # Shards key users by the lower-cased address; web3 wants the checksum form of the same address.
        asks = [TokenMint(m.order_id, m.index, Web3.to_checksum_address(m.user), m.minted_units)
                for m in batch if m.minted_units > 0]
        if not asks:
            return
        self.counts["mint_calls"] += 1
        started = time.perf_counter()
        try:
            chain = ray.get_actor(self.o.chain_name, namespace=self.o.namespace)
            results = await chain.mint.remote(asks)
        except Exception as exc:  # noqa: BLE001  (chain restarting: the keyed mints are asked again, none twice)
            self.counts["failed"] += len(asks)
            self._note_error(f"chain.mint failed: {type(exc).__name__}: {exc}")
            self.queue.failed([a.index_order_id for a in asks], _now_ms())
            return
        process_metrics().observe("indexmaker_mint_seconds", time.perf_counter() - started)  # once per batch
        landed: dict[int, list[tuple[str, str]]] = defaultdict(list)
        failed: list[str] = []
        for r in results:
            if r.ok and r.tx_hash:
                landed[shard_of_order(r.index_order_id, self.o.order_shards)].append((r.index_order_id, r.tx_hash))
            else:
                failed.append(r.index_order_id)
                self._note_error(f"mint of {r.index_order_id} failed: {r.error}")
        if failed:
            self.counts["failed"] += len(failed)
            self.queue.failed(failed, _now_ms())
        await asyncio.gather(*(self._report(k, items) for k, items in landed.items()))

    async def _report(self, k: int, items: list[tuple[str, str]]) -> None:
        """Tell shard k what landed (one call); an order it could not take is retried (the same tx comes back)."""
        self.counts["report_calls"] += 1
        try:
            shard = ray.get_actor(orders_shard_name(k), namespace=self.o.namespace)
            answers = await shard.minted_batch.remote(items)
        except Exception as exc:  # noqa: BLE001  (shard restarting: its orders are still mint-pending there)
            self._note_error(f"{orders_shard_name(k)}.minted_batch failed: {type(exc).__name__}: {exc}")
            self.queue.failed([oid for oid, _ in items], _now_ms())
            return
        refused = []
        for (oid, tx), answer in zip(items, answers):
            if isinstance(answer, str):
                refused.append(oid)
                self._note_error(f"{orders_shard_name(k)} refused the mint of {oid} in {tx}: {answer}")
            else:
                self.minted_txs[oid] = tx
                self.counts["minted"] += 1
                self.queue.landed([oid])
        if refused:
            self.counts["failed"] += len(refused)
            self.queue.failed(refused, _now_ms())

    async def inspect(self) -> dict[str, Any]:
        return {"counts": dict(self.counts), "errors": list(self.errors), "minted": dict(self.minted_txs),
                "owed": len(self.queue), "mints_owed": [m.to_dict() for m in self.queue.waiting()],
                "in_flight": self.queue.in_flight()}


def start_minter(options: MinterOptions, *, detached: bool = False) -> Any:
    return start_named(Minter, options.name, options.namespace, detached, options)
