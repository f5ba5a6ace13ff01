"""IndexOrder and UserOrderBook: validation codes, collateral flows, rounding of charges, cancel, snapshots, and a
stateful model check that the ledger and the orders never disagree by a single unit."""
from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from core.collateral_ledger import USDC_UNIT, CollateralError, CollateralLedger, InsufficientCollateral
from core.index_order import IndexOrder, IndexOrderStatus, OrderStateError
from core.index_order_book import IndexOrderRefused, UserOrderBook
from core.side import Side

U = USDC_UNIT
ALICE = "0x1111111111111111111111111111111111111111"
BOB = "0x2222222222222222222222222222222222222222"
INDEXES = ("SY100", "SYAI")
T0 = 1_700_000_000_000


def make_book(user: str = ALICE, deposit: str | None = "100", max_open: int = 3) -> UserOrderBook:
    book = UserOrderBook(user, CollateralLedger(U), unit=U, max_open_orders=max_open, known_indexes=INDEXES)
    if deposit is not None:
        book.ledger.credit(f"{user}:dep", deposit)
    return book


def reject_code(book: UserOrderBook, *args: object) -> str:
    ledger_before = book.ledger.to_dict()
    orders_before = len(book)
    with pytest.raises(IndexOrderRefused) as info:
        book.new_order(*args)  # type: ignore[arg-type]
    assert book.ledger.to_dict() == ledger_before and len(book) == orders_before  # a reject changes nothing
    return info.value.code


# --- NewIndexOrder validation ------------------------------------------------------------------------------------------


def test_accepted_order_is_new_and_reserves_its_collateral() -> None:
    book = make_book(deposit="100")
    order = book.new_order("c1", "SY100", Side.BUY, Decimal("40.5"), T0)
    assert order.status is IndexOrderStatus.NEW
    assert order.order_id == f"{ALICE}:c1"
    assert (order.collateral, order.remaining, order.engaged, order.spent) == (Decimal("40.5"), Decimal("40.5"), 0, 0)
    assert book.ledger.reservation(order.order_id) == Decimal("40.5")
    assert book.ledger.available == Decimal("59.5")
    assert book.get("c1") is order
    book.check()


def test_duplicate_cl_ord_id_is_rejected_even_after_the_order_closed() -> None:
    book = make_book()
    book.new_order("c1", "SY100", "BUY", "10", T0)
    assert reject_code(book, "c1", "SY100", "BUY", "10", T0) == "DUPLICATE_CL_ORD_ID"
    book.cancel("c1")
    assert book.get("c1").status is IndexOrderStatus.CANCELLED
    assert reject_code(book, "c1", "SY100", "BUY", "10", T0 + 1) == "DUPLICATE_CL_ORD_ID"


@pytest.mark.parametrize("amount", ["1.0000001", "0.00000001", "12.3456789"])
def test_too_much_precision(amount: str) -> None:
    assert reject_code(make_book(), "c1", "SY100", "BUY", amount, T0) == "TOO_MUCH_PRECISION"


def test_trailing_zeros_are_not_precision() -> None:
    order = make_book().new_order("c1", "SY100", "BUY", "1.50000000000", T0)
    assert order.collateral == Decimal("1.5")


@pytest.mark.parametrize("amount", ["0", "-5", "-0.000001", Decimal("0.000000")])
def test_non_positive_amount(amount: str | Decimal) -> None:
    assert reject_code(make_book(), "c1", "SY100", "BUY", amount, T0) == "NON_POSITIVE_AMOUNT"


@pytest.mark.parametrize("side", [Side.SELL, "SELL", "HOLD"])
def test_unsupported_side(side: object) -> None:
    assert reject_code(make_book(), "c1", "SY100", side, "10", T0) == "UNSUPPORTED_SIDE"


def test_unknown_index_is_refused_with_the_served_ones() -> None:
    book = make_book()
    assert reject_code(book, "c1", "SY999", "BUY", "10", T0) == "UNKNOWN_INDEX"
    with pytest.raises(IndexOrderRefused, match="unknown index 'SY999'; served: " + ", ".join(
            sorted(book.known_indexes))):
        book.new_order("c1", "SY999", "BUY", "10", T0)


