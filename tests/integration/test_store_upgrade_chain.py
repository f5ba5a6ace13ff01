"""A restart onto this code over a Redis the older code wrote (values before records): the router, the chain
listener's cursor and the transaction sender read what they find, and write it back as versioned records."""
from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import redis.asyncio as aioredis
from eth_account import Account

from chain.collateral_router import CollateralRouter, RouterConfig
from chain.collateral_sink import InMemoryLedgers
from chain.log_cursor import LogCursorStore
from chain.tx_sender import TxSender
from core.clock import ManualClock
from core.route_batch import RouteMember

U = Decimal("0.000001")
USER = "0x" + "aa" * 20
QUEUED, ROUTED = "42161:0x01:0", "42161:0x02:0"


class NoEffects:
    """The test only reads and reverses: any outside effect would be a bug."""

    def __getattr__(self, name: str):  # noqa: ANN204
        raise AssertionError(f"route effect {name} called")


def test_the_router_reads_and_reverses_what_the_older_code_stored(redis_server) -> None:
    async def scenario() -> None:
        client = aioredis.Redis.from_url(redis_server.url)
        await client.flushdb()
        try:
            route_v0 = {"route_id": "route-1", "origin_chain_id": 42161, "destination_chain_id": 8453,
                        "members": [{"deposit_key": ROUTED, "user": USER, "amount": "40", "seen_ms": 5}],
                        "unit": "0.000001", "stage": "bridging", "created_ms": 6, "updated_ms": 7, "hops": [],
                        "bridge": {"tx_hash": "0x" + "cd" * 32, "deposit_id": 3, "input_amount": "40",
                                   "output_amount": "39.9", "gas": "0.01"},
                        "fill": None, "transfer": None, "credit": None, "failure": None, "charged": []}
            await client.hset("up:routes", "route-1", json.dumps(route_v0))
            await client.sadd("up:active", "route-1")
            await client.hset("up:deposits", mapping={QUEUED: "pending", ROUTED: "route-1"})
            await client.hset("up:pending", QUEUED, json.dumps(
                {"deposit_key": QUEUED, "user": USER, "amount": "25", "seen_ms": 9, "chain_id": 42161}))
            sink = InMemoryLedgers(U)
            router = CollateralRouter(client, NoEffects(), sink, ManualClock(10), RouterConfig(namespace="up"))
            assert await router.pending() == [RouteMember(QUEUED, USER, Decimal("25"), 9)]
            route = await router.route("route-1")
            assert route is not None and route.bridge["output_amount"] == "39.9"  # type: ignore[index]
            assert [r.route_id for r in await router.active_routes()] == ["route-1"]

            out = await router.reverse([QUEUED, ROUTED])
            assert [(r.deposit_key, r.amount, r.routed) for r in out] == [(QUEUED, Decimal("25"), False),
                                                                         (ROUTED, Decimal("40"), True)]
            stranded = await router.reversed_after_routing()
            assert stranded == {ROUTED: {"user": USER, "amount": "40", "route": "route-1", "stage": "bridging"}}
            stored = await client.hgetall("up:reversed")
            assert {json.loads(v)["schema"] for v in stored.values()} == {"router.reversal"}
            again = await router.reverse([QUEUED, ROUTED])  # a replay reads the records it wrote
            assert [(r.deposit_key, r.amount, r.routed) for r in again] == [(r.deposit_key, r.amount, r.routed)
                                                                           for r in out]
        finally:
            await client.aclose()

    asyncio.run(scenario())


def test_the_cursor_and_the_tx_sender_read_bare_values_and_old_intents(redis_server) -> None:
    async def scenario() -> None:
        client = aioredis.Redis.from_url(redis_server.url)
        await client.flushdb()
        try:
            await client.set("cur:next", 120)
            await client.hset("cur:hashes", 119, "0x" + "11" * 32)
            await client.hset("cur:seen", "42161:0xaa:1", 119)
            cursors = LogCursorStore(client, "cur")
            state = await cursors.load(start_block=0)
            assert (state.next_block, state.hashes, state.seen) == (120, {119: "0x" + "11" * 32},
                                                                     {"42161:0xaa:1": 119})
            state.next_block = 121
            await cursors.save(state, dropped_blocks=[], dropped_keys=[], new_hashes={120: "0x" + "22" * 32},
                               new_seen={})
            assert json.loads(await client.get("cur:next"))["schema"] == "chain.block_cursor"
            assert (await cursors.load(start_block=0)).next_block == 121

            account = Account.from_key("0x" + "42" * 32)
            sender = TxSender(None, 31337, account, client)  # reads only: no node needed
            intent = {"key": "mint:o-1", "nonce": 0, "tx_hash": "0x" + "ab" * 32, "raw": "0x02f8", "state": "sent",
                      "meta": {"recipient": USER, "units": "5"}}
            await client.hset(sender._k("intents"), "mint:o-1", json.dumps(intent))  # noqa: SLF001
            await client.zadd(sender._k("pending"), {"mint:o-1": 0})  # noqa: SLF001
            assert await sender.intent("mint:o-1") == {**intent, "block": None, "status": None}
            assert await sender.pending_keys() == ["mint:o-1"]
        finally:
            await client.aclose()

    asyncio.run(scenario())
