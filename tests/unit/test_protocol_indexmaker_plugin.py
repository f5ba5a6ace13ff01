"""The IndexMaker plugin and the order shards' application: wire requests become application requests, the books'
decisions become reports with stable codes, and a failing application or response never costs other reports."""
from __future__ import annotations

import asyncio
import re
from decimal import Decimal
from pathlib import Path
from typing import Sequence

import pytest

from core.clock import ManualClock
from core.invoice import InvoiceLine as CoreInvoiceLine
from core.side import Side
from protocol.envelope import Body, UserRef
from protocol.indexmaker_app import (CancelOrder, GetInvoice, NewOrder, NewQuote, OrderProgress, OrderRefused)
from protocol.indexmaker_messages import (AccountToCustody, CancelIndexOrder, CancelIndexOrderReport,
                                          CustodyToAccount, GetMintInvoice, IndexOrderFill, IndexQuoteResponse,
                                          MintInvoice, MintInvoiceRejected, NewIndexOrder, NewIndexOrderReport,
                                          NewIndexQuote, NewQuoteRequest)
from protocol.indexmaker_plugin import IndexMakerPlugin
from protocol.plugin import Inbound
from protocol.reason_codes import CORE_REJECTION_CODES, NakCode, ReasonCode
from tests.hand_driven_app import HandDrivenApp

ALICE = UserRef(8453, "0x2B5AD5c4795c026514f8317c7a215E218DcCD6cF")
BOB = UserRef(8453, "0x6813Eb9362372EEF6200f3b1dbC3f819671cBA69")


class Outbox:
    def __init__(self) -> None:
        self.sent: list[tuple[UserRef, Body]] = []

    def emit(self, user: UserRef, body: Body) -> None:
        self.sent.append((user, body))

    def of(self, user: UserRef) -> list[Body]:
        return [b for u, b in self.sent if u == user]


def setup(quoter=None) -> tuple[HandDrivenApp, IndexMakerPlugin, Outbox]:  # noqa: ANN001
    app = HandDrivenApp({"SY100"}, clock=ManualClock(), max_open_orders=5, quoter=quoter)
    plugin = IndexMakerPlugin(app)
    outbox = Outbox()
    plugin.attach(outbox)
    app.set_sink(plugin.deliver)
    app.credit(ALICE, "dep-a", "1000")
    app.credit(BOB, "dep-b", "1000")
    return app, plugin, outbox


def send(plugin: IndexMakerPlugin, user: UserRef, *bodies: Body) -> None:
    asyncio.run(plugin.on_requests([Inbound(user, i + 1, b, 0) for i, b in enumerate(bodies)]))


def order(cl: str, amount: str = "100", symbol: str = "SY100", side: str = "1") -> NewIndexOrder:
    return NewIndexOrder.model_validate({"client_order_id": cl, "symbol": symbol, "side": side, "amount": amount})


def cancel(cl: str, amount: str | None = None, symbol: str = "SY100") -> CancelIndexOrder:
    fields = {"client_order_id": cl, "symbol": symbol}
    if amount is not None:
        fields["amount"] = amount
    return CancelIndexOrder.model_validate(fields)


def get_invoice(cl: str) -> GetMintInvoice:
    return GetMintInvoice(client_order_id=cl)


def quote(q: str, amount: str) -> NewQuoteRequest:
    return NewQuoteRequest.model_validate({"client_quote_id": q, "symbol": "SY100", "side": "1", "amount": amount})


def test_every_core_rejection_code_has_a_wire_code() -> None:
    source = (Path(__file__).resolve().parents[2] / "core" / "index_order_book.py").read_text()
    codes = set(re.findall(r'IndexOrderRefused\("([A-Z_]+)"', source))
    assert codes and codes <= set(CORE_REJECTION_CODES)
    assert ReasonCode.INTERNAL_ERROR not in {CORE_REJECTION_CODES[c] for c in codes}


