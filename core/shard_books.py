"""The books of one index-order shard's users and the shard's part in batches: plain state and rules, clock injected.

The actor (actors/order_books.py) serialises the calls and stores what changed (`touched` users, the `new_*`
records); protocol/books_app.py turns requests into calls here and a `Step` into reports. Engine steps are
idempotent by their keys (batch id, the caller's key, (order, tx)): one re-driven after a restart changes nothing.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Collection, Iterable, Mapping, Sequence

from core.arrival import ArrivalBoard
from core.batch_planner import Engagement, PendingOrder
from core.batch_result import BatchOrderResult
from core.chain_events import CollateralDeposit, DepositReversal, TokenDeposit
from core.clock import Clock
from core.collateral_ledger import CollateralError, CollateralLedger, InsufficientCollateral, whole_units
from core.collateral_route import FeeCharge
from core.deposit_reversal import BookReversal, cut_open_orders, reverse_in_book
from core.index_order import IndexOrder, OrderStateError, user_key
from core.index_order_book import IndexOrderRefused, UserOrderBook
from core.invoice import InvoiceLine, MintInvoice, build_invoice
from core.lot_assignment import AssetLine, AssignedFill
from core.mint_request import MintRequest
from core.sell_assignment import SellLine, SellResult
from core.sell_plan import PendingSell
from core.money import ZERO, quantize_up
from core.side import Side
from core.token_ledger import TokenLedger, TokenReversal
from core.withdrawal import Withdrawal, WithdrawalError, WithdrawalRequest


@dataclass(slots=True)
class Step:
    """What one call did: orders a fill moved (reported "in progress"), orders it closed (reported with their end
    status), mints owed, what a batch engaged, and what the operator should see (errors, warnings, handled races)."""

    filled: list[IndexOrder] = field(default_factory=list)
    closed: list[IndexOrder] = field(default_factory=list)
    mints: list[MintRequest] = field(default_factory=list)
    engaged: list[tuple[str, Decimal]] | None = None
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    replays: int = 0  # parts of the call already done under their key: nothing changed for them


@dataclass(slots=True)
class TokenStep:
    """What a batch of index-token deposits, or of their reversals, did: per user key the deposits newly credited
    and the reversals made (each reported to its user), and what the operator should see."""

    credited: list[tuple[str, TokenDeposit]] = field(default_factory=list)
    reversed: list[tuple[str, TokenReversal]] = field(default_factory=list)
    #: Per user key, the sells a reversal cut to give the units back, with the units each cancel freed.
    cut: list[tuple[str, IndexOrder, Decimal]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    replays: int = 0  # deposits booked or reversed before under their key: nothing changed for them


def rest_threshold(order: IndexOrder, order_dust: Decimal, rest_return_ratio: Decimal, unit: Decimal) -> Decimal:
    """Below this, a completed batch's order is finished and its rest returned: the dust, or `rest_return_ratio` of
    what the user did not cancel (rounded UP to the unit: at the boundary the rest goes back rather than buying
    almost nothing in a batch padded to the exchange's minimum notional)."""
    return max(order_dust, quantize_up((order.collateral - order.cancelled) * rest_return_ratio, unit))


def sell_rest_threshold(order: IndexOrder, rest_return_ratio: Decimal) -> Decimal:
    """Below this, a completed batch's sell is finished and its unsold rest given back to the user's free tokens:
    `rest_return_ratio` of the units the user did not cancel, rounded UP to the index unit (the USDC dust has no
    meaning in index units)."""
    return quantize_up((order.collateral - order.cancelled) * rest_return_ratio, order.unit)


def sale_credit_id(batch_id: str, order_id: str) -> str:
    """The key a sell's payout from one batch is credited under in the user's USDC ledger: once per batch."""
    return f"sale:{batch_id}:{order_id}"


def merge_lines(acc: dict[str, list[Any]], lines: Iterable[AssetLine | SellLine]) -> None:
    """Accumulate an order's asset lines over its batches (a buy's, or a sell's): [units, quantity, value, fee,
    lot_ids] per symbol."""
    for line in lines:
        row = acc.setdefault(line.symbol, [0, ZERO, ZERO, ZERO, []])
        row[0] += line.units
        row[1] += line.quantity
        row[2] += line.value
        row[3] += line.fee
        row[4].extend(line.lot_ids)


def invoice_lines(acc: Mapping[str, list[Any]]) -> list[InvoiceLine]:
    return [InvoiceLine(symbol=s, quantity=q, average_price=(v / q if q else None), value=v, fee=f,
                        lot_ids=tuple(ids))
            for s, (_, q, v, f, ids) in sorted(acc.items())]


class ShardBooks:
    """Not thread-safe: the owner serialises the calls. Books are keyed by `user_key` (the lower-cased address)."""

    def __init__(self, known_indexes: Collection[str], *, clock: Clock, unit: Decimal, max_open_orders: int,
                 token_decimals: int, order_dust: Decimal, rest_return_ratio: Decimal,
                 arrivals: ArrivalBoard | None = None) -> None:
        """The numbers are the `[collateral]` and `[chain]` settings (core.config); `arrivals`: the indexes' latest
        values an accepted order is stamped with (none: orders carry no arrival value)."""
        self.known_indexes = frozenset(known_indexes)
        self.clock = clock
        self.unit = unit
        self.max_open_orders = max_open_orders
        self.token_decimals = token_decimals
        self.order_dust = order_dust
        self.rest_return_ratio = rest_return_ratio
        self.arrivals = arrivals if arrivals is not None else ArrivalBoard({}, 0)
        self.books: dict[str, UserOrderBook] = {}
        self.fifo: dict[str, None] = {}  # open order ids, in acceptance order (FIFO across the shard's users)
        self.lines: dict[str, dict[str, list[Any]]] = {}  # order id -> symbol -> accumulated line
        self.engaged: dict[str, list[tuple[str, Decimal]]] = {}  # batch id -> what it engaged
        self.fill_keys: set[str] = set()
        self.completed: dict[str, list[MintRequest]] = {}  # batch id -> its answer (kept for replays)
        self.invoices: dict[tuple[str, str], MintInvoice] = {}  # (user key, cl_ord_id) -> invoice
        self.invoices_of: dict[str, dict[str, MintInvoice]] = {}  # user key -> cl_ord_id -> invoice (views)
        self.routes: dict[str, dict[str, str]] = {}
        self.reversals: list[dict[str, Any]] = []  # deposits taken back after a reorg, for the operator
        self.tokens: dict[str, TokenLedger] = {}  # user key -> index tokens deposited for redemption
        self.token_owners: dict[str, str] = {}  # token deposit key -> user key (derived from the ledgers)
        self.withdrawals: dict[str, WithdrawalRequest] = {}  # withdrawal id -> the request its hold was made for
        # What changed since the owner last stored it.
        self.touched: set[str] = set()
        self.new_fill_keys: set[str] = set()
        self.new_completed: set[str] = set()
        self.new_invoices: set[tuple[str, str]] = set()
        self.new_withdrawals: set[str] = set()

    # ------------------------------------------------------------------ books
    def book(self, key: str) -> UserOrderBook:
        """The user's book, made empty on first sight; marked touched (its owner stores it with the next write)."""
        self.touched.add(key)
        book = self.books.get(key)
        if book is None:
            book = UserOrderBook(key, CollateralLedger(self.unit), unit=self.unit,
                                 max_open_orders=self.max_open_orders, known_indexes=self.known_indexes)
            self.books[key] = book
        return book

    def order(self, order_id: str) -> tuple[UserOrderBook, str]:
        key, cl = order_id.split(":", 1)
        return self.book(key), cl

    def new_order(self, key: str, cl_ord_id: str, index: str, side: Side | str, amount: Decimal | str,
                  min_proceeds: Decimal | str | None = None) -> IndexOrder:
        """Open an order (core.index_order_book's validation; raises IndexOrderRefused), stamp it with its index's
        latest arrival value (none if none is fresh) and queue it in the FIFO. A SELL's `amount` is index units,
        reserved in the user's token ledger; `min_proceeds` (a sell's only) the least USDC the user accepts."""
        now = self.clock.now_ms()
        if side == Side.SELL:
            order = self.book(key).new_sell(cl_ord_id, index, amount, min_proceeds, now, self.token_ledger(key))
        elif min_proceeds is not None:
            raise IndexOrderRefused("MIN_USDC_ON_BUY", "a minimum USDC is a sell's; a buy spends its amount")
        else:
            order = self.book(key).new_order(cl_ord_id, index, side, amount, now)
        order.arrival = self.arrivals.stamp(order.index, now)
        self.fifo[order.order_id] = None
        return order

    def cancel(self, key: str, cl_ord_id: str, amount: Decimal | None) -> tuple[IndexOrder, Decimal]:
        """The user cancels `amount` (None: all) of an order's not-yet-engaged part (core.index_order_book): a
        buy's collateral or a sell's units, each back where it was reserved. Raises IndexOrderRefused."""
        return self.book(key).cancel(cl_ord_id, amount, self.clock.now_ms(), self.tokens.get(key))

    def add_invoice(self, key: str, cl: str, invoice: MintInvoice) -> None:
        """A new invoice: answers GetMintInvoice, shows in the user's view, and is stored by the next write."""
        self.invoices[(key, cl)] = invoice
        self.invoices_of.setdefault(key, {})[cl] = invoice
        self.new_invoices.add((key, cl))

    def mint_request(self, order: IndexOrder) -> MintRequest:
        return MintRequest(order.order_id, order.user, order.index, order.filled_units, self.token_decimals)

    # ------------------------------------------------------------------ collateral
    def credit(self, deposits: Sequence[CollateralDeposit], holds: Mapping[str, Decimal]) -> Step:
        """Book deposits, each holding `holds[key]` of itself for its route's cost (orders cannot engage it)."""
        step = Step()
        for d in deposits:
            try:
                self.book(user_key(d.user)).ledger.credit(d.key, d.amount, holds.get(d.key, ZERO))
            except CollateralError as exc:
                step.errors.append(f"deposit {d.key}: {exc}")
        return step

    def charge(self, charges: Sequence[FeeCharge]) -> Step:
        """Routing-fee shares, each from its deposit's hold first; a share beyond the hold and the user's free
        collateral is the user's debt (it blocks new orders until a deposit pays it)."""
        step = Step()
        for c in charges:
            ledger = self.book(user_key(c.user)).ledger
            owed = ledger.debt
            try:
                ledger.charge_fee(c.fee_id, c.amount, hold_id=c.deposit_key)
            except CollateralError as exc:
                step.errors.append(f"fee {c.fee_id}: {exc}")
            if ledger.debt > owed:
                step.warnings.append(f"fee {c.fee_id} exceeds {c.user}'s hold and free collateral: "
                                     f"{ledger.debt} owed")
        return step

    def routed(self, route_id: str, net_by_deposit: Mapping[str, Decimal], users: Mapping[str, str]) -> None:
        """A route is credited at the exchange: its real cost is charged, so the rest of each hold is released."""
        for key, user in users.items():
            if user_key(user) in self.books:
                self.book(user_key(user)).ledger.release_hold(key)
        self.routes[route_id] = {k: str(v) for k, v in net_by_deposit.items()}

    def reverse(self, reversals: Sequence[DepositReversal]) -> list[tuple[str, BookReversal]]:
        """Deposits dropped by a reorg (core.deposit_reversal), each with its user key; idempotent per deposit key
        (the ledger remembers what it reversed): one reversed before, or never credited here, is left out."""
        now = self.clock.now_ms()
        out: list[tuple[str, BookReversal]] = []
        for r in reversals:
            key = user_key(r.user)
            book = self.books.get(key)
            done = reverse_in_book(book, r.deposit_key, now) if book is not None else None
            if done is None:
                continue
            self.touched.add(key)
            self.reversals.append({"deposit": r.deposit_key, "user": key, "amount": str(done.amount),
                                   "debt_added": str(done.debt), "routed": r.routed, "at_ms": now})
            del self.reversals[:-1000]  # the operator's recent view; the ledgers keep every reversal
            out.append((key, done))
        return out

    # ------------------------------------------------------------------ index tokens (deposited for redemption)
    def token_ledger(self, key: str) -> TokenLedger:
        """The user's index tokens, made empty on first sight. A user first seen by a token deposit gets an empty
        book too: the user's snapshot stores both. Marked touched."""
        self.book(key)
        ledger = self.tokens.get(key)
        if ledger is None:
            ledger = self.tokens[key] = TokenLedger(Decimal(1).scaleb(-self.token_decimals))
        return ledger

    def load_tokens(self, key: str, ledger: TokenLedger) -> None:
        """A stored user's token ledger (the owner's load), with the index of its deposits' keys."""
        self.tokens[key] = ledger
        self.token_owners.update(dict.fromkeys(ledger.deposits, key))

    def credit_tokens(self, deposits: Sequence[TokenDeposit]) -> TokenStep:
        """Book confirmed index-token deposits, each to its sender, once per deposit key (a replay books nothing).
        A deposit that cannot be booked (a replay with other numbers, a fraction of the token's unit) is left out
        with an error and nothing else changes. Tokens of an index this system does not serve are booked all the
        same (they are the user's) with a warning: nothing can sell them until the index is served."""
        step = TokenStep()
        for d in deposits:
            key = user_key(d.user)
            try:
                new = self.token_ledger(key).credit(d)
            except CollateralError as exc:
                step.errors.append(f"token deposit {d.key}: {exc}")
                continue
            if not new:
                step.replays += 1
                continue
            self.token_owners[d.key] = key
            step.credited.append((key, d))
            if d.index not in self.known_indexes:
                step.warnings.append(f"token deposit {d.key}: {d.units} {d.index} credited to {key}, an index "
                                     f"this system does not serve")
        return step

    def reverse_tokens(self, deposit_keys: Sequence[str]) -> TokenStep:
        """Token deposits a reorg dropped after their credit: each taken back once (core.token_ledger: from the
        available units, after cutting the user's open sells of that index as far as needed; the rest is the user's
        debt in that index). Keys this shard never credited (the chain
        listener asks every shard: a key alone names no user) or reversed before are left out."""
        step = TokenStep()
        for deposit_key in deposit_keys:
            key = self.token_owners.get(deposit_key)
            if key is None:
                continue
            ledger = self.tokens[key]
            seen = ledger.deposits[deposit_key]
            if deposit_key not in ledger.reversals:
                # Open sells of the index give back their unengaged units first (newest first), so that no sell
                # goes on with units the reorg took back; only what batches hold or sold becomes debt.
                short = seen[1] - ledger.of(seen[0]).available
                cut = cut_open_orders(self.book(key), short, self.clock.now_ms(), side=Side.SELL, index=seen[0],
                                      tokens=ledger)
                step.cut.extend((key, order, freed) for order, freed in cut)
            done = ledger.reverse(deposit_key)
            if done is None:
                step.replays += 1
                continue
            self.touched.add(key)
            step.reversed.append((key, done))
            # For the operator: the confirmations were too low for this chain (and a debt is tokens already sold).
            step.warnings.append(f"token deposit {deposit_key} of {key} reversed by a reorg: {done.units} "
                                 f"{done.index} taken back, {done.debt} of it owed")
        return step
    # ------------------------------------------------------------------ withdrawals
    def hold_withdrawal(self, key: str, withdrawal_id: str, amount: Decimal | str, minimum: Decimal) -> bool:
        """Hold `amount` of the user's free collateral for a withdrawal (never what orders reserved or a route holds).
        True: held now; False: this withdrawal was held before with the same amount (a duplicate: the first answer
        stands). Raises IndexOrderRefused (UNKNOWN_USER, DUPLICATE_WITHDRAWAL_ID, TOO_MUCH_PRECISION,
        NON_POSITIVE_AMOUNT, BELOW_MINIMUM, DEBT_OUTSTANDING, INSUFFICIENT_COLLATERAL): nothing held."""
        book = self.books.get(key)
        if book is None or book.ledger.credited + book.ledger.debt == 0:
            raise IndexOrderRefused("UNKNOWN_USER", "no deposit was ever credited to this user")
        ledger = book.ledger
        try:
            value = whole_units(amount, self.unit, f"withdrawal {withdrawal_id}", allow_zero=True)
        except CollateralError:
            raise IndexOrderRefused("TOO_MUCH_PRECISION", f"{amount} is not a whole number of {self.unit}") from None
        seen = ledger.withdrawal(withdrawal_id)
        if seen:
            if seen != value:
                raise IndexOrderRefused("DUPLICATE_WITHDRAWAL_ID",
                                        f"withdrawal {withdrawal_id!r} was asked before for {seen}")
            return False
        if value <= 0:
            raise IndexOrderRefused("NON_POSITIVE_AMOUNT", f"amount must be positive, got {value}")
        if value < minimum:
            raise IndexOrderRefused("BELOW_MINIMUM", f"{value} is below the minimum withdrawal {minimum}")
        if ledger.debt > 0:
            raise IndexOrderRefused("DEBT_OUTSTANDING", f"{ledger.debt} owed: a deposit must pay it first")
        try:
            ledger.hold_withdrawal(withdrawal_id, value)
        except InsufficientCollateral:
            raise IndexOrderRefused("INSUFFICIENT_COLLATERAL", f"{value} asked, {ledger.available} available "
                                    "(collateral of orders and routes is not)") from None
        self.touched.add(key)
        return True

    def accept_withdrawal(self, request: WithdrawalRequest, minimum: Decimal) -> bool:
        """`hold_withdrawal` for a signed request, kept with it (the owner stores both in one write and hands the
        request to whoever drives it). True: new; False: the same request accepted before."""
        wid = request.withdrawal_id
        if self.hold_withdrawal(request.user, wid, request.amount, minimum):
            self.withdrawals[wid] = request
            self.new_withdrawals.add(wid)
            return True
        return False

    def open_withdrawal_requests(self) -> list[WithdrawalRequest]:
        """The requests whose hold is not settled yet, oldest first."""
        out = []
        for wid, r in self.withdrawals.items():
            book = self.books.get(r.user)
            if book is not None and wid in book.ledger.open_withdrawals():
                out.append(r)
        return sorted(out, key=lambda r: (r.accepted_ms, r.withdrawal_id))

    def settle_withdrawals(self, done: Sequence[Withdrawal]) -> Step:
        """Final withdrawals (core.withdrawal): each one's payout and fees leave its hold, the rest goes back to the
        user (a refusal: all of it). Idempotent per withdrawal id (the ledger remembers what it settled)."""
        step = Step()
        for w in done:
            book = self.books.get(user_key(w.user))
            if book is None:
                step.errors.append(f"withdrawal {w.withdrawal_id}: unknown user {w.user}")
                continue
            try:
                paid, fees = w.settlement()
                if book.ledger.settle_withdrawal(w.withdrawal_id, paid, fees):
                    self.touched.add(book.user)
                else:
                    step.replays += 1
            except (CollateralError, WithdrawalError) as exc:
                step.errors.append(f"withdrawal {w.withdrawal_id}: {exc}")
        return step

    def open_withdrawals(self) -> dict[str, dict[str, Decimal]]:
        """Per user key, the withdrawals held and not settled (id -> held): what a restarted owner drives on."""
        out = {key: book.ledger.open_withdrawals() for key, book in self.books.items()}
        return {key: held for key, held in out.items() if held}

    # ------------------------------------------------------------------ the solver's side
    def demand(self, limit: int) -> tuple[list[PendingOrder], list[PendingSell]]:
        """What can be engaged now, oldest first, in one walk of the FIFO (the solver's hot read): buys with
        collateral remaining and sells with units remaining (each with the user's minimum), nothing engaged, at most
        `limit` of each. Closed orders leave the FIFO on the way (derived data: the next write stores the shorter
        list)."""
        buys: list[PendingOrder] = []
        sells: list[PendingSell] = []
        closed = []
        for oid in self.fifo:
            key, cl = oid.split(":", 1)
            book = self.books.get(key)
            order = book.get(cl) if book is not None else None
            if order is None or order.is_terminal:
                closed.append(oid)
                continue
            if order.engaged != 0 or order.remaining <= 0:
                continue
            if order.side is Side.BUY:
                if len(buys) < limit:
                    buys.append(PendingOrder(oid, order.index, order.remaining))
            elif len(sells) < limit:
                sells.append(PendingSell(oid, order.index, order.remaining, order.min_proceeds))
            if len(buys) >= limit and len(sells) >= limit:
                break
        for oid in closed:
            self.fifo.pop(oid, None)
        return buys, sells

    def pending(self, limit: int) -> list[PendingOrder]:
        """The buys of `demand`."""
        return self.demand(limit)[0]

    def pending_sells(self, limit: int) -> list[PendingSell]:
        """The sells of `demand`."""
        return self.demand(limit)[1]

    def engage(self, batch_id: str, engagements: Sequence[Engagement]) -> Step:
        """A batch takes the engaged collateral of its orders, each capped at what the order has left (a cancel may
        have come in since `pending`). `Step.engaged`: what was engaged per order; a replay returns the first
        answer (None for a batch already completed)."""
        step = Step()
        if batch_id in self.engaged or batch_id in self.completed:
            step.replays += 1
            step.engaged = self.engaged.get(batch_id)
            return step
        now = self.clock.now_ms()
        applied: list[tuple[str, Decimal]] = []
        for e in engagements:
            book, cl = self.order(e.order_id)
            order = book.get(cl)
            if order is None or order.is_terminal:
                step.errors.append(f"{batch_id}: cannot engage {e.order_id} (closed or unknown)")
                continue
            amount = min(e.collateral, order.remaining)
            if amount < e.collateral:
                step.notes.append(f"{batch_id}: {e.order_id} engaged {amount} of {e.collateral} (cancelled meanwhile)")
            if amount > 0:
                book.engage(cl, amount, now)
                applied.append((e.order_id, amount))
        self.engaged[batch_id] = applied
        step.engaged = applied
        return step

    def apply_fills(self, key: str, fills: Sequence[AssignedFill]) -> Step:
        """One solver round's fill deltas (key batch_id:round): `Step.filled` holds each order touched once."""
        step = Step()
        self._apply_fills(key, fills, step)
        return step

    def complete_batch(self, batch_id: str, results: Sequence[BatchOrderResult],
                       sales: Sequence[SellResult] = ()) -> Step:
        """Close this shard's side of a batch: book its sells' sales (`sales`: core.sell_assignment's results), release
        unspent engagement, finish orders whose rest is below `rest_threshold`, and owe the mints of orders that
        finished with something filled."""
        step = Step()
        self._complete_batch(batch_id, results, step, sales)
        return step

    def settle(self, key: str, fills: Sequence[AssignedFill], batch_id: str,
               results: Sequence[BatchOrderResult], sales: Sequence[SellResult] = ()) -> Step:
        """A batch's last fill deltas and its completion; each part stays idempotent by its own key."""
        step = Step()
        self._apply_fills(key, fills, step)
        self._complete_batch(batch_id, results, step, sales)
        return step

    def _apply_fills(self, key: str, fills: Sequence[AssignedFill], step: Step) -> None:
        if key in self.fill_keys:
            step.replays += 1
            return
        now = self.clock.now_ms()
        touched: dict[str, None] = {}
        for f in fills:
            if f.units_q == 0 and f.value_q == 0 and f.fee_q == 0:
                continue
            book, cl = self.order(f.order_id)
            try:
                book.apply_fill(cl, f.units, f.cost, now)
            except OrderStateError as exc:
                step.errors.append(f"fill {key} on {f.order_id}: {exc}")
                continue
            touched[f.order_id] = None
        for oid in touched:
            book, cl = self.order(oid)
            order = book.get(cl)
            assert order is not None
            step.filled.append(order)
        self.fill_keys.add(key)
        self.new_fill_keys.add(key)

    def _complete_batch(self, batch_id: str, results: Sequence[BatchOrderResult], step: Step,
                        sales: Sequence[SellResult] = ()) -> None:
        done = self.completed.get(batch_id)
        if done is not None:
            step.replays += 1
            step.mints += done
            return
        now = self.clock.now_ms()
        engaged = self.engaged.pop(batch_id, [])
        order_ids = list(dict.fromkeys([oid for oid, _ in engaged] + [r.order_id for r in results]
                                       + [s.order_id for s in sales]))
        for r in results:
            merge_lines(self.lines.setdefault(r.order_id, {}), r.lines)
            book, cl = self.order(r.order_id)
            got = book.get(cl)
            if got is not None:
                got.note_batch_touch(r.touch, r.filled_units)
        for sale in sales:
            self._book_sale(batch_id, sale, now, step)
        mints: list[MintRequest] = []
        for oid in order_ids:
            book, cl = self.order(oid)
            order = book.get(cl)
            if order is None:
                step.errors.append(f"{batch_id}: unknown order {oid}")
                continue
            try:
                if not order.is_terminal:
                    # One batch at a time: all it holds is this batch's.
                    book.release(cl, order.engaged, now, self.tokens.get(book.user))
                if not order.is_terminal:
                    dust = (sell_rest_threshold(order, self.rest_return_ratio) if order.side is Side.SELL else
                            rest_threshold(order, self.order_dust, self.rest_return_ratio, self.unit))
                    if order.remaining < dust:
                        book.finish(cl, dust, now, self.tokens.get(book.user))
            except OrderStateError as exc:
                step.errors.append(f"{batch_id}: closing {oid}: {exc}")
                continue
            if order.is_terminal:
                step.closed.append(order)
                if order.mint_pending:
                    mints.append(self.mint_request(order))
                else:
                    order.settle_arrival()  # nothing to invoice
        self.completed[batch_id] = mints
        self.new_completed.add(batch_id)
        step.mints += mints

    def _book_sale(self, batch_id: str, sale: SellResult, now: int, step: Step) -> None:
        """One sell's sale: the units redeemed leave its engagement and the token ledger, the payout is credited to
        the user's USDC under sale_credit_id (once), and its lines (what was sold for it, crossed lots named) are
        kept like a buy's. A sale stopped below the minimum, or that sold nothing of the
        order, books nothing: the release that follows gives all its units back."""
        if sale.units <= 0:
            return
        book, cl = self.order(sale.order_id)
        order = book.get(cl)
        if order is None or order.side is not Side.SELL:
            step.errors.append(f"{batch_id}: a sale of {sale.order_id}, which is no sell here")
            return
        try:
            book.apply_sale(cl, sale.units, sale.payout, sale_credit_id(batch_id, sale.order_id), now,
                            self.tokens.get(book.user))
        except (OrderStateError, CollateralError) as exc:
            step.errors.append(f"{batch_id}: booking the sale of {sale.order_id}: {exc}")
            return
        merge_lines(self.lines.setdefault(sale.order_id, {}), sale.lines)  # what left the house for the units
        step.filled.append(order)

    def reject_orders(self, key: str, rejections: Sequence[tuple[str, str]]) -> Step:
        """The solver gives up on orders ((order id, reason) pairs): each open order with nothing engaged is closed
        with the reason and its collateral freed; one that had bought something ends filled and its mint is owed.
        Idempotent by `key`: a replay owes nothing (the first answer's mints are the caller's already)."""
        step = Step()
        if key in self.fill_keys:
            step.replays += 1
            return step
        now = self.clock.now_ms()
        for oid, reason in rejections:
            book, cl = self.order(oid)
            order = book.get(cl)
            if order is None or order.is_terminal or order.engaged != 0:
                continue  # closed or planned meanwhile: nothing to give up on
            book.reject(cl, reason, now, self.tokens.get(book.user))
            step.closed.append(order)
            if order.mint_pending:
                step.mints.append(self.mint_request(order))
            else:
                order.settle_arrival()  # nothing to invoice
        self.fill_keys.add(key)
        self.new_fill_keys.add(key)
        return step

    def minted(self, order_id: str, tx: str) -> tuple[MintInvoice, bool]:
        """The mint of `order_id` landed in `tx`: the Mint Invoice from the order's lines, and whether it is new.
        Idempotent by (order, tx): the same tx again returns the stored invoice. Built BEFORE marking: an invoice
        that cannot be built (it raises) leaves the order unmarked, so a retry fails the same way."""
        book, cl = self.order(order_id)
        order = book.get(cl)
        if order is None:
            raise KeyError(f"no order {order_id}")
        if order.minted_tx == tx:
            stored = self.invoices.get((book.user, cl))
            if stored is not None:
                self.touched.clear()
                return stored, False
            # marked without an invoice (a state written before this order of steps): build it now
        elif order.minted_tx is not None or not order.mint_pending:
            book.mark_minted(cl, tx)  # raises with the reason (minted in another tx, or nothing to mint)
        invoice = build_invoice(order_id=order.order_id, user=book.user, cl_ord_id=cl, index=order.index,
                                collateral=order.collateral, cancelled=order.cancelled, returned=order.returned,
                                spent=order.spent, filled_units=order.filled_units,
                                lines=invoice_lines(self.lines.get(order_id, {})),
                                token_decimals=self.token_decimals, mint_tx=tx, minted_ms=self.clock.now_ms(),
                                arrival=order.arrival, batch_touch=order.batch_touch)
        book.mark_minted(cl, tx)
        order.settle_arrival()  # the invoice's lines carry the per-asset prices now
        self.add_invoice(book.user, cl, invoice)
        return invoice, True

    def mint_pending(self) -> list[MintRequest]:
        """Orders finished with something filled and not minted yet (reconciliation after a restart)."""
        return [self.mint_request(o) for b in self.books.values() for o in b.mint_pending()]

    def holdings(self) -> tuple[dict[str, dict[str, Decimal]], dict[str, Decimal]]:
        """What the orders hold, for the reserves check: per index the units filled, "minted" (the mint landed) and
        "unminted" (open, or its mint owed), and their exact "cost" in the quote asset; per symbol the quantity the
        completed batches delivered to them (the invoice lines, exact base units), less what sales took for the
        units sells redeemed (their lines). A sell is no buy: its units and proceeds are not in the index figures."""
        indexes: dict[str, dict[str, Decimal]] = {}
        sold: set[str] = set()
        for book in self.books.values():
            for order in book:
                if order.side is Side.SELL:
                    sold.add(order.order_id)
                elif order.filled_units or order.cost_exact:
                    acc = indexes.setdefault(order.index, {"minted": Decimal(0), "unminted": Decimal(0),
                                                           "cost": Decimal(0)})
                    acc["minted" if order.minted_tx is not None else "unminted"] += order.filled_units
                    acc["cost"] += order.cost_exact
        delivered: dict[str, Decimal] = {}
        for order_id, lines in self.lines.items():
            sign = -1 if order_id in sold else 1
            for symbol, row in lines.items():
                delivered[symbol] = delivered.get(symbol, Decimal(0)) + sign * row[1]
        return indexes, delivered
