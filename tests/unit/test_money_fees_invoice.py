"""Money helpers, route fees and the Mint Invoice: exact sums, named rounding directions."""
from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from core.fees import HopCost, hop_by_rate, max_units_for, route_fee, split_cost
from core.invoice import InvoiceLine, build_invoice, minted_units_for
from core.money import cumulative_shares, quantize_down, quantize_up, to_units

U = Decimal("0.000001")

amounts = st.integers(1, 10**12).map(lambda n: Decimal(n) * U)


@settings(max_examples=200, deadline=None)
@given(amounts, st.sampled_from(["0.01", "0.00001", "0.5", "0.0025"]))
def test_quantize_brackets_the_value(x, step):
    s = Decimal(step)
    lo, hi = quantize_down(x, s), quantize_up(x, s)
    assert lo <= x <= hi and hi - lo in (0, s)
    assert lo % s == 0 and hi % s == 0


@settings(max_examples=200, deadline=None)
@given(amounts, st.lists(st.integers(1, 10**9).map(Decimal), min_size=1, max_size=30))
def test_cumulative_shares_add_up_exactly(total, weights):
    parts = cumulative_shares(total, weights, U)
    assert sum(parts) == total
    whole = sum(weights)
    for p, w in zip(parts, weights):
        assert abs(p - total * w / whole) <= U  # each part within one unit of its exact share


def test_to_units_refuses_fractions():
    assert to_units(Decimal("1.5"), Decimal("0.5")) == 3
    with pytest.raises(ValueError):
        to_units(Decimal("1.0000001"), U)


def test_route_fees_chain_and_split():
    across = HopCost("across", Decimal("1000"), Decimal("999.120000"), gas=Decimal("0.012345"))
    transfer = HopCost("transfer", Decimal("999.120000"), Decimal("999.120000"), gas=Decimal("0.003"))
    assert route_fee([across, transfer]) == Decimal("0.895345")
    with pytest.raises(ValueError):
        route_fee([across, HopCost("bad", Decimal("1000"), Decimal("1000"))])
    sim = hop_by_rate("sim", Decimal("1000"), Decimal("0.001"), U)
    assert sim.amount_out == Decimal("999.000000") and sim.fee == Decimal("1.000000")  # spec §4.2 example
    shares = split_cost(Decimal("0.895345"), [Decimal(1000), Decimal(250), Decimal("0.5")], U)
    assert sum(shares) == Decimal("0.895345")
    with pytest.raises(ValueError):
        split_cost(Decimal("0.0000001"), [Decimal(1)], U)
    assert max_units_for(Decimal(1010), Decimal(1000), Decimal("1.01"), Decimal("1e-18")) == Decimal(1)


def _line(value: str, fee: str) -> InvoiceLine:
    return InvoiceLine(symbol="BTCUSDC", quantity=Decimal("0.01"), average_price=Decimal(value) / Decimal("0.01"),
                       value=Decimal(value), fee=Decimal(fee))


def test_invoice_adds_up_and_mints_down():
    inv = build_invoice(order_id="u:1", user="0xabc", cl_ord_id="1", index="SY100", collateral=Decimal(1000),
                        cancelled=Decimal(100), returned=Decimal("5.5"), spent=Decimal("894.5"),
                        filled_units=Decimal("0.0123456789012345678901"), lines=[_line("893.6", "0.894")])
    assert inv.assets_value + inv.exchange_fee <= inv.spent
    assert inv.minted_units == Decimal("0.012345678901234567")
    assert inv.mint_amount_base_units == 12345678901234567
    assert minted_units_for(Decimal("1e-19"), 18) == 0
    with pytest.raises(ValidationError):  # money that does not add up is refused
        build_invoice(order_id="u:2", user="0xabc", cl_ord_id="2", index="SY100", collateral=Decimal(1000),
                      cancelled=Decimal(0), returned=Decimal(0), spent=Decimal(999), filled_units=Decimal(1),
                      lines=[_line("998", "1")])
    with pytest.raises(ValidationError):  # charged less than it cost
        build_invoice(order_id="u:3", user="0xabc", cl_ord_id="3", index="SY100", collateral=Decimal(1000),
                      cancelled=Decimal(0), returned=Decimal(1), spent=Decimal(999), filled_units=Decimal(1),
                      lines=[_line("998", "1.5")])