def test_orders_are_accepted_or_refused_with_the_books_codes() -> None:
    app, plugin, out = setup()
    send(plugin, ALICE, order("A-1"), order("A-1"), order("A-2", symbol="SY999"), order("A-3", amount="5000"),
         order("A-4", amount="1.0000001"), order("A-5", side="2"), order("A-6", amount="0"))
    reports = out.of(ALICE)
    assert all(isinstance(r, NewIndexOrderReport) for r in reports)
    assert [(r.client_order_id, r.status, r.reason_code) for r in reports] == [
        ("A-1", "new", None),
        ("A-1", "rejected", ReasonCode.DUPLICATE_CLORDID),
        ("A-2", "rejected", ReasonCode.UNKNOWN_INDEX),
        ("A-3", "rejected", ReasonCode.INSUFFICIENT_COLLATERAL),
        ("A-4", "rejected", ReasonCode.TOO_MUCH_PRECISION),
        ("A-5", "rejected", ReasonCode.UNSUPPORTED_SIDE),
        ("A-6", "rejected", ReasonCode.NON_POSITIVE_AMOUNT),
    ]
    assert app.book(ALICE).ledger.available == Decimal("900")  # only A-1 holds collateral
    app.book(ALICE).check()


def test_cancel_by_amount_then_the_rest_and_the_reply_says_how_much() -> None:
    app, plugin, out = setup()
    send(plugin, ALICE, order("A-1", "100"))
    app.engage(ALICE, "A-1", "30")
    send(plugin, ALICE, cancel("A-1", "20"), cancel("A-1", "1000"))
    cancels = [r for r in out.of(ALICE) if isinstance(r, CancelIndexOrderReport)]
    assert [(c.status, c.cancelled_amount, c.collateral_remaining, c.collateral_engaged) for c in cancels] == [
        ("canceled", Decimal("20"), Decimal("50"), Decimal("30")),
        ("canceled", Decimal("50"), Decimal("0"), Decimal("30")),  # the engaged 30 finishes its batch
    ]
    assert app.book(ALICE).ledger.available == Decimal("970")
    app.fill(ALICE, "A-1", "0.001", "10")
    app.finish(ALICE, "A-1", "0.05")  # the batch ends: the unspent 20 of it is cancelled too
    last = out.of(ALICE)[-1]
    assert isinstance(last, IndexOrderFill) and last.status == "filled"
    assert app.book(ALICE).ledger.available == Decimal("990")
    app.book(ALICE).check()


def test_no_user_can_cancel_or_see_another_users_order() -> None:
    app, plugin, out = setup()
    send(plugin, ALICE, order("SHARED-ID", "100"))
    send(plugin, BOB, cancel("SHARED-ID"), get_invoice("SHARED-ID"))
    bob = out.of(BOB)
    assert isinstance(bob[0], CancelIndexOrderReport) and bob[0].status == "rejected"
    assert bob[0].reason_code is ReasonCode.UNKNOWN_ORDER
    assert isinstance(bob[1], MintInvoiceRejected) and bob[1].reason_code is ReasonCode.UNKNOWN_ORDER
    assert app.book(ALICE).get("SHARED-ID").remaining == Decimal("100")  # untouched
    assert all(u == ALICE for u, b in out.sent if getattr(b, "client_order_id", None) == "SHARED-ID"
               and isinstance(b, NewIndexOrderReport))


def test_a_cancel_naming_the_wrong_index_or_a_closed_order_is_refused() -> None:
    app, plugin, out = setup()
    send(plugin, ALICE, order("A-1", "100"), cancel("A-1", symbol="SYAI"), cancel("A-1"), cancel("A-1"))
    replies = [r for r in out.of(ALICE) if isinstance(r, CancelIndexOrderReport)]
    assert [(r.status, r.reason_code) for r in replies] == [
        ("rejected", ReasonCode.UNKNOWN_ORDER), ("canceled", None), ("rejected", ReasonCode.NOT_CANCELABLE)]
    closing = [r for r in out.of(ALICE) if isinstance(r, IndexOrderFill)]
    assert [r.status for r in closing] == ["canceled"]


