"""One user's collateral (USDC), booked exactly in whole units of the token (micro-USDC by default).

Every unit deposited is in exactly one place, and `check()` proves
credited + debt == available + held + reserved + spent + fees_charged + withdrawn.
Debt (a cost beyond the hold, a reorged deposit) is paid first. Amounts that are not whole units are refused,
never rounded. Deposits and fees carry ids chosen beforehand: booking one twice is a no-op."""
from __future__ import annotations

import decimal
from decimal import Decimal
from typing import Any, Mapping

from core.money import ZERO, D, is_multiple

#: USDC has 6 decimals on every chain we use.
USDC_UNIT = Decimal("0.000001")

Amount = Decimal | str | int

#: The ledger's balances, each a whole number of the unit (stored by name).
_TOTALS = ("available", "held", "reserved", "spent", "fees_charged", "credited", "debt", "withdrawn")


class CollateralError(ValueError):
    """A collateral operation that would break the books (bad amount, unknown reservation, conflicting replay)."""


class InsufficientCollateral(CollateralError):
    """Not enough free collateral (or reservation) for the operation; the message names the shortfall."""


def whole_units(value: Amount, unit: Decimal, what: str, *, allow_zero: bool = False) -> Decimal:
    """`value` as a Decimal, checked to be a non-negative (positive unless `allow_zero`) whole number of `unit`."""
    try:
        amount = D(value)
    except (TypeError, ValueError) as exc:
        raise CollateralError(f"{what}: {exc}") from None
    if not amount.is_finite():
        raise CollateralError(f"{what}: {amount} is not a finite amount")
    if amount < 0 or (amount == 0 and not allow_zero):
        raise CollateralError(f"{what}: amount must be {'>= 0' if allow_zero else 'positive'}, got {amount}")
    try:
        whole = is_multiple(amount, unit)
    except decimal.InvalidOperation:  # quotient beyond the context's 60 digits: no real amount is that large
        whole = False
    if not whole:
        raise CollateralError(f"{what}: {amount} is not a whole number of {unit} (refusing to round it)")
    return amount


def _first_time(booked: dict[str, Decimal], key: str, value: Decimal, what: str) -> bool:
    """Book `key` -> `value` unless booked before: False for a replay with the same value; a replay with another
    value is refused (it would change what was booked)."""
    seen = booked.get(key)
    if seen is not None:
        if seen != value:
            raise CollateralError(f"{what} {key} replayed with {value}, booked before with {seen}")
        return False
    booked[key] = value
    return True


