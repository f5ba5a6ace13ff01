"""CollateralLedger: exact whole-unit booking, idempotent deposits and fees, reservations per order, snapshots."""
from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.collateral_ledger import USDC_UNIT, CollateralError, CollateralLedger, InsufficientCollateral

U = USDC_UNIT


def funded(amount: str = "100") -> CollateralLedger:
    ledger = CollateralLedger(U)
    ledger.credit("dep-1", amount)
    return ledger


def balances(ledger: CollateralLedger) -> tuple[Decimal, ...]:
    return (ledger.available, ledger.held, ledger.reserved, ledger.spent, ledger.fees_charged, ledger.credited,
            ledger.debt)


def test_credit_is_idempotent_by_deposit_id() -> None:
    ledger = CollateralLedger(U)
    assert ledger.credit("arb:0xabc:3", Decimal("25.5")) is True
    assert ledger.credit("arb:0xabc:3", Decimal("25.5")) is False  # replay after a restart
    assert ledger.credit("arb:0xabc:4", "1.000001") is True
    assert ledger.credited == Decimal("26.500001")
    assert ledger.available == Decimal("26.500001")
    ledger.check()


def test_replay_with_a_different_amount_is_an_error_not_a_credit() -> None:
    ledger = funded("10")
    with pytest.raises(CollateralError, match="replayed"):
        ledger.credit("dep-1", "11")
    assert ledger.credited == Decimal("10")


@pytest.mark.parametrize("bad", ["0.0000001", "1.1234567", "0", "-1", "NaN", "Infinity", "abc"])
def test_credit_refuses_amounts_that_are_not_positive_whole_units(bad: str) -> None:
    ledger = CollateralLedger(U)
    with pytest.raises(CollateralError):
        ledger.credit("d", bad)
    assert balances(ledger) == (0, 0, 0, 0, 0, 0, 0)
    assert ledger.credit("d", "1") is True  # the refused attempt did not burn the id


def test_float_is_refused() -> None:
    with pytest.raises(CollateralError, match="float"):
        CollateralLedger(U).credit("d", 1.5)  # type: ignore[arg-type]


def test_unit_is_respected_for_other_tokens() -> None:
    ledger = CollateralLedger(Decimal("0.01"))
    ledger.credit("d", "3.21")
    with pytest.raises(CollateralError, match="whole number of 0.01"):
        ledger.reserve("o", "0.001")


def test_reserve_reports_the_shortfall() -> None:
    ledger = funded("10")
    ledger.reserve("o1", "7")
    with pytest.raises(InsufficientCollateral, match="short by 4.5"):
        ledger.reserve("o2", "7.5")
    assert ledger.reservation("o2") == 0
    assert (ledger.available, ledger.reserved) == (Decimal("3"), Decimal("7"))


def test_reserve_release_spend_move_between_balances() -> None:
    ledger = funded("100")
    ledger.reserve("o1", "40")
    ledger.reserve("o1", "2")  # adds to the same reservation
    ledger.spend("o1", "12.345678")
    ledger.release("o1", "0.654322")
    assert ledger.reservation("o1") == Decimal("29")
    assert ledger.spent == Decimal("12.345678")
    assert ledger.available == Decimal("58.654322")
    ledger.check()
    ledger.release("o1", "29")
    assert ledger.reservation("o1") == 0 and ledger.reservations() == {}
    ledger.check()


def test_cannot_release_or_spend_more_than_the_order_holds() -> None:
    ledger = funded("100")
    ledger.reserve("o1", "5")
    ledger.reserve("o2", "50")
    with pytest.raises(InsufficientCollateral, match="only 5 reserved"):
        ledger.release("o1", "5.000001")
    with pytest.raises(InsufficientCollateral):
        ledger.spend("o1", "6")
    with pytest.raises(InsufficientCollateral):
        ledger.spend("unknown", "0.000001")
    assert ledger.reservation("o1") == Decimal("5") and ledger.spent == 0
    ledger.check()


def test_zero_release_and_spend_are_no_ops() -> None:
    ledger = funded("1")
    ledger.reserve("o", "1")
    ledger.release("o", "0")
    ledger.spend("o", Decimal(0))
    assert balances(ledger) == (0, 0, 1, 0, 0, 1, 0)


def test_charge_fee_is_idempotent_and_what_is_not_covered_becomes_debt() -> None:
    ledger = funded("10")
    ledger.reserve("o", "9")
    assert ledger.charge_fee("route-1:across", "0.4") is True
    assert ledger.charge_fee("route-1:across", "0.4") is False
    assert ledger.fees_charged == Decimal("0.4")
    assert ledger.available == Decimal("0.6")
    # Free collateral cannot cover the next fee: the user owes the rest, the house does not pay it silently.
    assert ledger.charge_fee("route-1:binance", "1") is True
    assert (ledger.available, ledger.debt, ledger.fees_charged) == (0, Decimal("0.4"), Decimal("1.4"))
    ledger.check()
    # Money coming back to the user pays the debt first.
    ledger.release("o", "0.5")
    assert (ledger.available, ledger.debt) == (Decimal("0.1"), 0)
    ledger.check()


