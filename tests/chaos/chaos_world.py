"""The chaos tests' world: a LocalSystem that runs the demo's flow in rounds, each round deterministic enough that an
undisturbed system and one whose actors are killed mid-round must end every round with the same totals.

What makes a round repeatable (and why a second, undisturbed system is the reference rather than an earlier round of
the same one):
* prices are frozen (the simulator's price process is off: LauncherOptions.price_update_ms = 0), and every round
  starts from the very same book: the market maker's ladder is withdrawn while the round's orders come in and put
  back exactly as seeded (`/_admin/liquidity`) once all of them are accepted and a solver tick begun after that has
  ended (`demand_seen`), so the solver plans ONE batch with all of them, on the same asks, whatever the timing;
* each round has fresh users (three funded accounts of the world per round, the same ones in both systems, so their
  shards are the same) who deposit and order the same amounts, one order at a time (a fixed FIFO);
* the solver carries inventory (rounding surplus) from one batch to the next, so round j's plan depends on every
  round before it: the reference for round j is round j of an undisturbed run of the same sequence.

What still varies between two runs and is therefore not compared exactly: how the exchange's fills are cut into
assignment rounds (a kill delays or regroups them). The totals compared do not depend on it: an order's filled units
are floor(engaged x fill rate) of the cumulative fill rate, its cohort's base units floor(q x filled), its spent
collateral the cumulative cost rounded UP to the micro-USDC (the per-round cost split telescopes in 1e-24 USDC, far
below that). Per-asset invoice lines are split per assignment round (floor per round) and are only checked to add up.
Routing fees depend on gas prices, which move with every block: checked to be charged once, not compared.
"""
from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any, Awaitable, Callable

import ray

from store.solver_records import SolverState
from world.demo import DemoUser, _body_line, _transfer, _wait, balance_of

WAIT_S = 90.0
POLL_S = 0.02
TOKEN_UNIT = Decimal("1e-18")
#: keccak256("Transfer(address,address,uint256)")
TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"


def round_users() -> list[DemoUser]:
    """Three users per round, the demo's amounts; Carol's first order is beyond her collateral (rejected)."""
    return [
        DemoUser("alice", Decimal("1000"), [("a1", Decimal("400"))]),
        DemoUser("bob", Decimal("1500"), [("b1", Decimal("650.5"))]),
        DemoUser("carol", Decimal("800"), [("c0", Decimal("5000")), ("c1", Decimal("500"))], bad="c0"),
    ]


USERS_PER_ROUND = len(round_users())


# ============================================================================================== the outside world
def admin(system: Any, path: str, body: dict | None = None) -> Any:
    """The exchange simulator's test endpoints (/_admin/...)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(system.exchange.url + path, data=data, method="GET" if body is None else "POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def set_automine(system: Any, on: bool, chain: str = "base") -> None:
    """anvil's automine on or off; turning it on mines what waits in the pool at once."""
    from world.anvil_node import rpc

    url = system.state.chain(chain).rpc_url
    rpc(url, "evm_setAutomine", [on])
    if on:
        rpc(url, "evm_mine", [])


def mint_logs(system: Any, address: str, index: str = "SY100DEV") -> list[dict]:
    """Every Transfer of `index`'s token from 0x0 to `address` on Base: one per mint."""
    from web3 import Web3

    base = system.state.chain("base")
    w3 = Web3(Web3.HTTPProvider(base.rpc_url))
    to_topic = "0x" + "0" * 24 + address.lower().removeprefix("0x")
    return w3.eth.get_logs({"address": Web3.to_checksum_address(base.index_tokens[index]), "fromBlock": 0,
                            "toBlock": "latest", "topics": [TRANSFER_TOPIC, "0x" + "0" * 64, to_topic]})


def restarts(system: Any) -> dict[str, int]:
    """How often Ray restarted each actor of the system (its GCS actor table; a private but stable Ray API)."""
    from ray._private import state

    return {name: int(state.actors(h._actor_id.hex())["NumRestarts"]) for name, h in system.actors.items()}


