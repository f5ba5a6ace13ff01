"""Every number is a setting: a TOML file reaches the part that uses each of them,
and `config check` explains a wrong one."""
from __future__ import annotations

from decimal import Decimal

from actors.monitor import MonitorOptions
from actors.order_sender import SenderOptions
from actors.solver import SolverOptions
from core.config import Settings
from world.config_check import check
from world.launcher import LauncherOptions

TOML = """
[indexes.SYAI]
basket = "SYAI.json"
[system]
order_shards = 3
poll_ms = 75
[local]
users = 5
confirmations = 1
price_update_ms = 0
[sender]
order_weight = 2
[solver]
executions_linger_ms = 100
[monitor]
interval_s = 2.5
max_book_lag_ms = 800
[gateway]
max_sessions_per_address = 2
[store]
host = "10.0.0.5"
[chain]
route_hold_gas = { 42161 = "2.25", 8453 = "0.75" }
"""


def test_a_toml_file_reaches_every_part_that_uses_its_numbers(tmp_path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(TOML)
    s = Settings.load(path)
    o = LauncherOptions(users=1).resolved(s)  # what a launch pins wins; the rest comes from the settings
    assert (o.users, o.order_shards, o.poll_ms, o.confirmations, o.price_update_ms) == (1, 3, 75, 1, 0)
    assert o.tick_interval_ms == s.solver.tick_interval_ms and o.market_shards == s.exchange.market_shards
    sender = SenderOptions.from_settings(s, "k", "secret")
    assert (sender.order_weight, sender.redis_url) == (2, "redis://10.0.0.5:16379/0")
    assert SolverOptions.from_settings(s, 3).executions_linger_ms == 100
    monitor = MonitorOptions.from_settings(s, ("solver",))
    assert (monitor.interval_s, monitor.limits.max_book_lag_ms) == (2.5, 800)
    assert s.gateway.max_sessions_per_address == 2
    assert s.basket_files() == {"SYAI": "SYAI.json"}
    assert s.chain.hold_policy.hold_for(Decimal("100"), 42161) == Decimal("2.35")  # 0.1 % cut + 2.25 of gas
    assert s.chain.hold_policy.hold_for(Decimal("100"), 8453) == Decimal("0.75")  # no bridge on Base


def test_config_check_explains_a_wrong_number_in_a_new_section(tmp_path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[sender]\norder_weight = 0\n[gateway]\nmax_frame_bytes = 10\n[chain]\n"
                    "route_hold_gas = { 42161 = 1.5 }\n")
    result = check(str(path))
    assert not result.ok
    text = "\n".join(result.errors)
    assert "order_weight" in text and "max_frame_bytes" in text and "route_hold_gas" in text
