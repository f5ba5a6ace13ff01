"""Sends one account's transactions on one chain so that none is ever paid twice.

The intent is recorded before the effect (DESIGN.md, Persistence): pick the nonce, sign, store {idempotency key ->
nonce, hash, signed bytes} in one MULTI, then broadcast. Every later attempt for the key rebroadcasts the same
bytes, and a nonce is mined once, so no retry spends twice. `recover()` sends intents a crash left unsent, so no
recorded nonce stays a gap."""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from redis.asyncio import Redis
from web3 import AsyncWeb3
from web3.exceptions import TransactionNotFound, Web3RPCError

from store.chain_records import NextNonceRecord, TxIntentRecord
from store.retry import RetryPolicy

log = logging.getLogger(__name__)

#: Node answers to a rebroadcast that mean "this transaction (or its nonce) is already in": not errors for us.
_ALREADY = ("already known", "nonce too low", "known transaction", "already imported")
#: Transient transport failures: retry the same bytes.
_TRANSIENT = (ConnectionError, TimeoutError, OSError, asyncio.TimeoutError)


class TxError(RuntimeError):
    """The transaction could not be sent or its fate is unclear; the intent stays recorded (same key resumes)."""


class ConflictingIntent(TxError):
    """The key was used before for a different effect (other recipient or amount): a bug upstream, never resent."""


class NonceTaken(TxError):
    """The recorded nonce was used by another transaction: someone else signs for this account."""


@dataclass(frozen=True, slots=True)
class TxResult:
    key: str
    tx_hash: str
    nonce: int
    block_number: int
    block_hash: str
    status: int  # 1 success, 0 reverted on chain
    gas_used: int
    effective_gas_price: int  # wei
    receipt: Any  # the node's receipt (decode logs from it)
    sent_now: bool  # False when the key had been sent before (a replay)

    @property
    def ok(self) -> bool:
        return self.status == 1

    @property
    def gas_cost_wei(self) -> int:
        return self.gas_used * self.effective_gas_price


