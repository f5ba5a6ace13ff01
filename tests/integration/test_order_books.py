"""One IndexOrderBooks shard on a real local Ray instance and a real redis-server: the solver's side of it (pending
in FIFO order, engage, fill deltas, batch completion, mint) is idempotent by its keys, every answer is stored before
it is given (a shard killed in the middle comes back with exactly the same books), and its reports reach the
subscriber gap-free across the restart."""
from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import pytest

ray = pytest.importorskip("ray")

from actors.order_books import IndexOrderBooks, OrderBooksOptions  # noqa: E402
from core.batch_planner import Engagement  # noqa: E402
from core.batch_result import BatchOrderResult  # noqa: E402
from core.chain_events import CollateralDeposit  # noqa: E402
from core.lot_assignment import AssetLine, AssignedFill  # noqa: E402
from core.side import Side  # noqa: E402
from protocol.envelope import UserRef  # noqa: E402
from protocol.indexmaker_app import InvoiceIssued, NewOrder, OrderAccepted, OrderProgress  # noqa: E402
from tests.integration.ray_calls import call_until_back, wait_restarted  # noqa: E402
from tests.integration.reports_reader import follow_reports  # noqa: E402

WAIT_S = 30.0
INDEX = "SY100.dev"
UNIT = Decimal("1e-18")
A = "0xAaAaaAaaAaAaAaaAAAAaaaaaaAAaaaaAaAaAaAa1"
B = "0xbBbBBbBbBbbbbbBbBbBbbBbbBbbbbBbBBBbbbbB2"


@ray.remote(num_cpus=0)
class Reports:
    def __init__(self) -> None:
        self.seen: dict[int, object] = {}
        self.redelivered = 0
        self._changed = asyncio.Event()

    async def on_reports(self, shard: int, seq_from: int, reports: list) -> None:
        for r in reports:
            if r.seq in self.seen:
                self.redelivered += 1
            self.seen[r.seq] = r
        self._changed.set()

    async def follow(self, redis_url: str, key_prefix: str, shards: int) -> None:
        self._task = follow_reports(redis_url, key_prefix, shards, self.on_reports)

    async def wait_count(self, n: int) -> list:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_S
        while len(self.seen) < n and loop.time() < deadline:
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), deadline - loop.time())
            except asyncio.TimeoutError:
                break
        return [self.seen[k] for k in sorted(self.seen)]


def fill(order_id: str, units: str, value: str, fee: str) -> AssignedFill:
    return AssignedFill(order_id, INDEX, int(Decimal(units) / UNIT), UNIT, int(Decimal(value).scaleb(24)),
                     int(Decimal(fee).scaleb(24)))