def test_too_many_open_orders_counts_only_open_ones() -> None:
    book = make_book(deposit="100", max_open=2)
    book.new_order("c1", "SY100", "BUY", "1", T0)
    book.new_order("c2", "SY100", "BUY", "1", T0)
    assert reject_code(book, "c3", "SY100", "BUY", "1", T0) == "TOO_MANY_OPEN_ORDERS"
    book.cancel("c1")  # a closed order frees its slot
    book.new_order("c3", "SY100", "BUY", "1", T0)


def test_insufficient_collateral_counts_what_other_orders_hold() -> None:
    book = make_book(deposit="10")
    book.new_order("c1", "SY100", "BUY", "6", T0)
    with pytest.raises(IndexOrderRefused) as info:
        book.new_order("c2", "SY100", "BUY", "4.000001", T0)
    assert info.value.code == "INSUFFICIENT_COLLATERAL" and "short by 0.000001" in info.value.text
    book.new_order("c2", "SY100", "BUY", "4", T0)
    assert book.ledger.available == 0


def test_invalid_amount_and_float() -> None:
    book = make_book()
    assert reject_code(book, "c1", "SY100", "BUY", "ten", T0) == "INVALID_AMOUNT"
    assert reject_code(book, "c1", "SY100", "BUY", "NaN", T0) == "INVALID_AMOUNT"
    with pytest.raises(TypeError):
        book.new_order("c1", "SY100", "BUY", 10.0, T0)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "args, code",
    [
        (("dup", "NOPE", "SELL", "-1.0000001"), "DUPLICATE_CL_ORD_ID"),
        (("c9", "NOPE", "SELL", "-1.0000001"), "TOO_MUCH_PRECISION"),
        (("c9", "NOPE", "SELL", "-1"), "NON_POSITIVE_AMOUNT"),
        (("c9", "NOPE", "SELL", "1000000"), "UNSUPPORTED_SIDE"),
        (("c9", "NOPE", "BUY", "1000000"), "UNKNOWN_INDEX"),
        (("c9", "SY100", "BUY", "1000000"), "TOO_MANY_OPEN_ORDERS"),
    ],
)
def test_first_failing_check_wins(args: tuple[str, str, str, str], code: str) -> None:
    book = make_book(deposit="100", max_open=1)
    book.new_order("dup", "SY100", "BUY", "1", T0)  # fills the only slot
    assert reject_code(book, *args, T0) == code


def test_insufficient_collateral_is_the_last_check() -> None:
    book = make_book(deposit="1", max_open=5)
    assert reject_code(book, "c1", "SY100", "BUY", "2", T0) == "INSUFFICIENT_COLLATERAL"


# --- engine transitions --------------------------------------------------------------------------------------------


def test_fill_charge_is_rounded_up_on_the_running_cost_not_per_fill() -> None:
    book = make_book(deposit="100")
    book.new_order("c1", "SY100", "BUY", "20", T0)
    book.engage("c1", "20")
    # 0.0000004 of cost must be charged as a whole micro-USDC (the house does not pay the user's dust) ...
    assert book.apply_fill("c1", "0.001", "0.0000004") == Decimal("0.000001")
    # ... and the next 0.0000004 fits in the micro-USDC already charged: rounding the running total, not each fill.
    assert book.apply_fill("c1", "0.001", "0.0000004") == 0
    # running cost 0.0000008 + 9.9999993 = 10.0000001 -> charged 10.000001 in all, i.e. 10 more than before
    assert book.apply_fill("c1", "0.5", "9.9999993") == Decimal("10")
    order = book.get("c1")
    assert order.cost_exact == Decimal("10.0000001")
    assert order.spent == Decimal("10.000001")
    assert order.filled_units == Decimal("0.502")
    assert order.engaged == Decimal("9.999999")
    assert order.status is IndexOrderStatus.PARTIALLY_FILLED
    assert book.ledger.spent == Decimal("10.000001")
    assert book.ledger.reservation(order.order_id) == Decimal("9.999999")
    book.check()


