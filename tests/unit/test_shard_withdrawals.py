"""A withdrawal's hold in its user's shard (core/shard_books.py, core/collateral_ledger.py): what it may take (free
collateral only, never reserved for orders or held for a route), its refusals with their codes, duplicates, and the
settlement of each end of core/withdrawal.py's machine: payout and fees out of the hold, the rest given back, exactly
once, the ledger's identity true at every step."""
from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.chain_events import CollateralDeposit
from core.clock import ManualClock
from core.collateral_ledger import CollateralError, CollateralLedger
from core.index_order_book import IndexOrderRefused
from core.shard_books import ShardBooks
from core.side import Side
from core.withdrawal import (BridgeDeposited, BridgeExpired, BridgeFilled, ExchangeApplied, ExchangeCompleted,
                             ExchangeRejected, Paid, Reserve, Withdrawal)

D = Decimal
A = "0xAaAaaAaaAaAaAaaAAAAaaaaaaAAaaaaAaAaAaAa1"
KA = A.lower()
TO = "0x" + "22" * 20
MINIMUM = D("5")


def shard(deposit: str = "300", hold: str = "0") -> ShardBooks:
    books = ShardBooks({"SY100"}, clock=ManualClock(), unit=D("0.000001"), max_open_orders=10, token_decimals=18,
                       order_dust=D("0.05"), rest_return_ratio=D("0.005"))
    dep = CollateralDeposit(42161, "0x01", 0, 1, A, D(deposit))
    assert books.credit([dep], {dep.key: D(hold)}).errors == []
    return books


def ledger(books: ShardBooks) -> CollateralLedger:
    return books.books[KA].ledger


def refused(books: ShardBooks, wid: str, amount: str, key: str = KA) -> str:
    with pytest.raises(IndexOrderRefused) as exc:
        books.hold_withdrawal(key, wid, amount, MINIMUM)
    return exc.value.code


def machine(amount: str, *events) -> Withdrawal:
    w = Withdrawal.request("w1", KA, TO, D(amount), D("0.1"), MINIMUM)
    for e in (Reserve(D(amount)),) + events:
        assert w.apply(e) is not None
    return w


def test_the_hold_takes_free_collateral_only_and_blocks_orders_from_it():
    books = shard("300", hold="2")  # 2 held for the deposit's route
    books.new_order(KA, "c1", "SY100", Side.BUY, "100")  # 100 reserved for an order
    assert ledger(books).available == D("198")
    assert refused(books, "w1", "198.000001") == "INSUFFICIENT_COLLATERAL"
    assert books.hold_withdrawal(KA, "w1", "198", MINIMUM) is True
    led = ledger(books)
    assert (led.available, led.held, led.reserved) == (D("0"), D("200"), D("100"))
    assert led.open_withdrawals() == {"w1": D("198")}
    led.check()
    with pytest.raises(IndexOrderRefused) as exc:  # what the withdrawal holds, no order can take
        books.new_order(KA, "c2", "SY100", Side.BUY, "1")
    assert exc.value.code == "INSUFFICIENT_COLLATERAL"


def test_refusals_hold_nothing():
    books = shard("300")
    assert refused(books, "w1", "10", key="0x" + "33" * 20) == "UNKNOWN_USER"
    assert refused(books, "w1", "4.999999") == "BELOW_MINIMUM"
    assert refused(books, "w1", "0") == "NON_POSITIVE_AMOUNT"
    assert refused(books, "w1", "10.0000001") == "TOO_MUCH_PRECISION"
    assert refused(books, "w1", "300.000001") == "INSUFFICIENT_COLLATERAL"
    led = ledger(books)
    assert (led.available, led.held, led.open_withdrawals()) == (D("300"), D("0"), {})
    led.debt, led.available, led.credited = D("1"), D("0"), D("300")  # an open debt blocks withdrawals
    led.held = D("0")
    assert refused(books, "w2", "10") == "DEBT_OUTSTANDING"


def test_a_duplicate_is_answered_as_the_first_and_holds_once():
    books = shard("300")
    assert books.hold_withdrawal(KA, "w1", "100", MINIMUM) is True
    assert books.hold_withdrawal(KA, "w1", "100", MINIMUM) is False
    assert refused(books, "w1", "50") == "DUPLICATE_WITHDRAWAL_ID"
    assert (ledger(books).available, ledger(books).held) == (D("200"), D("100"))


def test_paid_takes_payout_and_each_fee_from_the_hold_and_gives_back_nothing_else():
    books = shard("300")
    books.hold_withdrawal(KA, "w1", "250", MINIMUM)
    w = machine("250", ExchangeApplied("ex"), ExchangeCompleted("ex", "0xb"), BridgeDeposited("d", D("249.85")),
                BridgeFilled("d", D("0.02")), Paid("0xarb"))
    assert w.settlement() == (D("249.83"), {"withdraw:w1:exchange": D("0.1"), "withdraw:w1:bridge": D("0.05"),
                                            "withdraw:w1:gas": D("0.02")})
    step = books.settle_withdrawals([w])
    assert (step.errors, step.replays) == ([], 0)
    led = ledger(books)
    assert (led.available, led.held, led.withdrawn, led.fees_charged) == (D("50"), D("0"), D("249.83"), D("0.17"))
    assert led.open_withdrawals() == {}
    led.check()
    assert books.settle_withdrawals([w]).replays == 1  # settled once
    assert (led.available, led.withdrawn, led.fees_charged) == (D("50"), D("249.83"), D("0.17"))
    assert books.hold_withdrawal(KA, "w1", "250", MINIMUM) is False  # a settled id is never held again


