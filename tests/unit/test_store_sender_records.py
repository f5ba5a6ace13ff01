"""The sender's stored kinds: what the sender wrote before records (version 0) loads to the same domain state."""
from __future__ import annotations

import json
from decimal import Decimal

import pytest

from core.circuit_breaker import CircuitBreaker
from core.clock import ManualClock
from core.sender_messages import OrderDone, SenderFill
from core.side import Side
from store.records import RecordError
from store.sender_records import SenderBatchRecord, SenderExecutionRecord, SenderOrderRecord, SenderStateRecord
from tests.unit.store_examples import T0, asset_order_partly_filled, breaker_tripped

#: A `sender:<account>:orders` value as the sender wrote it before records (json.dumps of AssetOrder.to_dict).
ORDER_V0 = {"order": {"client_order_id": "b7.ETHUSDC.0", "batch_id": "b7", "symbol": "ETHUSDC", "side": "BUY",
                      "order_type": "LIMIT", "quantity": "0.5000", "price": "2500.01", "time_in_force": "IOC",
                      "status": "PARTIALLY_FILLED", "exchange_order_id": 4021, "executed_qty": "0.2", "reason": "",
                      "fills": [{"trade_id": 901, "price": "2499.99", "quantity": "0.2", "commission": "0.0002",
                                 "commission_asset": "ETH", "time_ms": T0 + 12, "is_maker": False}]},
            "replaced_by": None, "sent_at": T0 + 10}


def test_an_order_written_before_records_loads_the_same_order() -> None:
    stored = SenderOrderRecord.load(json.dumps(ORDER_V0))
    assert stored.order == asset_order_partly_filled()
    assert stored.replaced_by is None and stored.sent_at == T0 + 10
    older = {"order": {k: v for k, v in ORDER_V0["order"].items() if k != "reason"}, "replaced_by": "b7.ETHUSDC.1"}
    again = SenderOrderRecord.load(json.dumps(older))  # before reasons, replaced_by and sent_at were always there
    assert again.order == asset_order_partly_filled() and again.replaced_by == "b7.ETHUSDC.1"
    assert again.sent_at is None


def test_an_order_with_a_renamed_field_is_refused() -> None:
    renamed = {**ORDER_V0, "order": {**ORDER_V0["order"], "qty": "0.5"}}
    with pytest.raises(RecordError, match="does not fit"):
        SenderOrderRecord.load(json.dumps(renamed))


def test_a_batch_written_as_a_bare_list_loads_its_verdicts() -> None:
    v0 = [{"symbol": "ETHUSDC", "side": "BUY", "accepted": True, "client_order_id": "b7.ETHUSDC.0",
           "quantity": "0.5000", "price": "2500.01", "status": "INTENDED", "reason": "", "filter": None},
          {"symbol": "DOGEUSDC", "side": "SELL", "accepted": False, "client_order_id": None, "quantity": None,
           "price": None, "status": "REJECTED", "reason": "below the minimum", "filter": "LOT_SIZE"}]
    ok, rejected = SenderBatchRecord.load(json.dumps(v0)).results
    assert ok.side is Side.BUY and ok.quantity == Decimal("0.5000") and str(ok.quantity) == "0.5000"
    assert rejected.side is Side.SELL and rejected.quantity is None and rejected.filter == "LOT_SIZE"
    assert SenderBatchRecord.load(SenderBatchRecord.of([ok, rejected]).dump()).results == [ok, rejected]


def test_log_entries_written_before_records_load_fills_and_completions() -> None:
    fill = {"kind": "fill", "seq": 1, "batch_id": "b7", "client_order_id": "b7.ETHUSDC.0", "symbol": "ETHUSDC",
            "side": "BUY", "trade_id": 901, "price": "2499.99", "quantity": "0.2", "commission": "0.0002",
            "commission_asset": None, "time_ms": T0, "is_maker": True}
    loaded = SenderExecutionRecord.load(json.dumps(fill)).entry
    assert isinstance(loaded, SenderFill)
    assert loaded.seq == 1 and loaded.fill.price == Decimal("2499.99") and loaded.fill.commission_asset is None
    assert loaded.fill.trade_id == 901 and loaded.fill.is_maker and loaded.key == ("ETHUSDC", 901)
    done = {"kind": "done", "seq": 2, "batch_id": "b7", "client_order_id": "b7.ETHUSDC.0", "symbol": "ETHUSDC",
            "side": "BUY", "status": "EXPIRED", "executed_qty": "0.2"}  # before completions carried a reason
    assert SenderExecutionRecord.load(json.dumps(done)).entry == OrderDone(
        2, "b7", "b7.ETHUSDC.0", "ETHUSDC", Side.BUY, "EXPIRED", Decimal("0.2"), "")
    with pytest.raises(RecordError):
        SenderExecutionRecord.load(json.dumps({**done, "kind": "cancel"}))


def test_state_written_before_the_breaker_or_before_any_state_loads_with_nothing_open() -> None:
    # the layout of the push-to-subscriber days (no log_seq: the log hash had the seqs), and no state at all
    for v0, log_seq in (({"delivered": 3, "subscriber": None}, 0), ({}, 0), ({"log_seq": 5}, 5)):
        state = SenderStateRecord.load(json.dumps(v0))
        breaker = CircuitBreaker(2, 60_000, ManualClock(T0))
        breaker.load(state.breaker.model_dump())
        assert state.log_seq == log_seq and breaker.open == []


def test_state_with_a_breaker_written_before_records_restores_the_same_breaker() -> None:
    before = breaker_tripped()
    v0 = {"log_seq": 6, "breaker": before.to_dict()}
    state = SenderStateRecord.load(json.dumps(v0))
    after = CircuitBreaker(2, 60_000, ManualClock(T0))
    after.load(state.breaker.model_dump())
    assert after.open == before.open and after.to_dict() == before.to_dict() and state.log_seq == 6
    oldest = {"delivered": 1, "breaker": {"streak": {}, "open": [{"key": "*", "reason": "INSUFFICIENT_BALANCE",
                                                                  "since_ms": T0}]}}  # a trip before detail/rejects
    trip = SenderStateRecord.load(json.dumps(oldest)).breaker.open[0]
    assert (trip.scope, trip.detail, trip.rejects) == ("account", "", 0)