def test_fill_beyond_engaged_collateral_raises_and_changes_nothing() -> None:
    book = make_book(deposit="100")
    book.new_order("c1", "SY100", "BUY", "20", T0)
    book.engage("c1", "5")
    book.apply_fill("c1", "0.1", "4.9999995")
    before = (book.get("c1").to_dict(), book.ledger.to_dict())
    with pytest.raises(OrderStateError, match="is engaged"):
        book.apply_fill("c1", "0.000001", "0.0000006")  # 5.0000001 -> 5.000001 > 5 engaged
    assert (book.get("c1").to_dict(), book.ledger.to_dict()) == before
    book.apply_fill("c1", "0.000001", "0.0000005")  # exactly up to the engaged collateral is fine
    assert book.get("c1").engaged == 0


def test_fill_on_an_order_never_engaged_is_refused() -> None:
    book = make_book()
    book.new_order("c1", "SY100", "BUY", "20", T0)
    with pytest.raises(OrderStateError, match="never engaged"):
        book.apply_fill("c1", "1", "0")


def test_engage_cannot_take_more_than_remaining_nor_odd_amounts() -> None:
    book = make_book()
    book.new_order("c1", "SY100", "BUY", "20", T0)
    with pytest.raises(OrderStateError):
        book.engage("c1", "20.000001")
    with pytest.raises(OrderStateError):
        book.engage("c1", "1.0000001")
    with pytest.raises(OrderStateError):
        book.engage("c1", "0")
    book.engage("c1", "12", now_ms=T0 + 5)
    order = book.get("c1")
    assert (order.remaining, order.engaged, order.status, order.updated_ms) == (
        Decimal("8"), Decimal("12"), IndexOrderStatus.ENGAGED, T0 + 5)


def test_release_returns_unspent_to_remaining_and_the_order_can_go_again() -> None:
    book = make_book()
    book.new_order("c1", "SY100", "BUY", "20", T0)
    book.engage("c1", "12")
    book.apply_fill("c1", "0.01", "7")
    with pytest.raises(OrderStateError):
        book.release("c1", "5.000001")
    assert book.release("c1", "5") == 0
    order = book.get("c1")
    assert (order.remaining, order.engaged, order.spent) == (Decimal("13"), 0, Decimal("7"))
    book.engage("c1", "13")
    book.check()


def test_finish_returns_the_dust_to_free_collateral() -> None:
    book = make_book(deposit="100")
    book.new_order("c1", "SY100", "BUY", "20", T0)
    book.engage("c1", "20")
    book.apply_fill("c1", "0.2", "19.95")
    book.release("c1", "0.05")
    with pytest.raises(OrderStateError, match="dust"):
        book.finish("c1", "0.05")  # remaining 0.05 is not below a 0.05 dust threshold
    assert book.finish("c1", "0.1") == Decimal("0.05")
    order = book.get("c1")
    assert order.status is IndexOrderStatus.FILLED and order.returned == Decimal("0.05")
    assert book.ledger.available == Decimal("80.05")  # 100 - 19.95 spent: nothing kept silently
    assert order.fill_rate == 1
    assert order.mint_pending and book.mint_pending() == [order]
    assert book.open_orders() == []
    book.check()


def test_finish_refused_while_engaged_and_on_closed_orders() -> None:
    book = make_book()
    book.new_order("c1", "SY100", "BUY", "20", T0)
    book.engage("c1", "20")
    with pytest.raises(OrderStateError, match="engaged"):
        book.finish("c1", "1")
    book.apply_fill("c1", "1", "20")
    book.finish("c1", "0")
    with pytest.raises(OrderStateError):
        book.finish("c1", "1")
    with pytest.raises(OrderStateError):
        book.engage("c1", "1")


def test_finish_of_an_order_too_small_to_fill_is_a_reject_with_its_money_back() -> None:
    book = make_book(deposit="1")
    book.new_order("c1", "SY100", "BUY", "0.001", T0)
    assert book.finish("c1", "0.01") == Decimal("0.001")
    order = book.get("c1")
    assert order.status is IndexOrderStatus.REJECTED and "dust" in order.reject_reason
    assert not order.mint_pending
    assert book.ledger.available == Decimal("1")


def test_reject_by_engine_returns_remaining() -> None:
    book = make_book(deposit="50")
    book.new_order("c1", "SY100", "BUY", "20", T0)
    book.new_order("c2", "SY100", "BUY", "20", T0)
    book.engage("c2", "5")
    book.apply_fill("c2", "0.1", "5")
    assert book.reject("c1", "route failed") == Decimal("20")
    assert book.reject("c2", "price unavailable") == Decimal("15")
    assert book.get("c1").status is IndexOrderStatus.REJECTED
    assert book.get("c2").status is IndexOrderStatus.FILLED  # it bought something: the mint is still owed
    assert book.get("c2").reject_reason == "price unavailable"
    assert book.ledger.available == Decimal("45")
    book.check()


