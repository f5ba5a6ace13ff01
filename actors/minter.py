"""`minter`: the mint step of the main flow (DESIGN.md step 7), between the solver and the `chain` actor.

Every poll it takes the mints the solver owes (`pending_mints()`, oldest first) in batches, asks `chain` to mint
them in ONE call (`mint([MintRequest])`, idempotent per index order id: a keyed transaction, so a minter or chain
restarted at any moment never mints twice), then tells the solver `minted(order_id, tx)` for each one that landed,
and the order's shard builds, stores and reports the Mint Invoice. It holds no state of its own: what is owed lives
in the solver (Redis), what was sent lives in the chain actor's TxSender (Redis); a restart simply asks again.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import ray
from web3 import Web3

import core  # noqa: F401  (decimal context in the worker)
from actors.chain_actor import MintRequest as ChainMint
from actors.logs import setup_logging
from actors.metrics import process_metrics

log = logging.getLogger(__name__)

MINTER_NAME = "minter"


@dataclass(frozen=True)
class MinterOptions:
    namespace: str | None = None
    solver_name: str = "solver"
    chain_name: str = "chain"
    name: str = MINTER_NAME
    #: Most mints in one call to `chain`.
    batch: int = 100
    poll_ms: int = 100


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0)
class Minter:
    def __init__(self, options: MinterOptions) -> None:
        setup_logging(options.name)
        self.o = options
        self.counts = {"polls": 0, "mint_calls": 0, "minted": 0, "failed": 0, "skipped_zero": 0}
        self.errors: list[str] = []
        self.minted_txs: dict[str, str] = {}
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None
        try:
            asyncio.get_running_loop()
            self._task = asyncio.ensure_future(self._run())  # on creation and on every restart
        except RuntimeError:
            pass

    async def start(self) -> bool:
        if self._task is None or self._task.done():
            self._stop.clear()
            self._task = asyncio.ensure_future(self._run())
        return True

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                await self.step()
            except Exception as exc:  # noqa: BLE001  (a peer restarting: asked again next poll)
                self.errors = (self.errors + [f"{type(exc).__name__}: {exc}"])[-20:]
                log.warning("mint step failed: %s", exc)
            try:
                await asyncio.wait_for(self._stop.wait(), self.o.poll_ms / 1000)  # the polling interval
            except asyncio.TimeoutError:
                pass

    async def step(self) -> int:
        """One pass: mint what is owed, batch by batch. Returns how many mints landed."""
        self.counts["polls"] += 1
        solver = ray.get_actor(self.o.solver_name, namespace=self.o.namespace)
        chain = ray.get_actor(self.o.chain_name, namespace=self.o.namespace)
        owed = await solver.pending_mints.remote()
        landed = 0
        for i in range(0, len(owed), self.o.batch):
            part = [m for m in owed[i:i + self.o.batch]]
            # minted_units is already rounded DOWN to the token's decimals (core.mint_request): never above the fills.
            # Shards key users by the lower-cased address; web3 wants the checksum form of the same address.
            asks = [ChainMint(m.order_id, Web3.to_checksum_address(m.user), m.minted_units)
                    for m in part if m.minted_units > 0]
            self.counts["skipped_zero"] += len(part) - len(asks)
            if not asks:
                continue
            self.counts["mint_calls"] += 1
            started = time.perf_counter()
            results = await chain.mint.remote(asks)
            process_metrics().observe("indexmaker_mint_seconds", time.perf_counter() - started)  # once per batch
            for r in results:
                if r.ok and r.tx_hash:
                    await solver.minted.remote(r.index_order_id, r.tx_hash)
                    self.minted_txs[r.index_order_id] = r.tx_hash
                    self.counts["minted"] += 1
                    landed += 1
                else:
                    self.counts["failed"] += 1
                    self.errors = (self.errors + [f"{r.index_order_id}: {r.error}"])[-20:]
                    log.warning("mint failed: %s", r.error, extra={"order_id": r.index_order_id})
        return landed

    async def inspect(self) -> dict[str, Any]:
        return {"counts": dict(self.counts), "errors": list(self.errors), "minted": dict(self.minted_txs)}


def start_minter(options: MinterOptions, *, detached: bool = False) -> Any:
    opts: dict[str, Any] = {"name": options.name, "get_if_exists": True}
    if options.namespace is not None:
        opts["namespace"] = options.namespace
    if detached:
        opts["lifetime"] = "detached"
    handle = Minter.options(**opts).remote(options)
    handle.start.remote()
    return handle
