"""`minted` on an index-order shard when the Mint Invoice cannot be built (here: lines that cost more than the order
was charged, what a solver that assigned more than the shard engaged would hand over). The order must stay
unmarked and owed, and the retry must fail the same way, with the same reason. Marked before building (the old
order of steps), the order was left minted without an invoice and every retry answered KeyError."""
from __future__ import annotations

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
from protocol.indexmaker_app import NewOrder  # noqa: E402

pytestmark = pytest.mark.slow

INDEX = "SY100.dev"
USER = "0x" + "6b" * 20
UNIT = Decimal("1e-18")


def test_an_invoice_that_cannot_be_built_leaves_the_order_owed(ray_cluster, redis_server) -> None:
    prefix = f"mint-{uuid.uuid4().hex[:6]}"
    options = OrderBooksOptions(redis_server.url, 1, (INDEX,), key_prefix=prefix, solver_name=None)
    shard = IndexOrderBooks.options(name=prefix, namespace=ray_cluster).remote(0, options)
    try:
        oid = f"{USER}:c1"
        ray.get(shard.credit.remote([CollateralDeposit(42161, "0x" + "01" * 32, 0, 1, USER, Decimal("1000"))]))
        ray.get(shard.handle.remote([NewOrder(UserRef(42161, USER), "c1", INDEX, Side.BUY, Decimal("100"))]))
        units = Decimal("0.002")
        ray.get(shard.engage.remote("b1", [Engagement(oid, INDEX, units, Decimal("100"), Decimal("50000"))]))
        # charged 99.99 (the rest is dust: the order finishes) for lines that cost 150
        cost_q = int(Decimal("99.99").scaleb(24))
        ray.get(shard.apply_fills.remote("b1:1", [AssignedFill(oid, INDEX, int(units / UNIT), UNIT, cost_q, 0)]))
        line = AssetLine("BTCUSDC", 100, Decimal("0.000001"), Decimal("150"), Decimal("0"), ("t1",))
        (mint,) = ray.get(shard.complete_batch.remote("b1", [BatchOrderResult(oid, units, (line,))]))
        assert mint.order_id == oid

        errors = []
        for _ in range(2):  # the minter asks again after a failure: the same answer, not a KeyError
            with pytest.raises(ray.exceptions.RayTaskError) as info:
                ray.get(shard.minted.remote(oid, "0x" + "aa" * 32))
            errors.append(info.value)
        for e in errors:
            assert not isinstance(e.as_instanceof_cause(), KeyError), e
            assert "charged less than the cost" in str(e)
        for _ in range(2):  # the minter's batched report: the reason as the answer, the same each time
            (answer,) = ray.get(shard.minted_batch.remote([(oid, "0x" + "aa" * 32)]))
            assert isinstance(answer, str) and "charged less than the cost" in answer
        assert [m.order_id for m in ray.get(shard.mint_pending.remote())] == [oid]  # still owed, not marked
        view = ray.get(shard.user.remote(USER))
        assert view["invoices"] == {} and [o["minted_tx"] for o in view["orders"]] == [None]
    finally:
        ray.kill(shard, no_restart=True)
