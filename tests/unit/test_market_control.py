"""`indexmaker market` (world/market_control.py) only ever talks to the local world's simulator: another
environment's exchange is refused before any request, with the reason."""
from __future__ import annotations

import os

import cli
from world.run_file import write_run


def test_market_commands_refuse_an_exchange_that_is_not_the_local_simulator(tmp_path, capsys) -> None:
    write_run(tmp_path, phase="up", pid=os.getpid(), environment="testnet", exchange_url="https://testnet.invalid",
              http_url="http://example.invalid", world_file=str(tmp_path / "world.json"))
    assert cli.main(["market", "regime", "volatile", "--state-dir", str(tmp_path)]) == 1
    assert "not the local world's simulator" in capsys.readouterr().err


def test_market_commands_without_a_running_system_say_so(tmp_path, capsys) -> None:
    assert cli.main(["market", "regime", "--state-dir", str(tmp_path)]) == 1
    assert "no running system" in capsys.readouterr().err