class CollateralLedger:
    """The collateral of one user. Not thread-safe: its owner (one order-book shard) serialises the calls."""

    __slots__ = ("unit", "available", "held", "reserved", "spent", "fees_charged", "credited", "debt", "withdrawn",
                 "_reservations", "_deposits", "_fees", "_holds", "_reversed", "_withdrawals", "_payouts")

    def __init__(self, unit: Decimal = USDC_UNIT) -> None:
        if not isinstance(unit, Decimal) or not unit.is_finite() or unit <= 0:
            raise CollateralError(f"unit must be a positive Decimal, got {unit!r}")
        self.unit = unit
        self.available = ZERO
        self.held = ZERO
        self.reserved = ZERO
        self.spent = ZERO
        self.fees_charged = ZERO
        self.credited = ZERO
        self.debt = ZERO
        self.withdrawn = ZERO  # paid out to the user's own address (withdrawals), fees apart
        self._reservations: dict[str, Decimal] = {}  # order id -> amount held; entries at zero are dropped
        self._deposits: dict[str, Decimal] = {}  # deposit id -> amount, to recognise replays (and conflicting ones)
        self._fees: dict[str, Decimal] = {}  # fee id -> amount, same reason
        #: deposit id -> what is still held for its route; the entry goes when the route's cost is known (released)
        self._holds: dict[str, Decimal] = {}
        self._reversed: dict[str, Decimal] = {}  # deposit id -> amount taken back (a reorg dropped the deposit)
        self._withdrawals: dict[str, Decimal] = {}  # withdrawal id -> amount held for it when it was accepted
        self._payouts: dict[str, Decimal] = {}  # withdrawal id -> amount paid out (0: given back); settled ones

    # --- money in ---------------------------------------------------------------------------------------------------

    def credit(self, deposit_id: str, amount: Amount, hold: Amount = ZERO) -> bool:
        """Book a deposit, keeping `hold` of it (capped at the amount) for its route's cost: an order can never
        engage it. False (and nothing changes) when `deposit_id` was booked before with the same amount."""
        value = whole_units(amount, self.unit, f"deposit {deposit_id}")
        held = min(whole_units(hold, self.unit, f"hold of {deposit_id}", allow_zero=True), value)
        if not _first_time(self._deposits, deposit_id, value, "deposit"):
            return False
        self.credited += value
        if held > 0:
            self._holds[deposit_id] = held
            self.held += held
        self._to_available(value - held)
        return True

    def _to_available(self, value: Decimal) -> None:
        """Money back in the user's hands pays an open debt first."""
        paid = min(self.debt, value)
        self.debt -= paid
        self.available += value - paid

    def hold(self, deposit_id: str) -> Decimal:
        return self._holds.get(deposit_id, ZERO)

    def holds(self) -> dict[str, Decimal]:
        return dict(self._holds)

    def charge_fee(self, fee_id: str, amount: Amount, hold_id: str | None = None) -> bool:
        """Charge a routing fee: from the hold of deposit `hold_id` first, then from free collateral; what neither
        covers becomes the user's debt (the house is never the silent payer). False (nothing changes) when
        `fee_id` was charged before."""
        value = whole_units(amount, self.unit, f"fee {fee_id}")
        if not _first_time(self._fees, fee_id, value, "fee"):
            return False
        self.fees_charged += value
        from_hold = min(value, self.hold(hold_id)) if hold_id is not None else ZERO
        if from_hold:
            self._take_hold(hold_id, from_hold)  # type: ignore[arg-type]
        from_available = min(value - from_hold, self.available)
        self.available -= from_available
        self.debt += value - from_hold - from_available
        return True

    def release_hold(self, deposit_id: str) -> Decimal:
        """The route's cost is known and charged: what is left of the hold goes back to the user. Idempotent (a
        second release finds nothing)."""
        rest = self._holds.pop(deposit_id, ZERO)
        self.held -= rest
        self._to_available(rest)
        return rest

    def _take_hold(self, deposit_id: str, value: Decimal) -> None:
        left = self._holds[deposit_id] - value
        if left:
            self._holds[deposit_id] = left
        else:
            del self._holds[deposit_id]
        self.held -= value

    def reverse_deposit(self, deposit_id: str) -> Decimal:
        """A deposit booked before is gone (a reorg deeper than the confirmations dropped it): take its amount back,
        from its hold first, then from free collateral; what is already reserved or spent becomes the user's debt.
        The caller frees what it can first (unengaged orders). Returns the debt added; a second call, or an
        unknown deposit, changes nothing and returns zero."""
        value = self._deposits.get(deposit_id)
        if value is None or deposit_id in self._reversed:
            return ZERO
        self._reversed[deposit_id] = value
        self.credited -= value
        from_hold = min(value, self.hold(deposit_id))
        if from_hold:
            self._take_hold(deposit_id, from_hold)
        from_available = min(value - from_hold, self.available)
        self.available -= from_available
        short = value - from_hold - from_available
        self.debt += short
        return short

    def is_reversed(self, deposit_id: str) -> bool:
        return deposit_id in self._reversed

    def deposit(self, deposit_id: str) -> Decimal:
        """What `deposit_id` credited (zero if it was never booked)."""
        return self._deposits.get(deposit_id, ZERO)

    def reversed_deposits(self) -> dict[str, Decimal]:
        return dict(self._reversed)

    # --- withdrawals -------------------------------------------------------------------------------------------------

    @staticmethod
    def withdrawal_hold(withdrawal_id: str) -> str:
        """The hold's id of a withdrawal (apart from the deposits' holds, which are keyed by deposit)."""
        return f"withdraw:{withdrawal_id}"

    def hold_withdrawal(self, withdrawal_id: str, amount: Amount) -> bool:
        """Hold free collateral for a withdrawal: no order can reserve it, nothing engaged or held is touched. False
        (nothing changes) when `withdrawal_id` was held before with the same amount, even if settled since."""
        value = whole_units(amount, self.unit, f"withdrawal {withdrawal_id}")
        if withdrawal_id not in self._withdrawals and value > self.available:
            raise InsufficientCollateral(f"withdrawal {withdrawal_id}: {value} asked, {self.available} available, "
                                         f"short by {value - self.available}")
        if not _first_time(self._withdrawals, withdrawal_id, value, "withdrawal"):
            return False
        self.available -= value
        self.held += value
        self._holds[self.withdrawal_hold(withdrawal_id)] = value
        return True

    def withdrawal(self, withdrawal_id: str) -> Decimal:
        """What was held for `withdrawal_id` (zero if never)."""
        return self._withdrawals.get(withdrawal_id, ZERO)

    def open_withdrawals(self) -> dict[str, Decimal]:
        """Withdrawals held and not settled yet: id -> what is still held for them."""
        return {w: self.hold(self.withdrawal_hold(w)) for w in self._withdrawals if w not in self._payouts}

    def settle_withdrawal(self, withdrawal_id: str, paid: Amount, fees: Mapping[str, Amount]) -> bool:
        """The withdrawal is over: `paid` left for the user's address, each fee (id -> amount) is charged, all out of
        its hold; the rest of the hold goes back to the user (a refusal: nothing paid, no fee, all of it back).
        Refused whole (nothing changes) when paid + fees exceed the hold. False when settled before."""
        value = whole_units(paid, self.unit, f"payout of {withdrawal_id}", allow_zero=True)
        charges = {k: whole_units(v, self.unit, f"fee {k}", allow_zero=True) for k, v in fees.items()}
        if withdrawal_id in self._payouts:
            if self._payouts[withdrawal_id] != value:
                raise CollateralError(f"withdrawal {withdrawal_id} settled again with {value}, paid before "
                                      f"{self._payouts[withdrawal_id]}")
            return False
        hold_id = self.withdrawal_hold(withdrawal_id)
        if withdrawal_id not in self._withdrawals:
            raise CollateralError(f"withdrawal {withdrawal_id} was never held")
        if value + sum(charges.values(), ZERO) > self.hold(hold_id):
            raise CollateralError(f"withdrawal {withdrawal_id}: paid {value} + fees {sum(charges.values(), ZERO)} "
                                  f"exceed its hold {self.hold(hold_id)}")
        for fee_id, fee in charges.items():
            if fee:
                self.charge_fee(fee_id, fee, hold_id=hold_id)
        if value:
            self._take_hold(hold_id, value)
            self.withdrawn += value
        self._payouts[withdrawal_id] = value
        self.release_hold(hold_id)
        return True

    # --- per-order reservations -------------------------------------------------------------------------------------

    def reservation(self, order_id: str) -> Decimal:
        return self._reservations.get(order_id, ZERO)

    def reservations(self) -> dict[str, Decimal]:
        return dict(self._reservations)

    def reserve(self, order_id: str, amount: Amount) -> None:
        """Hold free collateral for an order (adds to what the order already holds)."""
        value = whole_units(amount, self.unit, f"reserve for {order_id}")
        if value > self.available:
            raise InsufficientCollateral(
                f"reserve for {order_id}: {value} needed, {self.available} available, "
                f"short by {value - self.available}")
        self.available -= value
        self.reserved += value
        self._reservations[order_id] = self.reservation(order_id) + value

    def release(self, order_id: str, amount: Amount) -> None:
        """Give held collateral back to free (cancelled, returned dust). Zero is a no-op."""
        value = whole_units(amount, self.unit, f"release for {order_id}", allow_zero=True)
        self._take(order_id, value, "release")
        self._to_available(value)

    def spend(self, order_id: str, amount: Amount) -> None:
        """Move held collateral to spent (the order paid for fills). Zero is a no-op."""
        value = whole_units(amount, self.unit, f"spend for {order_id}", allow_zero=True)
        self._take(order_id, value, "spend")
        self.spent += value

    def _take(self, order_id: str, value: Decimal, verb: str) -> None:
        held = self.reservation(order_id)
        if value > held:
            raise InsufficientCollateral(
                f"{verb} for {order_id}: {value} asked, only {held} reserved, short by {value - held}")
        left = held - value
        if left == 0:
            self._reservations.pop(order_id, None)
        else:
            self._reservations[order_id] = left
        self.reserved -= value

    # --- invariants and persistence ---------------------------------------------------------------------------------

    def check(self) -> None:
        """Raise AssertionError unless every unit credited (plus what the user owes) is in exactly one balance
        (exact, no epsilon)."""
        total = self.available + self.held + self.reserved + self.spent + self.fees_charged + self.withdrawn
        if self.credited + self.debt != total:
            raise AssertionError(
                f"ledger out of balance: credited {self.credited} + debt {self.debt} != available {self.available} "
                f"+ held {self.held} + reserved {self.reserved} + spent {self.spent} + fees {self.fees_charged} "
                f"+ withdrawn {self.withdrawn} = {total}")
        held = sum(self._reservations.values(), ZERO)
        if held != self.reserved:
            raise AssertionError(f"reserved {self.reserved} != sum of reservations {held}")
        if sum(self._holds.values(), ZERO) != self.held:
            raise AssertionError(f"held {self.held} != sum of holds")
        if self.credited != sum(self._deposits.values(), ZERO) - sum(self._reversed.values(), ZERO):
            raise AssertionError(f"credited {self.credited} != booked deposits minus reversed ones")
        if self.fees_charged != sum(self._fees.values(), ZERO):
            raise AssertionError(f"fees_charged {self.fees_charged} != sum of booked fees")
        if self.withdrawn != sum(self._payouts.values(), ZERO):
            raise AssertionError(f"withdrawn {self.withdrawn} != sum of payouts")
        if not self._payouts.keys() <= self._withdrawals.keys():
            raise AssertionError("a payout of a withdrawal never held")
        for name in _TOTALS:
            value = getattr(self, name)
            if value < 0 or not is_multiple(value, self.unit):
                raise AssertionError(f"{name} = {value} is negative or not a whole number of {self.unit}")
        if self.debt > 0 and self.available > 0:
            raise AssertionError(f"debt {self.debt} open while {self.available} is available (it pays debt first)")
        for order_id, value in self._reservations.items():
            if value <= 0:
                raise AssertionError(f"reservation of {order_id} is {value}")

    def to_dict(self) -> dict[str, Any]:
        """Plain data (Decimals as strings) for the store; `from_dict` gives back an equal ledger."""
        return {
            "unit": str(self.unit),
            "available": str(self.available),
            "held": str(self.held),
            "reserved": str(self.reserved),
            "spent": str(self.spent),
            "fees_charged": str(self.fees_charged),
            "credited": str(self.credited),
            "debt": str(self.debt),
            "withdrawn": str(self.withdrawn),
            "reservations": {k: str(v) for k, v in self._reservations.items()},
            "deposits": {k: str(v) for k, v in self._deposits.items()},
            "fees": {k: str(v) for k, v in self._fees.items()},
            "holds": {k: str(v) for k, v in self._holds.items()},
            "reversed": {k: str(v) for k, v in self._reversed.items()},
            "withdrawals": {k: str(v) for k, v in self._withdrawals.items()},
            "payouts": {k: str(v) for k, v in self._payouts.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "CollateralLedger":
        ledger = cls(D(data["unit"]))
        for name in _TOTALS:
            setattr(ledger, name, D(data[name]))
        ledger._reservations = {k: D(v) for k, v in data["reservations"].items()}
        ledger._deposits = {k: D(v) for k, v in data["deposits"].items()}
        ledger._fees = {k: D(v) for k, v in data["fees"].items()}
        ledger._holds = {k: D(v) for k, v in data["holds"].items()}
        ledger._reversed = {k: D(v) for k, v in data["reversed"].items()}
        ledger._withdrawals = {k: D(v) for k, v in data["withdrawals"].items()}
        ledger._payouts = {k: D(v) for k, v in data["payouts"].items()}
        ledger.check()  # a corrupt snapshot is refused at load, not discovered later
        return ledger

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CollateralLedger):
            return NotImplemented
        # Compared as numbers, not strings: "20.10" and "20.1" are the same money.
        return self._state() == other._state()

    def _state(self) -> tuple:
        return (self.unit, self.available, self.held, self.reserved, self.spent, self.fees_charged, self.credited,
                self.debt, self.withdrawn, self._reservations, self._deposits, self._fees, self._holds, self._reversed,
                self._withdrawals, self._payouts)

    __hash__ = None  # type: ignore[assignment]  (mutable)

    def __repr__(self) -> str:
        return (f"CollateralLedger(available={self.available}, held={self.held}, reserved={self.reserved}, "
                f"spent={self.spent}, fees_charged={self.fees_charged}, credited={self.credited}, debt={self.debt}, "
                f"withdrawn={self.withdrawn})")
