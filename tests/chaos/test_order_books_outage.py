"""An order-book shard through a Redis outage, on its own (the whole system's outage, test_redis_restart.py, is
placed where the solver writes nothing, so the shards are not written to during it):

* a write that meets the outage waits for Redis and then goes through: the caller gets its answer late, never an
  error (the solver drops a step after a few errors), and nothing it wrote is lost;
* a shard restarted while Redis is down waits for it in `__init__` (one restart, no crash loop) and comes back
  with everything committed before.

Each step waits on an observed condition: the shard's own count of commits sent again, Ray's restart count."""
from __future__ import annotations

import time
import uuid
from decimal import Decimal

import pytest

ray = pytest.importorskip("ray")

from actors.order_books import IndexOrderBooks, OrderBooksOptions  # noqa: E402
from core.chain_events import CollateralDeposit  # noqa: E402
from store.retry import RetryPolicy  # noqa: E402
from world.redis_server import RedisServer  # noqa: E402

pytestmark = pytest.mark.slow

WAIT_S = 30.0
USER = "0x" + "5a" * 20


def _until(predicate, what: str) -> None:  # noqa: ANN001
    deadline = time.monotonic() + WAIT_S
    while not predicate():
        assert time.monotonic() < deadline, f"{what}: not reached in {WAIT_S} s"
        time.sleep(0.02)  # polling another process's state


def _restarts(handle) -> int:  # noqa: ANN001
    from ray._private import state

    return int(state.actors(handle._actor_id.hex())["NumRestarts"])


def _deposit(i: int, amount: str) -> CollateralDeposit:
    return CollateralDeposit(42161, f"0x{i:064x}", 0, i, USER, Decimal(amount))


def test_a_shard_rides_out_a_redis_outage(ray_cluster, tmp_path) -> None:
    redis = RedisServer(tmp_path / "redis").start()
    shard = None
    try:
        options = OrderBooksOptions(redis.url, 1, ("SY100.dev",), key_prefix=f"outage-{uuid.uuid4().hex[:6]}",
                                    solver_name=None, retry=RetryPolicy(50, 2_000, 5))
        shard = IndexOrderBooks.options(name=f"outage-{uuid.uuid4().hex[:6]}", namespace=ray_cluster).remote(0, options)
        ray.get(shard.credit.remote([_deposit(1, "100")]))

        def credited() -> Decimal:
            return Decimal(ray.get(shard.user.remote(USER))["ledger"]["credited"])

        def retries() -> int:
            return ray.get(shard.inspect.remote())["counts"].get("commit_retries", 0)

        # 1. a write meets the outage: it waits, then goes through
        redis.kill()
        pending = shard.credit.remote([_deposit(2, "50")])
        _until(lambda: retries() > 0, "the shard sending its commit again while redis is down")
        ready, _ = ray.wait([pending], timeout=0)
        assert not ready, "the shard answered a write it could not store"
        redis.start()
        ray.get(pending, timeout=WAIT_S)  # no error: the caller just waited
        assert credited() == Decimal("150")
        assert ray.get(shard.inspect.remote())["errors"] == []

        # 2. restarted while redis is down: it waits for redis, once, and reloads everything
        before = _restarts(shard)
        redis.kill()
        ray.kill(shard, no_restart=False)
        _until(lambda: _restarts(shard) > before, "Ray restarting the shard")
        redis.start()
        deadline = time.monotonic() + WAIT_S
        while True:  # its __init__ finishes once redis answers; until then Ray refuses calls as "restarting"
            try:
                assert credited() == Decimal("150")  # both deposits, from the store
                break
            except ray.exceptions.RayActorError:
                assert time.monotonic() < deadline, "the restarted shard never came back"
                time.sleep(0.05)  # polling a restarting actor
        info = ray.get(shard.inspect.remote())
        assert info["restarted"] and _restarts(shard) == before + 1  # no crash loop
        ray.get(shard.credit.remote([_deposit(2, "50")]))  # a replay books nothing twice
        assert credited() == Decimal("150")
    finally:
        if shard is not None:
            ray.kill(shard, no_restart=True)
        redis.stop()