def test_shard_engine_side_is_idempotent_and_survives_a_kill(ray_cluster, redis_server):
    tag = uuid.uuid4().hex[:8]
    options = OrderBooksOptions(redis_server.url, 1, (INDEX,), key_prefix=f"ob-{tag}")
    shard = IndexOrderBooks.options(name=f"ob-{tag}").remote(0, options)
    sink = Reports.options(name=f"obr-{tag}").remote()
    try:
        ray.get(sink.follow.remote(redis_server.url, f"ob-{tag}", 1))
        ray.get(shard.credit.remote([CollateralDeposit(42161, "0x01", 0, 1, A, Decimal("1000")),
                                     CollateralDeposit(42161, "0x01", 1, 1, B, Decimal("100"))]))
        ua, ub = UserRef(42161, A), UserRef(42161, B)
        answers = ray.get(shard.handle.remote([NewOrder(ua, "a1", INDEX, Side.BUY, Decimal("400")),
                                               NewOrder(ub, "b1", INDEX, Side.BUY, Decimal("60")),
                                               NewOrder(ub, "b2", INDEX, Side.BUY, Decimal("50"))]))
        assert answers[:2] == [OrderAccepted(ua, "a1"), OrderAccepted(ub, "b1")]
        assert answers[2].code.value == "INSUFFICIENT_COLLATERAL"  # 60 of B's 100 are held by b1
        oa, ob = f"{A.lower()}:a1", f"{B.lower()}:b1"
        pending = ray.get(shard.pending.remote(10))
        assert [(p.order_id, p.collateral) for p in pending] == [(oa, Decimal("400")), (ob, Decimal("60"))]

        engagements = [Engagement(oa, INDEX, Decimal("0.002"), Decimal("100"), Decimal("49000")),
                       Engagement(ob, INDEX, Decimal("0.0012"), Decimal("60"), Decimal("49000"))]
        first = ray.get(shard.engage.remote("b1", engagements))
        assert first == [(oa, Decimal("100")), (ob, Decimal("60"))]
        assert ray.get(shard.engage.remote("b1", engagements)) == first  # a replay engages nothing more
        assert ray.get(shard.pending.remote(10)) == []  # both have something engaged
        deltas = [fill(oa, "0.001", "49.5", "0.05"), fill(ob, "0.0012", "59.9", "0.08")]
        assert ray.get(shard.apply_fills.remote("b1:1", deltas)) == 2
        assert ray.get(shard.apply_fills.remote("b1:1", deltas)) == 0
        before = {u: ray.get(shard.user.remote(u)) for u in (A, B)}
        assert Decimal(before[A]["orders"][0]["spent"]) == Decimal("49.55")
        assert Decimal(before[A]["ledger"]["available"]) == Decimal("600")

        ray.kill(shard, no_restart=False)
        wait_restarted(shard)  # calls right after ray.kill may still reach the old instance
        after = {u: call_until_back(shard.user, u) for u in (A, B)}
        assert after == before
        assert ray.get(shard.apply_fills.remote("b1:1", deltas)) == 0  # the key survived the restart

        line = AssetLine("BTCUSDC", 100, Decimal("0.000001"), Decimal("59.9"), Decimal("0.08"), ("BTCUSDC:1",))
        results = [BatchOrderResult(oa, Decimal("0.001"), (line,)), BatchOrderResult(ob, Decimal("0.0012"), (line,))]
        mints = ray.get(shard.complete_batch.remote("b1", results))
        assert [m.order_id for m in mints] == [ob]  # a1 still has 350.45 to buy; b1's rest 0.02 is dust
        assert ray.get(shard.complete_batch.remote("b1", results)) == mints
        pending = ray.get(shard.pending.remote(10))
        assert [(p.order_id, p.collateral) for p in pending] == [(oa, Decimal("350.45"))]

        invoice = ray.get(shard.minted.remote(ob, "0xtx"))
        assert ray.get(shard.minted.remote(ob, "0xtx")) == invoice
        assert (invoice.spent, invoice.returned, invoice.filled_units) == (Decimal("59.98"), Decimal("0.02"),
                                                                           Decimal("0.0012"))
        user_b = ray.get(shard.user.remote(B))
        assert Decimal(user_b["ledger"]["available"]) == Decimal("40.02")  # 100 - 59.98 spent

        # Reports: two fill reports, b1 closed, the invoice; numbered without a gap across the restart.
        reports = ray.get(sink.wait_count.remote(4))
        assert [r.seq for r in reports] == [1, 2, 3, 4]
        kinds = [(type(r.response).__name__, r.response.client_order_id if isinstance(r.response, OrderProgress)
                  else r.response.invoice.cl_ord_id, getattr(r.response, "status", None)) for r in reports]
        assert kinds == [("OrderProgress", "a1", "in progress"), ("OrderProgress", "b1", "in progress"),
                         ("OrderProgress", "b1", "filled"), ("InvoiceIssued", "b1", None)]
        assert isinstance(reports[3].response, InvoiceIssued) and reports[3].response.user == ub
    finally:
        for a in (shard, sink):
            ray.kill(a, no_restart=True)


