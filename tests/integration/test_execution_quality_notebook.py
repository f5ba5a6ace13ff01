"""The execution-quality notebook (notebooks/execution_quality.ipynb) on the data bench/quality.py writes.

Slow: the small bench runs the real system under two regimes and writes its per-order file (`--out`); the notebook
runs on that file in a real kernel. Checked: the file against the bench's own last line (its table's figures) and
against the invoices' own arithmetic; every cell ran; the figures are real PNGs; the notebook's per-regime table holds
the order counts and percentiles this test recomputes from the file, and the bench's and the floor's medians its last
line printed. Fast: the committed notebook has no outputs and starts nothing; its tables on a small file; the loader
refuses a file of another format or version with what to do; the bench writes the version the loader reads; the
per-asset contributions the bench writes add up to the invoice's shortfall without the fee.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from decimal import ROUND_HALF_EVEN, ROUND_UP, Decimal
from pathlib import Path

import pytest

from tests.integration.notebook_runner import NOTEBOOKS, Outputs, committed_code, execute, load_module

ROOT = NOTEBOOKS.parent
NOTEBOOK = NOTEBOOKS / "execution_quality.ipynb"
quality_data = load_module("quality_data")
#: The small run: two regimes, three indexes with small baskets, one user each at three sizes, one floor sweep.
REGIMES = ("calm", "wide")
BENCH_ARGS = ("--users", "3", "--regimes", ",".join(REGIMES), "--indexes", "SYAI,SYL2,SYAZ", "--floor-samples", "1",
              "--amount", "100,300,1000")
BENCH_TIMEOUT_S = 420


def nearest_rank(values: list[Decimal], q: float) -> Decimal:
    """The bench's percentile, written out again here: the value at int(q * n) of the sorted values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# ============================================================================================== fast: no Ray, no kernel
def test_the_committed_notebook_is_clean_and_only_reads_its_file() -> None:
    cells = committed_code(NOTEBOOK)
    assert "import ray" not in cells and "load(path)" in cells


def _write(path: Path, **fields: object) -> Path:
    data = {"format": quality_data.FORMAT, "version": quality_data.VERSION, "run": {}, "regimes": [], "orders": [],
            "floor": []}
    data.update(fields)
    path.write_text(json.dumps(data))
    return path


def test_the_loader_refuses_another_version_and_says_what_to_do(tmp_path: Path) -> None:
    newer = _write(tmp_path / "q.json", version=quality_data.VERSION + 1)
    with pytest.raises(quality_data.QualityFileError, match=rf"version {quality_data.VERSION + 1}.*reads version "
                                                             rf"{quality_data.VERSION} only.*bench/quality.py --out"):
        quality_data.load(newer)
    with pytest.raises(quality_data.QualityFileError, match="format 'something.else'"):
        quality_data.load(_write(tmp_path / "other.json", format="something.else"))
    with pytest.raises(quality_data.QualityFileError, match=r"\['orders'\] missing"):
        data = json.loads(newer.read_text()) | {"version": quality_data.VERSION}
        del data["orders"]
        (tmp_path / "cut.json").write_text(json.dumps(data))
        quality_data.load(tmp_path / "cut.json")
    with pytest.raises(quality_data.QualityFileError, match="no such file.*bench/quality.py.*--out"):
        quality_data.load(tmp_path / "absent.json")
    assert quality_data.load(_write(tmp_path / "ok.json"))["orders"] == []


def test_the_file_is_found_from_the_environment_else_the_default(tmp_path: Path) -> None:
    env = {quality_data.QUALITY_FILE_ENV: str(tmp_path / "mine.json")}
    assert quality_data.find_file(env) == (tmp_path / "mine.json", f"${quality_data.QUALITY_FILE_ENV}")
    path, _ = quality_data.find_file({})
    assert path == ROOT / "state" / "execution_quality.json"
    assert "--out state/execution_quality.json" in quality_data.PRODUCE  # the default is where the command writes


def _order(regime: str, shortfall: str, parts: tuple[str, str | None, str, str], lines: list[tuple[str, str]],
           status: str = "filled", fill_s: str = "1.5") -> dict:
    spread, delay, impact, fee = parts
    return {"regime": regime, "status": status, "amount_usdc": "300", "filled_units": "0.1", "spent": "299",
            "bench_shortfall_bps": shortfall, "fill_s": fill_s, "batches": "1", "shortfall_bps": shortfall,
            "spread_bps": spread, "delay_bps": delay, "impact_bps": impact, "fee_bps": fee,
            "lines": [{"symbol": sym, "quantity": "2", "value": "10", "arrival_mid": "4.9", "contribution_bps": c}
                      for sym, c in lines]}