async def call(handle: Any, method: str, *args: Any, timeout_s: float = WAIT_S) -> Any:
    """One actor call, retried while the actor restarts (a kill makes in-flight calls fail once)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return await getattr(handle, method).remote(*args)
        except ray.exceptions.RayActorError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)  # the actor is restarting: ask again


# ============================================================================================== scenarios
@dataclass
class Ctx:
    """What a scenario sees of the round in progress."""

    system: Any
    users: list[DemoUser]
    order_ids: list[str]  # the round's good index order ids (user:cl)
    notes: list[str] = field(default_factory=list)

    def actor(self, name: str) -> Any:
        return self.system.actor(name)

    def note(self, text: str) -> None:
        self.notes.append(f"[{time.strftime('%H:%M:%S')}] {text}")


@dataclass(frozen=True)
class Scenario:
    """`prepare` runs before the round's demand is released (faults, automine), `trigger` waits for the observed
    event (polled, bounded) and `act` strikes; `restore` undoes `prepare` whatever happened. `phase`: "deposits"
    starts the trigger before the deposits, "release" just before the book is put back; `blocking`: the book is
    put back only after the strike (the strike must land while the demand waits)."""

    name: str
    trigger: Callable[[Ctx], Awaitable[str]]
    act: Callable[[Ctx], Awaitable[None]]
    prepare: Callable[[Ctx], None] = lambda ctx: None
    restore: Callable[[Ctx], None] = lambda ctx: None
    phase: str = "release"
    blocking: bool = False


def kill(name: str) -> Callable[[Ctx], Awaitable[None]]:
    async def act(ctx: Ctx) -> None:
        ray.kill(ctx.actor(name), no_restart=False)
        ctx.note(f"killed {name} (it restarts)")
    return act


def hold_orders(ms: int = 1500, after: bool = False) -> Callable[[Ctx], None]:
    """The exchange holds the batch's order placements (before they execute, or after, before the answer)."""
    def prepare(ctx: Ctx) -> None:
        admin(ctx.system, "/_admin/faults", {"order_delay_ms": ms, "order_delay_count": len(next(iter(ctx.system.baskets.values())).assets),
                                             "order_delay_after": after})
    return prepare


def clear_faults(ctx: Ctx) -> None:
    admin(ctx.system, "/_admin/faults", {"clear": True})


async def batch_in_flight(ctx: Ctx) -> str:
    solver = ctx.actor("solver")

    async def engaged() -> Any:
        info = await call(solver, "inspect")
        return [b for b, v in info["batches_in_flight"].items() if set(v["orders"]) & set(ctx.order_ids)]
    found = await _wait(engaged, "a batch of the round's orders in flight", WAIT_S, POLL_S)
    return f"batch {found[0]} in flight"


async def batch_in_flight_with_its_inventory_stored(ctx: Ctx) -> str:
    """A batch of the round in flight and durable at the solver, with the inventory it carried in (if it took any)
    stored beside it, still unassigned: carried lots are assigned with the batch's first exchange fills, which the
    held orders keep back. The solver then restarts with those lots to assign from its snapshot."""
    solver = ctx.actor("solver")
    r = ctx.system.redis.client()

    async def ready() -> Any:
        info = await call(solver, "inspect")
        mine = {b for b, v in info["batches_in_flight"].items() if set(v["orders"]) & set(ctx.order_ids)}
        if not mine:
            return None
        raw = r.get("solver:solver:state")
        stored = {b.batch_id: b for b in SolverState.load(raw).engine.batches} if raw else {}
        used = {h["batch_id"]: h.get("inventory_used") for h in info["history"]}
        for b in sorted(mine):
            if b in stored and (stored[b].pending_lots or stored[b].rounds or not used.get(b)):
                return b, len(stored[b].pending_lots)
        return None
    try:
        batch, lots = await _wait(ready, "a batch in flight with its carried inventory stored", WAIT_S, POLL_S)
    finally:
        r.close()
    return f"batch {batch} in flight, {lots} carried lot(s) stored to assign"


async def exchange_has_orders_sender_waits(ctx: Ctx) -> str:
    """The exchange executed an order of the round while the sender still waits for its answer."""
    sender = ctx.actor("sender")
    seen = {o["clientOrderId"] for o in admin(ctx.system, "/_admin/orders")}

    async def placed_and_waiting() -> Any:
        new = [o for o in admin(ctx.system, "/_admin/orders") if o["clientOrderId"] not in seen]
        if not new:
            return None
        info = await call(sender, "inspect")
        return new if info["in_flight"] > 0 else None
    found = await _wait(placed_and_waiting, "an exchange order placed and its answer awaited", WAIT_S, POLL_S)
    return f"exchange has {found[0]['clientOrderId']}, the sender waits for {len(found)} answer(s)"