def test_growing_records_are_written_once_outside_the_snapshots_and_old_ones_migrate(ray_cluster, redis_server):
    """Completed batches' answers, applied keys and invoices only grow: they live in hashes and a set written by the
    commit that adds them, not in the meta / user snapshots that commits rewrite whole. State written the old way
    (version 0: plain JSON, records inside) loads, and its records move out at the next commit."""
    import json

    tag = uuid.uuid4().hex[:8]
    prefix = f"obm-{tag}"
    options = OrderBooksOptions(redis_server.url, 1, (INDEX,), key_prefix=prefix)
    shard = IndexOrderBooks.options(name=f"obm-{tag}").remote(0, options)
    r = redis_server.client()
    meta_key, keys_key, done_key = f"{prefix}:0:meta", f"{prefix}:0:fill_keys", f"{prefix}:0:completed"
    users_key, invoices_key = f"{prefix}:0:users", f"{prefix}:0:invoices"
    try:
        ray.get(shard.credit.remote([CollateralDeposit(42161, "0x03", 0, 1, A, Decimal("100"))]))
        ua, oa = UserRef(42161, A), f"{A.lower()}:m1"
        assert ray.get(shard.handle.remote([NewOrder(ua, "m1", INDEX, Side.BUY, Decimal("50"))])) == [
            OrderAccepted(ua, "m1")]
        ray.get(shard.engage.remote("b1", [Engagement(oa, INDEX, Decimal("0.001"), Decimal("50"), Decimal("49000"))]))
        ray.get(shard.apply_fills.remote("b1:1", [fill(oa, "0.001", "49.9", "0.05")]))
        line = AssetLine("BTCUSDC", 100, Decimal("0.000001"), Decimal("49.9"), Decimal("0.05"), ("BTCUSDC:7",))
        mints = ray.get(shard.complete_batch.remote("b1", [BatchOrderResult(oa, Decimal("0.001"), (line,))]))
        assert [m.order_id for m in mints] == [oa]
        meta = json.loads(r.get(meta_key))["data"]
        assert meta["fill_keys"] == [] and meta["completed"] == {}
        assert r.smembers(keys_key) == {b"b1:1"}
        done = json.loads(r.hget(done_key, "b1"))["data"]["mints"]
        assert [m["order_id"] for m in done] == [oa]
        invoice = ray.get(shard.minted.remote(oa, "0xtx"))
        snapshot = json.loads(r.hget(users_key, A.lower()))["data"]
        assert snapshot["invoices"] == {}
        assert json.loads(r.hget(invoices_key, f"{A.lower()}\nm1"))["data"]["invoice"]["mint_tx"] == "0xtx"

        # The same shard as an older version stored it: the records inside the meta, no hash, no set.
        ray.kill(shard, no_restart=True)
        meta["fill_keys"] = ["b1:1", "old:1"]
        meta["completed"] = {"b1": done, "old": []}
        r.set(meta_key, json.dumps(meta))
        snapshot["invoices"] = {"m1": invoice.model_dump(mode="json")}
        r.hset(users_key, A.lower(), json.dumps(snapshot))
        r.delete(keys_key, done_key, invoices_key)
        shard = IndexOrderBooks.options(name=f"obm-{tag}-2").remote(0, options)
        assert ray.get(shard.apply_fills.remote("old:1", [fill(oa, "0.001", "1", "0")])) == 0  # known: a replay
        again = ray.get(shard.complete_batch.remote("b1", [BatchOrderResult(oa, Decimal("0.001"), (line,))]))
        assert again == mints  # the stored answer, not a second close
        assert ray.get(shard.minted.remote(oa, "0xtx")) == invoice  # the invoice came back from the old snapshot
        ray.get(shard.credit.remote([CollateralDeposit(42161, "0x03", 1, 1, A, Decimal("1"))]))  # any commit
        meta = json.loads(r.get(meta_key))["data"]
        assert meta["fill_keys"] == [] and meta["completed"] == {}
        assert r.smembers(keys_key) == {b"b1:1", b"old:1"}
        assert set(r.hkeys(done_key)) == {b"b1", b"old"}
        assert set(r.hkeys(invoices_key)) == {f"{A.lower()}\nm1".encode()}
        assert ray.get(shard.user.remote(A))["invoices"]["m1"]["mint_tx"] == "0xtx"
    finally:
        ray.kill(shard, no_restart=True)
        r.close()


