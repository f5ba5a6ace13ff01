"""The users of bench/flow.py, as one Ray actor: it sends their NewIndexOrders to the `orders-{k}` shards and reads
the shards' reports hand-offs as the gateway does, so that "filled" is seen as soon as it is stored (no polling).

One actor with a linger, because a real gateway batches concurrent sessions into one `handle_each` per shard:
100 users as 100 separate calls would measure the bench, not the flow."""
from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

import ray

import core  # noqa: F401  (the project's decimal context in the worker)
from actors.order_books import report_of
from actors.order_shards import shard_of_user
from core.index_order import user_key
from core.side import Side
from protocol.envelope import UserRef
from protocol.indexmaker_app import InvoiceIssued, NewOrder, OrderAccepted, OrderProgress
from store.handoff import Entry, Handoff, follow
from store.streams import shard_reports

TERMINAL = ("filled", "canceled", "rejected")


@ray.remote(num_cpus=0)
class FlowDriver:
    def __init__(self, shard_names: list[str], namespace: str, chain_id: int, linger_ms: int = 1) -> None:
        self.shard_names = shard_names
        self.namespace = namespace
        self.chain_id = chain_id
        self.linger_s = linger_ms / 1000
        self._shards: list[Any] | None = None
        self._waiters: dict[tuple[str, str], asyncio.Future] = {}
        self._first_fill: dict[tuple[str, str], float] = {}  # the first report with units filled
        self._queued: dict[int, list[tuple[NewOrder, asyncio.Future]]] = {}
        self._flush_task: asyncio.Task | None = None
        # Orders filled and orders invoiced (their mint landed): the bench waits for the one to cover the other.
        self._filled: set[tuple[str, str]] = set()
        self._invoiced: set[tuple[str, str]] = set()
        self._invoices: dict[tuple[str, str], Any] = {}  # the invoices themselves, for invoices()
        self._invoices_caught_up = asyncio.Event()
        self._invoices_caught_up.set()
        self.handle_calls = 0
        self.reports = 0

    def _shard(self, k: int) -> Any:
        if self._shards is None:
            self._shards = [ray.get_actor(n, namespace=self.namespace) for n in self.shard_names]
        return self._shards[k]

    # ------------------------------------------------------------------ reports (read from the shards' hand-offs)
    async def follow(self, redis_url: str, key_prefix: str, shards: int) -> None:
        import redis.asyncio as aioredis

        handoffs = {shard_reports(key_prefix, k): k for k in range(shards)}
        cursors = {h: 0 for h in handoffs}

        async def apply(handoff: Handoff, entries: list[Entry]) -> None:
            reports = [report_of(raw) for _, raw in entries]
            await self.on_reports(handoffs[handoff], reports[0].seq, reports)
            cursors[handoff] = entries[-1][0]

        async def pause(e: Exception) -> None:
            raise e  # the bench's store does not go away: fail loudly

        self._follow = asyncio.ensure_future(follow(aioredis.Redis.from_url(redis_url), lambda: cursors, apply,
                                                    count=5_000, block_ms=1_000, pause=pause))

    async def on_reports(self, shard: int, seq_from: int, reports: list) -> None:
        now = time.monotonic()
        for r in reports:
            self.reports += 1
            resp = r.response
            if isinstance(resp, InvoiceIssued):
                self._invoiced.add((user_key(resp.user.address), resp.invoice.cl_ord_id))
                self._invoices[(user_key(resp.user.address), resp.invoice.cl_ord_id)] = resp.invoice
                if self._filled <= self._invoiced:
                    self._invoices_caught_up.set()
                continue
            if not isinstance(resp, OrderProgress):
                continue
            key = (user_key(resp.user.address), resp.client_order_id)
            if resp.status == "filled" and resp.filled_quantity > 0 and key not in self._invoiced:
                self._filled.add(key)
                self._invoices_caught_up.clear()
            if resp.filled_quantity > 0 and key in self._waiters:
                self._first_fill.setdefault(key, now)
            if resp.status in TERMINAL:
                fut = self._waiters.get(key)
                if fut is not None and not fut.done():
                    fut.set_result((now, resp.status, str(resp.filled_quantity), str(resp.collateral_spent)))

    # ------------------------------------------------------------------ requests, batched per shard
    async def _submit(self, req: NewOrder) -> Any:
        k = shard_of_user(req.user.address, len(self.shard_names))
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        self._queued.setdefault(k, []).append((req, fut))
        if self._flush_task is None or self._flush_task.done():
            self._flush_task = asyncio.ensure_future(self._flush())
        return await fut

    async def _flush(self) -> None:
        """Until nothing is queued: requests that arrive while a call is out go in the next one (not stranded until
        some later request starts another flush)."""
        while True:
            await asyncio.sleep(self.linger_s)  # let the requests of concurrent users gather: one call per shard
            queued, self._queued = self._queued, {}
            if not queued:
                return
            self.handle_calls += len(queued)
            groups = list(queued.items())
            answers = await asyncio.gather(*(self._shard(k).handle_each.remote([r for r, _ in items])
                                             for k, items in groups))
            for (_, items), answer in zip(groups, answers):
                for (_, fut), responses in zip(items, answer):
                    fut.set_result(responses)

    # ------------------------------------------------------------------ the users
    async def run(self, users: list[str], orders_per_user: int, amount: str | list[str], index: str | list[str],
                  tag: str, timeout_s: float) -> dict[str, Any]:
        """Every user sends `orders_per_user` orders one after the other (the next once the previous is closed),
        all users at once; `index` and `amount` are every user's, or one per user. Returns per order: user, index,
        amount, client order id, round, sent and closed times (monotonic, this process), status."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        records: list[dict[str, Any]] = []

        indexes = [index] * len(users) if isinstance(index, str) else index
        amounts = [amount] * len(users) if isinstance(amount, str) else amount

        async def user(addr: str, index: str, amount: str) -> None:
            for i in range(orders_per_user):
                cid = f"{tag}-{i}"
                key = (user_key(addr), cid)
                fut: asyncio.Future = loop.create_future()
                self._waiters[key] = fut  # before the request: the report may come before the answer
                sent, sent_ms = time.monotonic(), time.time_ns() // 1_000_000  # wall ms: the exchange's clock
                responses = await self._submit(NewOrder(UserRef(self.chain_id, addr), cid, index, Side.BUY,
                                                        Decimal(amount)))
                if not any(isinstance(r, OrderAccepted) for r in responses):
                    records.append({"user": addr, "index": index, "amount": amount, "cl_ord_id": cid, "round": i,
                                    "sent": sent, "closed": None, "status": f"refused {responses!r}"})
                    return
                try:
                    closed, status, filled, spent = await asyncio.wait_for(fut, max(0.0, deadline - loop.time()))
                except asyncio.TimeoutError:
                    records.append({"user": addr, "index": index, "amount": amount, "cl_ord_id": cid, "round": i,
                                    "sent": sent, "closed": None, "status": "timeout"})
                    return
                finally:
                    self._waiters.pop(key, None)
                records.append({"user": addr, "index": index, "amount": amount, "cl_ord_id": cid, "round": i,
                                "sent": sent, "closed": closed, "status": status,
                                "sent_ms": sent_ms, "first_fill": self._first_fill.pop(key, None),
                                "filled_units": filled,
                                "spent": spent})
                if status != "filled":
                    return

        started = time.monotonic()
        await asyncio.gather(*(user(a, ix, am) for a, ix, am in zip(users, indexes, amounts)))
        return {"started": started, "records": records}

    async def wait_invoiced(self, timeout_s: float) -> int:
        """Until every order seen filled has its invoice (its mint landed); returns how many are still owed one
        (0 unless the timeout came first)."""
        try:
            await asyncio.wait_for(self._invoices_caught_up.wait(), timeout_s)
        except asyncio.TimeoutError:
            pass
        return len(self._filled - self._invoiced)

    async def invoices(self, orders: list[tuple[str, str]]) -> list[dict[str, Any] | None]:
        """The Mint Invoices the users received for these (address, client order id), as plain data (exact
        decimal strings); None for an order without one."""
        out = []
        for addr, cid in orders:
            inv = self._invoices.get((user_key(addr), cid))
            out.append(None if inv is None else inv.model_dump(mode="json"))
        return out

    async def stats(self) -> dict[str, int]:
        return {"handle_calls": self.handle_calls, "reports": self.reports}