async def orders_pending(ctx: Ctx) -> str:
    """Every order of the round accepted and waiting in its shard for a batch (the book is withdrawn)."""
    async def pending() -> bool:
        ids: set[str] = set()
        for k in range(ctx.system.o.order_shards):
            ids |= {p.order_id for p in await call(ctx.actor(f"orders-{k}"), "pending")}
        return set(ctx.order_ids) <= ids
    await _wait(pending, "the round's orders pending", WAIT_S, POLL_S)
    return "orders pending, book withdrawn"


async def first_fill_report(ctx: Ctx) -> str:
    async def filled() -> Any:
        return [(u.name, d.body.client_order_id) for u in ctx.users for d in u.reports
                if type(d.body).__name__ == "IndexOrderFill"]
    found = await _wait(filled, "a fill report at a client", WAIT_S, POLL_S)
    return f"first fill report: {found[0]}"


async def route_active(ctx: Ctx) -> str:
    addresses = {u.address.lower() for u in ctx.users}
    router = ctx.actor("router")

    async def active() -> Any:
        info = await call(router, "inspect")
        return [r for r in info["routes"] if r["stage"] not in ("credited", "failed")
                and any(m["user"].lower() in addresses for m in r["members"])]
    found = await _wait(active, "a route of the round's deposits under way", WAIT_S, POLL_S)
    return f"route {found[0]['route_id']} at {found[0]['stage']}"


async def mint_unmined(ctx: Ctx) -> str:
    """A mint of the round is recorded by the chain actor's TxSender (signed, sent) and not mined yet (automine is
    off on Base): the kill lands between the intent and its receipt."""
    solver_address = ctx.system.state.account("solver").address.lower()
    key = f"tx:{ctx.system.state.chain('base').chain_id}:{solver_address}:pending"
    r = ctx.system.redis.client()
    wanted = {f"mint:{oid}" for oid in ctx.order_ids}

    async def recorded() -> Any:
        return wanted & {k.decode() for k in r.zrange(key, 0, -1)}
    try:
        found = await _wait(recorded, "a mint recorded and not mined", WAIT_S, POLL_S)
    finally:
        r.close()
    return f"{sorted(found)[0]} recorded, not mined"


def mints_batched(shard: int | None = None) -> Callable[[Ctx], Awaitable[str]]:
    """Every mint of the round is at the minter (queued or in flight) and the batch it sent is recorded by the
    TxSender and not mined (automine off on Base); with `shard`, one of that shard's orders is among them."""
    from actors.order_shards import shard_of_order

    async def trigger(ctx: Ctx) -> str:
        solver_address = ctx.system.state.account("solver").address.lower()
        key = f"tx:{ctx.system.state.chain('base').chain_id}:{solver_address}:pending"
        mine = [oid for oid in ctx.order_ids
                if shard is None or shard_of_order(oid, ctx.system.o.order_shards) == shard]
        r = ctx.system.redis.client()

        async def batched() -> Any:
            info = await call(ctx.actor("minter"), "inspect")
            owed, batch = {m["order_id"] for m in info["mints_owed"]}, set(info["in_flight"])
            recorded = {k.decode().removeprefix("mint:") for k in r.zrange(key, 0, -1)}
            return batch if owed >= set(ctx.order_ids) and batch and recorded >= batch and batch & set(mine) else None
        try:
            found = await _wait(batched, "the round's mints at the minter, its batch recorded and not mined", WAIT_S,
                                POLL_S)
        finally:
            r.close()
        return f"a batch of {len(found)} of the round's {len(ctx.order_ids)} mints in flight, recorded, not mined"
    return trigger


def automine_off(ctx: Ctx) -> None:
    set_automine(ctx.system, False)


def automine_on(ctx: Ctx) -> None:
    set_automine(ctx.system, True)


def kill_then_mine(name: str) -> Callable[[Ctx], Awaitable[None]]:
    async def act(ctx: Ctx) -> None:
        await kill(name)(ctx)
        set_automine(ctx.system, True)
        ctx.note("automine back on: the recorded mint is mined")
    return act