def test_a_full_deposit_order_cannot_engage_the_routing_hold_and_the_fee_is_paid_in_full() -> None:
    """The demo's case: deposit 1,000, order 1,000 at once. The hold is kept from the deposit, so the order can
    only reserve what is free; the route's real cost is charged from the hold and the rest released, exactly."""
    ledger = CollateralLedger(U)
    ledger.credit("dep", "1000", hold="2.5")
    assert (ledger.available, ledger.held) == (Decimal("997.5"), Decimal("2.5"))
    with pytest.raises(InsufficientCollateral):
        ledger.reserve("o", "1000")
    ledger.reserve("o", ledger.available)
    ledger.charge_fee("route-1:across:dep", "1.000001", hold_id="dep")
    ledger.charge_fee("route-1:transfer:dep", "0.52", hold_id="dep")
    assert ledger.hold("dep") == Decimal("0.979999")
    assert ledger.fees_charged == Decimal("1.520001") and ledger.debt == 0
    assert ledger.release_hold("dep") == Decimal("0.979999")
    assert ledger.release_hold("dep") == 0  # idempotent
    assert (ledger.available, ledger.held) == (Decimal("0.979999"), 0)
    ledger.check()


def test_a_hold_is_capped_at_its_deposit_and_a_cost_beyond_it_takes_free_collateral_first() -> None:
    ledger = CollateralLedger(U)
    ledger.credit("small", "1", hold="3")
    assert (ledger.available, ledger.held) == (0, Decimal("1"))
    ledger.credit("big", "10")
    ledger.charge_fee("r:across:small", "1.25", hold_id="small")
    assert (ledger.held, ledger.available, ledger.debt) == (0, Decimal("9.75"), 0)
    ledger.check()


def test_a_reversed_deposit_takes_its_hold_then_free_collateral_then_becomes_debt() -> None:
    ledger = CollateralLedger(U)
    ledger.credit("d1", "100", hold="2")
    ledger.credit("d2", "50")
    ledger.reserve("o", "120")
    ledger.spend("o", "60")
    assert ledger.reverse_deposit("d1") == Decimal("70")  # 2 held + 28 free; 70 was already used
    assert ledger.reverse_deposit("d1") == 0 and ledger.reverse_deposit("unknown") == 0
    assert (ledger.credited, ledger.held, ledger.available, ledger.debt) == (Decimal("50"), 0, 0, Decimal("70"))
    ledger.check()
    ledger.credit("d3", "100")  # the next deposit pays the debt first
    assert (ledger.available, ledger.debt) == (Decimal("30"), 0)
    ledger.check()


def test_check_catches_an_out_of_balance_ledger() -> None:
    ledger = funded("10")
    ledger.reserve("o", "4")
    ledger.check()
    ledger.available += U  # one micro-USDC out of thin air
    with pytest.raises(AssertionError, match="out of balance"):
        ledger.check()


def test_snapshot_round_trip_through_json() -> None:
    ledger = funded("100")
    ledger.credit("dep-2", "0.000001")
    ledger.reserve("u:c1", "30")
    ledger.spend("u:c1", "10.5")
    ledger.charge_fee("f1", "0.25")
    copy = CollateralLedger.from_dict(json.loads(json.dumps(ledger.to_dict())))
    assert copy == ledger
    assert balances(copy) == balances(ledger)
    # The copy remembers what it booked: replays stay no-ops after a restart.
    assert copy.credit("dep-2", "0.000001") is False
    assert copy.charge_fee("f1", "0.25") is False
    copy.release("u:c1", "19.5")
    assert copy != ledger


def test_corrupt_snapshot_is_refused() -> None:
    data = funded("10").to_dict()
    data["available"] = "11"
    with pytest.raises(AssertionError):
        CollateralLedger.from_dict(data)


micro = st.integers(min_value=1, max_value=10**9).map(lambda n: Decimal(n) * U)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["credit", "credit_held", "fee", "fee_held", "release_hold", "reverse",
                                           "reserve", "release", "spend"]),
                          st.integers(0, 3), micro), max_size=40))
def test_random_operations_keep_the_books_balanced(ops: list[tuple[str, int, Decimal]]) -> None:
    """Whatever sequence of calls, accepted or refused, every credited unit stays in exactly one balance."""
    ledger = CollateralLedger(U)
    deposits: dict[str, Decimal] = {}
    for op, key, amount in ops:
        before = balances(ledger)
        try:
            if op in ("credit", "credit_held"):
                hold = amount / 2 if op == "credit_held" else 0
                if ledger.credit(f"d{key}", amount, hold=hold.quantize(U) if hold else 0):
                    deposits[f"d{key}"] = amount
            elif op == "fee":
                ledger.charge_fee(f"f{key}", amount)
            elif op == "fee_held":
                ledger.charge_fee(f"f{key}", amount, hold_id=f"d{key}")
            elif op == "release_hold":
                ledger.release_hold(f"d{key}")
            elif op == "reverse":
                if ledger.reverse_deposit(f"d{key}") or f"d{key}" in deposits:
                    deposits.pop(f"d{key}", None)
            elif op == "reserve":
                ledger.reserve(f"o{key}", amount)
            elif op == "release":
                ledger.release(f"o{key}", amount)
            else:
                ledger.spend(f"o{key}", amount)
        except CollateralError:
            assert balances(ledger) == before  # a refused call changes nothing
        ledger.check()
        assert ledger.credited == sum(deposits.values(), Decimal(0))
        assert min(balances(ledger)) >= 0
        # The identity the operator answers for: credited + owed = available + held + reserved + spent + fees.
        assert ledger.credited + ledger.debt == (ledger.available + ledger.held + ledger.reserved + ledger.spent
                                                 + ledger.fees_charged)
