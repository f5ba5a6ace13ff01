"""The operator's configuration: the three environment files pass `config check`, a broken file gets one clear
line per problem, secrets come only from the environment or a private file outside the repository, and placement
tables put each actor where they say."""
from __future__ import annotations

import os
import stat
from decimal import Decimal
from pathlib import Path

import pytest

from cli import main
from world.config_check import check, explain
from world.placement import check_placement, placed, resources_for
from world.secrets import SECRETS_FILE_ENV, SecretsError, load_into_environ, read_secrets_file, report

ROOT = Path(__file__).resolve().parents[2]
SECRET_VARS = ("INDEXMAKER_EXCHANGE_API_KEY", "INDEXMAKER_EXCHANGE_SECRET", "INDEXMAKER_CHAIN_MNEMONIC",
               "INDEXMAKER_GATEWAY_KEY", SECRETS_FILE_ENV)


@pytest.fixture(autouse=True)
def no_secrets_in_env(monkeypatch):
    """No secret from the machine in, and none of what a test loads (load_into_environ) out to later tests."""
    saved = dict(os.environ)
    for name in SECRET_VARS:
        monkeypatch.delenv(name, raising=False)
    yield
    os.environ.clear()
    os.environ.update(saved)


def write(tmp_path: Path, text: str, name: str = "c.toml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("env", ["local", "testnet", "live"])
def test_each_environment_file_passes(env: str, capsys) -> None:  # noqa: ANN001
    result = check(str(ROOT / "config" / f"{env}.toml"))
    assert result.errors == []
    assert result.settings.environment == env
    assert main(["config", "check", str(ROOT / "config" / f"{env}.toml")]) == 0
    assert f"ok ({env})" in capsys.readouterr().out


def test_the_environments_differ_where_they_must() -> None:
    local, testnet, live = (check(str(ROOT / "config" / f"{e}.toml")).settings for e in ("local", "testnet", "live"))
    assert (testnet.chain.arbitrum_chain_id, testnet.chain.base_chain_id) == (421614, 84532)
    assert (live.chain.arbitrum_chain_id, live.chain.base_chain_id) == (42161, 8453)
    assert "testnet" in testnet.exchange.rest_url and live.exchange.rest_url == "https://api.binance.com"
    assert live.chain.confirmations > testnet.chain.confirmations > 0
    assert local.ray.address is None and live.ray.address == "auto"
    assert resources_for("market-3", live.ray.placement) == {"exchange": 0.01}


def test_a_broken_file_gets_one_line_per_field(tmp_path: Path) -> None:
    path = write(tmp_path, '''environment = "staging"
[solver]
fee_factor = 1.002
tick_interval_ms = 0
[exchange]
api_key = "abc"
market_shards = "two"
[ray.placement]
solver = { CPU = 1 }
''')
    errors = check(path).errors
    by_field = {e.split(":", 1)[0]: e for e in errors}
    assert set(by_field) == {"environment", "solver.fee_factor", "solver.tick_interval_ms", "exchange.api_key",
                             "exchange.market_shards", "ray.placement.solver.CPU"}
    assert "write money as a string" in by_field["solver.fee_factor"]
    assert "greater than or equal to 1" in by_field["solver.tick_interval_ms"] and "(got 0)" in \
        by_field["solver.tick_interval_ms"]
    assert "secrets never go in a config file" in by_field["exchange.api_key"]
    assert "'staging'" in by_field["environment"]


def test_the_reserves_section_is_checked(tmp_path: Path) -> None:
    errors = check(write(tmp_path, '[reserves]\ninterval_s = -1\ntolerance = 0.01\nconfirm_reads = 0\n'
                                   'opening = { USDC = 1000.5 }\n')).errors
    by_field = {e.split(":", 1)[0]: e for e in errors}
    assert set(by_field) == {"reserves.interval_s", "reserves.tolerance", "reserves.confirm_reads",
                             "reserves.opening"}
    assert "write money as a string" in by_field["reserves.tolerance"]
    assert "write money as a string" in by_field["reserves.opening"]
    live = check(str(ROOT / "config" / "live.toml")).settings.reserves
    assert live.opening == {"USDC": 0} and check(None).settings.reserves.opening == {"USDC": 1000000}


def test_the_paper_section_is_checked(tmp_path: Path) -> None:
    assert check(None).settings.exchange.mode == "live"
    good = check(write(tmp_path, '[exchange]\nmode = "paper"\n'))
    assert good.ok and good.settings.paper.balances == {"USDC": 1000000}
    assert any(n.startswith("exchange.mode paper: market data from the local world's simulator") for n in good.notes)
    errors = check(write(tmp_path, '[exchange]\nmode = "papr"\n[paper]\nbalances = { USDC = 5.5 }\n'
                                   'avg_price_poll_ms = 0\n', "b.toml")).errors
    assert {e.split(":", 1)[0] for e in errors} == {"exchange.mode", "paper.balances", "paper.avg_price_poll_ms"}
    (error,) = check(write(tmp_path, '[exchange]\nmode = "paper"\n[paper]\nbalances = { USDC = "5" }\n',
                           "c.toml")).errors
    assert error.startswith("paper.balances: the reserves check counts from reserves.opening")
    testnet = (ROOT / "config" / "testnet.toml").read_text() + '\n[paper]\nbalances = { USDC = "0" }\n'
    errors = check(write(tmp_path, testnet.replace('[exchange]\n', '[exchange]\nmode = "paper"\n', 1), "d.toml")).errors
    assert any(e.startswith("paper.deposit_address: on a real chain") for e in errors)

def test_the_withdrawal_section_is_checked(tmp_path: Path) -> None:
    errors = check(write(tmp_path, '[withdrawal]\nminimum = 5.0\nexchange_netwrk = "BASE"\n')).errors
    by_field = {e.split(":", 1)[0]: e for e in errors}
    assert set(by_field) == {"withdrawal.minimum", "withdrawal.exchange_netwrk"}
    assert "write money as a string" in by_field["withdrawal.minimum"]
    good = check(write(tmp_path, '[withdrawal]\nminimum = "2.5"\n', "b.toml")).settings.withdrawal
    assert (good.minimum, good.exchange_network) == (Decimal("2.5"), "BASE")
    (error,) = check(write(tmp_path, '[withdrawal]\nminimum = "0"\n', "c.toml")).errors
    assert error.startswith("withdrawal.minimum:")


def test_the_external_local_worlds_addresses_are_checked(tmp_path: Path) -> None:
    from core.config import EXTERNAL_HOSTS

    assert check(None).settings.local.external_hosts == EXTERNAL_HOSTS
    assert len(set(EXTERNAL_HOSTS.values())) == len(EXTERNAL_HOSTS)
    cases = {"10.0.0.3": "exchange_rest: '10.0.0.3' is not a loopback address",
             "127.0.0.4": "each part has an address of its own",
             "nowhere": "exchange_rest: 'nowhere' is not a loopback address"}
    for n, (rest, message) in enumerate(cases.items()):
        hosts = ", ".join(f'{k} = "{rest if k == "exchange_rest" else v}"' for k, v in EXTERNAL_HOSTS.items())
        (error,) = check(write(tmp_path, f"[local]\nexternal_hosts = {{ {hosts} }}\n", f"{n}.toml")).errors
        assert error.startswith("local.external_hosts:") and message in error, error
    (error,) = check(write(tmp_path, '[local]\nexternal_hosts = { store = "127.0.0.8" }\n', "m.toml")).errors
    assert error.startswith("local.external_hosts: name exactly exchange_rest, "), error


def test_a_cross_field_rule_names_its_fields(tmp_path: Path) -> None:
    (error,) = check(write(tmp_path, '[solver]\nfee_factor = "1.0001"\n')).errors
    assert "solver.fee_factor" in error and "exchange.commission_rate" in error


def test_market_data_and_stale_book_settings_are_checked(tmp_path: Path) -> None:
    good = check(write(tmp_path, "[market_data]\nstale_after_ms = 2000\n[solver]\nstale_reject_after_ms = 0\n"))
    assert good.ok and good.settings.market_data.stale_after_ms == 2000
    assert good.settings.solver.stale_reject_after_ms == 0
    errors = check(write(tmp_path, "[market_data]\nstale_after_ms = 0\nstale_afer_ms = 5\n", "b.toml")).errors
    assert any(e.startswith("market_data.stale_after_ms:") for e in errors)
    assert "market_data.stale_afer_ms: unknown setting" in errors
    (error,) = check(write(tmp_path, "[market_data]\nreconnect_min_ms = 9000\n", "c.toml")).errors
    assert "market_data.reconnect_min_ms" in error and "reconnect_max_ms" in error


def test_toml_syntax_errors_say_where(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    path = write(tmp_path, 'environment = "local"\n[solver\n')
    assert main(["config", "check", path]) == 1
    err = capsys.readouterr().err
    assert "not valid TOML" in err and "line 2" in err


def test_a_missing_file_is_one_clear_line(tmp_path: Path) -> None:
    assert check(str(tmp_path / "nope.toml")).errors == [f"{tmp_path / 'nope.toml'}: no such file"]


def test_environment_variables_override_and_are_checked_too(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("INDEXMAKER_SOLVER__TICK_INTERVAL_MS", "-5")
    (error,) = check(str(ROOT / "config" / "local.toml")).errors
    assert error.startswith("solver.tick_interval_ms:")


def test_explain_keeps_long_values_short() -> None:
    line = explain({"loc": ("exchange", "name"), "type": "string_type", "msg": "Input should be a valid string",
                    "input": 7 * 10**80})
    assert line.startswith("exchange.name: Input should be a valid string (got ") and len(line) < 140


# ------------------------------------------------------------------------------------------------ secrets
def secrets_file(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "secrets.env"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_secrets_come_from_a_private_file(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    path = secrets_file(tmp_path, "# exchange\nINDEXMAKER_EXCHANGE_API_KEY=abc\nexport INDEXMAKER_CHAIN_MNEMONIC="
                                  "'word word'\n")
    assert read_secrets_file(path) == {"INDEXMAKER_EXCHANGE_API_KEY": "abc", "INDEXMAKER_CHAIN_MNEMONIC": "word word"}
    monkeypatch.setenv(SECRETS_FILE_ENV, str(path))
    monkeypatch.setenv("INDEXMAKER_EXCHANGE_API_KEY", "from-env")  # the environment wins over the file
    sources = load_into_environ()
    assert os.environ["INDEXMAKER_EXCHANGE_API_KEY"] == "from-env" and sources["INDEXMAKER_EXCHANGE_API_KEY"] == \
        "environment"
    assert os.environ["INDEXMAKER_CHAIN_MNEMONIC"] == "word word"
    rep = report("live")
    assert rep.source["INDEXMAKER_CHAIN_MNEMONIC"] == "environment"  # loaded above
    assert set(rep.missing) == {"INDEXMAKER_EXCHANGE_SECRET", "INDEXMAKER_GATEWAY_KEY"}


def test_a_secrets_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = secrets_file(tmp_path, "INDEXMAKER_EXCHANGE_API_KEY=abc\n", mode=0o644)
    with pytest.raises(SecretsError, match="chmod 600"):
        read_secrets_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # refused, not "fixed" behind the operator's back


def test_a_secrets_file_inside_the_repository_is_refused(tmp_path: Path) -> None:
    made = not (ROOT / "state").exists()
    inside = ROOT / "state" / f"secrets-test-{os.getpid()}.env"  # state/ is git-ignored: nothing can be committed
    inside.parent.mkdir(exist_ok=True)
    inside.write_text("INDEXMAKER_EXCHANGE_API_KEY=abc\n")
    inside.chmod(0o600)
    try:
        with pytest.raises(SecretsError, match="inside the repository"):
            read_secrets_file(inside)
    finally:
        inside.unlink()
        if made:
            inside.parent.rmdir()


@pytest.mark.parametrize("text, message", [("INDEXMAKER_EXCHANGE_API_KEY\n", ":1: expected NAME=value"),
                                           ("OTHER=1\n", "unknown secret 'OTHER'")])
def test_a_bad_line_is_named(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(SecretsError, match=message):
        read_secrets_file(secrets_file(tmp_path, text))


def test_config_check_lists_where_each_secret_comes_from(tmp_path: Path, monkeypatch, capsys) -> None:  # noqa: ANN001
    monkeypatch.setenv(SECRETS_FILE_ENV, str(secrets_file(tmp_path, "INDEXMAKER_GATEWAY_KEY=0x01\n")))
    assert main(["config", "check", str(ROOT / "config" / "live.toml")]) == 0
    out = capsys.readouterr().out
    assert f"INDEXMAKER_GATEWAY_KEY: file {tmp_path}" in out and "INDEXMAKER_EXCHANGE_SECRET: missing" in out
    assert "0x01" not in out  # where from, never the value


# ------------------------------------------------------------------------------------------------ placement
def test_resources_by_exact_name_then_longest_prefix_then_star() -> None:
    table = {"*": {"any": 1.0}, "market-*": {"exchange": 0.5}, "market-1*": {"fast": 1.0}, "solver": {"core": 1.0}}
    assert resources_for("solver", table) == {"core": 1.0}
    assert resources_for("market-0", table) == {"exchange": 0.5}
    assert resources_for("market-12", table) == {"fast": 1.0}
    assert resources_for("gateway", table) == {"any": 1.0}
    assert resources_for("gateway", {"solver": {"core": 1.0}}) == {}


def test_placement_problems_are_named() -> None:
    assert check_placement({"market-*": {"exchange": 0.01}}) == []
    problems = check_placement({"a*b": {"x": 1.0}, "solver": {"GPU": 1.0, "y": 0.0}})
    assert len(problems) == 3 and any("trailing '*'" in p for p in problems)


def test_placed_adds_resources_per_actor_name_and_leaves_the_class_as_it_was() -> None:
    class FakeActorClass:
        calls: list = []

        @classmethod
        def options(cls, **kwargs):  # noqa: ANN003, ANN206
            cls.calls.append(kwargs)
            return cls

    original = FakeActorClass.options
    with placed(FakeActorClass, {"market-*": {"exchange": 0.01}}):
        FakeActorClass.options(name="market-0", lifetime="detached", resources={"other": 1.0})
        FakeActorClass.options(name="solver")
    assert FakeActorClass.calls == [{"name": "market-0", "lifetime": "detached",
                                     "resources": {"other": 1.0, "exchange": 0.01}}, {"name": "solver"}]
    assert FakeActorClass.options == original


def test_placed_on_a_real_ray_actor_class_restores_its_method() -> None:
    import ray

    @ray.remote(num_cpus=0)
    class Probe:
        pass

    before = type(Probe).options
    with placed(Probe, {"probe": {"x": 1.0}}):
        assert "options" in vars(Probe)
    assert "options" not in vars(Probe) and type(Probe).options is before
