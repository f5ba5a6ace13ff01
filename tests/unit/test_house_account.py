"""The local world's exchange trades the operator's keys when they are set (README: exchange keys come from
INDEXMAKER_EXCHANGE_API_KEY / _SECRET), and the simulator's test keys otherwise; funded the same either way."""
from __future__ import annotations

from decimal import Decimal

from exchange.simulator.config import TEST_API_KEY, TEST_SECRET
from world.local_exchange import house_account


def test_the_house_account_takes_the_operators_keys_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("INDEXMAKER_EXCHANGE_API_KEY", "opKey")
    monkeypatch.setenv("INDEXMAKER_EXCHANGE_SECRET", "opSecret")
    spec = house_account()
    assert (spec.api_key, spec.secret) == ("opKey", "opSecret")
    assert spec.balances["USDC"] == Decimal("1000000")


def test_without_keys_the_house_account_is_the_simulators_test_account(monkeypatch) -> None:
    monkeypatch.delenv("INDEXMAKER_EXCHANGE_API_KEY", raising=False)
    monkeypatch.delenv("INDEXMAKER_EXCHANGE_SECRET", raising=False)
    spec = house_account()
    assert (spec.api_key, spec.secret) == (TEST_API_KEY, TEST_SECRET)
