"""The test Ray instance: a named async actor with num_cpus=0 runs core code, and a batch of 1,000 items crosses in
one call (the pattern every hot path uses)."""
from __future__ import annotations

from decimal import Decimal

import ray


@ray.remote(num_cpus=0)
class _Summer:
    async def total(self, amounts: list[Decimal]) -> Decimal:
        import core  # noqa: F401  (the project's decimal context in the worker too)
        from core.money import sum_decimals

        return sum_decimals(amounts)


def test_named_actor_sums_a_batch_exactly(ray_cluster):
    actor = _Summer.options(name="summer").remote()
    amounts = [Decimal("0.1")] * 1000
    assert ray.get(actor.total.remote(amounts)) == Decimal("100.0")
    assert ray.get_actor("summer") is not None
    ray.kill(actor)
