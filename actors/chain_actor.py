"""The `chain` actor: events in, calls out (DESIGN.md, Actors), thin around chain/ and core/.

In: it polls the custody deposit listeners on Arbitrum and Base and hands each batch to the `router` in one call
per kind (reorged-out deposits, then new ones), committing the cursor only after (both idempotent per deposit
key); with the order shards, it also follows every index token sent back to custody on Base and hands each batch
to the senders' shards (one call per shard; a reorg's keys to every shard), which credit them for redemption.
Out: the router's hops and index-token mints, all through keyed TxSenders, so a restart resends nothing.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import ray

import core  # noqa: F401  (decimal context in the worker)
from actors.logs import setup_logging
from actors.order_shards import ShardedTokenSink, orders_shard_name
from chain.deployment import WorldState
from chain.deposit_feed import hand_over
from chain.keys import mnemonic_from_env
from chain.route_effects import BridgeSent, FillSeen, TransferSent
from chain.stack import ChainStack
from chain.token_deposit_feed import token_deposits_from_batch
from core.config import ChainConfig
from store.retry import RetryPolicy

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TokenMint:
    """One index-token mint as the chain sees it: the index's token, recipient and amount, keyed by the index order
    id (unique across indexes)."""

    index_order_id: str
    index: str
    recipient: str
    quantity: Decimal  # index units, already rounded down to the token's decimals


@dataclass(frozen=True, slots=True)
class MintResult:
    index_order_id: str
    tx_hash: str | None
    ok: bool
    error: str | None = None


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0)
class ChainActor:
    def __init__(self, world_file: str, redis_url: str, config: ChainConfig, *, router_name: str | None = "router",
                 router_namespace: str | None = None, poll_s: float = 0.1, retry: RetryPolicy | None = None,
                 order_shards: int | None = None) -> None:
        """`order_shards`: the `orders-{k}` shards (in the router's namespace) to credit index-token deposits in;
        None: token deposits are not followed (their cursor waits for a start with shards)."""
        import redis.asyncio as aioredis

        setup_logging("chain")

        self.config = config
        self.state = WorldState.load(world_file)
        self.redis = aioredis.Redis.from_url(redis_url)
        self.stack = ChainStack.build(self.state, self.redis, config, mnemonic=mnemonic_from_env(), retry=retry)
        self.router_name = router_name
        self.router_namespace = router_namespace
        self.poll_s = poll_s
        self._router: Any = None
        self.order_shards = order_shards
        self._token_sink: ShardedTokenSink | None = None
        self.token_unit = Decimal(1).scaleb(-config.index_token_decimals)
        self._task: asyncio.Task | None = None
        self._stop = asyncio.Event()
        self._start_lock = asyncio.Lock()
        self.last_error: str | None = None
        self.deposits_forwarded = 0
        self.deposits_reversed = 0
        self.token_deposits_forwarded = 0
        self.token_deposits_reversed = 0
        # Start at once, on creation and on every restart (Ray re-runs __init__ on the actor's running loop), so
        # a restarted actor resumes by itself; start() stays idempotent for launchers that call it.
        try:
            asyncio.get_running_loop().create_task(self.start())
        except RuntimeError:  # no loop: constructed outside Ray (a test); the caller starts it
            pass

    async def start(self) -> bool:
        """Finish what a crash left recorded, then start listening. Idempotent, also when called while the start
        scheduled by __init__ is still recovering (the lock): two listeners would hand every deposit over twice."""
        async with self._start_lock:
            if self._task is None or self._task.done():
                await self.stack.recover()
                self._stop.clear()
                self._task = asyncio.create_task(self._listen())
        return True

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task

    def _router_handle(self) -> Any:
        if self._router is None and self.router_name:
            self._router = ray.get_actor(self.router_name, namespace=self.router_namespace)
        return self._router

    async def _forward(self, batch: Any) -> None:
        if batch.logs or (batch.reorg is not None and batch.reorg.orphaned):
            router = self._router_handle()
            if router is None:
                raise RuntimeError("no router to hand deposits to")
            if batch.reorg is not None and batch.reorg.orphaned:
                log.warning("chain %s: deposits handed out before were dropped by a reorg: %s", batch.chain_id,
                            batch.reorg.orphaned)

            async def accept(deposits: list) -> None:
                await router.accept.remote(deposits)

            async def reverse(keys: list[str]) -> None:
                await router.reverse.remote(keys)

            accepted, reversed_ = await hand_over(batch, self.config.usdc_unit, accept, reverse)
            self.deposits_forwarded += accepted
            self.deposits_reversed += reversed_

    def _tokens_handle(self) -> ShardedTokenSink:
        if self._token_sink is None:
            assert self.order_shards
            self._token_sink = ShardedTokenSink([ray.get_actor(orders_shard_name(k), namespace=self.router_namespace)
                                                 for k in range(self.order_shards)])
        return self._token_sink

    async def _forward_tokens(self, batch: Any) -> None:
        """Index tokens sent back to custody: reversals first, then the new ones, each to the shards (idempotent per
        deposit key there); raising leaves the cursor where it was, so the batch comes again."""
        orphaned = batch.reorg is not None and batch.reorg.orphaned
        if not batch.logs and not orphaned:
            return
        sink = self._tokens_handle()
        if orphaned:
            log.warning("chain %s: token deposits handed out before were dropped by a reorg: %s", batch.chain_id,
                        batch.reorg.orphaned)
        accepted, reversed_ = await hand_over(batch, self.token_unit, sink.credit, sink.reverse,
                                              extract=token_deposits_from_batch)
        self.token_deposits_forwarded += accepted
        self.token_deposits_reversed += reversed_

    async def _listen(self) -> None:
        while not self._stop.is_set():
            errors = []
            polls = [(listener, self._forward) for listener in self.stack.deposit_listeners]
            if self.order_shards:
                polls.append((self.stack.token_deposits, self._forward_tokens))
            for listener, handler in polls:  # each chain on its own: one node down stops only it
                try:
                    await listener.poll(handler)
                except Exception as exc:  # node or a consumer unreachable: the same range is read again next time
                    errors.append(f"chain {listener.chain_id}: {type(exc).__name__}: {exc}")
                    log.warning("deposit poll on chain %s failed: %s", listener.chain_id, exc)
            self.last_error = "; ".join(errors) or None
            try:
                await asyncio.wait_for(self._stop.wait(), self.poll_s)  # the polling interval
            except asyncio.TimeoutError:
                pass

    # --- calls out: the router's chain hops ---------------------------------------------------------------------

    async def bridge(self, key: str, amount: Decimal) -> BridgeSent:
        return await self.stack.effects.bridge(key, amount)

    async def find_fill(self, deposit_id: int, from_block: int) -> FillSeen | None:
        return await self.stack.effects.find_fill(deposit_id, from_block)

    async def fill_expired(self, fill_deadline: int) -> bool:
        return await self.stack.effects.fill_expired(fill_deadline)

    async def transfer(self, key: str, address: str, amount: Decimal, *, from_custody: bool = False
                       ) -> TransferSent:
        return await self.stack.effects.transfer(key, address, amount, from_custody=from_custody)

    # --- calls out: users' withdrawals (Base wallet -> Across -> its account on Arbitrum -> the user) ------------

    async def withdrawal_bridge(self, key: str, amount: Decimal) -> BridgeSent:
        """Bridge `amount` from the Base wallet to its own account on Arbitrum (never custody's: its deposit listener
        would credit the relayer's fill), once per `key` (again: the same deposit)."""
        return await self._returns().bridge(key, amount)

    async def withdrawal_fill(self, deposit_id: int, from_block: int) -> FillSeen | None:
        return await self._returns().find_fill(deposit_id, from_block)

    async def withdrawal_fill_expired(self, fill_deadline: int) -> bool:
        return await self._returns().fill_expired(fill_deadline)

    async def withdrawal_pay(self, key: str, address: str, amount: Decimal) -> TransferSent:
        """Pay the user from the Base wallet's account on Arbitrum, once per `key`."""
        return await self._returns().transfer(key, address, amount)

    def _returns(self) -> Any:
        if self.stack.return_effects is None:
            raise RuntimeError("this chain stack has no return route (withdrawals)")
        return self.stack.return_effects

    # --- calls out: mints, batched ------------------------------------------------------------------------------

    async def mint(self, requests: list[TokenMint]) -> list[MintResult]:
        """Mint for many index orders in one call; each at most once per index order id, whatever restarts.
        The transactions are recorded in the order of `requests` (each reaches the TxSender's FIFO lock before
        its first await, in the order gather starts them), so their nonces follow it and they land together."""
        async def one(r: TokenMint) -> MintResult:
            minter = self.stack.minters.get(r.index)
            if minter is None:  # a served index without a token in the world: a configuration error, said per order
                return MintResult(r.index_order_id, None, False,
                                  f"no token for index {r.index} (tokens: {sorted(self.stack.minters)})")
            try:
                res = await minter.mint(r.index_order_id, r.recipient, r.quantity)
                return MintResult(r.index_order_id, res.tx_hash, res.ok)
            except Exception as exc:  # reported per order; the others go on
                return MintResult(r.index_order_id, await minter.minted(r.index_order_id), False,
                                  f"{type(exc).__name__}: {exc}")
        return list(await asyncio.gather(*(one(r) for r in requests)))

    async def index_supplies(self) -> dict[str, str]:
        """Each index token's totalSupply on Base in index units (exact: base units over 10^decimals), by index
        symbol (the reserves check reads it)."""
        tokens = self.stack.base_c.index_tokens
        units = await asyncio.gather(*(t.functions.totalSupply().call() for t in tokens.values()))
        return {index: str(Decimal(int(u)).scaleb(-self.config.index_token_decimals))
                for index, u in zip(tokens, units)}

    async def inspect(self) -> dict[str, Any]:
        cursor = await self.stack.deposits.state()
        base_cursor = await self.stack.base_deposits.state()
        token_cursor = await self.stack.token_deposits.state()
        return {"deposit_cursor": cursor.next_block, "base_deposit_cursor": base_cursor.next_block,
                "deposits_forwarded": self.deposits_forwarded, "deposits_reversed": self.deposits_reversed,
                "token_deposit_cursor": token_cursor.next_block,
                "token_deposits_forwarded": self.token_deposits_forwarded,
                "token_deposits_reversed": self.token_deposits_reversed,
                "listening": self._task is not None and not self._task.done(), "last_error": self.last_error,
                "pending_txs": {s.address: await s.pending_keys() for s in
                                (self.stack.custody_sender, self.stack.wallet_sender, self.stack.solver_sender)},
                "pending_txs_base_custody": await self.stack.base_custody_sender.pending_keys(),
                "pending_txs_arb_wallet": (await self.stack.arb_wallet_sender.pending_keys()
                                           if self.stack.arb_wallet_sender is not None else [])}
