"""The withdrawal state machine (core/withdrawal.py): every transition, its effects and report, the fee arithmetic
and its rounding, idempotency per event, and (hypothesis) that no sequence of duplicated or reordered events pays
twice, releases twice, or moves more collateral than it held."""
from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.withdrawal import (
    ApplyExchangeWithdraw, BridgeDeposited, BridgeExpired, BridgeFilled, DepositToBridge, ExchangeApplied,
    ExchangeCompleted, ExchangeRejected, HoldCollateral, Paid, PayOnArbitrum, ReleaseCollateral, Reserve,
    SpendCollateral, Withdrawal, WithdrawalError, WithdrawalStage as S,
)
from store.withdrawal_records import WithdrawalRecord

USER = "0x" + "11" * 20
TO = "0x" + "22" * 20
D = Decimal


def new(amount: str = "250", fee: str = "0.1") -> Withdrawal:
    return Withdrawal.request("w1", USER, TO, D(amount), D(fee))


def happy_events() -> list:
    return [Reserve(D("1000")), ExchangeApplied("ex-1"), ExchangeCompleted("ex-1", "0xbase"),
            BridgeDeposited("dep-9", D("249.85")), BridgeFilled("dep-9", D("0.02")), Paid("0xarb")]


def test_happy_path_stages_effects_and_reports():
    w = new()
    t = w.apply(Reserve(D("1000")))
    assert t.stage is S.RESERVED
    assert t.effects == (HoldCollateral(D("250")), ApplyExchangeWithdraw("wd-w1", D("249.9")))
    assert w.apply(ExchangeApplied("ex-1")).stage is S.APPLIED
    t = w.apply(ExchangeCompleted("ex-1", "0xbase"))
    assert (t.stage, t.effects) == (S.ON_BASE, (DepositToBridge(D("249.9")),))
    t = w.apply(BridgeDeposited("dep-9", D("249.85")))
    assert t.stage is S.BRIDGING and w.bridge_fee == D("0.05")
    t = w.apply(BridgeFilled("dep-9", D("0.02")))
    assert (t.stage, t.effects) == (S.BRIDGED, (PayOnArbitrum("withdraw:w1", TO, D("249.83")),))
    assert t.report.payout == D("249.83") and t.report.fees == D("0.17")
    t = w.apply(Paid("0xarb"))
    assert (t.stage, t.effects) == (S.PAID, (SpendCollateral(D("250")),))
    assert t.report.tx_hash == "0xarb" and t.report.payout + t.report.fees == D("250")
    assert w.history == ["requested", "reserved", "applied", "on_base", "bridging", "bridged", "paid"]
    assert (w.held, w.spent, w.released) == (D("250"), D("250"), D("0"))


def test_reserve_refuses_what_the_available_collateral_does_not_cover():
    w = new()
    t = w.apply(Reserve(D("249.999999")))
    assert (t.stage, t.effects, t.report.reason) == (S.REFUSED, (), "INSUFFICIENT_AVAILABLE_COLLATERAL")
    assert w.held == 0
    assert w.apply(Reserve(D("1000"))) is None  # final: a later look at the collateral holds nothing


@pytest.mark.parametrize("applied", [False, True])
def test_exchange_rejection_releases_the_whole_hold_once(applied):
    w = new()
    w.apply(Reserve(D("1000")))
    if applied:
        w.apply(ExchangeApplied("ex-1"))
    assert w.apply(ExchangeRejected("rejected", "ex-other")) is None if applied else True  # another withdrawal's
    t = w.apply(ExchangeRejected("-4026 insufficient", "ex-1" if applied else None))
    assert (t.stage, t.effects) == (S.RELEASED, (ReleaseCollateral(D("250")),))
    assert t.report.fees == 0 and t.report.reason == "-4026 insufficient"
    assert w.apply(ExchangeRejected("again")) is None
    assert w.apply(ExchangeCompleted("ex-1", "0xbase")) is None  # released: never bridged afterwards


def test_completed_seen_before_the_apply_answer_moves_on_and_the_late_answer_changes_nothing():
    w = new()
    w.apply(Reserve(D("1000")))
    assert w.apply(ExchangeCompleted("ex-1", "0xbase")).stage is S.ON_BASE
    assert w.apply(ExchangeApplied("ex-1")) is None
    assert w.exchange_id == "ex-1"


def test_bridge_expiry_refunds_less_the_exchange_fee_and_never_pays():
    w = new()
    for e in happy_events()[:4]:
        w.apply(e)
    assert w.apply(BridgeExpired("dep-other")) is None
    t = w.apply(BridgeExpired("dep-9"))
    assert t.stage is S.REFUNDED
    assert t.effects == (SpendCollateral(D("0.1")), ReleaseCollateral(D("249.9")))
    assert t.report.fees == D("0.1") and t.report.reason == "BRIDGE_EXPIRED"
    assert w.apply(BridgeFilled("dep-9", D("0.02"))) is None and w.apply(Paid("0xarb")) is None


