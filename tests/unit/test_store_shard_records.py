"""store/shard_records.py: what an order-book shard wrote before records (version 0: plain JSON, pickled reports)
loads to the same state through the migrations, and what it writes now is JSON that reads back exactly."""
from __future__ import annotations

import json
import pickle
import typing
from decimal import Decimal

import pytest

from actors.order_books import ShardReport
from core.collateral_ledger import USDC_UNIT, CollateralLedger
from core.index_order_book import UserOrderBook
from core.side import Side
from core.withdrawal import WithdrawalReport, WithdrawalStage
from protocol import indexmaker_app as app
from protocol.envelope import UserRef
from protocol.reason_codes import ReasonCode
from store.records import RecordError
from store.shard_records import (RESPONSE_TYPES, ShardCompleted, ShardInvoice, ShardMeta, ShardReportRecord,
                                 ShardUser)
from tests.unit.store_examples import ALICE, T0, invoice, mint_requests, shard_book, shard_lines
from tests.unit.test_store_fixtures import FIXTURES

OID = f"{ALICE}:c1"
REF = UserRef(42161, ALICE)

#: A user snapshot as the shard wrote it before routing holds (its ledger has no held, debt, holds, reversed) and
#: before invoices had a hash of their own (one is inside).
USER_V0 = {
    "ref": [42161, ALICE],
    "book": {"user": ALICE, "unit": "0.000001", "max_open_orders": 10, "known_indexes": ["SY100"],
             "ledger": {"unit": "0.000001", "available": "60", "reserved": "10.599999", "spent": "29.400001",
                        "fees_charged": "0", "credited": "100", "reservations": {OID: "10.599999"},
                        "deposits": {"42161:0xdep:0": "100"}, "fees": {}},
             "orders": [{"order_id": OID, "user": ALICE, "cl_ord_id": "c1", "index": "SY100", "side": "BUY",
                         "status": "PARTIALLY_FILLED", "created_ms": T0, "updated_ms": T0,
                         "reject_reason": None, "cancel_pending": False, "minted_tx": None, "collateral": "40",
                         "remaining": "10", "engaged": "0.599999", "spent": "29.400001",
                         "cost_exact": "29.4000001", "filled_units": "0.0005", "cancelled": "0", "returned": "0",
                         "unit": "0.000001"}]},
    "lines": {OID: {"BTCUSDC": [50, "0.0000005", "29.4000001", "0.0294", ["BTCUSDC:7", "BTCUSDC:8"]]}},
}

#: The shard's meta before reversals existed and while the idempotency records were kept inside it.
META_V0 = {"fifo": [OID], "engaged": {"b7": [[OID, "30"]]}, "routes": {"route-1": {"42161:0xdep:0": "99.75"}},
           "report_seq": 12, "delivered": 9, "subscriber": {"name": "gateway", "namespace": None},
           "errors": [], "fill_keys": ["b6:1", "b7:1"],
           "completed": {"b6": [{"order_id": OID, "user": ALICE, "index": "SY100", "filled_units": "0.0005",
                                 "token_decimals": 18}]}}


def test_a_version_0_user_snapshot_loads_to_the_same_book_lines_and_invoices() -> None:
    inv = invoice()
    user = ShardUser.load(json.dumps(USER_V0 | {"invoices": {"c1": inv.model_dump(mode="json")}}))
    expected = UserOrderBook(ALICE, CollateralLedger(USDC_UNIT), unit=USDC_UNIT, max_open_orders=10,
                             known_indexes=("SY100",))
    expected.ledger.credit("42161:0xdep:0", "100")
    expected.new_order("c1", "SY100", Side.BUY, Decimal("40"), T0)
    expected.engage("c1", "30")
    expected.apply_fill("c1", "0.0005", "29.4000001")
    assert user.user_book(max_open_orders=10, known_indexes=("SY100",)) == expected
    assert user.user_ref() == REF
    assert user.lines == {OID: {"BTCUSDC": (50, Decimal("0.0000005"), Decimal("29.4000001"), Decimal("0.0294"),
                                            ["BTCUSDC:7", "BTCUSDC:8"])}}
    assert user.invoices == {"c1": inv}


def test_a_user_snapshot_round_trips_and_refuses_a_renamed_field() -> None:
    book = shard_book()
    raw = ShardUser.of(REF, book, shard_lines()).dump()
    back = ShardUser.load(raw)
    assert back.user_book(max_open_orders=10, known_indexes=("SY100", "SYAI")) == book
    assert back.invoices == {}
    data = json.loads(raw)["data"]
    data["book"]["ledger"]["avail"] = data["book"]["ledger"].pop("available")
    with pytest.raises(RecordError, match="does not fit"):
        ShardUser.load(json.dumps({"schema": "shard.user", "schema_version": 1, "data": data}))