def test_fills_late_rejection_mint_and_invoice_again() -> None:
    app, plugin, out = setup()
    send(plugin, ALICE, order("A-1", "100"), order("A-2", "50"))
    app.engage(ALICE, "A-1", "100")
    app.fill(ALICE, "A-1", "0.002", "60.1234565")
    fill = out.of(ALICE)[-1]
    assert isinstance(fill, IndexOrderFill)
    # charge rounded up to the micro-USDC; fill rate rounded down to 6 places
    assert (fill.collateral_spent, fill.collateral_remaining, fill.fill_rate) == \
        (Decimal("60.123457"), Decimal("39.876543"), Decimal("0.601234"))
    app.finish(ALICE, "A-1", "50")
    app.reject(ALICE, "A-2", "no liquidity within the price cap")
    late = out.of(ALICE)[-1]
    assert isinstance(late, IndexOrderFill) and late.status == "rejected"
    assert late.reason_code is ReasonCode.ENGINE_FAILED and "liquidity" in late.reason
    line = CoreInvoiceLine(symbol="BTC", quantity=Decimal("0.001"), average_price=Decimal("60000"),
                           value=Decimal("60"), fee=Decimal("0.1234565"), lot_ids=("L-1",))
    app.mint(ALICE, "A-1", [line], "0x" + "ab" * 32, routing_fee=Decimal("0.25"))
    invoice = out.of(ALICE)[-1]
    assert isinstance(invoice, MintInvoice)
    assert invoice.collateral_spent + invoice.amount_cancelled + invoice.amount_returned == invoice.total_amount
    assert (invoice.routing_fee, invoice.minted_quantity, invoice.lines[0].lot_ids) == \
        (Decimal("0.25"), Decimal("0.002"), ["L-1"])
    send(plugin, ALICE, get_invoice("A-1"), get_invoice("A-2"))
    again, none = out.of(ALICE)[-2:]
    assert again == invoice
    assert isinstance(none, MintInvoiceRejected) and none.reason_code is ReasonCode.NOT_MINTED


def test_quotes_need_a_price_source() -> None:
    _, plugin, out = setup()
    request = quote("Q-1", "1000")
    send(plugin, ALICE, request)
    assert isinstance(out.of(ALICE)[0], NewIndexQuote) and out.of(ALICE)[0].reason_code is \
        ReasonCode.MARKET_UNAVAILABLE
    _, plugin, out = setup(quoter=lambda symbol, amount: amount / Decimal("1000"))
    send(plugin, ALICE, request)
    accepted, result = out.of(ALICE)
    assert accepted.status == "new" and isinstance(result, IndexQuoteResponse)
    assert result.quantity_possible == Decimal("1")


def test_custody_placeholders_are_unsupported_not_unknown() -> None:
    _, plugin, _ = setup()
    for body in (AccountToCustody(), CustodyToAccount()):
        refusal = plugin.precheck(ALICE, body)
        assert refusal is not None and refusal.code is NakCode.UNSUPPORTED
    assert plugin.precheck(ALICE, order("A-1")) is None


def test_an_application_failure_becomes_internal_error_reports() -> None:
    async def broken(requests: Sequence[object]) -> list[object]:
        raise RuntimeError("actor died")

    plugin = IndexMakerPlugin(broken)
    out = Outbox()
    plugin.attach(out)
    send(plugin, ALICE, order("A-1"), cancel("A-1"))
    assert [(type(b).__name__, b.status, b.reason_code) for _, b in out.sent] == [
        ("NewIndexOrderReport", "rejected", ReasonCode.INTERNAL_ERROR),
        ("CancelIndexOrderReport", "rejected", ReasonCode.INTERNAL_ERROR)]


def test_one_bad_response_does_not_cost_the_others_their_report() -> None:
    plugin = IndexMakerPlugin(lambda requests: None)  # type: ignore[arg-type,return-value]
    out = Outbox()
    plugin.attach(out)
    bad = OrderProgress(ALICE, "A-1", "rejected", Decimal(0), Decimal(0), Decimal(0))  # rejected without a code
    good = OrderRefused(ALICE, "A-2", ReasonCode.UNKNOWN_INDEX, "x" * 2000)
    plugin.deliver([bad, good])
    assert len(out.sent) == 1 and out.sent[0][1].client_order_id == "A-2"
    assert len(out.sent[0][1].reason) <= 512