async def batch_durable_and_at_exchange(ctx: Ctx) -> str:
    """The batch's exchange orders are at the exchange (held there before they execute) and the solver has nothing
    left to write: its state in Redis holds the batch and an empty outbox. From here until the fills come back
    through a durable sender, the solver writes nothing (see the report: a solver write that fails during an
    outage empties its memory, actors/solver.py `_reload`)."""
    sender = ctx.actor("sender")
    r = ctx.system.redis.client()

    async def ready() -> Any:
        if (await call(sender, "inspect"))["in_flight"] == 0:
            return None
        raw = r.get("solver:solver:state")
        if not raw:
            return None
        state = SolverState.load(raw)
        batches = [b.batch_id for b in state.engine.batches if {e[0] for e in b.engagements} & set(ctx.order_ids)]
        return batches if batches and not state.outbox else None
    try:
        found = await _wait(ready, "the batch durable at the solver and its orders at the exchange", WAIT_S, POLL_S)
    finally:
        r.close()
    return f"batch {found[0]} durable at the solver, its orders held by the exchange"


async def redis_outage(ctx: Ctx) -> None:
    """SIGKILL redis-server; start it again (same port, same AOF) once an actor has seen the outage: the sender
    failed to commit the fills that came back meanwhile (its client's own retries exhausted first), so the outage
    outlasted every client-side retry."""
    sender = ctx.actor("sender")
    before = (await call(sender, "inspect"))["counts"]["commit_failures"]
    ctx.system.redis.kill()
    ctx.note("redis-server killed (SIGKILL)")
    try:
        async def fills_stuck() -> Any:  # fills came back from the exchange and cannot be made durable
            info = await call(sender, "inspect")
            return info["counts"]["commit_failures"] if info["log_seq"] > info["persisted_seq"] else None
        stuck_at = await _wait(fills_stuck, "fills at the sender that redis cannot take", WAIT_S, POLL_S)
        ctx.note(f"fills held by the sender, not durable ({stuck_at - before} commit(s) failed so far)")

        async def failed() -> bool:
            return (await call(sender, "inspect"))["counts"]["commit_failures"] > stuck_at
        await _wait(failed, "the sender to fail committing those fills", WAIT_S, POLL_S)
        ctx.note("the sender failed a commit of them: the outage reached the actors")
    finally:
        ctx.system.redis.start()
        ctx.note("redis-server started again (same port, same AOF)")
    retried = {f"orders-{k}": (await call(ctx.actor(f"orders-{k}"), "inspect"))["counts"].get("commit_retries", 0)
               for k in range(ctx.system.o.order_shards)}
    ctx.note(f"index-order shard commits sent again during the outage: {retried}")


def scenarios(order_shards: int, market_shards: int) -> dict[str, Scenario]:
    out: dict[str, Scenario] = {}
    for k in range(market_shards):  # the planner's asks: killed while the round's demand waits for a book
        out[f"market-{k}"] = Scenario(f"market-{k}", orders_pending, kill(f"market-{k}"), blocking=True)
    out["sender"] = Scenario("sender", exchange_has_orders_sender_waits, kill("sender"),
                             hold_orders(1500, after=True), clear_faults)
    for k in range(order_shards):
        out[f"orders-{k}"] = Scenario(f"orders-{k}", batch_in_flight, kill(f"orders-{k}"), hold_orders(), clear_faults)
    out["gateway"] = Scenario("gateway", first_fill_report, kill("gateway"), hold_orders(1000), clear_faults)
    out["chain"] = Scenario("chain", mint_unmined, kill_then_mine("chain"), automine_off, automine_on)
    out["router"] = Scenario("router", route_active, kill("router"), phase="deposits")
    out["solver"] = Scenario("solver", batch_in_flight_with_its_inventory_stored, kill("solver"), hold_orders(),
                             clear_faults)
    out["minter"] = Scenario("minter", mint_unmined, kill_then_mine("minter"), automine_off, automine_on)
    # A batch of mints in flight (recorded, not mined) when the minter, the chain actor or a shard is killed.
    out["minter-batch"] = Scenario("minter", mints_batched(), kill_then_mine("minter"), automine_off, automine_on)
    out["chain-batch"] = Scenario("chain", mints_batched(), kill_then_mine("chain"), automine_off, automine_on)
    for k in range(order_shards):
        out[f"orders-{k}-mint"] = Scenario(f"orders-{k}", mints_batched(k), kill_then_mine(f"orders-{k}"),
                                           automine_off, automine_on)
    out["redis"] = Scenario("redis", batch_durable_and_at_exchange, redis_outage, hold_orders(), clear_faults)
    return out


