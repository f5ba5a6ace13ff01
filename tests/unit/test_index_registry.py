"""The index registry: `[indexes.<SYMBOL>]` entries in the config, and the check of each basket against the
exchange's exchangeInfo (listed, TRADING, one unit above the step)."""
from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest
from pydantic import ValidationError

from core.basket import Basket, BasketAsset, load_indexes
from core.basket_check import basket_problems
from core.config import REPO_ROOT, Settings
from core.symbol_filters import parse_exchange_info
from world.config_check import check

LOCAL = REPO_ROOT / "config" / "local.toml"


@pytest.fixture(scope="module")
def filters(exchange_info: dict):
    return parse_exchange_info(exchange_info)


def test_local_serves_the_six_real_indexes_and_the_dev_basket() -> None:
    s = Settings.load(LOCAL)
    assert list(s.indexes) == ["SY100", "SYAI", "SYAZ", "SYDF", "SYL2", "SYME", "SY100DEV"]
    baskets = load_indexes(s.data_dir / "indexes", s.basket_files())
    assert len(baskets["SY100"].assets) == 81
    assert len({a.symbol for b in baskets.values() for a in b.assets}) == 155  # what the simulator must serve
    assert all(e.token == "deploy" and e.name for e in s.indexes.values())


def test_without_a_registry_the_dev_basket_is_served(tmp_path) -> None:
    assert list(Settings().indexes) == ["SY100DEV"]
    f = tmp_path / "one.toml"
    f.write_text('[indexes.SYAI]\nbasket = "SYAI.json"\ntoken = { base = "0x0000000000000000000000000000000000000001" }\n')
    s = Settings.load(f)
    assert list(s.indexes) == ["SYAI"]  # a file's registry replaces the default whole
    assert s.indexes["SYAI"].token == {"base": "0x0000000000000000000000000000000000000001"}


@pytest.mark.parametrize("body, words", [
    ('[indexes."SY100.dev"]\nbasket = "SY100.dev.json"\n', "A-Z and 0-9"),
    ('[indexes.SYAI]\nbasket = "SYAI.json"\ntoken = "mint-it"\n', 'token must be "deploy"'),
    ('[indexes.SYAI]\nname = "no basket"\n', "basket"),
    ("indexes = {}\n", "serves no index"),
])
def test_a_bad_registry_is_refused_with_its_reason(tmp_path, body: str, words: str) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(body)
    with pytest.raises((ValidationError, ValueError), match=words):
        Settings.load(f)
    assert any(words in e for e in check(str(f)).errors)


def test_a_basket_the_exchange_serves_has_no_problem(filters) -> None:
    basket = Basket("T", (BasketAsset("BTCUSDC", Decimal("0.5")), BasketAsset("ETHUSDC", Decimal("2"))))
    assert basket_problems(basket, filters) == []


def test_unknown_halted_and_too_small_pairs_are_each_named(filters) -> None:
    btc = filters["BTCUSDC"]
    halted = {**filters, "ETHUSDC": dataclasses.replace(filters["ETHUSDC"], status="BREAK")}
    basket = Basket("T", (BasketAsset("BTCUSDC", btc.step_size / 2), BasketAsset("ETHUSDC", Decimal("1")),
                          BasketAsset("NOPEUSDC", Decimal("1"))))
    assert basket_problems(basket, halted) == [
        f"indexes.T: BTCUSDC holds {btc.step_size / 2} per index unit, below the pair's step {btc.step_size}",
        "indexes.T: ETHUSDC is BREAK, not TRADING",
        "indexes.T: NOPEUSDC is not a pair of the exchange"]


def test_config_check_checks_every_basket_of_the_local_registry() -> None:
    result = check(str(LOCAL))
    assert result.errors == []
    assert any("7 indexes" in n and "155 pairs" in n for n in result.notes)