def test_fees_round_up_to_the_micro_usdc_and_the_payout_is_exact():
    w = Withdrawal.request("w2", USER, TO, D("10"), D("0.10000001"))
    assert w.exchange_fee == D("0.100001")  # up: the exchange takes its fee whole
    for e in (Reserve(D("10")), ExchangeCompleted("ex", "0xb"), BridgeDeposited("d", D("9.8999985")),
              BridgeFilled("d", D("0.0000001"))):
        t = w.apply(e)
    assert w.bridge_fee == D("0.000001") and w.gas_fee == D("0.000001")
    (pay,) = t.effects
    assert pay.amount == D("10") - D("0.100001") - D("0.000001") - D("0.000001")


def test_gas_that_eats_the_payout_sends_nothing():
    w = Withdrawal.request("w3", USER, TO, D("2"), D("0.1"))
    for e in (Reserve(D("2")), ExchangeCompleted("ex", "0xb"), BridgeDeposited("d", D("1.8"))):
        w.apply(e)
    t = w.apply(BridgeFilled("d", D("5")))
    assert t.stage is S.PAID and t.effects == (SpendCollateral(D("2")),) and w.payout == 0
    assert t.report.reason == "FEES_EXCEED_AMOUNT"


def test_bridge_output_above_what_was_sent_is_ignored():
    w = new()
    for e in happy_events()[:3]:
        w.apply(e)
    assert w.apply(BridgeDeposited("dep-9", D("249.900001"))) is None
    assert w.stage is S.ON_BASE


@pytest.mark.parametrize("amount,fee", [("0", "0.1"), ("0.1", "0.1"), ("1.0000001", "0.1"), ("-5", "0")])
def test_requests_that_could_never_pay_are_refused(amount, fee):
    with pytest.raises(WithdrawalError):
        Withdrawal.request("w", USER, TO, D(amount), D(fee))


def test_the_withdraw_order_id_fits_binance_and_derives_from_the_id():
    w = Withdrawal.request("x" * 60, USER, TO, D("5"), D("0.1"))
    assert len(w.withdraw_order_id) <= 36 and w.withdraw_order_id == Withdrawal.request(
        "x" * 60, USER, TO, D("5"), D("0.1")).withdraw_order_id


def test_a_stored_withdrawal_resumes_where_it_was():
    w = new()
    for e in happy_events()[:5]:
        w.apply(e)
    back = WithdrawalRecord.load(WithdrawalRecord(withdrawal=w).dump()).withdrawal
    assert back == w and back.stage is S.BRIDGED
    assert back.apply(BridgeFilled("dep-9", D("0.02"))) is None  # replayed after the restart: nothing
    assert back.apply(Paid("0xarb")).effects == (SpendCollateral(D("250")),)


ALL_EVENTS = happy_events() + [
    Reserve(D("100")), ExchangeRejected("rejected"), ExchangeRejected("other", "ex-2"), ExchangeApplied("ex-2"),
    ExchangeCompleted("ex-2", "0xother"), BridgeDeposited("dep-8", D("249.8")), BridgeFilled("dep-8", D("0")),
    BridgeExpired("dep-9"), BridgeExpired("dep-8"), Paid("0xarb2"),
]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(range(len(ALL_EVENTS))), max_size=40))
def test_no_sequence_of_duplicated_or_reordered_events_pays_or_releases_twice(picks):
    w = new()
    effects = []
    for i in picks:
        t = w.apply(ALL_EVENTS[i])
        if t is not None:
            effects.extend(t.effects)
        assert w.apply(ALL_EVENTS[i]) is None  # the same event again changes nothing
    holds = [e for e in effects if isinstance(e, HoldCollateral)]
    pays = [e for e in effects if isinstance(e, PayOnArbitrum)]
    releases = [e for e in effects if isinstance(e, ReleaseCollateral)]
    applies = [e for e in effects if isinstance(e, ApplyExchangeWithdraw)]
    bridges = [e for e in effects if isinstance(e, DepositToBridge)]
    assert len(holds) <= 1 and len(pays) <= 1 and len(releases) <= 1 and len(applies) <= 1 and len(bridges) <= 1
    assert not (pays and releases)  # paid out or given back, never both
    held = sum((e.amount for e in holds), D(0))
    moved = sum((e.amount for e in effects if isinstance(e, (ReleaseCollateral, SpendCollateral))), D(0))
    assert moved <= held
    if w.stage in (S.PAID, S.RELEASED, S.REFUNDED):
        assert moved == held == D("250")  # a finished withdrawal leaves nothing held
    if pays:
        assert pays[0].amount + w.fees == D("250")