def test_mark_minted_is_idempotent() -> None:
    book = make_book()
    book.new_order("c1", "SY100", "BUY", "10", T0)
    with pytest.raises(OrderStateError, match="nothing to mint"):
        book.mark_minted("c1", "0xtx")
    book.engage("c1", "10")
    book.apply_fill("c1", "0.01", "10")
    book.finish("c1", "0")
    assert book.mark_minted("c1", "0xtx") is True
    assert book.mark_minted("c1", "0xtx") is False
    with pytest.raises(OrderStateError):
        book.mark_minted("c1", "0xother")
    assert not book.get("c1").mint_pending and book.mint_pending() == []


def test_open_orders_are_fifo_by_creation() -> None:
    book = make_book(max_open=5)
    for i, cl in enumerate(["b", "a", "c", "d"]):
        book.new_order(cl, "SY100", "BUY", "1", T0 + i)
    book.cancel("a")
    assert [o.cl_ord_id for o in book.open_orders()] == ["b", "c", "d"]


# --- cancel --------------------------------------------------------------------------------------------------------


def test_cancel_unknown_closed_and_too_much() -> None:
    book = make_book()
    with pytest.raises(IndexOrderRefused) as info:
        book.cancel("nope")
    assert info.value.code == "UNKNOWN_ORDER"
    book.new_order("c1", "SY100", "BUY", "10", T0)
    book.engage("c1", "4")
    for amount, code in (("6.000001", "CANCEL_EXCEEDS_REMAINING"), ("0.0000001", "TOO_MUCH_PRECISION"),
                         ("0", "NON_POSITIVE_AMOUNT")):
        with pytest.raises(IndexOrderRefused) as info:
            book.cancel("c1", amount)
        assert info.value.code == code
    book.release("c1", "4")
    book.cancel("c1")
    with pytest.raises(IndexOrderRefused) as info:
        book.cancel("c1")
    assert info.value.code == "ORDER_CLOSED"


def test_partial_cancel_reduces_only_remaining_and_frees_it() -> None:
    book = make_book(deposit="100")
    book.new_order("c1", "SY100", "BUY", "30", T0)
    book.engage("c1", "10")
    order, cancelled = book.cancel("c1", "15.5")
    assert cancelled == Decimal("15.5")
    assert (order.remaining, order.engaged, order.cancelled) == (Decimal("4.5"), Decimal("10"), Decimal("15.5"))
    assert order.status is IndexOrderStatus.ENGAGED  # still open: engaged collateral finishes its batch
    assert book.ledger.available == Decimal("85.5")
    book.check()


def test_cancel_all_while_engaged_cancels_the_unspent_part_when_the_batch_completes() -> None:
    book = make_book(deposit="100")
    book.new_order("c1", "SY100", "BUY", "30", T0)
    book.engage("c1", "10")
    order, cancelled = book.cancel("c1")
    assert cancelled == Decimal("20") and order.cancel_pending and not order.is_terminal
    book.apply_fill("c1", "0.05", "6.25")  # the batch in flight still fills
    assert book.release("c1", "3.75") == Decimal("3.75")  # unspent part is cancelled, not re-queued
    assert order.status is IndexOrderStatus.FILLED and order.mint_pending
    assert (order.remaining, order.engaged, order.spent, order.cancelled) == (0, 0, Decimal("6.25"), Decimal("23.75"))
    assert book.ledger.available == Decimal("93.75")
    book.check()


def test_cancel_all_without_fills_ends_cancelled() -> None:
    book = make_book(deposit="100")
    book.new_order("c1", "SY100", "BUY", "30", T0)
    order, cancelled = book.cancel("c1", now_ms=T0 + 9)
    assert cancelled == Decimal("30") and order.status is IndexOrderStatus.CANCELLED and order.updated_ms == T0 + 9
    assert book.ledger.available == Decimal("100") and book.ledger.reserved == 0