# ============================================================================================== one round
@dataclass
class RoundResult:
    index: int
    scenario: str | None
    seconds: float
    #: role -> what must be equal to the undisturbed run: filled, spent, returned, minted, tokens on chain
    totals: dict[str, dict[str, Decimal | int]]
    #: the batches the round's orders went in: [[(symbol, price, quantity) ...] per batch]
    plan: list[list[tuple[str, str, str]]]
    #: (symbol, executed quantity) of every exchange order of the round, sorted
    executed: list[tuple[str, str]]
    #: per batch: orders engaged, scale, deferrals, when it was planned and its tick's reads (why a plan differs)
    why: list[str]
    inventory_before: dict[str, int]
    inventory_after: dict[str, int]
    notes: list[str]
    lines: list[str]
    #: actor -> restarts during the round (a kill: exactly one for its target, none elsewhere; a crash loop: more)
    restarted: dict[str, int] = field(default_factory=dict)
    #: invariants broken that do not stop the round's other checks (reported together)
    problems: list[str] = field(default_factory=list)


class RoundFailure(AssertionError):
    pass


async def _connect(system: Any, users: list[DemoUser]) -> dict[str, Any]:
    from protocol.client import GatewayClient

    clients = {u.name: GatewayClient(system.gateway_url, u.key.key, chain_id=system.settings.chain.arbitrum_chain_id)
               for u in users}
    await asyncio.gather(*(c.connect() for c in clients.values()))
    return clients


async def _book_state(system: Any) -> set[bool]:
    """For every market shard and symbol: does the planner see asks?"""
    seen: set[bool] = set()
    for k in range(system.o.market_shards):
        top = await call(system.actor(f"market-{k}"), "top")
        seen |= {ask is not None for _, ask in top.values()}
    return seen


def _reports(u: DemoUser, kind: str, cl: str | None = None) -> list[Any]:
    return [d.body for d in u.reports if type(d.body).__name__ == kind
            and (cl is None or d.body.client_order_id == cl)]


