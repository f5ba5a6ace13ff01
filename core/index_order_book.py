"""One user's index orders and the collateral that backs them (spec/domain.md §3, §12.1, §12.4, §12.5).

Order states and the user's `CollateralLedger` move together: an order's remaining or engaged collateral is exactly
its reservation, so no unit is spent twice, and what an order does not spend goes back to free collateral. A
ClOrdID is looked up only among this user's orders and is unique forever: a replay after a restart is a duplicate.
A sell's units are reserved in the user's token ledger instead, which the caller (core/shard_books.py) passes in:
the book does not own it (the user's snapshot stores it beside the book)."""
from __future__ import annotations

from decimal import Decimal
from typing import Any, Collection, Iterator, Mapping

from core.collateral_ledger import CollateralLedger, InsufficientCollateral
from core.index_order import IndexOrder, OrderStateError, order_id_of
from core.money import ZERO, D, is_multiple
from core.side import Side
from core.token_ledger import TokenLedger


class IndexOrderRefused(ValueError):
    """A user request the book refuses; `code` is stable (it goes on the wire), `text` explains."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(f"{code}: {text}")
        self.code = code
        self.text = text


class UserOrderBook:
    """Not thread-safe: the owning order-book shard serialises the calls."""

    __slots__ = ("user", "ledger", "unit", "max_open_orders", "known_indexes", "_orders", "_open")

    def __init__(self, user: str, ledger: CollateralLedger, *, unit: Decimal, max_open_orders: int,
                 known_indexes: Collection[str]) -> None:
        if ledger.unit != unit:
            raise ValueError(f"book unit {unit} differs from its ledger's unit {ledger.unit}")
        if max_open_orders < 1:
            raise ValueError(f"max_open_orders must be >= 1, got {max_open_orders}")
        self.user = user
        self.ledger = ledger
        self.unit = unit
        self.max_open_orders = max_open_orders
        self.known_indexes = frozenset(known_indexes)
        self._orders: dict[str, IndexOrder] = {}  # cl_ord_id -> order, every order ever accepted, in creation order
        self._open: dict[str, IndexOrder] = {}  # the non-terminal subset, in creation order (FIFO)

    # --- user requests ----------------------------------------------------------------------------------------------

    def new_order(self, cl_ord_id: str, index: str, side: Side | str, amount: Decimal | str | int,
                  now_ms: int) -> IndexOrder:
        """Validate (first failure wins, in the order below), reserve the collateral, and open the order as NEW."""
        if cl_ord_id in self._orders:
            raise IndexOrderRefused("DUPLICATE_CL_ORD_ID", f"ClOrdID {cl_ord_id!r} was used before by this user")
        value = self._positive(amount, self.unit, "amount")
        try:
            side_value = Side(side)
        except ValueError:
            raise IndexOrderRefused("UNSUPPORTED_SIDE", f"unknown side {side!r}") from None
        if side_value is not Side.BUY:
            raise IndexOrderRefused("UNSUPPORTED_SIDE", f"{side_value.value} is not supported yet")
        self._admit(index, self.ledger.debt > 0, "DEBT_OUTSTANDING",
                    f"{self.ledger.debt} is owed (a routing cost beyond its hold, or a deposit reversed by a reorg); "
                    f"a deposit pays it first")
        if value > self.ledger.available:
            raise IndexOrderRefused("INSUFFICIENT_COLLATERAL",
                                f"{value} needed, {self.ledger.available} available, "
                                f"short by {value - self.ledger.available}")
        order = IndexOrder.create(self.user, cl_ord_id, index, side_value, value, now_ms, self.unit)
        self.ledger.reserve(order.order_id, value)
        self._orders[cl_ord_id] = order
        self._open[cl_ord_id] = order
        return order

    def new_sell(self, cl_ord_id: str, index: str, units: Decimal | str | int, min_proceeds: Decimal | str | None,
                 now_ms: int, tokens: TokenLedger) -> IndexOrder:
        """Validate a sell of `units` index units (first failure wins, in the order below), reserve them in `tokens`
        (the user's token ledger) and open the order as NEW. `min_proceeds`: the least USDC the user accepts."""
        if cl_ord_id in self._orders:
            raise IndexOrderRefused("DUPLICATE_CL_ORD_ID", f"ClOrdID {cl_ord_id!r} was used before by this user")
        value = self._positive(units, tokens.unit, "units")
        minimum = None if min_proceeds is None else self._positive(min_proceeds, self.unit, "minimum")
        held = tokens.of(index)
        self._admit(index, held.debt > 0, "TOKEN_DEBT_OUTSTANDING",
                    f"{held.debt} {index} is owed (a token deposit reversed by a reorg after its units were sold); "
                    f"a token deposit pays it first")
        if value > held.available:
            raise IndexOrderRefused("INSUFFICIENT_TOKENS",
                                    f"{value} {index} to sell, {held.available} credited and free, "
                                    f"short by {value - held.available}")
        order = IndexOrder.create(self.user, cl_ord_id, index, Side.SELL, value, now_ms, tokens.unit, minimum)
        try:
            tokens.reserve(index, value)
        except InsufficientCollateral as exc:  # checked above; kept so a ledger rule never opens an unbacked order
            raise IndexOrderRefused("INSUFFICIENT_TOKENS", str(exc)) from None
        self._orders[cl_ord_id] = order
        self._open[cl_ord_id] = order
        return order

    def cancel(self, cl_ord_id: str, amount: Decimal | str | int | None = None,
               now_ms: int | None = None, tokens: TokenLedger | None = None) -> tuple[IndexOrder, Decimal]:
        """Cancel `amount` (None: all) of the order's not-yet-engaged collateral and free it in the ledger (§12.4);
        a sell's units go back to `tokens`, the user's token ledger.

        Engaged collateral finishes its batch; after a cancel of all, its unspent part is cancelled on release."""
        order = self._orders.get(cl_ord_id)
        if order is None:
            raise IndexOrderRefused("UNKNOWN_ORDER", f"no order {cl_ord_id!r} for this user")
        if order.is_terminal:
            raise IndexOrderRefused("ORDER_CLOSED", f"order {cl_ord_id!r} is {order.status.value}")
        if amount is not None:
            value = self._positive(amount, order.unit, "cancel amount")
            if value > order.remaining:
                raise IndexOrderRefused("CANCEL_EXCEEDS_REMAINING",
                                    f"cancel {value} exceeds the not-yet-engaged {order.remaining}")
            amount = value
        self._needs_tokens(order, tokens)
        cancelled = order.cancel(amount, now_ms)
        self._free(order, cancelled, tokens)
        self._after(order)
        return order, cancelled

    # --- engine side (solver / batch manager) -----------------------------------------------------------------------

    def engage(self, cl_ord_id: str, amount: Decimal | str | int, now_ms: int | None = None) -> None:
        """A batch takes `amount` of the order's remaining collateral (it stays reserved in the ledger)."""
        self._require(cl_ord_id).engage(amount, now_ms)

    def apply_fill(self, cl_ord_id: str, units: Decimal | str | int, cost: Decimal | str | int,
                   now_ms: int | None = None) -> Decimal:
        """Book a fill on the order and move what it charged (rounded up to the unit) from reserved to spent."""
        order = self._require(cl_ord_id)
        delta = order.apply_fill(units, cost, now_ms)
        self.ledger.spend(order.order_id, delta)
        return delta

    def apply_sale(self, cl_ord_id: str, units: Decimal, payout: Decimal, sale_id: str, now_ms: int | None = None,
                   tokens: TokenLedger | None = None) -> None:
        """A sell's batch redeemed `units` of its engaged units for `payout` USDC: the units leave the token ledger
        as redeemed (to be burnt) and the payout is credited to the user's USDC under `sale_id` (once)."""
        order = self._require(cl_ord_id)
        self._needs_tokens(order, tokens)
        assert tokens is not None
        order.apply_sale(units, payout, now_ms)
        tokens.redeem(order.index, units)
        if payout > 0:
            self.ledger.credit(sale_id, payout)

    def release(self, cl_ord_id: str, amount: Decimal | str | int, now_ms: int | None = None,
                tokens: TokenLedger | None = None) -> Decimal:
        """A batch completed: its unspent engaged collateral goes back to the order's remaining. Returns what was
        cancelled instead because the user had cancelled all (freed in the ledger), normally 0."""
        order = self._require(cl_ord_id)
        self._needs_tokens(order, tokens)
        cancelled = order.release(amount, now_ms)
        self._free(order, cancelled, tokens)
        self._after(order)
        return cancelled

    def finish(self, cl_ord_id: str, dust: Decimal | str | int, now_ms: int | None = None,
               tokens: TokenLedger | None = None) -> Decimal:
        """Close the order (nothing engaged, remaining below `dust`); the remaining dust goes back to free
        collateral (no silent keep). Returns that amount."""
        order = self._require(cl_ord_id)
        self._needs_tokens(order, tokens)
        returned = order.finish(dust, now_ms)
        self._free(order, returned, tokens)
        self._after(order)
        return returned

    def reject(self, cl_ord_id: str, reason: str, now_ms: int | None = None,
               tokens: TokenLedger | None = None) -> Decimal:
        """The engine gives up on the order (§3.5); its remaining collateral is freed. Returns that amount."""
        order = self._require(cl_ord_id)
        self._needs_tokens(order, tokens)
        returned = order.reject(reason, now_ms)
        self._free(order, returned, tokens)
        self._after(order)
        return returned

    def mark_minted(self, cl_ord_id: str, tx: str) -> bool:
        return self._require_any(cl_ord_id).mark_minted(tx)

    # --- views ------------------------------------------------------------------------------------------------------

    def get(self, cl_ord_id: str) -> IndexOrder | None:
        return self._orders.get(cl_ord_id)

    def open_orders(self) -> list[IndexOrder]:
        """Non-terminal orders, oldest first (FIFO by creation)."""
        return list(self._open.values())

    def mint_pending(self) -> list[IndexOrder]:
        return [o for o in self._orders.values() if o.mint_pending]

    def __iter__(self) -> Iterator[IndexOrder]:
        return iter(self._orders.values())

    def __len__(self) -> int:
        return len(self._orders)

    # --- invariants and persistence ---------------------------------------------------------------------------------

    def check(self, tokens: TokenLedger | None = None) -> None:
        """Raise (AssertionError / OrderStateError) unless ledger and orders agree exactly; with the user's token
        ledger, its reserved units per index too (the open sells' remaining + engaged)."""
        self.ledger.check()
        held = ZERO
        for cl_ord_id, order in self._orders.items():
            order.check()
            if order.cl_ord_id != cl_ord_id or order.user != self.user:
                raise AssertionError(f"order {order.order_id} filed under {self.user}:{cl_ord_id}")
            if (cl_ord_id in self._open) == order.is_terminal:
                raise AssertionError(f"order {order.order_id} is {order.status.value} but open-index disagrees")
            if order.side is Side.SELL:
                continue  # its units are in the token ledger
            need = order.remaining + order.engaged
            if self.ledger.reservation(order.order_id) != need:
                raise AssertionError(f"order {order.order_id}: ledger reserves "
                                     f"{self.ledger.reservation(order.order_id)}, order holds {need}")
            held += need
        if self.ledger.reserved != held:
            raise AssertionError(f"ledger reserved {self.ledger.reserved} != orders' remaining+engaged {held}")
        if tokens is not None:
            if not tokens.check():
                raise AssertionError(f"{self.user}: token ledger does not add up")
            selling = self.selling()
            for index in set(selling) | set(tokens.indexes):
                if tokens.of(index).reserved != selling.get(index, ZERO):
                    raise AssertionError(f"{self.user}: {index} tokens reserved {tokens.of(index).reserved}, "
                                         f"open sells hold {selling.get(index, ZERO)}")

    def selling(self) -> dict[str, Decimal]:
        """Per index, the units the open sells hold (remaining + engaged)."""
        out: dict[str, Decimal] = {}
        for order in self._open.values():
            if order.side is Side.SELL:
                out[order.index] = out.get(order.index, ZERO) + order.remaining + order.engaged
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "unit": str(self.unit),
            "max_open_orders": self.max_open_orders,
            "known_indexes": sorted(self.known_indexes),
            "ledger": self.ledger.to_dict(),
            "orders": [o.to_dict() for o in self._orders.values()],  # creation order: keeps FIFO across restarts
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, max_open_orders: int | None = None,
                  known_indexes: Collection[str] | None = None) -> "UserOrderBook":
        """Load a snapshot. Limits and indexes may be overridden by the current configuration."""
        book = cls(data["user"], CollateralLedger.from_dict(data["ledger"]), unit=D(data["unit"]),
                   max_open_orders=data["max_open_orders"] if max_open_orders is None else max_open_orders,
                   known_indexes=data["known_indexes"] if known_indexes is None else known_indexes)
        for raw in data["orders"]:
            order = IndexOrder.from_dict(raw)
            if order.cl_ord_id in book._orders:
                raise ValueError(f"snapshot holds ClOrdID {order.cl_ord_id!r} twice")
            book._orders[order.cl_ord_id] = order
            if not order.is_terminal:
                book._open[order.cl_ord_id] = order
        book.check()
        return book

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, UserOrderBook):
            return NotImplemented
        return (self.user == other.user and self.unit == other.unit and self.max_open_orders == other.max_open_orders
                and self.known_indexes == other.known_indexes and self.ledger == other.ledger
                and list(self._orders.items()) == list(other._orders.items()))

    __hash__ = None  # type: ignore[assignment]  (mutable)

    # --- helpers ----------------------------------------------------------------------------------------------------

    def _require(self, cl_ord_id: str) -> IndexOrder:
        order = self._require_any(cl_ord_id)
        if order.is_terminal:
            raise OrderStateError(f"{order.order_id} is {order.status.value}")
        return order

    def _require_any(self, cl_ord_id: str) -> IndexOrder:
        order = self._orders.get(cl_ord_id)
        if order is None:
            raise OrderStateError(f"no order {order_id_of(self.user, cl_ord_id)}")
        return order

    def _needs_tokens(self, order: IndexOrder, tokens: TokenLedger | None) -> None:
        """Checked before the order moves: a sell freed without its token ledger would strand its units."""
        if order.side is Side.SELL and tokens is None:
            raise OrderStateError(f"{order.order_id}: a sell needs the user's token ledger")

    def _free(self, order: IndexOrder, amount: Decimal, tokens: TokenLedger | None) -> None:
        """What the order no longer holds goes back where it was reserved: a buy's USDC, a sell's index units."""
        if order.side is Side.SELL:
            assert tokens is not None  # _needs_tokens ran first
            tokens.release(order.index, amount)
        else:
            self.ledger.release(order.order_id, amount)

    def _after(self, order: IndexOrder) -> None:
        if order.is_terminal:
            self._open.pop(order.cl_ord_id, None)

    def _parse_amount(self, amount: Decimal | str | int) -> Decimal:
        if isinstance(amount, float):
            raise TypeError("refusing a float amount: money must come from a string or a Decimal")
        try:
            value = D(amount)
        except (TypeError, ValueError):
            raise IndexOrderRefused("INVALID_AMOUNT", f"not a number: {amount!r}") from None
        if not value.is_finite():
            raise IndexOrderRefused("INVALID_AMOUNT", f"not a finite number: {amount!r}")
        return value

    def _admit(self, index: str, owes: bool, owed_code: str, owed_text: str) -> None:
        """The checks a new order of either side passes, in this order: a served index, nothing owed on what it
        spends, room among the open orders."""
        if index not in self.known_indexes:
            raise IndexOrderRefused("UNKNOWN_INDEX", f"unknown index {index!r}; served: "
                                                     f"{', '.join(sorted(self.known_indexes))}")
        if owes:
            raise IndexOrderRefused(owed_code, owed_text)
        if len(self._open) >= self.max_open_orders:
            raise IndexOrderRefused("TOO_MANY_OPEN_ORDERS",
                                    f"{len(self._open)} orders open, limit {self.max_open_orders}")

    def _positive(self, amount: Decimal | str | int, unit: Decimal, what: str) -> Decimal:
        """A request's amount: a number, whole in `unit`, above zero (checked in that order)."""
        value = self._parse_amount(amount)
        if not self._fits(value, unit):
            raise IndexOrderRefused("TOO_MUCH_PRECISION", f"{value} has more decimals than {unit}")
        if value <= 0:
            raise IndexOrderRefused("NON_POSITIVE_AMOUNT", f"{what} must be positive, got {value}")
        return value

    @staticmethod
    def _fits(value: Decimal, unit: Decimal) -> bool:
        try:
            return is_multiple(value, unit)
        except ArithmeticError:  # more than 60 digits of units: no amount anyone holds, and no precision to judge
            raise IndexOrderRefused("INVALID_AMOUNT", f"{value} is out of range") from None
