"""Shard assignment: every symbol has exactly one owner, computed from the symbol alone."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from core.shard_assignment import assign_shards, shard_name, shard_of

symbols = st.lists(st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=3, max_size=10), max_size=60)


@settings(max_examples=60, deadline=None)
@given(symbols, st.integers(1, 7))
def test_every_symbol_has_exactly_one_shard(names: list[str], shards: int) -> None:
    groups = assign_shards(names, shards)
    assert len(groups) == shards
    flat = [s for g in groups for s in g]
    assert sorted(flat) == sorted(set(names))
    for k, g in enumerate(groups):
        assert g == sorted(g)
        assert all(shard_of(s, shards) == k for s in g)


@settings(max_examples=40, deadline=None)
@given(symbols, st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=3, max_size=10), st.integers(1, 5))
def test_adding_a_symbol_moves_no_other(names: list[str], extra: str, shards: int) -> None:
    before = {s: k for k, g in enumerate(assign_shards(names, shards)) for s in g}
    after = {s: k for k, g in enumerate(assign_shards(names + [extra], shards)) for s in g}
    assert all(after[s] == k for s, k in before.items())


def test_real_basket_symbols_spread_over_shards(exchange_info: dict) -> None:
    names = [e["symbol"] for e in exchange_info["symbols"]]
    sizes = [len(g) for g in assign_shards(names, 3)]
    # a hash, not a balancer: roughly even is all it promises (each within 20 % of a third)
    assert sum(sizes) == len(names) and min(sizes) >= 0.8 * len(names) / 3
    assert shard_name(3) == "market-3"


def test_a_shard_count_below_one_is_refused() -> None:
    import pytest

    with pytest.raises(ValueError):
        shard_of("BTCUSDC", 0)