def test_the_tables_the_notebook_shows(tmp_path: Path) -> None:
    orders = [_order("calm", "12.00", ("5.00", "1.00", "-4.00", "10.00"), [("A", "1.50"), ("B", "0.50")]),
              _order("calm", "20.01", ("5.00", None, "5.01", "10.00"), [("A", "3.00")]),  # no batch touch: no delay
              _order("calm", "15.00", ("5.00", "0.00", "0.00", "10.00"), [("B", "2.00")]),
              _order("calm", "99", ("0", "0", "0", "99"), [], status="rejected"),  # not served: left out
              _order("wide", "60.00", ("50.00", "0.00", "0.00", "10.00"), [("A", "40.00")], fill_s="0.2")]
    path = _write(tmp_path / "q.json", regimes=[{"regime": "calm"}, {"regime": "wide"}], orders=orders,
                  floor=[{"regime": "calm", "shortfall_bps": "14.00"}, {"regime": "calm", "shortfall_bps": "18.00"}])
    data = quality_data.load(path)
    calm, wide = quality_data.regime_table(data)
    assert (calm["regime"], calm["orders"], wide["orders"]) == ("calm", 3, 1)
    assert (calm["shortfall p50"], calm["shortfall p95"]) == (Decimal("15.00"), Decimal("20.01"))
    assert (calm["floor p50"], calm["floor sweeps"], wide["floor p50"]) == (Decimal("18.00"), 2, None)
    # the parts' means add up to the mean shortfall, to the rounding of each (a missing delay counts as none:
    # impact holds it)
    parts = sum((calm[f"{p.removesuffix('_bps')} mean"] for p in quality_data.PARTS), Decimal(0))
    assert quality_data.mean([Decimal("12.00"), Decimal("20.01"), Decimal("15.00")]) == Decimal("15.67")
    assert abs(parts - Decimal("15.67")) <= Decimal("0.02") and calm["delay mean"] == Decimal("0.33")
    assert calm["fill s p50"] == Decimal("1.5") and wide["fill s p50"] == Decimal("0.2")
    costs = quality_data.asset_costs(data, "calm")
    assert [(r["symbol"], r["orders"], r["contribution bps"]) for r in costs] == [("A", 2, Decimal("2.25")),
                                                                                  ("B", 2, Decimal("1.25"))]
    assert costs[0]["over mid usdc"] == 2 * (Decimal(10) - 2 * Decimal("4.9"))


def test_the_bench_writes_the_version_the_notebook_reads() -> None:
    from bench import quality

    assert (quality.DATA_FORMAT, quality.DATA_VERSION) == (quality_data.FORMAT, quality_data.VERSION)


def test_the_asset_contributions_add_up_to_the_shortfall_without_the_fee() -> None:
    from bench.quality import asset_line
    from core.arrival import ArrivalValue
    from core.invoice import InvoiceLine, build_invoice

    basket = {"BTCUSDC": Decimal("0.0001"), "ETHUSDC": Decimal("0.002"), "SOLUSDC": Decimal("0.03")}
    mids = {"BTCUSDC": Decimal("60000.5"), "ETHUSDC": Decimal("3000.25"), "SOLUSDC": Decimal("150.125")}
    asks = {s: m * Decimal("1.0004") for s, m in mids.items()}
    paid = {"BTCUSDC": Decimal("60031"), "ETHUSDC": Decimal("2999.9"), "SOLUSDC": Decimal("150.4")}
    units = Decimal("2.5")
    arrival = ArrivalValue(sum(q * mids[s] for s, q in basket.items()), sum(q * asks[s] for s, q in basket.items()),
                           1, {s: (mids[s], asks[s]) for s in basket})
    lines = [InvoiceLine(symbol=s, quantity=q * units, average_price=paid[s], value=q * units * paid[s],
                         fee=q * units * paid[s] * Decimal("0.001")) for s, q in basket.items()]
    spent = sum((l.value + l.fee for l in lines), Decimal(0)).quantize(Decimal("0.000001"), rounding=ROUND_UP)
    inv = build_invoice(order_id="o", user="u", cl_ord_id="c", index="X", collateral=Decimal(100),
                        cancelled=Decimal(0), returned=Decimal(100) - spent, spent=spent, filled_units=units,
                        lines=lines, arrival=arrival,
                        batch_touch=arrival.touch).model_dump(mode="json")
    got = [asset_line(line, units, inv["arrival_value"]) for line in inv["lines"]]
    total = sum(Decimal(g["contribution_bps"]) for g in got)
    # each contribution to the nearest 0.01, the shortfall rounded up and the fee to the nearest: within their sum
    assert abs(total - (Decimal(inv["shortfall_bps"]) - Decimal(inv["fee_bps"]))) <= Decimal("0.005") * (len(got) + 2)
    btc = next(g for g in got if g["symbol"] == "BTCUSDC")
    assert Decimal(btc["contribution_bps"]) > 0 > Decimal(next(g for g in got if g["symbol"] == "ETHUSDC")
                                                          ["contribution_bps"])  # paid above / below its mid


