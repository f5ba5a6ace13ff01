"""Index tokens deposited for redemption (core/token_ledger.py): credited once per chain event, per user and index,
reserved by sells, redeemed, and reversed once by a reorg, the identity holding after every step."""
from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.chain_events import TokenDeposit
from core.collateral_ledger import CollateralError, InsufficientCollateral
from core.token_ledger import TokenLedger

USER = "0x" + "11" * 20
D = Decimal


def dep(n: int, units: str, index: str = "SY100") -> TokenDeposit:
    return TokenDeposit(8453, f"0x{n:064x}", 0, 100 + n, USER, index, D(units))


def test_credit_is_per_index_and_once_per_event():
    ledger = TokenLedger()
    assert ledger.credit(dep(1, "0.01"))
    assert not ledger.credit(dep(1, "0.01"))  # the same log again: nothing
    assert ledger.credit(dep(2, "2", "SYAI"))
    assert (ledger.of("SY100").available, ledger.of("SYAI").available) == (D("0.01"), D("2"))
    with pytest.raises(CollateralError):
        ledger.credit(dep(1, "0.02"))  # the same key with other numbers is a conflict, not a second deposit
    assert ledger.check()


def test_reorg_reverses_once_and_what_was_redeemed_becomes_debt():
    ledger = TokenLedger()
    ledger.credit(dep(1, "1"))
    ledger.reserve("SY100", D("0.6"))
    ledger.redeem("SY100", D("0.6"))
    r = ledger.reverse(dep(1, "1").key)
    assert (r.index, r.units, r.debt) == ("SY100", D("1"), D("0.6"))
    assert ledger.reverse(dep(1, "1").key) is None and ledger.reverse("unknown") is None
    book = ledger.of("SY100")
    assert (book.available, book.debt) == (D("0"), D("0.6")) and ledger.check()
    with pytest.raises(InsufficientCollateral):
        ledger.reserve("SY100", D("0.1"))  # in debt: no sell of that index
    ledger.credit(dep(2, "1"))  # a new deposit pays the debt first
    assert (ledger.of("SY100").available, ledger.of("SY100").debt) == (D("0.4"), D("0")) and ledger.check()


def test_sells_reserve_at_most_what_is_available_and_release_gives_back():
    ledger = TokenLedger()
    ledger.credit(dep(1, "1"))
    with pytest.raises(InsufficientCollateral):
        ledger.reserve("SY100", D("1.000000000000000001"))
    ledger.reserve("SY100", D("0.75"))
    ledger.release("SY100", D("0.25"))
    assert (ledger.of("SY100").available, ledger.of("SY100").reserved) == (D("0.5"), D("0.5"))
    with pytest.raises(CollateralError):
        ledger.credit(dep(9, "0.0000000000000000001"))  # below the token's smallest unit: refused, not rounded
    assert ledger.check()


OPS = st.lists(st.tuples(st.sampled_from(["credit", "reverse", "reserve", "release", "redeem"]),
                         st.integers(1, 4), st.integers(1, 300)), max_size=40)


@settings(max_examples=300, deadline=None)
@given(OPS)
def test_any_sequence_keeps_the_identity_and_reverses_each_deposit_at_most_once(ops):
    ledger = TokenLedger()
    reversed_total = D(0)
    for op, n, cents in ops:
        amount = D(cents) / 100
        try:
            if op == "credit":
                ledger.credit(dep(n, str(n)))
            elif op == "reverse":
                r = ledger.reverse(dep(n, str(n)).key)
                reversed_total += r.units if r else 0
            else:
                getattr(ledger, op)("SY100", amount)
        except CollateralError:
            pass  # refused: nothing changed
        assert ledger.check()
    assert reversed_total == ledger.of("SY100").reversed <= ledger.of("SY100").credited