def test_a_release_gives_the_whole_hold_back_and_a_refund_keeps_the_exchange_fee():
    books = shard("300")
    books.hold_withdrawal(KA, "w1", "100", MINIMUM)
    books.settle_withdrawals([machine("100", ExchangeRejected("-4026 insufficient"))])
    led = ledger(books)
    assert (led.available, led.held, led.fees_charged, led.withdrawn) == (D("300"), D("0"), D("0"), D("0"))
    books.hold_withdrawal(KA, "w2", "100", MINIMUM)
    w = Withdrawal.request("w2", KA, TO, D("100"), D("0.1"), MINIMUM)
    for e in (Reserve(D("100")), ExchangeCompleted("ex", "0xb"), BridgeDeposited("d", D("99.8")),
              BridgeExpired("d")):
        w.apply(e)
    assert w.settlement() == (D("0"), {"withdraw:w2:exchange": D("0.1")})
    books.settle_withdrawals([w])
    assert (led.available, led.held, led.fees_charged) == (D("299.9"), D("0"), D("0.1"))
    led.check()


def test_fees_beyond_the_amount_are_capped_at_it():
    books = shard("300")
    books.hold_withdrawal(KA, "w1", "10", MINIMUM)
    w = machine("10", ExchangeCompleted("ex", "0xb"), BridgeDeposited("d", D("9")), BridgeFilled("d", D("9.5")))
    assert w.stage.value == "paid" and w.payout == 0
    assert w.settlement() == (D("0"), {"withdraw:w1:exchange": D("0.1"), "withdraw:w1:bridge": D("0.9"),
                                       "withdraw:w1:gas": D("9")})
    books.settle_withdrawals([w])
    led = ledger(books)
    assert (led.available, led.fees_charged, led.debt) == (D("290"), D("10"), D("0"))
    led.check()


def test_an_unfinished_withdrawal_is_not_settled():
    books = shard("300")
    books.hold_withdrawal(KA, "w1", "100", MINIMUM)
    step = books.settle_withdrawals([machine("100", ExchangeApplied("ex"))])
    assert len(step.errors) == 1 and "not settled yet" in step.errors[0]
    assert ledger(books).open_withdrawals() == {"w1": D("100")}


def test_the_ledger_refuses_a_settlement_beyond_the_hold_whole():
    led = CollateralLedger()
    led.credit("d", "100")
    led.hold_withdrawal("w1", "50")
    with pytest.raises(CollateralError):
        led.settle_withdrawal("w1", "49", {"f": "1.000001"})
    assert (led.available, led.held, led.fees_charged, led.withdrawn) == (D("50"), D("50"), D("0"), D("0"))
    with pytest.raises(CollateralError):
        led.settle_withdrawal("never", "0", {})
    led.check()


def test_a_ledger_with_withdrawals_round_trips():
    led = CollateralLedger()
    led.credit("d", "100")
    led.hold_withdrawal("w1", "50")
    led.settle_withdrawal("w1", "49", {"withdraw:w1:exchange": "1"})
    led.hold_withdrawal("w2", "20")
    assert CollateralLedger.from_dict(led.to_dict()) == led


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["hold", "settle", "order"]), st.integers(0, 4),
                          st.integers(1, 150_000_000), st.integers(0, 100)), max_size=25))
def test_any_sequence_keeps_the_identity_and_moves_each_withdrawal_once(ops):
    books = shard("300")
    led = ledger(books)
    held: dict[str, Decimal] = {}
    paid: dict[str, Decimal] = {}
    for op, n, micros, pct in ops:
        wid, amount = f"w{n}", D(micros).scaleb(-6)
        if op == "hold":
            before = led.available
            try:
                new = books.hold_withdrawal(KA, wid, amount, MINIMUM)
            except IndexOrderRefused:
                assert led.available == before
                continue
            if new:
                held[wid] = amount
                assert led.available == before - amount
        elif op == "settle" and wid in held and wid not in paid:
            hold = led.hold(CollateralLedger.withdrawal_hold(wid))
            payout = (hold * pct / 100).quantize(D("0.000001"), rounding="ROUND_DOWN")
            fee = min(D("0.1"), hold - payout)
            if led.settle_withdrawal(wid, payout, {f"{wid}:fee": fee} if fee else {}):
                paid[wid] = payout
        elif op == "order":
            try:
                books.new_order(KA, f"c{len(ops)}-{micros}", "SY100", Side.BUY, amount)
            except IndexOrderRefused:
                pass
        led.check()
    assert led.withdrawn == sum(paid.values(), D(0))
    assert set(led.open_withdrawals()) == set(held) - set(paid)
