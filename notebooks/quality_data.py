"""The execution-quality data `bench/quality.py --out FILE.json` writes, for notebooks/execution_quality.ipynb: where
the file is, reading it, and the aggregates the notebook shows.

The file is versioned: this module reads format `indexmaker.execution_quality` version 1 only, and refuses any other
with what to do (run the bench again), rather than plotting fields that mean something else. Figures stay exact
Decimals (the file holds decimal strings); floats only for drawing (display_helpers.num).

Where the file is, first match wins: `$INDEXMAKER_QUALITY_FILE`; else `state/execution_quality.json` in the checkout
(the path the README's command writes)."""
from __future__ import annotations

import json
import os
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any, Iterable, Mapping

QUALITY_FILE_ENV = "INDEXMAKER_QUALITY_FILE"
DEFAULT_FILE = Path(__file__).resolve().parent.parent / "state" / "execution_quality.json"
FORMAT = "indexmaker.execution_quality"
VERSION = 1
#: The bench's command that writes DEFAULT_FILE (shown when no file is found).
PRODUCE = ".venv/bin/python bench/quality.py --amount 100,300,1000 --out state/execution_quality.json"

#: Per order, per floor sweep and per asset line: the fields that are numbers (decimal strings in the file).
ORDER_NUMBERS = ("amount_usdc", "filled_units", "spent", "bench_arrival_mid", "cost_per_unit", "bench_shortfall_bps",
                 "fill_s", "first_fill_s", "batches", "arrival_value", "arrival_touch", "batch_touch",
                 "paid_per_unit", "shortfall_bps", "spread_bps", "delay_bps", "impact_bps", "fee_bps")
FLOOR_NUMBERS = ("units", "arrival_mid", "cost_per_unit", "shortfall_bps")
LINE_NUMBERS = ("quantity", "average_price", "value", "fee", "arrival_mid", "arrival_ask", "shortfall_bps",
                "contribution_bps")
#: The shortfall's parts as the Mint Invoice splits them; they add up to shortfall_bps exactly (core/shortfall.py).
PARTS = ("spread_bps", "delay_bps", "impact_bps", "fee_bps")
CENT_BPS = Decimal("0.01")


class QualityFileError(ValueError):
    """The file is missing, not JSON, or not a version this notebook reads."""


def find_file(environ: Mapping[str, str] | None = None) -> tuple[Path, str]:
    """(the data file, where that was learnt)."""
    env = os.environ if environ is None else environ
    if env.get(QUALITY_FILE_ENV):
        return Path(env[QUALITY_FILE_ENV]).expanduser(), f"${QUALITY_FILE_ENV}"
    return DEFAULT_FILE, "the default path"


def load(path: Path) -> dict[str, Any]:
    """The file's content with its numbers as Decimals; QualityFileError if it is not format FORMAT version VERSION."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise QualityFileError(f"{path}: no such file; write one with `{PRODUCE}` (or set ${QUALITY_FILE_ENV})"
                               ) from None
    except (OSError, ValueError) as exc:
        raise QualityFileError(f"{path}: not readable as JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        got = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise QualityFileError(f"{path}: format {got!r}, expected {FORMAT!r} (bench/quality.py --out)")
    if data.get("version") != VERSION:
        raise QualityFileError(f"{path}: version {data.get('version')!r} of {FORMAT}; this notebook reads version "
                               f"{VERSION} only: write the file again with this checkout's bench/quality.py --out")
    missing = [k for k in ("run", "regimes", "orders", "floor") if k not in data]
    if missing:
        raise QualityFileError(f"{path}: version {VERSION} but {missing} missing (a truncated or hand-made file?)")
    for order in data["orders"]:
        _numbers(order, ORDER_NUMBERS)
        for line in order["lines"]:
            _numbers(line, LINE_NUMBERS)
    for sweep in data["floor"]:
        _numbers(sweep, FLOOR_NUMBERS)
    return data


def _numbers(row: dict[str, Any], keys: Iterable[str]) -> None:
    for k in keys:
        if row.get(k) is not None:
            row[k] = Decimal(str(row[k]))


def percentile(values: Iterable[Decimal], q: float) -> Decimal | None:
    """The nearest-rank percentile the bench's table uses (the value at index int(q * n) of the sorted values)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else None


def mean(values: Iterable[Decimal]) -> Decimal | None:
    """The mean to 0.01 (a report figure: nearest, ties to even)."""
    got = list(values)
    return (sum(got, Decimal(0)) / len(got)).quantize(CENT_BPS, rounding=ROUND_HALF_EVEN) if got else None


def regimes(data: Mapping[str, Any]) -> list[str]:
    """The regimes in the order the bench ran them."""
    return [r["regime"] for r in data["regimes"]]


def served(data: Mapping[str, Any], regime: str | None = None) -> list[dict[str, Any]]:
    """The filled orders whose invoice reports a shortfall (of one regime, or all)."""
    return [o for o in data["orders"] if o["status"] == "filled" and o["shortfall_bps"] is not None
            and (regime is None or o["regime"] == regime)]


def regime_table(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per regime: orders served, the invoices' shortfall p50/p95 and the mean of each part, the bench's own
    shortfall p50, the floor's p50, fill time p50/p95 and batches per order (mean)."""
    rows = []
    for name in regimes(data):
        orders = served(data, name)
        floor = [f["shortfall_bps"] for f in data["floor"] if f["regime"] == name]
        fills = [o["fill_s"] for o in orders if o["fill_s"] is not None]
        rows.append({
            "regime": name, "orders": len(orders),
            "shortfall p50": percentile((o["shortfall_bps"] for o in orders), 0.5),
            "shortfall p95": percentile((o["shortfall_bps"] for o in orders), 0.95),
            **{f"{p.removesuffix('_bps')} mean": mean(o[p] or Decimal(0) for o in orders) for p in PARTS},
            "bench p50": percentile((o["bench_shortfall_bps"] for o in orders), 0.5),
            "floor p50": percentile(floor, 0.5), "floor sweeps": len(floor),
            "fill s p50": percentile(fills, 0.5), "fill s p95": percentile(fills, 0.95),
            "batches": mean(o["batches"] for o in orders if o["batches"] is not None)})
    return rows


def asset_costs(data: Mapping[str, Any], regime: str) -> list[dict[str, Any]]:
    """Per asset of the regime's orders, costliest first: its mean contribution to an order's shortfall (bps of the
    order's arrival value, over the orders that bought it) and what it cost above its arrival mid in all (USDC)."""
    by_symbol: dict[str, list[dict[str, Any]]] = {}
    for order in served(data, regime):
        for line in order["lines"]:
            if line["contribution_bps"] is not None:
                by_symbol.setdefault(line["symbol"], []).append(line)
    rows = [{"regime": regime, "symbol": s, "orders": len(lines),
             "contribution bps": mean(l["contribution_bps"] for l in lines),
             "over mid usdc": sum((l["value"] - l["quantity"] * l["arrival_mid"] for l in lines), Decimal(0)
                                  ).quantize(Decimal("0.0001"), rounding=ROUND_HALF_EVEN)}
            for s, lines in by_symbol.items()]
    return sorted(rows, key=lambda r: (-r["contribution bps"], r["symbol"]))
