"""A Mint Invoice whose average prices are long quotients (value / quantity) must still be a valid wire message:
the plugin shows the price to 18 places, so that a client can read the invoice at all."""
from __future__ import annotations

from decimal import Decimal

import core  # noqa: F401
from core.invoice import InvoiceLine, build_invoice
from protocol.envelope import UserRef
from protocol.indexmaker_app import InvoiceIssued
from protocol.indexmaker_messages import MintInvoice
from protocol.indexmaker_plugin import IndexMakerPlugin


def test_long_average_price_is_rounded_to_a_wire_decimal() -> None:
    value, quantity = Decimal("3.333333"), Decimal("0.00587")
    price = value / quantity  # 60 significant digits in the project's context
    assert len(str(price).split(".")[1]) > 30
    line = InvoiceLine(symbol="BTC", quantity=quantity, average_price=price, value=value, fee=Decimal("0.003"),
                       lot_ids=("L-1",))
    inv = build_invoice(order_id="0xabc:c1", user="0xabc", cl_ord_id="c1", index="SY100", collateral=Decimal(10),
                        cancelled=Decimal(0), returned=Decimal("6.663667"), spent=Decimal("3.336333"),
                        filled_units=Decimal("0.0001"), lines=[line], mint_tx="0x" + "ab" * 32, minted_ms=1)
    body = IndexMakerPlugin.to_wire(InvoiceIssued(UserRef(8453, "0x" + "11" * 20), inv, 1))
    again = MintInvoice.model_validate(body.model_dump(mode="json"))  # what a client does with the frame
    shown = again.lines[0].average_price
    assert abs(shown - price) <= Decimal("0.5e-18")
    assert (again.lines[0].value, again.lines[0].fee) == (value, Decimal("0.003"))  # the money stays exact