def test_sharded_app_and_sink_route_each_user_to_its_shard_in_request_order(ray_cluster, redis_server):
    from actors.order_shards import ShardedApp, ShardedCollateralSink, shard_of_user
    from protocol.indexmaker_app import CancelDone, CancelOrder

    tag = uuid.uuid4().hex[:8]
    options = OrderBooksOptions(redis_server.url, 2, (INDEX,), key_prefix=f"oba-{tag}")
    shards = [IndexOrderBooks.options(name=f"oba-{tag}-{k}").remote(k, options) for k in range(2)]
    try:
        addrs = [f"0x{i:040x}" for i in range(1, 40)]
        by_shard = {k: [a for a in addrs if shard_of_user(a, 2) == k][:2] for k in range(2)}
        users = [by_shard[0][0], by_shard[1][0], by_shard[0][1], by_shard[1][1]]  # interleaved shards
        deposits = [CollateralDeposit(42161, "0x02", i, 1, a, Decimal("100")) for i, a in enumerate(users)]
        asyncio.run(ShardedCollateralSink(shards).credit(deposits, {}))
        refs = [UserRef(42161, a) for a in users]
        requests = [NewOrder(refs[0], "x", INDEX, Side.BUY, Decimal("10")),
                    NewOrder(refs[1], "x", INDEX, Side.BUY, Decimal("20")),
                    CancelOrder(refs[0], "x", INDEX, Decimal("4")),
                    NewOrder(refs[2], "x", INDEX, Side.BUY, Decimal("500")),  # more than its 100
                    NewOrder(refs[3], "x", INDEX, Side.BUY, Decimal("30"))]
        answers = asyncio.run(ShardedApp(shards).handle(requests))
        assert [type(a).__name__ for a in answers] == ["OrderAccepted", "OrderAccepted", "CancelDone",
                                                        "OrderRefused", "OrderAccepted"]
        assert [a.user for a in answers] == [refs[0], refs[1], refs[0], refs[2], refs[3]]
        assert isinstance(answers[2], CancelDone) and answers[2].cancelled == Decimal("4")
        for k in range(2):
            for a in users:
                view = ray.get(shards[k].user.remote(a))
                assert (view is not None) == (shard_of_user(a, 2) == k)  # each user lives in one shard only
        pending = [p for k in range(2) for p in ray.get(shards[k].pending.remote(10))]
        assert sorted((p.order_id.split(":")[0], p.collateral) for p in pending) == sorted(
            [(users[0], Decimal("6")), (users[1], Decimal("20")), (users[3], Decimal("30"))])
    finally:
        for a in shards:
            ray.kill(a, no_restart=True)


def _parts(view: dict) -> dict[str, Decimal]:
    ledger = view["ledger"]
    return {k: Decimal(ledger[k]) for k in ("credited", "available", "held", "reserved", "spent", "fees_charged",
                                            "debt")}


def _balanced(parts: dict[str, Decimal]) -> bool:
    return parts["credited"] + parts["debt"] == (parts["available"] + parts["held"] + parts["reserved"]
                                                 + parts["spent"] + parts["fees_charged"])


def test_a_full_deposit_order_right_after_the_credit_pays_its_routing_fee_in_full(ray_cluster, redis_server):
    """The hold is kept from the deposit in the user's shard, an order can take only what is free, the route's
    real cost comes out of the hold (across a restart of the shard) and the rest is released, exactly."""
    from actors.order_shards import ShardedApp, ShardedCollateralSink, shard_of_user
    from core.collateral_route import FeeCharge

    tag = uuid.uuid4().hex[:8]
    options = OrderBooksOptions(redis_server.url, 2, (INDEX,), key_prefix=f"obh-{tag}", solver_name=None)
    shards = [IndexOrderBooks.options(name=f"obh-{tag}-{k}", max_restarts=1).remote(k, options) for k in range(2)]
    sink = ShardedCollateralSink(shards)
    user = "0x00000000000000000000000000000000000000a1"
    mine = shards[shard_of_user(user, 2)]
    deposit = CollateralDeposit(42161, "0x0d", 0, 1, user, Decimal("1000"))
    try:
        asyncio.run(sink.credit([deposit], {deposit.key: Decimal("2.5")}))
        asyncio.run(sink.credit([deposit], {deposit.key: Decimal("9")}))  # a replay: booked once, hold unchanged
        parts = _parts(ray.get(mine.user.remote(user)))
        assert (parts["available"], parts["held"]) == (Decimal("997.5"), Decimal("2.5")) and _balanced(parts)
        ref = UserRef(42161, user)
        answers = asyncio.run(ShardedApp(shards).handle([NewOrder(ref, "all", INDEX, Side.BUY, Decimal("1000")),
                                                         NewOrder(ref, "free", INDEX, Side.BUY, Decimal("997.5"))]))
        assert [type(a).__name__ for a in answers] == ["OrderRefused", "OrderAccepted"]
        assert answers[0].code.value == "INSUFFICIENT_COLLATERAL"
        charges = [FeeCharge(f"route-1:{hop}:{deposit.key}", user, deposit.key, hop, Decimal(fee))
                   for hop, fee in (("across", "1.000001"), ("transfer", "0.519999"))]
        asyncio.run(sink.charge(charges[:1]))
        ray.kill(mine, no_restart=False)  # the shard restarts between the route's hops: the hold is stored
        wait_restarted(mine)
        asyncio.run(sink.charge(charges))  # the first again (a replay), then the second
        parts = _parts(ray.get(mine.user.remote(user)))
        assert (parts["fees_charged"], parts["held"], parts["available"], parts["debt"]) == (
            Decimal("1.52"), Decimal("0.98"), 0, 0) and _balanced(parts)
        asyncio.run(sink.routed("route-1", {deposit.key: Decimal("998.48")}, {deposit.key: user}))
        asyncio.run(sink.routed("route-1", {deposit.key: Decimal("998.48")}, {deposit.key: user}))  # replay
        parts = _parts(ray.get(mine.user.remote(user)))
        assert (parts["held"], parts["available"], parts["reserved"]) == (0, Decimal("0.98"), Decimal("997.5"))
        assert _balanced(parts) and parts["credited"] == Decimal("1000")
    finally:
        for a in shards:
            ray.kill(a, no_restart=True)