async def run_round(system: Any, index: int, scenario: Scenario | None = None) -> RoundResult:
    """Round `index` of the world: its three users deposit, order, get filled and minted, with `scenario`'s strike
    landing mid-way. Checks the round's own invariants and returns what the comparison needs."""
    from chain.keys import DEV_MNEMONIC, derive_account

    started = time.monotonic()
    lines: list[str] = []
    users = round_users()
    refs = system.state.users[index * USERS_PER_ROUND:(index + 1) * USERS_PER_ROUND]
    if len(refs) < USERS_PER_ROUND:
        raise RoundFailure(f"the world has users for {len(system.state.users) // USERS_PER_ROUND} rounds only")
    for u, ref in zip(users, refs):
        u.key = derive_account(DEV_MNEMONIC, ref.index)
        u.address = u.key.address
    from core.index_order import user_key

    order_ids = [f"{user_key(u.address)}:{cl}" for u in users for cl in u.good]
    ctx = Ctx(system, users, order_ids)
    solver, sender = system.actor("solver"), system.actor("sender")
    restarts_before = restarts(system)
    info0 = await call(solver, "inspect")
    inventory_before = dict(info0["inventory_units"])
    history_before = {h["batch_id"] for h in info0["history"]}
    errors_before = len(info0["errors"])
    chaos: asyncio.Task | None = None
    clients: dict[str, Any] = {}
    readers: list[asyncio.Task] = []

    async def strike() -> None:
        assert scenario is not None
        what = await scenario.trigger(ctx)
        ctx.note(f"trigger: {what}")
        await scenario.act(ctx)

    try:
        # 0. the book off: no batch can be planned until every order of the round is in
        admin(system, "/_admin/liquidity", {"action": "withdraw"})
        await _wait(lambda: _book_state_is(system, {False}), "the book withdrawn at every market shard")
        if scenario is not None and scenario.phase == "deposits":
            chaos = asyncio.ensure_future(strike())
        # 1. deposits on Arbitrum, credited in the users' shards
        await asyncio.gather(*(_transfer(system, u) for u in users))

        async def credited(u: DemoUser) -> bool:
            v = await call(system.shard(u.address), "user", u.address)
            return bool(v) and Decimal(v["ledger"]["credited"]) == u.deposit
        for u in users:
            await _wait(lambda u=u: credited(u), f"{u.name}'s deposit credited", WAIT_S)
        # 2. the users log on; every message they receive is kept
        clients = await _connect(system, users)

        async def read(u: DemoUser) -> None:
            async for d in clients[u.name].reports():
                u.reports.append(d)
                lines.append(_body_line(u, d))
        readers = [asyncio.ensure_future(read(u)) for u in users]
        # 3. the orders, one at a time, each answered before the next (a fixed FIFO in every run)
        for u in users:
            for cl, amount in u.orders:
                await clients[u.name].new_order(cl, next(iter(system.baskets)), str(amount))

                async def answered(u: DemoUser = u, cl: str = cl) -> bool:
                    return bool(_reports(u, "NewIndexOrderReport", cl))
                await _wait(answered, f"{u.name} {cl} answered", WAIT_S)
        # 3b. a solver tick that began after the last order was stored has ended: from here every demand read
        #     holds all of them (see `demand_seen`)
        await demand_seen(system)
        # 4. the strike, then the book back: one batch takes every order
        if scenario is not None:
            scenario.prepare(ctx)
            if scenario.phase == "release":
                chaos = asyncio.ensure_future(strike())
                if scenario.blocking:
                    await asyncio.wait_for(asyncio.shield(chaos), WAIT_S)
        admin(system, "/_admin/liquidity", {"action": "restore"})

        # 5. every good order minted and invoiced
        async def invoiced() -> bool:
            return all({b.client_order_id for b in _reports(u, "MintInvoice")} >= set(u.good) for u in users)
        await _wait(invoiced, "every order of the round invoiced", WAIT_S, 0.05)
        if chaos is not None:
            await asyncio.wait_for(asyncio.shield(chaos), WAIT_S)  # it fired (or the round fails here)
        # 6. settled: no batch, no outbox, nothing owed, every route of the round credited
        assert await call(solver, "wait_quiet", WAIT_S), "solver not quiet"
        assert await call(sender, "wait_idle", WAIT_S), "sender not idle"

        async def routed() -> bool:
            info = await call(system.actor("router"), "inspect")
            mine = [r for r in info["routes"] if any(m["user"].lower() in {u.address.lower() for u in users}
                                                     for m in r["members"])]
            members = {m["user"].lower() for r in mine for m in r["members"]}
            return members >= {u.address.lower() for u in users} and all(r["stage"] == "credited" for r in mine)
        await _wait(routed, "the round's deposits routed to the exchange", WAIT_S, 0.1)
        pending = [m for k in range(system.o.order_shards)
                   for m in await call(system.actor(f"orders-{k}"), "mint_pending") if m.order_id in order_ids]
        assert not pending, f"mints still owed: {pending}"
    except BaseException:
        print("\n".join(lines + ctx.notes))
        raise
    finally:
        if chaos is not None and not chaos.done():
            chaos.cancel()
        if scenario is not None:
            try:
                scenario.restore(ctx)
            except Exception as exc:  # noqa: BLE001  (the round's own failure is the one to show)
                print(f"restoring after {scenario.name}: {exc}")
        for t in readers:
            t.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        await asyncio.gather(*(c.close() for c in clients.values()), return_exceptions=True)

    info = await call(solver, "inspect")
    batches = [h for h in info["history"] if h["batch_id"] not in history_before]
    new_errors = info["errors"][errors_before:] if len(info["errors"]) >= errors_before else info["errors"]
    result = RoundResult(
        index=index, scenario=scenario.name if scenario else None, seconds=time.monotonic() - started,
        totals={}, plan=[[(cid.split(".")[1], price, qty) for cid, price, qty in h["asset_orders"]] for h in batches],
        executed=[], why=[f"{h['batch_id']}: {h['orders']} order(s) at scale {h['scale']}, deferred {h['deferred']}, "
                          f"planned at {h['planned_ms']}, tick {h.get('tick_ms')}" for h in batches],
        inventory_before=inventory_before, inventory_after=dict(info["inventory_units"]),
        notes=ctx.notes, lines=lines)
    after = restarts(system)
    result.restarted = {name: after[name] - n for name, n in restarts_before.items() if after[name] != n}
    check_round(system, users, batches, new_errors, result)
    return result


async def demand_seen(system: Any) -> None:
    """Wait until a solver tick that began after now has ended. A tick reads the shards' demand before the books,
    and one shard's answer may come seconds later than another's (a call retried on a shard restarted by the round
    before): a tick begun during the intake could see part of the round's orders and, the book back meanwhile,
    plan them alone. Ticks run one after another and count themselves as they begin, so once the count has moved
    on twice, the tick begun after now has ended (its demand read after every order was stored)."""
    solver = system.actor("solver")
    began = (await call(solver, "inspect"))["counts"]["ticks"]

    async def moved_on() -> bool:
        return (await call(solver, "inspect"))["counts"]["ticks"] >= began + 2
    await _wait(moved_on, "a solver tick begun after the round's orders", WAIT_S)


