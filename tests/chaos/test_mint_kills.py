"""The straight mint leg under kills (M9 item 5): the shards push mintable orders to the minter, which mints them
in batches (one chain call, one keyed transaction per order) and reports back to each shard in one call. With a
batch recorded by the TxSender and not mined (automine off on Base), the minter, the chain actor, or the shard that
owns one of the batch's orders is killed; automine comes back on. The round must end as the undisturbed reference
round does, and tests/chaos/chaos_world.py `check_round` holds: one mint per order on chain, token balances equal
to the fills rounded down, exactly one invoice per order, and no order of the round left mint-pending."""
from __future__ import annotations

import pytest

pytest.importorskip("ray")

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("scenario", ["minter-batch", "chain-batch", "orders-0-mint", "orders-1-mint"])
def test_a_kill_while_mints_are_batched_mints_each_order_once(chaos_world, scenario: str) -> None:
    result = chaos_world.strike(scenario)
    actor = chaos_world.scenarios[scenario].name
    assert any(n.split("] ", 1)[1].startswith(f"killed {actor} ") for n in result.notes), result.notes
    trigger = next(n for n in result.notes if "trigger:" in n)
    assert "in flight, recorded, not mined" in trigger, trigger
    assert result.restarted == {actor: 1}, f"restarts during the round: {result.restarted}"
    chaos_world.compare(result)