def test_books_are_per_user_a_cancel_cannot_reach_another_users_order() -> None:
    alice, bob = make_book(ALICE), make_book(BOB)
    alice_order = alice.new_order("shared-id", "SY100", "BUY", "10", T0)
    before = alice_order.to_dict()
    with pytest.raises(IndexOrderRefused) as info:
        bob.cancel("shared-id")
    assert info.value.code == "UNKNOWN_ORDER"
    assert alice_order.to_dict() == before and alice.ledger.reservation(alice_order.order_id) == Decimal("10")
    bob_order = bob.new_order("shared-id", "SY100", "BUY", "3", T0)  # the same ClOrdID is Bob's own
    assert bob_order.order_id != alice_order.order_id
    bob.cancel("shared-id")
    assert alice_order.status is IndexOrderStatus.NEW and alice_order.remaining == Decimal("10")


# --- snapshots -----------------------------------------------------------------------------------------------------


def busy_book() -> UserOrderBook:
    book = make_book(deposit="500", max_open=5)
    book.ledger.charge_fee("route:1", "0.37")
    book.new_order("a", "SY100", "BUY", "100", T0)
    book.new_order("b", "SYAI", "BUY", "50", T0 + 1)
    book.new_order("c", "SY100", "BUY", "25.000001", T0 + 2)
    book.engage("a", "60")
    book.apply_fill("a", "0.0123456789", "33.33333333")
    book.cancel("b", "10")
    book.engage("c", "25.000001")
    book.apply_fill("c", "0.02", "25.0000005")
    book.release("c", "0")
    book.finish("c", "0.01")
    return book


def test_snapshot_round_trip_gives_an_equal_book() -> None:
    book = busy_book()
    copy = UserOrderBook.from_dict(json.loads(json.dumps(book.to_dict())))
    assert copy == book
    assert [o.cl_ord_id for o in copy.open_orders()] == ["a", "b"]
    assert copy.get("a") == book.get("a") and copy.get("a") is not book.get("a")
    with pytest.raises(IndexOrderRefused) as info:
        copy.new_order("c", "SY100", "BUY", "1", T0)  # a replayed message after a restart is recognised
    assert info.value.code == "DUPLICATE_CL_ORD_ID"
    copy.apply_fill("a", "0.001", "1")
    assert copy != book


def test_corrupt_snapshot_is_refused() -> None:
    data = busy_book().to_dict()
    assert data["orders"][0]["spent"] == "33.333334"  # cost 33.33333333 rounded up
    data["orders"][0]["spent"] = "33.333335"  # one micro-USDC more than the fills cost
    with pytest.raises(OrderStateError):
        UserOrderBook.from_dict(data)
    data = busy_book().to_dict()
    data["ledger"]["reservations"][f"{ALICE}:a"] = "39"
    data["ledger"]["reserved"] = str(Decimal(data["ledger"]["reserved"]) - 1)
    data["ledger"]["available"] = str(Decimal(data["ledger"]["available"]) + 1)
    with pytest.raises(AssertionError):
        UserOrderBook.from_dict(data)


def test_book_and_ledger_units_must_agree() -> None:
    with pytest.raises(ValueError):
        UserOrderBook(ALICE, CollateralLedger(Decimal("0.01")), unit=U, max_open_orders=1, known_indexes=INDEXES)


def test_order_invariant_is_enforced_on_construction() -> None:
    with pytest.raises(OrderStateError, match="collateral"):
        IndexOrder(order_id="u:c", user="u", cl_ord_id="c", index="SY100", side=Side.BUY, collateral=Decimal("10"),
                   created_ms=T0, remaining=Decimal("9"))


# --- stateful model check ------------------------------------------------------------------------------------------


def ceil_units(value: Decimal) -> Decimal:
    """The test's own rounding up to whole micro-USDC (independent of core.money)."""
    return (value * 1_000_000).to_integral_value(rounding=ROUND_CEILING) / 1_000_000


@dataclass
class ModelOrder:
    collateral: Decimal
    remaining: Decimal
    engaged: Decimal = Decimal(0)
    spent: Decimal = Decimal(0)
    cost: Decimal = Decimal(0)
    units: Decimal = Decimal(0)
    cancelled: Decimal = Decimal(0)
    returned: Decimal = Decimal(0)
    ever_engaged: bool = False
    cancel_all: bool = False
    closed: bool = False

    def close_status(self) -> IndexOrderStatus:
        if self.units > 0:
            return IndexOrderStatus.FILLED
        return IndexOrderStatus.CANCELLED if self.cancelled > 0 else IndexOrderStatus.REJECTED


