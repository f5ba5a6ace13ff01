"""Config: defaults, TOML, environment overrides, refusals of floats and inconsistent fees."""
from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from cli import main as cli_main
from core.config import Settings


def test_defaults_are_decimal_and_consistent():
    s = Settings.load()
    assert s.solver.fee_factor == Decimal("1.002") and isinstance(s.solver.slippage_cap, Decimal)
    assert s.solver.fee_factor * (1 - s.exchange.commission_rate) >= 1
    assert s.ports.redis != s.ports.ray  # Ray's GCS and Redis must not both take 6379


def test_toml_then_environment(tmp_path, monkeypatch):
    f = tmp_path / "test.toml"
    f.write_text('environment = "testnet"\n[solver]\nslippage_cap = "0.02"\nmax_levels = 7\n')
    s = Settings.load(f)
    assert s.environment == "testnet" and s.solver.slippage_cap == Decimal("0.02") and s.solver.max_levels == 7
    monkeypatch.setenv("INDEXMAKER_SOLVER__MAX_LEVELS", "9")
    assert Settings.load(f).solver.max_levels == 9


@pytest.mark.parametrize(
    "body, needle",
    [
        ("[solver]\nfee_factor = 1.002\n", "string"),  # a float for money
        ('[solver]\nfee_factor = "1.0005"\n', "commission_rate"),  # headroom below the commission
        ('[solver]\nslipage_cap = "0.01"\n', "slipage_cap"),  # a typo is an error, not ignored
        ('[exchange]\nrecv_window_ms = 70000\n', "recv_window_ms"),
    ],
)
def test_bad_files_are_explained(tmp_path, body, needle):
    f = tmp_path / "bad.toml"
    f.write_text(body)
    with pytest.raises(ValidationError) as e:
        Settings.load(f)
    assert needle in str(e.value)


def test_cli_config_check(tmp_path, capsys):
    good = tmp_path / "good.toml"
    good.write_text('[solver]\ntick_interval_ms = 50\n')
    assert cli_main(["config", "check", str(good)]) == 0
    bad = tmp_path / "bad.toml"
    bad.write_text("[solver]\nfee_factor = 1.5\n")
    assert cli_main(["config", "check", str(bad)]) == 1
    assert "fee_factor" in capsys.readouterr().err
    assert cli_main(["config", "check", str(tmp_path / "missing.toml")]) == 1


def test_the_gateway_serves_the_configured_chains_only(tmp_path) -> None:
    from core.config import REPO_ROOT

    assert Settings.load(REPO_ROOT / "config" / "testnet.toml").gateway.allowed_chain_ids == {421614, 84532}
    f = tmp_path / "t.toml"
    f.write_text('environment = "testnet"\n[chain]\narbitrum_chain_id = 421614\nbase_chain_id = 84532\n')
    with pytest.raises(ValueError, match=r"allowed_chain_ids \[8453, 42161\] must be among the configured chains"):
        Settings.load(f)  # mainnet ids left in place: every testnet user would be refused
