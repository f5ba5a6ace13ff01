"""Reserves: what the books say is held, against what the exchange account and the chain say.

Per asset the books count whole base units delivered plus inventory plus what is in flight, not units x basket
quantity (each batch keeps the fraction as inventory, so that product drifts). Quote: opening balance plus routed
deposits minus fill costs. totalSupply lies between minted and minted plus owed. Exact Decimals; reads are not
atomic, so `confirmed` keeps what several reads saw."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Iterable, Mapping, Sequence

from core.lots import Lot
from core.money import plain

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class ReserveRow:
    asset: str  # a basket asset ("BTC"), or an index token's supply ("SY100DEV supply")
    books: Decimal
    exchange: Decimal  # the exchange's balance, or the token's on-chain supply
    difference: Decimal  # exchange - books
    ok: bool

    def to_dict(self) -> dict[str, str | bool]:
        return {"asset": self.asset, "books": str(self.books), "exchange": str(self.exchange),
                "difference": str(self.difference), "ok": self.ok}

    @classmethod
    def from_dict(cls, d: Mapping[str, object]) -> "ReserveRow":
        return cls(str(d["asset"]), Decimal(str(d["books"])), Decimal(str(d["exchange"])),
                   Decimal(str(d["difference"])), bool(d["ok"]))


def add_into(total: dict[str, Decimal], part: Mapping[str, Decimal]) -> dict[str, Decimal]:
    for asset, amount in part.items():
        total[asset] = total.get(asset, ZERO) + amount
    return total


def books_holdings(parts: Iterable[Mapping[str, Decimal]]) -> dict[str, Decimal]:
    """Per asset, the sum of the parts the books hold it in (delivered to orders, assigned in open batches,
    inventory, in flight)."""
    out: dict[str, Decimal] = {}
    for part in parts:
        add_into(out, part)
    return out


def by_asset(per_symbol: Mapping[str, Decimal], base_asset: Mapping[str, str]) -> dict[str, Decimal]:
    """Quantities per trading symbol ("BTCUSDC") summed per base asset ("BTC")."""
    out: dict[str, Decimal] = {}
    for symbol, q in per_symbol.items():
        add_into(out, {base_asset[symbol]: q})
    return out


def assigned_in(batches: Iterable[Any], filters: Mapping[str, Any]) -> dict[str, Decimal]:
    """Per base asset, what the open batches' allocations handed to their orders (whole base units, exact)."""
    out: dict[str, Decimal] = {}
    for b in batches:
        for symbol, units in b.allocation.assigned_units().items():
            if units:
                f = filters[symbol]
                add_into(out, {f.base_asset: units * f.base_unit})
    return out


def lots_held(lots: Iterable[Lot], base_asset: Mapping[str, str]) -> dict[str, Decimal]:
    """The units left in `lots` (whole base units) per base asset, as asset quantities (exact)."""
    out: dict[str, Decimal] = {}
    for lot in lots:
        if lot.remaining:
            asset = base_asset[lot.symbol]
            out[asset] = out.get(asset, ZERO) + lot.remaining * lot.unit
    return out


def lots_cost(lots: Iterable[Lot]) -> Decimal:
    """What the units left in `lots` cost in the quote asset: their value at the fill price plus the part of the
    fee not yet handed to an order (value + fee of a whole lot == what the exchange debited for it, exactly)."""
    return sum((lot.price * lot.unit * lot.remaining + lot.fee - lot.fee_upto(lot.consumed) for lot in lots), ZERO)


def quote_spent(quantity: Decimal, price: Decimal, commission: Decimal, commission_asset: str | None,
                quote_asset: str) -> Decimal:
    """What a buy fill debited in the quote asset: quantity x price, plus a commission taken in the quote asset."""
    return quantity * price + (commission if commission_asset == quote_asset else ZERO)


def net_received(quantity: Decimal, commission: Decimal, commission_asset: str | None, base_asset: str) -> Decimal:
    """What a buy fill put in the account in its base asset: a commission taken in that asset is not held."""
    return quantity - commission if commission_asset == base_asset else quantity


def compare(books: Mapping[str, Decimal], exchange: Mapping[str, Decimal], assets: Iterable[str],
            tolerance: Decimal, tolerances: Mapping[str, Decimal] | None = None) -> list[ReserveRow]:
    """One row per asset of `assets` and of the books (sorted): ok when |exchange - books| <= its tolerance. An
    asset the exchange does not list holds 0 there."""
    per = tolerances or {}
    rows = []
    for asset in sorted(set(assets) | set(books)):
        b, e = books.get(asset, ZERO), exchange.get(asset, ZERO)
        diff = e - b
        rows.append(ReserveRow(asset, b, e, diff, abs(diff) <= per.get(asset, tolerance)))
    return rows


def supply_row(index: str, minted: Decimal, owed: Decimal, supply: Decimal, tolerance: Decimal) -> ReserveRow:
    """The index token's supply against the units the books minted: ok when minted - tolerance <= supply <=
    minted + owed + tolerance (mints owed may have landed before the books heard of them)."""
    diff = supply - minted
    return ReserveRow(f"{index} supply", minted, supply, diff, -tolerance <= diff <= owed + tolerance)


def confirmed(reads: Sequence[Sequence[ReserveRow]]) -> list[ReserveRow]:
    """The last read's rows, each marked not ok only if every read saw that asset not ok (a difference that
    lasted); no read at all is no verdict: empty."""
    if not reads:
        return []
    bad_in_all = set.intersection(*({r.asset for r in rows if not r.ok} for rows in reads))
    return [r if r.ok or r.asset in bad_in_all else ReserveRow(r.asset, r.books, r.exchange, r.difference, True)
            for r in reads[-1]]


def problems(rows: Iterable[ReserveRow]) -> list[str]:
    """One line per row beyond its tolerance, naming the asset (what /health lists)."""
    return [f"reserves: {r.asset} books {plain(r.books)} exchange {plain(r.exchange)} difference "
            f"{plain(r.difference)}" for r in rows if not r.ok]


def render(rows: Sequence[ReserveRow]) -> list[str]:
    """The table `indexmaker reconcile` prints: asset, books, exchange, difference (and a mark on the bad ones)."""
    head = ("asset", "books", "exchange", "difference", "")
    body = [(r.asset, plain(r.books), plain(r.exchange), plain(r.difference), "ok" if r.ok else "DIFFERENT")
            for r in rows]
    widths = [max(len(line[i]) for line in [head, *body]) for i in range(4)]
    out = []
    for line in [head, *body]:
        out.append("  ".join([line[0].ljust(widths[0])] + [line[i].rjust(widths[i]) for i in (1, 2, 3)]
                             + [line[4]]).rstrip())
    return out