async def _book_state_is(system: Any, wanted: set[bool]) -> bool:
    return await _book_state(system) == wanted


# ============================================================================================== the round's invariants
def check_round(system: Any, users: list[DemoUser], batches: list[dict], solver_errors: list[str],
                result: RoundResult) -> None:
    """What must hold after any round, disturbed or not; fills result.totals and result.executed."""
    from core.collateral_route import CollateralRoute

    assert batches, "no batch for the round's orders"
    assert not solver_errors, f"solver errors during the round: {solver_errors}"
    batch_ids = {h["batch_id"] for h in batches}
    # ---- the exchange: one order per batch and symbol, client order ids unique, nothing from elsewhere
    on_exchange = [o for o in admin(system, "/_admin/orders") if o["clientOrderId"].split(".")[0] in batch_ids]
    cids = [o["clientOrderId"] for o in on_exchange]
    assert len(cids) == len(set(cids)), f"a client order id twice on the exchange: {sorted(cids)}"
    per_intent: dict[tuple[str, str], int] = defaultdict(int)
    for cid in cids:
        batch_id, symbol, _attempt = cid.split(".")
        per_intent[(batch_id, symbol)] += 1
    planned = {(h["batch_id"], cid.split(".")[1]) for h in batches for cid, _, _ in h["asset_orders"]}
    assert set(per_intent) == planned and set(per_intent.values()) == {1}, \
        f"exchange orders per (batch, symbol): {dict(per_intent)}; planned {sorted(planned)}"
    result.executed = sorted((o["symbol"], o["executedQty"]) for o in on_exchange)
    # ---- per user: the stream, message by message, against the shard's book, the ledger and the chain
    router = ray.get(system.actor("router").inspect.remote())
    basket = {a.symbol: a.quantity for a in next(iter(system.baskets.values())).assets}
    for u in users:
        seqs = [d.envelope.standard_header.seq_num for d in u.reports]
        assert seqs == sorted(set(seqs)), f"{u.name}: report seq numbers repeated or out of order: {seqs}"
        news = _reports(u, "NewIndexOrderReport")
        assert sorted(b.client_order_id for b in news) == sorted(cl for cl, _ in u.orders), f"{u.name}: {news}"
        for b in news:
            assert b.status == ("rejected" if b.client_order_id == u.bad else "new"), (u.name, b)
        view = ray.get(system.shard(u.address).user.remote(u.address))
        orders = {o["cl_ord_id"]: o for o in view["orders"]}
        ledger = view["ledger"]
        spent_total = Decimal(0)
        for cl in u.good:
            fills = _reports(u, "IndexOrderFill", cl)
            assert fills and fills[-1].status == "filled", f"{u.name} {cl}: {[f.status for f in fills]}"
            progress = [Decimal(f.filled_quantity) for f in fills[:-1]]
            assert [f.status for f in fills[:-1]] == ["in progress"] * len(progress), (u.name, cl)
            # in progress: strictly growing (a repeated report would repeat a quantity); the close repeats the last
            assert all(a < b for a, b in zip(progress, progress[1:])), f"{u.name} {cl}: fills {progress}"
            assert not progress or progress[-1] == Decimal(fills[-1].filled_quantity), (u.name, cl)
            spent = [Decimal(f.collateral_spent) for f in fills]
            assert spent == sorted(spent), f"{u.name} {cl}: spent went back: {spent}"
            (inv,) = _reports(u, "MintInvoice", cl)  # exactly one invoice
            order = orders[cl]
            filled = Decimal(order["filled_units"])
            assert Decimal(fills[-1].filled_quantity) == filled == Decimal(inv.filled_quantity) > 0, (u.name, cl)
            assert Decimal(fills[-1].collateral_spent) == Decimal(order["spent"]) == Decimal(inv.collateral_spent)
            assert Decimal(order["remaining"]) == Decimal(order["engaged"]) == 0, (u.name, cl, order)
            amount = dict(u.orders)[cl]
            assert Decimal(inv.collateral_spent) + Decimal(inv.amount_cancelled) + Decimal(inv.amount_returned) \
                == amount
            minted = filled.quantize(TOKEN_UNIT, rounding=ROUND_DOWN)
            assert Decimal(inv.minted_quantity) == minted, (u.name, cl)
            assert order["minted_tx"] == inv.mint_tx and view["invoices"][cl]["mint_tx"] == inv.mint_tx
            for line in inv.lines:  # the assets back the units: short by under a base unit per assignment round
                short = filled * basket[line.symbol] - Decimal(line.quantity)
                unit = system.filters[line.symbol].base_unit
                if not -unit * len(fills) < short < unit * len(fills):
                    result.problems.append(
                        f"{u.name} {cl} {line.symbol}: line {line.quantity} for {filled} units is short by "
                        f"{short / unit} base units over {len(fills)} fill reports "
                        f"({[(f.status, f.filled_quantity) for f in fills]})")
            spent_total += Decimal(order["spent"])
            result.totals.setdefault(u.name, {})[f"{cl}.filled"] = filled
            result.totals[u.name][f"{cl}.spent"] = Decimal(order["spent"])
            result.totals[u.name][f"{cl}.returned"] = Decimal(inv.amount_returned) + Decimal(inv.amount_cancelled)
            result.totals[u.name][f"{cl}.minted"] = minted
        # ---- no double mint: one mint per order on chain, the wallet holds exactly the fills
        mints = mint_logs(system, u.address)
        assert len(mints) == len(u.good), f"{u.name}: {len(mints)} mints on chain for {len(u.good)} orders"
        balance = balance_of(system, u.address, next(iter(system.baskets)))
        expected = sum(int(Decimal(orders[cl]["filled_units"]).quantize(TOKEN_UNIT, rounding=ROUND_DOWN)
                           .scaleb(18)) for cl in u.good)
        assert balance == expected, f"{u.name}: {balance} token base units on chain, fills back {expected}"
        result.totals[u.name]["tokens"] = balance
        # ---- the ledger: every USDC accounted for, route fees charged exactly once
        fees = sum((c.amount for r in router["routes"] for c in CollateralRoute.from_dict(r).charges()
                    if c.user.lower() == u.address.lower()), Decimal(0))
        assert Decimal(ledger["fees_charged"]) == fees > 0, f"{u.name}: fees {ledger['fees_charged']} vs {fees}"
        assert Decimal(ledger["credited"]) == u.deposit and Decimal(ledger["reserved"]) == 0
        assert Decimal(ledger["spent"]) == spent_total
        assert Decimal(ledger["available"]) + spent_total + fees == u.deposit, (u.name, ledger)


