"""Withdrawals on the wire (protocol/indexmaker_messages.py, indexmaker_plugin.py, books_app.py): the signed
WithdrawCollateral decoded strictly, answered "new" (the amount held) or "rejected" with a reason code, a repeat
answered as the first, and each stage a CollateralWithdrawal report; every code the shard's withdrawal rules raise
has its wire code."""
from __future__ import annotations

import asyncio
import re
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from core.chain_events import CollateralDeposit
from core.clock import ManualClock
from core.shard_books import ShardBooks
from core.withdrawal import WithdrawalReport, WithdrawalStage
from protocol.books_app import BooksApp
from protocol.envelope import UserRef
from protocol.indexmaker_messages import CollateralWithdrawal, WithdrawCollateral, WithdrawCollateralReport
from protocol.indexmaker_plugin import IndexMakerPlugin
from protocol.plugin import Inbound
from protocol.reason_codes import CORE_REJECTION_CODES, ReasonCode

ALICE = UserRef(42161, "0x2B5AD5c4795c026514f8317c7a215E218DcCD6cF")
TO = "0x6813Eb9362372EEF6200f3b1dbC3f819671cBA69"


class Outbox:
    def __init__(self) -> None:
        self.sent: list = []

    def emit(self, user: UserRef, body: object) -> None:
        self.sent.append(body)


def setup() -> tuple[BooksApp, IndexMakerPlugin, Outbox]:
    books = ShardBooks({"SY100"}, clock=ManualClock(), unit=Decimal("0.000001"), max_open_orders=5,
                       token_decimals=18, order_dust=Decimal("0.05"), rest_return_ratio=Decimal("0.005"))
    books.credit([CollateralDeposit(42161, "0x01", 0, 1, ALICE.address, Decimal("100"))], {})
    app = BooksApp(books, default_chain_id=42161, withdrawal_minimum=Decimal("5"),
                   withdrawal_chains=frozenset({42161}))
    plugin = IndexMakerPlugin(app)
    out = Outbox()
    plugin.attach(out)
    return app, plugin, out


def withdraw(wid: str, amount: str, chain: int = 42161, **extra: str) -> WithdrawCollateral:
    return WithdrawCollateral.model_validate({"withdrawal_id": wid, "amount": amount, "destination": TO,
                                              "destination_chain_id": chain, **extra})


def send(plugin: IndexMakerPlugin, *bodies: object) -> None:
    asyncio.run(plugin.on_requests([Inbound(ALICE, i + 1, b, 0) for i, b in enumerate(bodies)]))


def test_the_request_is_decoded_strictly() -> None:
    assert withdraw("w-1", "25.5", max_fee="1").max_fee == Decimal("1")
    for bad in ({"destination": "0x1234"}, {"destination_chain_id": 0}, {"withdrawal_id": "a b"},
                {"amount": "abc"}):
        with pytest.raises(ValidationError):
            WithdrawCollateral.model_validate({"withdrawal_id": "w-1", "amount": "25", "destination": TO,
                                               "destination_chain_id": 42161} | bad)


def test_answers_and_reason_codes() -> None:
    app, plugin, out = setup()
    send(plugin, withdraw("w-1", "60"), withdraw("w-1", "60"), withdraw("w-2", "40.000001"),
         withdraw("w-3", "4.999999"), withdraw("w-4", "10", chain=8453), withdraw("w-1", "10"))
    assert [(b.withdrawal_id, b.status, b.reason_code) for b in out.sent] == [
        ("w-1", "new", None), ("w-1", "new", None), ("w-2", "rejected", ReasonCode.INSUFFICIENT_COLLATERAL),
        ("w-3", "rejected", ReasonCode.BELOW_MINIMUM), ("w-4", "rejected", ReasonCode.UNSUPPORTED_DESTINATION),
        ("w-1", "rejected", ReasonCode.DUPLICATE_WITHDRAWAL_ID)]
    assert all(isinstance(b, WithdrawCollateralReport) for b in out.sent)
    ledger = app.books.books[ALICE.address.lower()].ledger
    assert (ledger.available, ledger.held) == (Decimal("40"), Decimal("60"))


def test_an_unknown_user_is_refused() -> None:
    _, plugin, out = setup()
    asyncio.run(plugin.on_requests([Inbound(UserRef(42161, TO), 1, withdraw("w-1", "10"), 0)]))
    assert out.sent[0].reason_code is ReasonCode.UNKNOWN_USER


def test_each_stage_is_a_report_with_the_hash_at_the_end() -> None:
    app, plugin, out = setup()
    send(plugin, withdraw("w-1", "60"))
    wid = next(iter(app.books.withdrawals))
    plugin.deliver(app.withdrawal_reports([
        WithdrawalReport(wid, WithdrawalStage.BRIDGED, Decimal("60"), Decimal("0.5"), Decimal("59.5")),
        WithdrawalReport(wid, WithdrawalStage.PAID, Decimal("60"), Decimal("0.5"), Decimal("59.5"),
                         tx_hash="0x" + "ab" * 32),
        WithdrawalReport("not-this-shards", WithdrawalStage.PAID, Decimal("1"), Decimal("0"))]))
    reports = [b for b in out.sent if isinstance(b, CollateralWithdrawal)]
    assert [(r.withdrawal_id, r.stage, r.payout, r.tx_hash) for r in reports] == [
        ("w-1", "bridged", Decimal("59.5"), None), ("w-1", "paid", Decimal("59.5"), "0x" + "ab" * 32)]


def test_every_withdrawal_refusal_code_has_a_wire_code() -> None:
    source = (Path(__file__).resolve().parents[2] / "core" / "shard_books.py").read_text()
    codes = set(re.findall(r'IndexOrderRefused\("([A-Z_]+)"', source))
    assert {"UNKNOWN_USER", "BELOW_MINIMUM", "DUPLICATE_WITHDRAWAL_ID", "INSUFFICIENT_COLLATERAL"} <= codes
    assert codes <= set(CORE_REJECTION_CODES)
