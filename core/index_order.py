"""One index order as the user sees it: how its collateral moves from `remaining` to engaged, spent, cancelled or
returned, and the status that follows (spec/domain.md §3, §12.4, §12.5).

The collateral is accounted for to the last unit:

    collateral == remaining + engaged + spent + cancelled + returned

`returned` is dust given back at close (no silent keep, §12.5). Every transition checks its preconditions before
it mutates, so a refused call changes nothing.

A SELL (a redemption) uses the same fields for index units instead of collateral: `collateral` is the units to
sell, `unit` the index token's smallest unit, and they are reserved in the user's token ledger
(core/token_ledger.py), not in the USDC one; `min_proceeds` is the least USDC the user accepts for them."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from typing import Any, Mapping

from core.arrival import ArrivalValue
from core.collateral_ledger import USDC_UNIT
from core.money import ZERO, D, is_multiple, quantize_up
from core.side import Side


class OrderStateError(ValueError):
    """A transition that the order's state does not allow (or an amount it cannot take)."""


class IndexOrderStatus(str, Enum):
    NEW = "NEW"
    ENGAGED = "ENGAGED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset({IndexOrderStatus.FILLED, IndexOrderStatus.CANCELLED, IndexOrderStatus.REJECTED})
_DECIMAL_FIELDS = ("collateral", "remaining", "engaged", "spent", "cost_exact", "filled_units", "cancelled",
                   "returned", "unit")
_COLLATERAL_FIELDS = ("collateral", "remaining", "engaged", "spent", "cancelled", "returned")


def order_id_of(user: str, cl_ord_id: str) -> str:
    """The order's id: a ClOrdID is unique per user only, so the user is part of it."""
    return f"{user}:{cl_ord_id}"


def user_key(address: str) -> str:
    """A user's key in books, order ids and stores: the address, lower-cased (EVM addresses are case-insensitive;
    the checksum casing of a signer and the lower case of a log must meet on one book)."""
    return address.lower()


def _number(value: Decimal | str | int, what: str) -> Decimal:
    try:
        amount = D(value)
    except (TypeError, ValueError) as exc:
        raise OrderStateError(f"{what}: {exc}") from None
    if not amount.is_finite() or amount < 0:
        raise OrderStateError(f"{what}: must be a finite amount >= 0, got {amount}")
    return amount