def compare(reference: RoundResult, disturbed: RoundResult) -> None:
    """Round j of the disturbed run against round j of the undisturbed one."""
    assert disturbed.index == reference.index
    if disturbed.inventory_before != reference.inventory_before:
        raise RoundFailure(f"round {disturbed.index} started from another inventory than the reference "
                           f"(an earlier round diverged): {disturbed.inventory_before} vs {reference.inventory_before}")
    assert disturbed.plan == reference.plan, (f"plans differ:\n{disturbed.plan}\n{reference.plan}\nwhy: {disturbed.why}\n"
                                              f"vs {reference.why}\n{disturbed.notes}\n" + "\n".join(disturbed.lines))
    assert disturbed.executed == reference.executed, f"exchange fills differ:\n{disturbed.executed}\n{reference.executed}"
    assert disturbed.totals == reference.totals, f"totals differ:\n{disturbed.totals}\n{reference.totals}"
    assert disturbed.inventory_after == reference.inventory_after
    assert not reference.problems, reference.problems
    assert not disturbed.problems, disturbed.problems


# ============================================================================================== the systems
def chaos_system(rounds: int, namespace: str) -> Any:
    """A LocalSystem for `rounds` rounds: frozen prices, users for every round, and fixed ports of its own (a
    restarted gateway must listen where its clients reconnect; nothing may clash with another world running)."""
    from core.config import Settings
    from world.launcher import LauncherOptions, LocalSystem
    from world.redis_server import free_port

    settings = Settings()
    # Frozen prices: a book hears a diff only when a round trades on it or withdraws/restores its ladder, so "no diff
    # for a while" says nothing about the feed here; staleness by age is off (a book being rebuilt is still stale).
    settings = settings.model_copy(update={"ports": settings.ports.model_copy(update={"invoices": free_port()}),
                                           "market_data": settings.market_data.model_copy(
                                               update={"stale_after_ms": 24 * 3600 * 1000})})
    return LocalSystem(LauncherOptions(gateway_port=free_port(), namespace=namespace,
                                       users=rounds * USERS_PER_ROUND, price_update_ms=0), settings)
