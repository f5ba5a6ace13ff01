"""The reserves check on a running local system (world/launcher.py's LocalSystem, world/demo.py's flow: a real
deposit on anvil, an order over the websocket, fills on the simulator, a mint): `indexmaker reconcile` (its own
process and Ray driver, finding the system through a run file) and the monitor's periodic check agree with the
exchange and the chain after the mint; money moved out of the exchange account behind the system's back
(the simulator's /_admin/withdraw) is caught: reconcile exits 1 naming the asset, /health turns 503 naming it."""
from __future__ import annotations

import json
import os
import urllib.request
from decimal import Decimal
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from core.config import ReservesConfig, Settings  # noqa: E402
from core.money import plain  # noqa: E402
from tests.integration.operator_cli import cli, explain  # noqa: E402
from tests.integration.test_system_observability import http_get  # noqa: E402
from tests.integration.demo_flow import one_user_flow  # noqa: E402
from world.launcher import LocalSystem  # noqa: E402
from world.run_file import write_run  # noqa: E402

pytestmark = pytest.mark.slow  # a whole system: ~15 s to start, then a deposit, an order, fills and a mint


@pytest.fixture(scope="module")
def flow(ray_cluster):  # noqa: ARG001
    with one_user_flow("res", Settings(reserves=ReservesConfig(interval_s=1.0, reread_ms=200))) as (s, _, result):
        yield s, result


@pytest.fixture(scope="module")
def state_dir(flow, tmp_path_factory) -> Path:
    """A run file describing the test's system, as `indexmaker up` writes it (this process stands as its service)."""
    system, _ = flow
    where = tmp_path_factory.mktemp("state")
    write_run(where, phase="up", pid=os.getpid(), processes={}, actors=list(system.actors), indexes=list(system.baskets),
              ray={"address": ray.get_runtime_context().gcs_address, "namespace": system.namespace})
    return where


def env() -> dict[str, str]:
    return {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


def reconcile(state_dir: Path, *extra: str):  # noqa: ANN201
    return cli(env(), "reconcile", "--state-dir", str(state_dir), *extra, timeout=180)


def after_checks(system: LocalSystem, more: int) -> dict:
    """/health once the monitor has ended `more` further reserves checks."""
    monitor = system.actor("monitor")
    done = ray.get(monitor.inspect.remote())["reserves"]["checks"]
    assert ray.get(monitor.wait_reserves_checks.remote(done + more, 60.0))
    return http_get(system, "/health")


def test_reserves_agree_after_orders_filled_and_minted(flow, state_dir) -> None:
    system, result = flow
    minted = Decimal(result["views"]["alice"]["invoices"]["a1"]["minted_units"])
    r = reconcile(state_dir, "--json")
    assert r.returncode == 0, explain(r)
    report = json.loads(r.stdout)
    rows = {row["asset"]: row for row in report["rows"]}
    basket = {a.symbol.removesuffix("USDC") for a in next(iter(system.baskets.values())).assets}
    assert set(rows) == basket | {"USDC", "SY100DEV supply"}
    assert all(row["ok"] for row in rows.values()), rows
    assert all(Decimal(row["difference"]) == 0 for row in rows.values()), rows  # exact, not within a tolerance
    assert Decimal(rows["SY100DEV supply"]["books"]) == Decimal(rows["SY100DEV supply"]["exchange"]) == minted > 0
    assert all(Decimal(rows[a]["books"]) > 0 for a in basket)  # the baskets behind the mint are counted
    print(f"reconcile: {report['reads']} read(s) of the running system in {report['seconds']} s")
    table = reconcile(state_dir)
    assert table.returncode == 0, explain(table)
    assert table.stdout.splitlines()[0].split() == ["asset", "books", "exchange", "difference"]
    assert "no difference" in table.stdout
    print(table.stdout)
    status, body = after_checks(system, 1)
    assert not [p for p in body["problems"] if p.startswith("reserves")], body
    assert body["reserves"]["rows"] and all(row["ok"] for row in body["reserves"]["rows"])


def test_money_moved_out_of_the_exchange_is_caught(flow, state_dir) -> None:
    system, _ = flow
    rows = {row["asset"]: row for row in json.loads(reconcile(state_dir, "--json").stdout)["rows"]}
    asset = max((a for a in rows if not a.endswith("supply") and a != "USDC"),
                key=lambda a: Decimal(rows[a]["exchange"]))
    taken = (Decimal(rows[asset]["exchange"]) / 2).quantize(Decimal("1e-8"))  # the exchange's precision
    micro = Decimal("0.000001")  # one micro-USDC out too: an operator answers for each
    for what, amount in ((asset, taken), ("USDC", micro)):
        body = json.dumps({"api_key": system.exchange.account.api_key, "asset": what, "amount": str(amount)})
        req = urllib.request.Request(system.exchange.url + "/_admin/withdraw", data=body.encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 200

    r = reconcile(state_dir)
    assert r.returncode == 1, explain(r)
    expected = {}
    for what, amount in ((asset, taken), ("USDC", micro)):
        books, left = Decimal(rows[what]["books"]), Decimal(rows[what]["exchange"]) - amount
        expected[what] = (f"reserves: {what} books {plain(books)} exchange {plain(left)} difference "
                          f"{plain(left - books)}")
        line = next(x for x in r.stdout.splitlines() if x.split()[0] == what).split()
        assert [Decimal(x) for x in line[1:4]] + line[4:] == [books, left, left - books, "DIFFERENT"]
    assert [x.split()[-1] for x in r.stdout.splitlines()[1:-1]].count("DIFFERENT") == 2  # only those two
    assert f"DIFFERENT: {', '.join(sorted(expected))}" in r.stdout
    status, health = after_checks(system, 2)
    assert (status, health["healthy"]) == (503, False)
    assert [p for p in health["problems"] if p.startswith("reserves")] == [expected[a] for a in sorted(expected)]