def test_a_version_0_meta_loads_with_no_reversals_and_its_records_inside() -> None:
    meta = ShardMeta.load(json.dumps(META_V0))
    assert meta.reversals == [] and meta.fill_keys == ["b6:1", "b7:1"]
    assert [m.mint() for m in meta.completed["b6"]] == mint_requests()[:1]
    assert meta.engaged == {"b7": [(OID, Decimal("30"))]} and meta.report_seq == 12
    assert "delivered" not in ShardMeta.model_fields and "subscriber" not in ShardMeta.model_fields  # version 2 let go
    assert meta.routes == {"route-1": {"42161:0xdep:0": Decimal("99.75")}}


def test_version_0_completed_answers_and_invoices_load_to_the_same_values() -> None:
    mints = mint_requests()
    assert ShardCompleted.load(json.dumps([m.to_dict() for m in mints])).requests() == mints
    assert ShardCompleted.load(ShardCompleted.of(mints).dump()).requests() == mints
    inv = invoice()
    assert ShardInvoice.load(inv.model_dump_json()).invoice == inv


def _every_response() -> list[typing.Any]:
    inv = invoice()
    d = Decimal
    return [app.OrderAccepted(REF, "c1"), app.OrderRefused(REF, "c2", ReasonCode.INSUFFICIENT_COLLATERAL, "short"),
            app.CancelDone(REF, "c1", d("10"), d("0"), d("0.599999")),
            app.CancelRefused(REF, "c3", ReasonCode.UNKNOWN_ORDER, "no such order"),
            app.OrderProgress(REF, "c1", "in progress", d("0.0005"), d("29.400001"), d("10.599999")),
            app.OrderProgress(REF, "c4", "rejected", d("0"), d("0"), d("40"), ReasonCode.ENGINE_FAILED, "late"),
            app.InvoiceIssued(REF, inv, T0 + 9), app.InvoiceRefused(REF, "c2", ReasonCode.UNKNOWN_ORDER, "none"),
            app.QuoteAccepted(REF, "q1"), app.QuoteRefused(REF, "q2", ReasonCode.UNKNOWN_INDEX, "no index"),
            app.QuoteResult(REF, "q1", d("0.0123")), app.QuoteCancelled(REF, "q1"),
            app.QuoteCancelRefused(REF, "q3", ReasonCode.UNKNOWN_QUOTE, "none"),
            app.DepositReversed(REF, "42161:0xold:3", d("5"), d("1.5"), ("c1",), ReasonCode.DEPOSIT_REVERSED, T0),
            app.TokenDepositReport(REF, "8453:0xtok:1", "SY100", "credited", d("0.01"), d("0.01"), d("0"), None, T0),
            app.TokenDepositReport(REF, "8453:0xtok:1", "SY100", "reversed", d("0.01"), d("0"), d("0.002"),
                                   ReasonCode.DEPOSIT_REVERSED, T0 + 1),
            app.WithdrawalAccepted(REF, "w1"),
            app.WithdrawalRefused(REF, "w2", ReasonCode.BELOW_MINIMUM, "below 5"),
            app.WithdrawalProgress(REF, "w1", WithdrawalReport("a1b2", WithdrawalStage.PAID, d("250"), d("0.85"),
                                                               d("249.15"), tx_hash="0x" + "ab" * 32), T0),
            app.WithdrawalProgress(REF, "w3", WithdrawalReport("c3d4", WithdrawalStage.RELEASED, d("10"), d("0"),
                                                               reason="refused"), T0)]


def test_every_response_type_round_trips_and_a_pickled_report_of_older_code_reads_once() -> None:
    responses = _every_response()
    assert {type(r).__name__ for r in responses} == set(RESPONSE_TYPES)  # the union covers every response
    for seq, response in enumerate(responses, 1):
        raw = ShardReportRecord.of(seq, 2, response).dump()
        assert json.loads(raw)["data"]["response"]["type"] == type(response).__name__  # JSON, not a pickle
        assert ShardReportRecord.load(raw.encode()).app_response() == response
        old = ShardReportRecord.load(pickle.dumps(ShardReport(seq, 2, response)))  # what older code wrote
        assert (old.seq, old.shard, old.app_response()) == (seq, 2, response)
        assert old.dump() == raw


def test_a_version_1_fill_report_reads_with_no_index_and_others_are_untouched() -> None:
    v1 = json.loads((FIXTURES / "shard.report.v1.json").read_text())
    # Not a fill: as it was (no arrival value then).
    assert ShardReportRecord.load(json.dumps(v1)).app_response().invoice == invoice(with_arrival=False)
    progress = app.OrderProgress(REF, "c1", "in progress", Decimal("0.5"), Decimal("1"), Decimal("2"), index="SYAI")
    data = json.loads(ShardReportRecord.of(3, 1, progress).dump())
    del data["data"]["response"]["index"]
    data["schema_version"] = 1
    assert ShardReportRecord.load(json.dumps(data)).app_response().index == ""
    assert ShardReportRecord.load(ShardReportRecord.of(3, 1, progress).dump()).app_response() == progress