def test_token_deposits_reach_their_senders_shards_once_and_survive_a_kill(ray_cluster, redis_server):
    """The chain listener's hand-over (ShardedTokenSink) on two real shards: each deposit credited in its sender's
    shard only, the user told; a shard killed comes back with the same tokens and books a re-read batch as nothing;
    a reorg's keys go to every shard and only the owner takes the deposit back, once."""
    from actors.order_shards import ShardedTokenSink, shard_of_user
    from core.chain_events import TokenDeposit
    from protocol.indexmaker_app import TokenDepositReport

    tag = uuid.uuid4().hex[:8]
    options = OrderBooksOptions(redis_server.url, 2, (INDEX,), key_prefix=f"obt-{tag}")
    shards = [IndexOrderBooks.options(name=f"obt-{tag}-{k}").remote(k, options) for k in range(2)]
    sink = Reports.options(name=f"obtr-{tag}").remote()
    try:
        ray.get(sink.follow.remote(redis_server.url, f"obt-{tag}", 1))  # shard 0's reports (seqs are per shard)
        addrs = [f"0x{i:040x}" for i in range(1, 40)]
        u0, u1 = (next(a for a in addrs if shard_of_user(a, 2) == k) for k in range(2))
        deposits = [TokenDeposit(8453, "0x" + "0a" * 32, 0, 5, u0, INDEX, Decimal("0.01")),
                    TokenDeposit(8453, "0x" + "0b" * 32, 3, 6, u1, INDEX, Decimal("0.25")),
                    TokenDeposit(8453, "0x" + "0c" * 32, 1, 7, u0, INDEX, Decimal("0.004"))]
        tokens = ShardedTokenSink(shards)
        asyncio.run(tokens.credit(deposits))
        views = [ray.get(shards[k].user.remote(u)) for k, u in ((0, u0), (1, u1))]
        assert Decimal(views[0]["tokens"]["indexes"][INDEX]["available"]) == Decimal("0.014")
        assert Decimal(views[1]["tokens"]["indexes"][INDEX]["available"]) == Decimal("0.25")
        assert ray.get(shards[0].user.remote(u1)) is None and ray.get(shards[1].user.remote(u0)) is None

        ray.kill(shards[0], no_restart=False)
        wait_restarted(shards[0])
        assert call_until_back(shards[0].user, u0) == views[0]
        assert ray.get(shards[0].credit_tokens.remote(deposits[::2])) == 0  # the batch read again: nothing new

        asyncio.run(tokens.reverse([deposits[2].key]))
        asyncio.run(tokens.reverse([deposits[2].key]))  # the same reorg seen again
        after = {k: Decimal(v) for k, v in ray.get(shards[0].user.remote(u0))["tokens"]["indexes"][INDEX].items()}
        assert (after["available"], after["reversed"], after["debt"]) == (Decimal("0.01"), Decimal("0.004"), 0)
        assert ray.get(shards[1].user.remote(u1)) == views[1]

        reports = [r.response for r in ray.get(sink.wait_count.remote(3))]
        assert all(isinstance(r, TokenDepositReport) for r in reports)
        assert [(r.user.address, r.deposit_id, r.status, r.units) for r in reports] == [
            (u0, deposits[0].key, "credited", Decimal("0.01")), (u0, deposits[2].key, "credited", Decimal("0.004")),
            (u0, deposits[2].key, "reversed", Decimal("0.004"))]
    finally:
        for a in (*shards, sink):
            ray.kill(a, no_restart=True)
