"""Two worlds for the chaos tests, one after the other (2 cores): an undisturbed reference that runs every round of
the session first, then the world the chaos tests strike, round by round, each compared with the reference's round
of the same number (tests/chaos/chaos_world.py says why the reference is a second run and not an earlier round)."""
from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest

from tests.chaos.chaos_world import RoundResult, chaos_system, compare, run_round, scenarios


class ChaosWorld:
    def __init__(self, system: Any, reference: list[RoundResult]) -> None:
        self.system = system
        self.reference = reference
        self.rounds = 0
        self.scenarios = scenarios(system.o.order_shards, system.o.market_shards)

    def strike(self, name: str) -> RoundResult:
        """The next round with scenario `name` striking mid-way, checked (`check_round`); `compare` next."""
        index, self.rounds = self.rounds, self.rounds + 1
        result = asyncio.run(run_round(self.system, index, self.scenarios[name]))
        print(f"round {index} ({name}): {result.seconds:.1f} s; " + "; ".join(result.notes))
        return result

    def compare(self, result: RoundResult) -> None:
        compare(self.reference[result.index], result)


def _start(rounds: int, tag: str) -> Any:
    return chaos_system(rounds, f"{tag}-{uuid.uuid4().hex[:8]}").start()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:  # noqa: ARG001
    """The solver's kill runs last among the chaos rounds: while its known defect stands (see test_actor_kills.py
    SOLVER_RESTORE_DEFECT) its round may end off the reference, and every later round would then start from
    another inventory than its reference round and could not be compared."""
    where = [i for i, item in enumerate(items) if "chaos_world" in getattr(item, "fixturenames", ())]
    chaos = [items[i] for i in where]
    chaos.sort(key=lambda item: item.name.endswith("[solver]"))  # stable: the rest keep their order
    for i, item in zip(where, chaos):
        items[i] = item


@pytest.fixture(scope="session")
def chaos_rounds(request: pytest.FixtureRequest) -> int:
    """One round per chaos test collected in this session."""
    return sum(1 for item in request.session.items if "chaos_world" in getattr(item, "fixturenames", ()))


@pytest.fixture(scope="session")
def reference_rounds(ray_cluster, chaos_rounds: int) -> list[RoundResult]:  # noqa: ARG001
    started = time.monotonic()
    system = _start(chaos_rounds, "chaos-ref")
    try:
        up = time.monotonic() - started
        results = [asyncio.run(run_round(system, j)) for j in range(chaos_rounds)]
    finally:
        system.stop()
    print(f"\nreference: up in {up:.1f} s, {chaos_rounds} rounds in "
          f"{sum(r.seconds for r in results):.1f} s ({', '.join(f'{r.seconds:.1f}' for r in results)})")
    return results


@pytest.fixture(scope="session")
def chaos_world(ray_cluster, chaos_rounds: int, reference_rounds: list[RoundResult]):  # noqa: ARG001
    system = _start(chaos_rounds, "chaos")
    try:
        yield ChaosWorld(system, reference_rounds)
    finally:
        system.stop()