class TxSender:
    """One (chain, account). Single owner: do not run two senders for the same account at once."""

    def __init__(self, w3: AsyncWeb3, chain_id: int, account: LocalAccount, redis: Redis, *,
                 key_prefix: str = "tx", receipt_timeout_s: float = 60.0, poll_s: float = 0.02,
                 max_broadcasts: int = 5, retry: RetryPolicy | None = None, confirmations: int = 0) -> None:
        self.w3 = w3
        self.chain_id = chain_id
        self.account = account
        self.redis = redis
        self.namespace = f"{key_prefix}:{chain_id}:{account.address.lower()}"
        self.receipt_timeout_s = receipt_timeout_s
        self.poll_s = poll_s
        self.max_broadcasts = max_broadcasts
        #: The pause after a failed broadcast before the same bytes go again (the [store] policy when None).
        self.retry = retry or RetryPolicy.default()
        self.confirmations = confirmations
        self._lock = asyncio.Lock()

    @property
    def address(self) -> str:
        return self.account.address

    def _k(self, what: str) -> str:
        return f"{self.namespace}:{what}"

    async def intent(self, key: str) -> dict[str, Any] | None:
        raw = await self.redis.hget(self._k("intents"), key)
        return TxIntentRecord.load(raw).model_dump(mode="json") if raw is not None else None

    async def pending_keys(self) -> list[str]:
        return [k.decode() for k in await self.redis.zrange(self._k("pending"), 0, -1)]

    # --- the one entry point ----------------------------------------------------------------------------------------

    async def send(self, key: str, call: Any = None, *, tx: dict[str, Any] | None = None,
                   meta: dict[str, Any] | None = None) -> TxResult:
        """Send `call` (a contract function call) or the raw `tx` fields once per `key`, and wait for its receipt.

        A key seen before returns the first transaction's receipt (`sent_now=False`); `call`/`tx` are then not
        even built, and `meta` (what the effect is: recipient, amount) must match what was recorded, or the
        request is refused as a conflict. A call that would revert raises from estimateGas before anything is
        recorded."""
        meta = dict(meta or {})
        async with self._lock:
            intent = await self.intent(key)
            if intent is None:
                intent = await self._record(key, call, tx, meta)
            elif intent.get("meta", {}) != meta:
                raise ConflictingIntent(f"{key}: recorded for {intent.get('meta')}, now asked for {meta}")
        return await self._see_through(intent, sent_now=intent.get("_fresh", False))

    async def _record(self, key: str, call: Any, tx: dict[str, Any] | None, meta: dict[str, Any]) -> dict[str, Any]:
        raw = await self.redis.get(self._k("next_nonce"))
        stored = NextNonceRecord.load(raw).next_nonce if raw is not None else None
        chain_nonce = await self.w3.eth.get_transaction_count(self.account.address, "pending")
        if stored is not None and stored > chain_nonce:
            # Recorded nonces the chain does not have (a crash before the broadcast, a reorg that dropped a mined
            # one): they go out again first, or ours would wait behind the gap forever.
            await self._fill_gap(chain_nonce, stored)
        nonce = max(stored if stored is not None else 0, chain_nonce)
        base = {"from": self.account.address, "chainId": self.chain_id, "nonce": nonce}
        if call is not None:
            fields = await call.build_transaction(base)
        elif tx is not None:
            fields = {**base, **tx}
            if "gas" not in fields:
                fields["gas"] = await self.w3.eth.estimate_gas(fields)
            if "maxFeePerGas" not in fields and "gasPrice" not in fields:
                latest = await self.w3.eth.get_block("latest")
                tip = await self.w3.eth.max_priority_fee
                fields.update(maxFeePerGas=2 * latest["baseFeePerGas"] + tip, maxPriorityFeePerGas=tip)
        else:
            raise ValueError(f"send({key!r}): nothing to send (no call, no tx) and no recorded intent")
        signed = self.account.sign_transaction(fields)
        intent = {"key": key, "nonce": nonce, "tx_hash": signed.hash.to_0x_hex(),
                  "raw": signed.raw_transaction.to_0x_hex(), "state": "signed", "meta": meta}
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self._k("intents"), key, TxIntentRecord.of(intent).dump())
        pipe.set(self._k("next_nonce"), NextNonceRecord(next_nonce=nonce + 1).dump())
        pipe.zadd(self._k("pending"), {key: nonce})
        pipe.hset(self._k("by_nonce"), nonce, key)
        await pipe.execute()
        return {**intent, "_fresh": True}

    async def _fill_gap(self, first: int, end: int) -> None:
        keys = await self.redis.hmget(self._k("by_nonce"), list(range(first, end)))
        for key in keys:
            intent = await self.intent(key.decode()) if key is not None else None
            if intent is not None and await self._receipt(intent["tx_hash"]) is None:
                try:
                    await self._broadcast(intent)
                except (TxError, *_TRANSIENT) as exc:
                    log.warning("could not push out %s again: %s", intent["key"], exc)

    # --- after the intent exists ------------------------------------------------------------------------------------

    async def _receipt(self, tx_hash: str) -> Any | None:
        try:
            return await self.w3.eth.get_transaction_receipt(tx_hash)
        except TransactionNotFound:
            return None

    async def _broadcast(self, intent: dict[str, Any]) -> None:
        """Send the recorded bytes. 'Already known' / 'nonce too low' are fine: the chain tells us what happened."""
        try:
            await self.w3.eth.send_raw_transaction(intent["raw"])
        except Web3RPCError as exc:
            if not any(s in str(exc).lower() for s in _ALREADY):
                raise TxError(f"{intent['key']}: node refused tx {intent['tx_hash']}: {exc}") from exc

    async def _see_through(self, intent: dict[str, Any], *, sent_now: bool) -> TxResult:
        """Make sure the recorded transaction is mined (rebroadcasting the same bytes if it is not) and return it."""
        deadline = time.monotonic() + self.receipt_timeout_s
        broadcasts = 0
        pacer = self.retry.pacer()
        receipt = None if sent_now else await self._receipt(intent["tx_hash"])
        while receipt is None:
            if broadcasts == 0 or time.monotonic() > deadline:
                if broadcasts >= self.max_broadcasts:
                    raise TxError(f"{intent['key']}: tx {intent['tx_hash']} not mined after {broadcasts} "
                                  f"broadcasts; the intent stays recorded and the same key resumes it")
                if broadcasts > 0 or not sent_now:  # check the chain before any rebroadcast
                    receipt = await self._receipt(intent["tx_hash"])
                    if receipt is not None:
                        break
                    used = await self.w3.eth.get_transaction_count(self.account.address, "latest")
                    if used > intent["nonce"]:
                        receipt = await self._receipt(intent["tx_hash"])  # mined between the two calls?
                        if receipt is None:
                            raise NonceTaken(f"{intent['key']}: nonce {intent['nonce']} was used by another "
                                             f"transaction than {intent['tx_hash']}")
                        break
                broadcasts += 1
                try:
                    await self._broadcast(intent)
                    deadline = time.monotonic() + self.receipt_timeout_s
                    pacer.reset()
                except _TRANSIENT as exc:  # transport trouble: the same bytes go again after a short back-off
                    log.warning("broadcast of %s failed (%s), will retry", intent["key"], exc)
                    deadline = time.monotonic() + pacer.next_delay()
                if intent.get("state") == "signed":
                    intent = {**intent, "state": "sent"}
                    await self.redis.hset(self._k("intents"), intent["key"], TxIntentRecord.of(intent).dump())
            await asyncio.sleep(self.poll_s)  # receipt polling interval (no push from an HTTP node)
            receipt = await self._receipt(intent["tx_hash"])
        if self.confirmations:
            await self._wait_confirmations(receipt["blockNumber"])
            receipt = await self._receipt(intent["tx_hash"])
            if receipt is None:  # reorged out while confirming: the same bytes go again
                return await self._see_through(intent, sent_now=False)
        if intent.get("state") != "mined":
            done = {k: v for k, v in intent.items() if not k.startswith("_")}
            done.update(state="mined", block=receipt["blockNumber"], status=receipt["status"])
            pipe = self.redis.pipeline(transaction=True)
            pipe.hset(self._k("intents"), intent["key"], TxIntentRecord.of(done).dump())
            pipe.zrem(self._k("pending"), intent["key"])
            await pipe.execute()
        return TxResult(key=intent["key"], tx_hash=intent["tx_hash"], nonce=intent["nonce"],
                        block_number=receipt["blockNumber"], block_hash=receipt["blockHash"].to_0x_hex(),
                        status=receipt["status"], gas_used=receipt["gasUsed"],
                        effective_gas_price=receipt["effectiveGasPrice"], receipt=receipt, sent_now=sent_now)

    async def _wait_confirmations(self, block: int) -> None:
        deadline = time.monotonic() + self.receipt_timeout_s
        while await self.w3.eth.block_number < block + self.confirmations:
            if time.monotonic() > deadline:
                raise TxError(f"block {block} did not get {self.confirmations} confirmations in time")
            await asyncio.sleep(self.poll_s)  # block polling interval

    async def recover(self) -> list[TxResult]:
        """On start: see every recorded-but-unmined intent through, in nonce order (no nonce stays a gap)."""
        results = []
        for key in await self.pending_keys():
            intent = await self.intent(key)
            if intent is not None:
                results.append(await self._see_through(intent, sent_now=False))
        return results
