"""redis-server killed (SIGKILL) mid-batch and started again on the same port and directory (AOF,
appendfsync always) only once the actors have felt the outage: the fills that came back meanwhile sit at the sender,
which failed to commit them (after its client's own retries). Every actor rides it out (retries, nothing written is lost, no crash
loop), and the round ends exactly as the undisturbed reference round does, with every invariant of
tests/chaos/chaos_world.py `check_round`.

When: the batch's orders held at the exchange (before they execute) and the solver's state durable with nothing
left to write. The solver is the one actor that does NOT ride an outage out (a failed write empties its memory:
actors/solver.py `_commit` -> `_reload` -> `_load` fails too, engine/outbox/mints/cursor left empty; reported), so
the outage is placed where it writes nothing; the index-order shards, the sender, the router, the chain actor and the
gateway all write during it."""
from __future__ import annotations

import pytest

pytest.importorskip("ray")

pytestmark = pytest.mark.slow


def test_redis_restarted_mid_batch_changes_nothing(chaos_world) -> None:
    result = chaos_world.strike("redis")
    assert result.restarted == {}, f"actors that crashed during the outage: {result.restarted}"
    chaos_world.compare(result)
    notes = " ".join(result.notes)
    assert "redis-server killed" in notes and "the sender failed a commit of them" in notes, result.notes