@dataclass(slots=True)
class IndexOrder:
    order_id: str
    user: str
    cl_ord_id: str
    index: str
    side: Side
    collateral: Decimal  # what the user asked to spend
    created_ms: int
    unit: Decimal = USDC_UNIT  # the collateral token's smallest unit: every collateral field is a whole number of it
    remaining: Decimal | None = None  # None at creation means "all of it"
    engaged: Decimal = ZERO
    spent: Decimal = ZERO  # always quantize_up(cost_exact, unit)
    cost_exact: Decimal = ZERO  # exact asset value + exchange fees of all fills, unrounded
    filled_units: Decimal = ZERO  # index units bought
    cancelled: Decimal = ZERO
    returned: Decimal = ZERO  # dust given back to the user's free collateral when the order closed
    status: IndexOrderStatus = IndexOrderStatus.NEW
    updated_ms: int | None = None
    reject_reason: str | None = None
    cancel_pending: bool = False  # the user cancelled all while a batch was in flight: its unspent part is cancelled
    minted_tx: str | None = None
    #: The basket's value per index unit on the live books when the order was accepted (core.arrival); None: no
    #: value was known then.
    arrival: ArrivalValue | None = None
    #: Σ (the index's touch at a batch's planning × the units that batch bought) and Σ those units: the touch the
    #: order's batches met, weighted by what each bought (core.shortfall's Tb).
    touch_value: Decimal = ZERO
    touch_units: Decimal = ZERO
    #: A SELL's minimum USDC for its units (None: any price within the slippage cap); always None for a BUY.
    min_proceeds: Decimal | None = None
    #: A SELL's payouts credited to the user's USDC so far (core.sell_assignment's, exact); always 0 for a BUY.
    proceeds: Decimal = ZERO

    def __post_init__(self) -> None:
        self.side = Side(self.side)
        self.status = IndexOrderStatus(self.status)
        if self.remaining is None:
            self.remaining = self.collateral
        if self.updated_ms is None:
            self.updated_ms = self.created_ms
        self.check()

    @classmethod
    def create(cls, user: str, cl_ord_id: str, index: str, side: Side, collateral: Decimal, now_ms: int,
               unit: Decimal = USDC_UNIT, min_proceeds: Decimal | None = None) -> "IndexOrder":
        return cls(order_id=order_id_of(user, cl_ord_id), user=user, cl_ord_id=cl_ord_id, index=index, side=side,
                   collateral=collateral, created_ms=now_ms, unit=unit, min_proceeds=min_proceeds)

    # --- views ------------------------------------------------------------------------------------------------------

    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal

    @property
    def mint_pending(self) -> bool:
        """Closed with something bought, and the index tokens not yet minted to the user (never a sell's)."""
        return self.side is Side.BUY and self.is_terminal and self.filled_units > 0 and self.minted_tx is None

    @property
    def fill_rate(self) -> Decimal | None:
        """Share of the collateral the order could still use (not cancelled or returned) that fills have spent."""
        denominator = self.collateral - self.cancelled - self.returned
        if denominator == 0:
            return None
        return self.spent / denominator

    @property
    def batch_touch(self) -> Decimal | None:
        """The touch per index unit at the order's batches, weighted by the units each bought (None: not known)."""
        return self.touch_value / self.touch_units if self.touch_units > 0 else None

    def settle_arrival(self) -> None:
        """The order needs its arrival's per-asset prices no more (invoiced, or closed with nothing to invoice): they
        are dropped, the per-unit values kept; the user's snapshot, rewritten whenever the user is touched, would
        otherwise carry a price pair per basket asset for every order the user ever had."""
        if self.arrival is not None and self.arrival.assets:
            self.arrival = dataclasses.replace(self.arrival, assets={})

    def note_batch_touch(self, touch: Decimal | None, units: Decimal) -> None:
        """A completed batch bought `units` of this order, planned when the index's touch was `touch`."""
        if touch is not None and units > 0:
            self.touch_value += touch * units
            self.touch_units += units

    # --- transitions ------------------------------------------------------------------------------------------------

    def engage(self, amount: Decimal | str | int, now_ms: int | None = None) -> None:
        """A batch takes `amount` of the remaining collateral."""
        self._require_open("engage")
        value = self._collateral_amount(amount, "engage", allow_zero=False)
        if value > self.remaining:
            raise OrderStateError(f"{self.order_id}: engage {value} exceeds remaining {self.remaining}")
        self.remaining -= value
        self.engaged += value
        if self.status is IndexOrderStatus.NEW:
            self.status = IndexOrderStatus.ENGAGED
        self._touch(now_ms)

    def apply_fill(self, units: Decimal | str | int, cost: Decimal | str | int, now_ms: int | None = None) -> Decimal:
        """Book a fill of `units` index units that cost `cost` (asset value + exchange fees, exact).

        The user is charged `spent = quantize_up(cost_exact, unit)`: rounded UP because the user's ledger holds only
        whole units and the house must not pay the user's dust. Rounding the running total (not each fill) keeps the
        overcharge below one unit per order. Returns the increase of `spent`, which leaves `engaged`.
        """
        self._require_open("fill")
        if self.status is IndexOrderStatus.NEW:
            raise OrderStateError(f"{self.order_id}: fill on an order that was never engaged")
        units_value = _number(units, f"{self.order_id} fill units")
        cost_value = _number(cost, f"{self.order_id} fill cost")
        cost_exact = self.cost_exact + cost_value
        spent = quantize_up(cost_exact, self.unit)
        delta = spent - self.spent
        if delta > self.engaged:
            raise OrderStateError(
                f"{self.order_id}: fill costing {cost_value} would charge {delta} but only {self.engaged} is engaged")
        self.filled_units += units_value
        self.cost_exact = cost_exact
        self.spent = spent
        self.engaged -= delta
        self.status = IndexOrderStatus.PARTIALLY_FILLED
        self._touch(now_ms)
        return delta

    def apply_sale(self, units: Decimal | str | int, payout: Decimal | str | int, now_ms: int | None = None) -> None:
        """A SELL's batch redeemed `units` of its engaged index units for `payout` USDC: they leave `engaged` as spent
        (for a sell, spent and cost_exact count the index units given up, whole units)."""
        self._require_open("sell")
        if self.side is not Side.SELL:
            raise OrderStateError(f"{self.order_id}: a sale on a {self.side.value}")
        if self.status is IndexOrderStatus.NEW:
            raise OrderStateError(f"{self.order_id}: sale on an order that was never engaged")
        value = self._collateral_amount(units, "sale", allow_zero=False)
        paid = _number(payout, f"{self.order_id} payout")
        if value > self.engaged:
            raise OrderStateError(f"{self.order_id}: sale of {value} exceeds engaged {self.engaged}")
        self.engaged -= value
        self.spent += value
        self.cost_exact += value
        self.filled_units += value
        self.proceeds += paid
        self.status = IndexOrderStatus.PARTIALLY_FILLED
        self._touch(now_ms)

    def release(self, amount: Decimal | str | int, now_ms: int | None = None) -> Decimal:
        """A batch completed: its unspent engaged collateral goes back to `remaining`.

        If the user cancelled everything while the batch was in flight (`cancel_pending`), the released collateral is
        cancelled at once instead, and the order closes when nothing is engaged any more. Returns the amount so
        cancelled (0 normally), which the caller gives back to the user's free collateral.
        """
        self._require_open("release")
        value = self._collateral_amount(amount, "release", allow_zero=True)
        if value > self.engaged:
            raise OrderStateError(f"{self.order_id}: release {value} exceeds engaged {self.engaged}")
        self.engaged -= value
        self.remaining += value
        cancelled = ZERO
        if self.cancel_pending:
            cancelled = self.remaining
            self.cancelled += cancelled
            self.remaining = ZERO
            if self.engaged == 0:
                self._close()
        self._touch(now_ms)
        return cancelled

    def cancel(self, amount: Decimal | str | int | None = None, now_ms: int | None = None) -> Decimal:
        """The user cancels `amount` (None: all) of the not-yet-engaged collateral; engaged collateral finishes its
        batch (§12.4). Returns what was cancelled. The order closes if nothing is left engaged or remaining."""
        self._require_open("cancel")
        if amount is None:
            value = self.remaining
            self.cancel_pending = self.engaged > 0
        else:
            value = self._collateral_amount(amount, "cancel", allow_zero=False)
            if value > self.remaining:
                raise OrderStateError(f"{self.order_id}: cancel {value} exceeds remaining {self.remaining}")
        self.remaining -= value
        self.cancelled += value
        if self.engaged == 0 and self.remaining == 0:
            self._close()
        self._touch(now_ms)
        return value

    def finish(self, dust: Decimal | str | int, now_ms: int | None = None) -> Decimal:
        """Close the order once nothing is engaged and what remains is below `dust` (too little to buy anything).

        The remaining collateral is returned to the user (no silent keep, §12.5); returns that amount.
        Status: FILLED if anything was bought (the mint is then owed), else CANCELLED if the user cancelled some,
        else REJECTED (the order was too small to fill at all).
        """
        self._require_open("finish")
        threshold = _number(dust, f"{self.order_id} dust")
        if self.engaged != 0:
            raise OrderStateError(f"{self.order_id}: cannot finish with {self.engaged} still engaged")
        if self.remaining != 0 and self.remaining >= threshold:
            raise OrderStateError(f"{self.order_id}: cannot finish, remaining {self.remaining} >= dust {threshold}")
        returned = self.remaining
        self.returned += returned
        self.remaining = ZERO
        if self.filled_units == 0 and self.cancelled == 0:
            self.reject_reason = f"nothing filled; remaining {returned} below dust {threshold} returned"
        self._close()
        self._touch(now_ms)
        return returned

    def reject(self, reason: str, now_ms: int | None = None) -> Decimal:
        """The engine gives up on the order (§3.5): the remaining collateral is returned. Needs nothing engaged.

        An order that already bought something ends FILLED (its mint is still owed), with the reason kept."""
        self._require_open("reject")
        if self.engaged != 0:
            raise OrderStateError(f"{self.order_id}: cannot reject with {self.engaged} still engaged")
        returned = self.remaining
        self.returned += returned
        self.remaining = ZERO
        self.reject_reason = reason
        self.status = IndexOrderStatus.FILLED if self.filled_units > 0 else IndexOrderStatus.REJECTED
        self._touch(now_ms)
        return returned

    def mark_minted(self, tx: str) -> bool:
        """Record the mint transaction. Idempotent: the same tx again returns False; a different one is an error."""
        if self.minted_tx is not None:
            if self.minted_tx != tx:
                raise OrderStateError(f"{self.order_id}: already minted in {self.minted_tx}, not {tx}")
            return False
        if not self.mint_pending:
            raise OrderStateError(f"{self.order_id}: nothing to mint (status {self.status.value}, "
                                  f"filled {self.filled_units})")
        self.minted_tx = tx
        return True

    # --- helpers ----------------------------------------------------------------------------------------------------

    def _close(self) -> None:
        if self.filled_units > 0:
            self.status = IndexOrderStatus.FILLED
        elif self.cancelled > 0:
            self.status = IndexOrderStatus.CANCELLED
        else:
            self.status = IndexOrderStatus.REJECTED
        self.cancel_pending = False

    def _require_open(self, verb: str) -> None:
        if self.is_terminal:
            raise OrderStateError(f"{self.order_id}: cannot {verb}, order is {self.status.value}")

    def _collateral_amount(self, amount: Decimal | str | int, verb: str, *, allow_zero: bool) -> Decimal:
        value = _number(amount, f"{self.order_id} {verb}")
        if value == 0 and not allow_zero:
            raise OrderStateError(f"{self.order_id}: {verb} amount must be positive")
        if not is_multiple(value, self.unit):
            raise OrderStateError(f"{self.order_id}: {verb} {value} is not a whole number of {self.unit}")
        return value

    def _touch(self, now_ms: int | None) -> None:
        if now_ms is not None:
            self.updated_ms = now_ms

    def check(self) -> None:
        """Raise OrderStateError unless the order's collateral is fully accounted for, exactly."""
        for name in _DECIMAL_FIELDS:
            value = getattr(self, name)
            if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
                raise OrderStateError(f"{self.order_id}: {name} = {value!r} is not a finite Decimal >= 0")
        if self.unit <= 0:
            raise OrderStateError(f"{self.order_id}: unit must be positive")
        for name in _COLLATERAL_FIELDS:
            if not is_multiple(getattr(self, name), self.unit):
                raise OrderStateError(f"{self.order_id}: {name} = {getattr(self, name)} is not whole {self.unit}")
        total = self.remaining + self.engaged + self.spent + self.cancelled + self.returned
        if total != self.collateral:
            raise OrderStateError(
                f"{self.order_id}: collateral {self.collateral} != remaining {self.remaining} + engaged "
                f"{self.engaged} + spent {self.spent} + cancelled {self.cancelled} + returned {self.returned}")
        if self.spent != quantize_up(self.cost_exact, self.unit):
            raise OrderStateError(f"{self.order_id}: spent {self.spent} is not cost {self.cost_exact} rounded up")
        if self.is_terminal and (self.remaining != 0 or self.engaged != 0):
            raise OrderStateError(f"{self.order_id}: {self.status.value} with collateral still open")
        if self.status is IndexOrderStatus.NEW and (self.engaged or self.spent or self.filled_units):
            raise OrderStateError(f"{self.order_id}: NEW but engaged or filled")
        if self.minted_tx is not None and self.filled_units == 0:
            raise OrderStateError(f"{self.order_id}: minted without fills")
        if self.min_proceeds is not None and (self.side is not Side.SELL or self.min_proceeds <= 0):
            raise OrderStateError(f"{self.order_id}: a minimum of {self.min_proceeds} USDC on a {self.side.value}")
        if not isinstance(self.proceeds, Decimal) or self.proceeds < 0 or (self.proceeds and self.side is Side.BUY):
            raise OrderStateError(f"{self.order_id}: proceeds {self.proceeds!r} on a {self.side.value}")

    # --- persistence ------------------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "order_id": self.order_id,
            "user": self.user,
            "cl_ord_id": self.cl_ord_id,
            "index": self.index,
            "side": self.side.value,
            "status": self.status.value,
            "created_ms": self.created_ms,
            "updated_ms": self.updated_ms,
            "reject_reason": self.reject_reason,
            "cancel_pending": self.cancel_pending,
            "minted_tx": self.minted_tx,
            "arrival": None if self.arrival is None else self.arrival.to_dict(),
            "touch_value": str(self.touch_value),
            "touch_units": str(self.touch_units),
            "min_proceeds": None if self.min_proceeds is None else str(self.min_proceeds),
            "proceeds": str(self.proceeds),
        }
        for name in _DECIMAL_FIELDS:
            data[name] = str(getattr(self, name))
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "IndexOrder":
        kwargs = {k: data[k] for k in ("order_id", "user", "cl_ord_id", "index", "created_ms", "updated_ms",
                                       "reject_reason", "cancel_pending", "minted_tx")}
        kwargs.update({name: D(data[name]) for name in _DECIMAL_FIELDS})
        arrival = data.get("arrival")
        kwargs.update(arrival=None if arrival is None else ArrivalValue.from_dict(arrival),
                      touch_value=D(data.get("touch_value", "0")), touch_units=D(data.get("touch_units", "0")),
                      min_proceeds=None if data.get("min_proceeds") is None else D(data["min_proceeds"]),
                      proceeds=D(data.get("proceeds", "0")))
        return cls(side=Side(data["side"]), status=IndexOrderStatus(data["status"]), **kwargs)  # __post_init__ checks
