"""Every actor of the running system killed in turn (`ray.kill(no_restart=False)`) in the middle of a round
with orders in flight, each at an observed moment (polled, bounded: never a sleep). It restarts, reloads from Redis
and reconciles, and the round ends exactly as the undisturbed reference round does: per user the units filled, the
collateral spent and returned, the tokens minted on chain; the same batch plan and exchange fills. Checked in every
round besides (tests/chaos/chaos_world.py `check_round`): one exchange order per batch and symbol and no client order
id twice; each order's fill reports cumulative and strictly growing, closed once, equal to the invoice; no report
seq_num delivered twice; one mint per order on chain and a token balance equal to the fills; fees charged once.

Where each strike lands:
* market-{k}: the round's orders accepted and pending, the book withdrawn (the solver asks the shard every tick);
* sender: the exchange executed an order of the batch and holds its answer (the sender waits for it);
* orders-{k}: a batch of the round engaged, its exchange orders held before they execute;
* solver: the same, once the batch is stored with the inventory it carried in (lots the restarted solver must still
  assign with the exchange fills);
* gateway: a client got the first fill report, the exchange still holding the orders;
* router: a route of the round's deposits under way;
* chain, minter: a mint recorded by the TxSender (signed, sent) and not mined (automine off on Base).
"""
from __future__ import annotations

import pytest

pytest.importorskip("ray")

pytestmark = pytest.mark.slow

ACTORS = ["market-0", "market-1", "sender", "orders-0", "orders-1", "gateway", "router", "chain", "minter",
          "solver"]

@pytest.mark.parametrize("actor", ACTORS)
def test_actor_killed_mid_round_changes_nothing(chaos_world, actor: str) -> None:
    result = chaos_world.strike(actor)
    assert any(n.split("] ", 1)[1].startswith("killed ") for n in result.notes), result.notes
    assert result.restarted == {actor: 1}, f"restarts during the round: {result.restarted}"  # no crash loop
    chaos_world.compare(result)
