"""The chain side's stored kinds: what the router, the tx sender and the listeners wrote before records (version 0)
loads to the same domain state."""
from __future__ import annotations

import json
from decimal import Decimal

import pytest

from core.collateral_ledger import USDC_UNIT, CollateralLedger
from core.route_batch import RouteMember
from store.chain_records import (BlockCursorRecord, NextNonceRecord, PendingDepositRecord, ReversalRecord,
                                 RoutedNetRecord, RouteRecord, RouterLedgerRecord, StrandedReversalRecord,
                                 TxIntentRecord)
from store.records import RecordError
from tests.unit.store_examples import (DEPOSIT, DEPOSIT2, T0, USER, USER2, ledger_after_credit_hold_fee,
                                      route_bridged)


def test_a_ledger_written_before_routing_holds_loads_with_none() -> None:
    v0 = {"unit": "0.000001", "available": "70", "reserved": "30", "spent": "0", "fees_charged": "0",
          "credited": "100", "reservations": {"u:c1": "30"}, "deposits": {"d1": "100"}, "fees": {}}
    expected = CollateralLedger(USDC_UNIT)
    expected.credit("d1", "100")
    expected.reserve("u:c1", "30")
    loaded = RouterLedgerRecord.load(json.dumps(v0)).collateral_ledger()
    assert loaded == expected and loaded.held == 0 and loaded.debt == 0 and loaded.holds() == {}
    assert loaded.credit("d1", "100") is False  # the deposit it booked is still recognised


def test_a_ledger_with_holds_and_fees_round_trips_exactly() -> None:
    ledger = ledger_after_credit_hold_fee()
    v0 = json.dumps(ledger.to_dict())  # what RedisLedgers wrote before records
    assert RouterLedgerRecord.load(v0).collateral_ledger() == ledger
    assert RouterLedgerRecord.load(RouterLedgerRecord.of(ledger).dump()).collateral_ledger() == ledger
    bad = {**ledger.to_dict(), "available": "1"}  # books that do not add up are refused at load
    with pytest.raises(AssertionError):
        RouterLedgerRecord.load(json.dumps(bad)).collateral_ledger()


def test_routed_nets_written_as_a_bare_mapping_load() -> None:
    assert RoutedNetRecord.load(json.dumps({DEPOSIT: "249.875789"})).net_by_deposit == {DEPOSIT: Decimal("249.875789")}


ROUTE_V0 = {"route_id": "route-3", "origin_chain_id": 42161, "destination_chain_id": 8453,
            "members": [{"deposit_key": DEPOSIT, "user": USER, "amount": "250", "seen_ms": T0},
                        {"deposit_key": DEPOSIT2, "user": USER2, "amount": "50", "seen_ms": T0 + 300}],
            "unit": "0.000001", "stage": "on_destination", "created_ms": T0 + 1000, "updated_ms": T0 + 9000,
            "hops": [{"hop": "across:42161->8453", "amount_in": "300", "amount_out": "299.87", "gas": "0.004211"}],
            "bridge": {"tx_hash": "0x" + "ab" * 32, "deposit_id": 17, "input_amount": "300", "output_amount": "299.88",
                       "gas": "0.004211", "block": 1234},
            "fill": {"tx_hash": "0x" + "ef" * 32, "amount_received": "299.87", "block": 88},
            "transfer": None, "credit": None, "failure": None,
            "charged": [f"route-3:across:42161->8453:{DEPOSIT}", f"route-3:across:42161->8453:{DEPOSIT2}"]}


def test_a_route_written_before_records_loads_the_same_route() -> None:
    assert RouteRecord.load(json.dumps(ROUTE_V0)).route == route_bridged()
    with pytest.raises(RecordError):
        RouteRecord.load(json.dumps({**ROUTE_V0, "stage": "teleported"}))


def test_a_pending_deposit_written_before_records_loads_with_its_chain() -> None:
    v0 = {"deposit_key": DEPOSIT, "user": USER, "amount": "250", "seen_ms": T0, "chain_id": 42161}
    waiting = PendingDepositRecord.load(json.dumps(v0))
    assert waiting.member == RouteMember(DEPOSIT, USER, Decimal("250"), T0) and waiting.chain_id == 42161


def test_reversals_written_before_records_load_both_shapes() -> None:
    queued = ReversalRecord.load(json.dumps({"user": USER, "amount": "250", "routed": False, "route": None}))
    assert (queued.amount, queued.routed, queued.route, queued.stage) == (Decimal("250"), False, None, None)
    left = {"user": USER, "amount": "250", "route": "route-3", "stage": "bridging"}
    routed = ReversalRecord.load(json.dumps({**left, "routed": True}))
    assert routed.routed and routed.route == "route-3" and routed.stage == "bridging"
    stranded = StrandedReversalRecord.load(json.dumps(left))
    assert stranded.model_dump(mode="json") == left  # what the operator's views read, unchanged


def test_intents_written_before_records_load_signed_and_mined() -> None:
    signed = {"key": "mint:o-1", "nonce": 4, "tx_hash": "0x" + "cd" * 32, "raw": "0x02f8", "state": "signed",
              "meta": {"recipient": USER, "units": "1000000"}}
    loaded = TxIntentRecord.load(json.dumps(signed))
    assert loaded.model_dump(mode="json") == {**signed, "block": None, "status": None}
    mined = {**signed, "state": "mined", "block": 99, "status": 1}
    assert TxIntentRecord.load(json.dumps(mined)).model_dump(mode="json") == mined
    # the sender's in-memory flags are never stored
    assert TxIntentRecord.of({**mined, "_fresh": True}) == TxIntentRecord.load(json.dumps(mined))
    with pytest.raises(RecordError):
        TxIntentRecord.load(json.dumps({**signed, "state": "lost"}))


def test_counters_written_as_bare_numbers_load() -> None:
    assert NextNonceRecord.load(b"13").next_nonce == 13
    assert BlockCursorRecord.load(b"1235").next_block == 1235
    assert BlockCursorRecord.load(BlockCursorRecord(next_block=7).dump()).next_block == 7
