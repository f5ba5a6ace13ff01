"""ChainConfig: the chain side's numbers in core.config (defaults, TOML, environment, refusals) and what chain code
derives from them (USDC unit, batching policy, the router's slice)."""
from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from chain.collateral_router import RouterConfig
from core.config import ChainConfig, GatewayConfig, Settings
from core.route_batch import BatchPolicy


def test_defaults_are_decimal_and_match_the_collateral_unit():
    s = Settings.load()
    c = s.chain
    assert c.usdc_unit == Decimal("0.000001") == s.collateral.unit
    assert isinstance(c.bridge_fee_rate, Decimal) and 0 < c.bridge_fee_rate < 1
    assert all(isinstance(p, Decimal) and p > 0 for p in c.native_price.values())
    assert set(c.native_price) == {c.arbitrum_chain_id, c.base_chain_id}
    assert c.batch_policy == BatchPolicy()  # one deposit per route, at once


def test_toml_then_environment_reach_the_chain_section(tmp_path, monkeypatch):
    f = tmp_path / "chain.toml"
    f.write_text('[chain]\nconfirmations = 5\nbridge_fee_rate = "0.0025"\nbatch_max_deposits = 8\n'
                 'batch_close_amount = "1000"\nbatch_max_wait_ms = 30000\n'
                 '[chain.native_price]\n42161 = "2500.5"\n8453 = "2600"\n')
    s = Settings.load(f)
    assert s.chain.confirmations == 5 and s.chain.bridge_fee_rate == Decimal("0.0025")
    assert s.chain.native_price == {42161: Decimal("2500.5"), 8453: Decimal("2600")}
    assert s.chain.batch_policy == BatchPolicy(8, Decimal("1000"), 30_000)
    monkeypatch.setenv("INDEXMAKER_CHAIN__RECEIPT_POLL_MS", "75")
    assert Settings.load(f).chain.receipt_poll_ms == 75


@pytest.mark.parametrize(
    "body, needle",
    [
        ("[chain]\nbridge_fee_rate = 0.001\n", "string"),  # a float for money
        ("[chain]\nbatch_close_amount = 100.5\n", "string"),  # also when the money is optional
        ("[chain.native_price]\n42161 = 3000.0\n8453 = \"3000\"\n", "string"),  # and inside a table
        ('[chain.native_price]\n42161 = "3000"\n', "8453"),  # a chain without a gas price
        ('[chain]\nbridge_fee_rate = "1"\n', "bridge_fee_rate"),
        ("[chain]\nusdc_decimals = 8\n", "collateral.unit"),  # the ledger would not count chain units
        ("[chain]\nbatch_max_deposits = 0\n", "batch_max_deposits"),
        ("[chain]\nreceipt_timeout_s = 60\n", "receipt_timeout_s"),  # the old name is an error, not ignored
    ],
)
def test_bad_chain_sections_are_explained(tmp_path, body, needle):
    f = tmp_path / "bad.toml"
    f.write_text(body)
    with pytest.raises(ValidationError) as e:
        Settings.load(f)
    assert needle in str(e.value)


def test_usdc_unit_follows_the_decimals():
    assert ChainConfig(usdc_decimals=2).usdc_unit == Decimal("0.01")
    assert ChainConfig(usdc_decimals=0).usdc_unit == Decimal(1)


def test_router_takes_its_slice_from_the_three_sections():
    s = Settings(chain=ChainConfig(base_chain_id=84532, batch_max_deposits=4, batch_max_wait_ms=1_000,
                                   native_price={42161: Decimal(3000), 84532: Decimal(3000)}),
                 gateway=GatewayConfig(allowed_chain_ids=frozenset({42161, 84532})))
    r = RouterConfig.from_settings(s, namespace="r2")
    assert r.destination_chain_id == 84532 and r.unit == s.chain.usdc_unit
    assert r.batch == BatchPolicy(4, None, 1_000)
    assert (r.coin, r.network, r.namespace) == (s.collateral.symbol, s.exchange.deposit_network, "r2")