MAX_OPEN = 4
micros = st.integers(min_value=1, max_value=50_000_000).map(lambda n: Decimal(n) / 1_000_000)
amounts = st.one_of(
    micros,
    st.integers(1, 10**9).map(lambda n: Decimal(n) / 10**7),  # often more decimals than USDC has
    st.integers(-10**6, 0).map(lambda n: Decimal(n) / 1_000_000),
)


class BookMachine(RuleBasedStateMachine):
    """Random user and engine calls against a book, compared after every step with a plain model of the rules."""

    @initialize(first_deposit=st.integers(0, 300_000_000).map(lambda n: Decimal(n) / 1_000_000))
    def setup(self, first_deposit: Decimal) -> None:
        self.book = UserOrderBook(ALICE, CollateralLedger(U), unit=U, max_open_orders=MAX_OPEN,
                                  known_indexes=INDEXES)
        self.deposits: dict[str, Decimal] = {}
        if first_deposit > 0:
            assert self.book.ledger.credit("dep-first", first_deposit) is True
            self.deposits["dep-first"] = first_deposit
        self.fees: dict[str, Decimal] = {}
        self.orders: dict[str, ModelOrder] = {}
        self.now = T0

    # helpers
    def tick(self) -> int:
        self.now += 1
        return self.now

    def free(self) -> Decimal:
        """What the user has left; negative: what the user owes (a fee beyond the free collateral)."""
        used = sum((o.collateral - o.cancelled - o.returned for o in self.orders.values()), Decimal(0))
        return sum(self.deposits.values(), Decimal(0)) - sum(self.fees.values(), Decimal(0)) - used

    def open_ids(self) -> list[str]:
        return [k for k, o in self.orders.items() if not o.closed]

    def has_open(self) -> bool:
        return bool(self.open_ids())

    # money in
    @rule(n=st.integers(0, 6), amount=micros)
    def credit(self, n: int, amount: Decimal) -> None:
        dep = f"dep-{n}"
        if dep in self.deposits and self.deposits[dep] != amount:
            with pytest.raises(CollateralError):
                self.book.ledger.credit(dep, amount)
            return
        assert self.book.ledger.credit(dep, amount) is (dep not in self.deposits)
        self.deposits.setdefault(dep, amount)

    @precondition(lambda self: bool(self.deposits))
    @rule(data=st.data())
    def replay_deposit(self, data: st.DataObject) -> None:
        dep = data.draw(st.sampled_from(sorted(self.deposits)))
        assert self.book.ledger.credit(dep, self.deposits[dep]) is False

    @rule(n=st.integers(0, 3), amount=st.integers(1, 2_000_000).map(lambda n: Decimal(n) / 1_000_000))
    def fee(self, n: int, amount: Decimal) -> None:
        fid = f"fee-{n}"
        if fid in self.fees:
            if self.fees[fid] == amount:
                assert self.book.ledger.charge_fee(fid, amount) is False
            else:
                with pytest.raises(CollateralError):
                    self.book.ledger.charge_fee(fid, amount)
        else:  # beyond the free collateral, the rest is the user's debt
            assert self.book.ledger.charge_fee(fid, amount) is True
            self.fees[fid] = amount

    # user requests
    @rule(cl=st.integers(0, 14).map(lambda n: f"c{n}"), index=st.sampled_from(INDEXES), amount=micros)
    def new_order(self, cl: str, index: str, amount: Decimal) -> None:
        self.submit(cl, index, Side.BUY, amount)

    @rule(cl=st.integers(0, 14).map(lambda n: f"c{n}"), index=st.sampled_from(INDEXES + ("NOPE",)),
          side=st.sampled_from(Side), amount=amounts)
    def any_new_order(self, cl: str, index: str, side: Side, amount: Decimal) -> None:
        self.submit(cl, index, side, amount)

    def submit(self, cl: str, index: str, side: Side, amount: Decimal) -> None:
        if cl in self.orders:
            expected = "DUPLICATE_CL_ORD_ID"
        elif amount != amount.quantize(Decimal("0.000001"), rounding=ROUND_CEILING):
            expected = "TOO_MUCH_PRECISION"
        elif amount <= 0:
            expected = "NON_POSITIVE_AMOUNT"
        elif side is not Side.BUY:
            expected = "UNSUPPORTED_SIDE"
        elif index == "NOPE":
            expected = "UNKNOWN_INDEX"
        elif self.free() < 0:
            expected = "DEBT_OUTSTANDING"
        elif len(self.open_ids()) >= MAX_OPEN:
            expected = "TOO_MANY_OPEN_ORDERS"
        elif amount > self.free():
            expected = "INSUFFICIENT_COLLATERAL"
        else:
            expected = ""
        if expected:
            with pytest.raises(IndexOrderRefused) as info:
                self.book.new_order(cl, index, side, amount, self.tick())
            assert info.value.code == expected
        else:
            order = self.book.new_order(cl, index, side, amount, self.tick())
            assert order.status is IndexOrderStatus.NEW
            self.orders[cl] = ModelOrder(collateral=amount, remaining=amount)

    @rule(cl=st.sampled_from(["c99", "never", "c1"]))
    def cancel_maybe_unknown(self, cl: str) -> None:
        self.cancel_order(cl, amount_wanted=False, data=None)

    @precondition(lambda self: bool(self.orders))
    @rule(data=st.data(), amount_wanted=st.booleans())
    def cancel(self, data: st.DataObject, amount_wanted: bool) -> None:
        self.cancel_order(data.draw(st.sampled_from(sorted(self.orders))), amount_wanted, data)

    def cancel_order(self, cl: str, amount_wanted: bool, data: st.DataObject | None) -> None:
        m = self.orders.get(cl)
        if m is None:
            code = "UNKNOWN_ORDER"
        elif m.closed:
            code = "ORDER_CLOSED"
        else:
            code = ""
        amount = None
        if m is not None and not m.closed and m.remaining > 0 and amount_wanted and data is not None:
            amount = Decimal(data.draw(st.integers(1, int(m.remaining * 1_000_000) + 2))) / 1_000_000
            if amount > m.remaining:
                code = "CANCEL_EXCEEDS_REMAINING"
        if code:
            with pytest.raises(IndexOrderRefused) as info:
                self.book.cancel(cl, amount)
            assert info.value.code == code
            return
        order, cancelled = self.book.cancel(cl, amount, now_ms=self.tick())
        expected = m.remaining if amount is None else amount
        assert cancelled == expected
        m.remaining -= expected
        m.cancelled += expected
        if amount is None and m.engaged > 0:
            m.cancel_all = True
        if m.engaged == 0 and m.remaining == 0:
            m.closed = True
            assert order.status is m.close_status()

    # engine
    @precondition(lambda self: any(not o.closed and o.remaining > 0 for o in self.orders.values()))
    @rule(data=st.data())
    def engage(self, data: st.DataObject) -> None:
        cl = data.draw(st.sampled_from([k for k in self.open_ids() if self.orders[k].remaining > 0]))
        m = self.orders[cl]
        amount = Decimal(data.draw(st.integers(1, int(m.remaining * 1_000_000)))) / 1_000_000
        self.book.engage(cl, amount, now_ms=self.tick())
        m.remaining -= amount
        m.engaged += amount
        m.ever_engaged = True

    @precondition(lambda self: any(not o.closed and o.ever_engaged for o in self.orders.values()))
    @rule(data=st.data(), share=st.integers(0, 1000), units=st.integers(0, 10**6))
    def fill(self, data: st.DataObject, share: int, units: int) -> None:
        cl = data.draw(st.sampled_from([k for k in self.open_ids() if self.orders[k].ever_engaged]))
        m = self.orders[cl]
        headroom = m.spent + m.engaged - m.cost  # the most this order's fills may still cost
        cost = (headroom * share / 1000).quantize(Decimal("1e-12"), rounding=ROUND_FLOOR)
        qty = Decimal(units) / 10**9
        delta = self.book.apply_fill(cl, qty, cost, now_ms=self.tick())
        new_spent = ceil_units(m.cost + cost)
        assert delta == new_spent - m.spent
        m.cost += cost
        m.units += qty
        m.engaged -= delta
        m.spent = new_spent

    @precondition(lambda self: any(not o.closed and o.ever_engaged for o in self.orders.values()))
    @rule(data=st.data(), extra=st.integers(1, 10**6))
    def overfill(self, data: st.DataObject, extra: int) -> None:
        """A fill whose charge would exceed the engaged collateral is refused and changes nothing."""
        cl = data.draw(st.sampled_from([k for k in self.open_ids() if self.orders[k].ever_engaged]))
        m = self.orders[cl]
        cost = m.spent + m.engaged - m.cost + Decimal(extra) / 10**12
        before = (self.book.get(cl).to_dict(), self.book.ledger.to_dict())
        with pytest.raises(OrderStateError):
            self.book.apply_fill(cl, Decimal("0.001"), cost)
        assert (self.book.get(cl).to_dict(), self.book.ledger.to_dict()) == before

    @precondition(lambda self: any(not o.closed and o.ever_engaged for o in self.orders.values()))
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        cl = data.draw(st.sampled_from([k for k in self.open_ids() if self.orders[k].ever_engaged]))
        m = self.orders[cl]
        amount = Decimal(data.draw(st.integers(0, int(m.engaged * 1_000_000)))) / 1_000_000
        cancelled = self.book.release(cl, amount, now_ms=self.tick())
        m.engaged -= amount
        m.remaining += amount
        if m.cancel_all:
            assert cancelled == m.remaining
            m.cancelled += m.remaining
            m.remaining = Decimal(0)
            if m.engaged == 0:
                m.closed = True
        else:
            assert cancelled == 0

    @precondition(lambda self: self.has_open())
    @rule(data=st.data(), dust=st.integers(0, 2_000_000))
    def finish(self, data: st.DataObject, dust: int) -> None:
        cl = data.draw(st.sampled_from(self.open_ids()))
        m = self.orders[cl]
        threshold = Decimal(dust) / 1_000_000
        if m.engaged != 0 or (m.remaining != 0 and m.remaining >= threshold):
            with pytest.raises(OrderStateError):
                self.book.finish(cl, threshold)
            return
        returned = self.book.finish(cl, threshold, now_ms=self.tick())
        assert returned == m.remaining
        m.returned += m.remaining
        m.remaining = Decimal(0)
        m.closed = True
        assert self.book.get(cl).status is m.close_status()

    @precondition(lambda self: bool(self.orders))
    @rule()
    def restart(self) -> None:
        """Persist and reload: the reloaded book equals the old one and carries on."""
        copy = UserOrderBook.from_dict(json.loads(json.dumps(self.book.to_dict())))
        assert copy == self.book
        self.book = copy

    # invariants
    @invariant()
    def books_balance(self) -> None:
        if not hasattr(self, "book"):
            return
        book = self.book
        book.check()
        ledger = book.ledger
        assert ledger.credited + ledger.debt == (ledger.available + ledger.held + ledger.reserved + ledger.spent
                                                 + ledger.fees_charged)
        assert ledger.credited == sum(self.deposits.values(), Decimal(0))
        assert ledger.fees_charged == sum(self.fees.values(), Decimal(0))
        assert ledger.available == max(self.free(), Decimal(0))
        assert ledger.debt == max(-self.free(), Decimal(0))  # money back to the user pays a debt first
        assert ledger.reserved == sum((o.remaining + o.engaged for o in book), Decimal(0))
        assert ledger.spent == sum((o.spent for o in book), Decimal(0))
        assert [o.cl_ord_id for o in book.open_orders()] == self.open_ids()
        for cl, m in self.orders.items():
            order = book.get(cl)
            assert (order.remaining, order.engaged, order.spent, order.cancelled, order.returned) == (
                m.remaining, m.engaged, m.spent, m.cancelled, m.returned)
            assert order.cost_exact == m.cost and order.filled_units == m.units
            assert order.is_terminal is m.closed
            # never charged more than the order's collateral, never less than what its fills cost
            assert order.spent <= order.collateral - order.cancelled - order.returned
            assert order.cost_exact <= order.spent < order.cost_exact + U
            assert ledger.reservation(order.order_id) == order.remaining + order.engaged


BookMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=50, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestBookMachine = BookMachine.TestCase