# ============================================================================================== slow: the real thing
@pytest.fixture(scope="module")
def bench_run(tmp_path_factory):  # noqa: ANN201
    """The small bench, as a researcher runs it: its own Ray, redis, simulator and chains; returns (the file, the
    last line's JSON, seconds)."""
    out = tmp_path_factory.mktemp("quality") / "execution_quality.json"
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)  # its own Ray instance, never the session's
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "quality.py"), *BENCH_ARGS, "--out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=BENCH_TIMEOUT_S)
    took = time.monotonic() - t0
    assert done.returncode == 0, done.stderr[-4000:]
    return out, json.loads(done.stdout.strip().splitlines()[-1]), took


@pytest.mark.slow
def test_the_notebook_plots_what_the_bench_measured(bench_run) -> None:
    path, summary, bench_s = bench_run
    data = quality_data.load(path)

    # the file against the bench's own last line, and against the invoices' arithmetic
    assert [r["regime"] for r in data["regimes"]] == list(REGIMES) == list(summary["shortfall_bps_p50"])
    assert summary["overcharged_orders"] == 0
    served: dict[str, list[dict]] = {}
    for name in REGIMES:
        orders = [o for o in data["orders"] if o["regime"] == name]
        assert len(orders) == 3 and all(o["status"] == "filled" for o in orders)
        assert {o["amount_usdc"] for o in orders} == {Decimal(100), Decimal(300), Decimal(1000)}
        for o in orders:
            assert o["spent"] <= o["amount_usdc"] and o["filled_units"] > 0 and o["lines"]
            # every order was stamped at arrival: its invoice reports the shortfall, whose parts add up to it
            assert o["shortfall_bps"] is not None and o["arrival_value"] > 0
            assert sum((o[p] or Decimal(0) for p in quality_data.PARTS), Decimal(0)) == o["shortfall_bps"]
            contributions = sum((line["contribution_bps"] for line in o["lines"]), Decimal(0))
            assert abs(contributions - (o["shortfall_bps"] - o["fee_bps"])) <= Decimal("0.005") * (len(o["lines"]) + 2)
            # the value the order was stamped with and the bench's own reading of the books agree within the spread
            assert abs(o["arrival_value"] - o["bench_arrival_mid"]) <= 2 * (o["arrival_touch"] - o["arrival_value"])
        assert nearest_rank([o["bench_shortfall_bps"] for o in orders], 0.5) == Decimal(
            summary["shortfall_bps_p50"][name])
        served[name] = orders

    nb = execute(NOTEBOOK, {quality_data.QUALITY_FILE_ENV: str(path)})
    out = Outputs(nb)
    assert not out.errors
    assert len(out.pngs) >= 5 and out.drawn()  # distributions, split, size, time to fill, assets
    assert (f"read {path} (from ${quality_data.QUALITY_FILE_ENV}): {len(data['orders'])} orders, "
            f"{len(data['floor'])} floor sweeps") in out.text

    table = {r["regime"]: r for r in out.tables["execution quality per regime"]}
    assert list(table) == list(REGIMES)
    for name, orders in served.items():
        row = table[name]
        assert int(row["orders"]) == len(orders)
        assert Decimal(row["shortfall p50"]) == nearest_rank([o["shortfall_bps"] for o in orders], 0.5)
        assert Decimal(row["shortfall p95"]) == nearest_rank([o["shortfall_bps"] for o in orders], 0.95)
        assert Decimal(row["bench p50"]) == Decimal(summary["shortfall_bps_p50"][name])
        assert row["floor p50"] == (summary["floor_shortfall_bps_p50"][name] or "")  # the bench's own text
    # the costliest assets: each row's mean contribution recomputed from the orders' lines, the first the largest
    assets = out.tables["costliest assets per regime"]
    for name in REGIMES:
        per_asset: dict[str, list[Decimal]] = {}
        for o in served[name]:
            for line in o["lines"]:
                per_asset.setdefault(line["symbol"], []).append(line["contribution_bps"])
        means = {s: (sum(v, Decimal(0)) / len(v)).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
                 for s, v in per_asset.items()}
        rows = [r for r in assets if r["regime"] == name]
        assert rows and len(rows) == min(8, len(means))
        for r in rows:
            assert (Decimal(r["contribution bps"]), int(r["orders"])) == (means[r["symbol"]],
                                                                          len(per_asset[r["symbol"]]))
        assert Decimal(rows[0]["contribution bps"]) == max(means.values())
    print(f"bench {bench_s:.0f} s; notebook {len(out.pngs)} figures")