def test_requests_map_to_typed_application_requests() -> None:
    d = IndexMakerPlugin.to_app(Inbound(ALICE, 5, order("A-1", "12.5"), 0))
    assert d == NewOrder(ALICE, "A-1", "SY100", Side.BUY, Decimal("12.5"))
    assert IndexMakerPlugin.to_app(Inbound(ALICE, 6, cancel("A-1"), 0)) == CancelOrder(ALICE, "A-1", "SY100", None)
    assert isinstance(IndexMakerPlugin.to_app(Inbound(ALICE, 7, get_invoice("A-1"), 0)), GetInvoice)
    assert isinstance(IndexMakerPlugin.to_app(Inbound(ALICE, 8, quote("Q", "1"), 0)), NewQuote)
    with pytest.raises(TypeError):
        IndexMakerPlugin.to_app(Inbound(ALICE, 9, AccountToCustody(), 0))


def test_a_reversed_deposit_reaches_the_user_as_a_deposit_reversed_message() -> None:
    from protocol.indexmaker_app import DepositReversed as AppDepositReversed
    from protocol.indexmaker_messages import INDEXMAKER_REPORTS, DepositReversed

    plugin = IndexMakerPlugin(lambda requests: None)  # type: ignore[arg-type,return-value]
    out = Outbox()
    plugin.attach(out)
    key = "42161:0x" + "ab" * 32 + ":3"  # a chain event key: longer than an order id
    plugin.deliver([AppDepositReversed(ALICE, key, Decimal("100"), Decimal("40"), ("new", "old"),
                                       ReasonCode.DEPOSIT_REVERSED, 1_700_000_000_000)])
    [(user, body)] = out.sent
    assert user == ALICE and isinstance(body, DepositReversed) and INDEXMAKER_REPORTS["DepositReversed"] is DepositReversed
    assert (body.deposit_id, body.amount, body.debt, body.cancelled_orders, body.reason_code) == (
        key, Decimal("100"), Decimal("40"), ["new", "old"], ReasonCode.DEPOSIT_REVERSED)
    assert key in body.reason
    again = DepositReversed.model_validate_json(body.model_dump_json())
    assert again == body


def test_in_paper_mode_every_report_says_paper_and_a_live_wire_is_unchanged() -> None:
    from protocol.codec import body_dict, decode
    from protocol.indexmaker_messages import INDEXMAKER_REPORTS

    app = HandDrivenApp({"SY100"}, clock=ManualClock(), max_open_orders=5)
    plugin = IndexMakerPlugin(app, trading_mode="paper")
    out = Outbox()
    plugin.attach(out)
    app.set_sink(plugin.deliver)
    app.credit(ALICE, "dep-a", "1000")
    send(plugin, ALICE, order("P-1", "100"), order("P-bad", "100", symbol="NOPE"))
    app.engage(ALICE, "P-1", "100")
    app.fill(ALICE, "P-1", "0.002", "60.1234565")
    app.finish(ALICE, "P-1", "50")
    line = CoreInvoiceLine(symbol="BTC", quantity=Decimal("0.001"), average_price=Decimal("60000"),
                           value=Decimal("60"), fee=Decimal("0.1234565"), lot_ids=("L-1",))
    app.mint(ALICE, "P-1", [line], "0x" + "ab" * 32, routing_fee=Decimal("0.25"))
    send(plugin, ALICE, CancelIndexOrder.model_validate({"client_order_id": "P-1", "symbol": "SY100"}))
    bodies = out.of(ALICE)
    kinds = {type(b).__name__ for b in bodies}
    assert {"NewIndexOrderReport", "IndexOrderFill", "MintInvoice", "CancelIndexOrderReport"} <= kinds
    assert all(b.trading_mode == "paper" for b in bodies)
    # On the wire: a field the client decodes back; a live system's reports do not carry it at all.
    invoice = next(b for b in bodies if isinstance(b, MintInvoice))
    wire = body_dict(invoice)
    assert wire["trading_mode"] == "paper"
    header = {"msg_type": "MintInvoice", "sender_comp_id": "S", "target_comp_id": "C", "seq_num": 1,
              "timestamp": "2025-10-01T12:00:00.000Z"}
    decoded = decode({"standard_header": header, "chain_id": ALICE.chain_id, "address": ALICE.address, **wire},
                     INDEXMAKER_REPORTS)
    assert decoded.body == invoice
    _, live_plugin, live_out = setup()
    send(live_plugin, ALICE, order("L-1", "100"))
    assert "trading_mode" not in body_dict(live_out.of(ALICE)[-1])
