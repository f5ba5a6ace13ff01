"""The solver's decisions around its SolverEngine, without I/O: what a tick does with what it read, what each
answer changes, and which steps go to which order shard.

The actor (actors/solver.py) reads, calls and commits; this holds what it commits besides the engine: the outbox
of calls that need an answer (engage, submit), the steps queued per shard for their hand-offs, counts, errors and
the batch history. The clock (`now_ms`) and the order → shard rule are injected."""
from __future__ import annotations

import collections
import dataclasses
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable, Mapping, Sequence

from core.asset_order import ExchangeFill
from core.batch_planner import BatchPlan, Deferred, Level, PendingOrder
from core.batch_result import BatchOrderResult
from core.late_reject import StuckOrders
from core.money import ZERO
from core.sell_plan import PendingSell
from core.sender_messages import Execution, OrderDone, SenderFill
from core.solver_engine import CompletedBatch, SolverEngine
from core.solver_reads import Books, group_by_shard
from core.stale_books import is_stale_reason, symbols_of

#: Notes kept for inspect() (memory only, like the shards').
NOTES_KEPT = 50
#: Errors kept in the stored state.
ERRORS_KEPT = 50


@dataclass(frozen=True, slots=True)
class OutboxCall:
    """One call of the outbox, kept until answered. kind: engage | submit (a state stored by older code may also
    hold fills | complete | reject: those become shard steps when it loads)."""

    kind: str
    key: str  # batch id, or batch_id:round for fills
    by_shard: Mapping[int, Sequence[Any]]  # engage (fills / complete / reject): the payload per order shard
    orders: tuple[Any, ...] = ()  # submit: the batch's asset orders
    #: engage: the batch's submit is queued right after it and runs at the same time (else its submit is queued
    #: once the shards answer).
    with_submit: bool = False


def call_of(step: Any) -> OutboxCall:
    """A stored outbox step as the call it was (a submit has no shard payload, only an engage has with_submit)."""
    return OutboxCall(step.kind, step.key, getattr(step, "by_shard", {}), tuple(getattr(step, "orders", ())),
                      getattr(step, "with_submit", False))


@dataclass(frozen=True, slots=True)
class ShardStep:
    """One step for an order shard's hand-off, numbered in that hand-off. kind: fills | complete | reject; the
    key makes it idempotent at the shard (batch_id:round, the batch id, the give-up's key)."""

    seq: int
    kind: str
    key: str
    payload: tuple[Any, ...]
    sales: tuple[Any, ...] = ()  # a completion's sells' sales (core.sell_assignment.SellResult)


class SolverCycle:
    """Not thread-safe: the actor serialises the calls under its lock."""

    def __init__(self, engine: SolverEngine, *, shard_of_order: Callable[[str], int], name: str,
                 reject_after_ms: int, stale_reject_after_ms: int, max_in_flight_notional: Decimal,
                 history_kept: int = 200) -> None:
        self.engine = engine
        self.shard_of_order = shard_of_order
        self.name = name  # keys the give-ups
        self.max_in_flight_notional = max_in_flight_notional
        self.history_kept = history_kept
        self.cursor = 0  # last sender seq consumed
        self.step_seqs: dict[int, int] = {}  # shard -> the last step queued for its hand-off
        self.steps_out: dict[int, list[ShardStep]] = {}  # queued for the next commit, per shard
        self.outbox: list[OutboxCall] = []
        self.errors: list[str] = []
        self.notes: collections.deque[str] = collections.deque(maxlen=NOTES_KEPT)
        self.counts = {"ticks": 0, "batches": 0, "asset_orders": 0, "rejected_orders": 0, "fill_calls": 0,
                       "fills": 0, "dones": 0, "duplicates": 0, "foreign": 0, "completed": 0, "commits": 0,
                       "calls": 0, "call_failures": 0, "late_rejects": 0}
        self.history: list[dict[str, Any]] = []  # per batch: id, orders engaged, asset orders (bounded)
        self.deferred = 0  # orders the last tick deferred (> 0: look again soon)
        self.stuck = StuckOrders(reject_after_ms, stale_reject_after_ms)
        self.stale_books: frozenset[str] = frozenset()  # at the last read of the books
        self.closed_pairs: frozenset[str] = frozenset()  # halted by the exchange, as the sender last said
        self.waiting_on_stale: dict[str, int] = {}  # stale symbol -> orders the last plan deferred for it
        self.reject_seq = 0

    # ------------------------------------------------------------------ stored state
    def restore(self, engine: Mapping[str, Any], cursor: int, outbox: Sequence[OutboxCall],
                step_seqs: Mapping[int, int], counts: Mapping[str, int], errors: Sequence[str]) -> None:
        """A stored state back. Older code drove fills, completions and give-ups as calls: they go as steps."""
        self.engine.restore(engine)
        self.cursor = cursor
        self.step_seqs = dict(step_seqs)
        self.outbox = []
        for call in outbox:
            if call.kind in ("engage", "submit"):
                self.outbox.append(call)
            else:
                for k, payload in call.by_shard.items():
                    self._send_step(k, call.kind, call.key, payload)
        self.counts.update(counts)
        self.errors = list(errors)

    def state(self) -> dict[str, Any]:
        """What a commit stores (the outbox as its calls)."""
        return {"engine": self.engine.snapshot(), "cursor": self.cursor, "outbox": list(self.outbox),
                "step_seqs": self.step_seqs, "counts": self.counts, "errors": self.errors[-ERRORS_KEPT:]}

    def rollback(self) -> None:
        """A commit failed: forget what it would have stored (the engine, the cursor, the outbox, the steps), for
        restore() to load the stored state. Counts, notes and the give-up clocks go on (memory-kept)."""
        e = self.engine
        self.engine = SolverEngine(e.baskets, e.filters, e.limits, quote_asset=e.quote_asset)
        self.cursor, self.outbox, self.step_seqs, self.steps_out = 0, [], {}, {}

    def steps_to_commit(self) -> dict[int, list[ShardStep]]:
        return {k: list(rows) for k, rows in self.steps_out.items() if rows}

    def committed(self, steps: Mapping[int, Sequence[ShardStep]]) -> None:
        """`steps` (from steps_to_commit) are in their hand-offs: what was queued after them stays queued."""
        for k, rows in steps.items():
            del self.steps_out[k][:len(rows)]
        self.counts["commits"] += 1

    def has_steps(self) -> bool:
        return any(self.steps_out.values())

    def busy(self) -> bool:
        """A batch in flight, a call not answered, or a step not committed."""
        return bool(self.engine.batches or self.outbox or self.has_steps())

    # ------------------------------------------------------------------ a tick
    def nothing_to_plan(self, budget: int, pending: Sequence[PendingOrder],
                        sells: Sequence[PendingSell] = ()) -> bool:
        """True if the tick stops here: no order may go out now (keep collecting), or no order waits."""
        if budget == 0:
            self.deferred = 1
            return True
        if not pending and not sells:
            self.deferred = 0
            self.waiting_on_stale = {}
            return True
        return False

    def plan(self, pending: Sequence[PendingOrder], books: Books, budget: int, now_ms: int,
             sells: Sequence[PendingSell] = (), bids: Mapping[str, Sequence[Level]] | None = None,
             ) -> tuple[str | None, BatchPlan]:
        """Plan one batch within the notional room left, give up on orders stuck too long, and queue the batch's
        engage with its exchange orders: those do not depend on the shards' answer (what a cancel in between
        leaves unneeded becomes inventory), so both go out together, one shard round trip sooner. A batch with
        sells (planned with the buys on `bids`: core.crossing) is engaged first and its orders go out once the
        shards answered: a sell cancelled meanwhile must shrink what is sold, which an order already out cannot."""
        room = max(ZERO, self.max_in_flight_notional - self.engine.in_flight_notional())
        limits = dataclasses.replace(self.engine.limits, in_flight_room=room)
        batch_id, plan = self.engine.plan(pending, books.asks, budget, limits, stale=books.stale,
                                          closed=self.closed_pairs, sells=sells, bids=bids)
        self.deferred = len(plan.deferred)
        self._note_stale(plan.deferred)
        self._give_up_on(plan.deferred, now_ms)
        if batch_id is None:
            return None, plan
        by_shard = group_by_shard(self.engine.engage_requests(batch_id), lambda e: self.shard_of_order(e.order_id))
        sent = self.engine.sent_orders(batch_id)
        with_submit = bool(sent) and not self.engine.sells_of(batch_id)
        self.outbox.append(OutboxCall("engage", batch_id, by_shard, with_submit=with_submit))
        if with_submit:
            self.outbox.append(OutboxCall("submit", batch_id, {}, tuple(s.order for s in sent)))
            self.counts["asset_orders"] += len(sent)
        self.counts["batches"] += 1
        return batch_id, plan

    def remember(self, batch_id: str, plan: BatchPlan, now_ms: int, tick_ms: dict[str, Any]) -> dict[str, Any]:
        """The planned batch's history entry (diagnostics; `tick_ms`: where the tick's time went, for bench/flow)."""
        entry = {"batch_id": batch_id, "planned_ms": now_ms, "orders": len(plan.engagements),
                 "indexes": dict(collections.Counter(e.index for e in plan.engagements)),
                 "asset_orders": [[s.client_order_id, str(s.order.price), str(s.order.quantity)]
                                  for s in self.engine.sent_orders(batch_id)],
                 "inventory_used": dict(plan.inventory_used), "scale": str(plan.scale),
                 "deferred": [[d.order_id, d.reason] for d in plan.deferred][:20], "tick_ms": tick_ms,
                 # Per index, one unit at the best asks at planning: the batch touch of its orders' shortfall.
                 "touch": {i: str(t) for i, t in sorted(self.engine.batches[batch_id].touch.items())}}
        self.history.append(entry)
        del self.history[:-self.history_kept]
        return entry

    def next_calls(self) -> tuple[OutboxCall, ...]:
        """The outbox's head to drive now: a new batch's engage with its submit (they run at the same time), else
        the first call alone."""
        head = self.outbox[:2]
        if (len(head) == 2 and head[0].kind == "engage" and head[0].with_submit and head[1].kind == "submit"
                and head[1].key == head[0].key):
            return tuple(head)
        return tuple(head[:1])

    def step_took(self, key: str, kind: str, ms: float) -> None:
        """Diagnostics: how long the latest batch's outbox call took."""
        if self.history and self.history[-1]["batch_id"] == key.split(":")[0]:
            self.history[-1].setdefault("step_ms", {})[kind] = ms

    def _note_stale(self, deferred: Sequence[Deferred]) -> None:
        """What inspect() (and so /health and status) shows: the orders this plan left waiting, per stale book."""
        waiting: dict[str, int] = {}
        for d in deferred:
            if is_stale_reason(d.reason):
                for symbol in symbols_of(d.reason):
                    waiting[symbol] = waiting.get(symbol, 0) + 1
        self.waiting_on_stale = waiting

    def _give_up_on(self, deferred: Sequence[Deferred], now_ms: int) -> None:
        """Orders deferred too long for a lasting reason are rejected with it (core/late_reject.py), one step per
        shard under one key."""
        give_up = group_by_shard(self.stuck.update(deferred, now_ms), lambda row: self.shard_of_order(row[0]))
        if give_up:
            self.reject_seq += 1
            key = f"reject:{self.name}:{now_ms}:{self.reject_seq}"
            for k, rows in give_up.items():
                self._send_step(k, "reject", key, rows)
            self.counts["late_rejects"] += sum(len(rows) for rows in give_up.values())

    # ------------------------------------------------------------------ answers
    def engaged(self, batch_id: str, answers: Sequence[Sequence[tuple[str, Decimal]] | None],
                now_ms: int, with_submit: bool = False) -> str | None:
        """The shards' answer to an engage: size the batch to it, then queue the batch's next steps (with_submit:
        its exchange orders are already on their way). Runs again identically if a restart re-drives the engage
        (the shards answer the same). Returns a note for the operator, if any."""
        if batch_id not in self.engine.batches:
            return None  # a replay after the batch was already sized and closed
        if any(a is None for a in answers):
            return None  # a shard says the batch completed: nothing left to queue
        engaged = {oid: amount for rows in answers for oid, amount in rows}  # type: ignore[union-attr]
        if not self.engine.adjust_engagements(batch_id, engaged, orders_out=with_submit):
            return (f"{batch_id}: no order could be engaged (cancelled meanwhile); "
                    + ("what its exchange orders buy goes to inventory" if with_submit else "batch dropped"))
        if with_submit:
            return None
        sent = self.engine.sent_orders(batch_id)
        if sent:
            # Carried inventory is assigned with the batch's first exchange fills (one round, one settle call per
            # shard at the end) rather than in a round of its own while the exchange orders go out.
            self.outbox.append(OutboxCall("submit", batch_id, {}, tuple(s.order for s in sent)))
            self.counts["asset_orders"] += len(sent)
        else:
            done = self.engine.complete_if_no_orders(batch_id)  # served wholly from inventory
            if done is not None:
                self._queue_complete(done, now_ms)
        return None

    def submitted(self, batch_id: str, results: Sequence[Any], now_ms: int) -> str | None:
        """The sender's answer to a submit: an order it refused will never fill, so it is settled. Returns a note
        (a handled refusal: the batch's other orders go on)."""
        rejected = [f"{batch_id}.{r.symbol}.0" for r in results if not r.accepted]
        if not rejected:
            return None
        self.counts["rejected_orders"] += len(rejected)
        for done in self.engine.on_settled(rejected):
            self._queue_complete(done, now_ms)
        refused = [(r.symbol, r.filter, r.reason) for r in results if not r.accepted]
        return f"{batch_id}: sender refused before sending {refused}"

    # ------------------------------------------------------------------ executions
    def known(self, cid: str) -> str | None:
        """The batch in flight an exchange order belongs to; None: not ours, or a batch already completed."""
        try:
            batch_id, symbol = self.engine.parse_client_order_id(cid)
        except KeyError:
            return None
        batch = self.engine.batches.get(batch_id)
        return batch_id if batch is not None and symbol in batch.sent else None

    def batch_still_open(self, entries: Sequence[Execution]) -> bool:
        """True if a batch these executions belong to still has exchange orders without their completion here
        (its answers come within tens of ms: waiting for them settles the batch in one round)."""
        done: dict[str, set[str]] = {}  # batch id -> symbols whose completion is among the entries
        for e in entries:
            batch_id = self.known(e.client_order_id)
            if batch_id is not None:
                symbols = done.setdefault(batch_id, set())
                if isinstance(e, OrderDone):
                    symbols.add(e.symbol)
        return any(self.engine.batches[b].open - symbols for b, symbols in done.items())

    def consume(self, entries: Sequence[Execution], now_ms: int) -> int:
        """Executions after the cursor into fill deltas (one round per batch: one step per shard per round) and
        completions; the cursor moves past them. Returns how many were new (the rest were read before)."""
        by_batch: dict[str, list[tuple[str, ExchangeFill]]] = {}
        dones: list[str] = []
        fresh = 0
        for e in entries:
            if e.seq <= self.cursor:
                self.counts["duplicates"] += 1
                continue
            fresh += 1
            self.cursor = e.seq
            batch_id = self.known(e.client_order_id)
            if batch_id is None:
                self.counts["foreign"] += 1  # not ours, or a batch completed before a restart replayed it
                continue
            if isinstance(e, SenderFill):
                self.counts["fills"] += 1
                by_batch.setdefault(batch_id, []).append((e.client_order_id, e.fill))
            elif isinstance(e, OrderDone):
                self.counts["dones"] += 1
                dones.append(e.client_order_id)
        for batch_id, fills in by_batch.items():
            self.counts["fill_calls"] += 1
            deltas = self.engine.on_fills(fills)
            if deltas:
                self._queue_fills(batch_id, deltas)
        for done in self.engine.on_settled(dones):
            self._queue_complete(done, now_ms)
        return fresh

    # ------------------------------------------------------------------ steps to the shards
    def _queue_fills(self, batch_id: str, deltas: Sequence[Any], rounds: int | None = None) -> None:
        key = f"{batch_id}:{len(self.engine.batches[batch_id].rounds) if rounds is None else rounds}"
        for k, rows in group_by_shard(deltas, lambda d: self.shard_of_order(d.order_id)).items():
            self._send_step(k, "fills", key, rows)

    def _queue_complete(self, done: CompletedBatch, now_ms: int) -> None:
        if done.last_fills:
            self._queue_fills(done.batch_id, done.last_fills, done.rounds)  # the shard applies both in one write
        results = [BatchOrderResult(e.order_id, done.filled_units[e.order_id], tuple(done.lines[e.order_id]),
                                    done.touch.get(e.index))
                   for e in done.engagements]
        by_shard = group_by_shard(results, lambda r: self.shard_of_order(r.order_id))
        sales = group_by_shard(done.sale.results if done.sale else (), lambda r: self.shard_of_order(r.order_id))
        for k in [*by_shard, *(k for k in sales if k not in by_shard)]:
            self._send_step(k, "complete", done.batch_id, by_shard.get(k, ()), sales.get(k, ()))
        self.counts["completed"] += 1
        for entry in reversed(self.history):  # the batch time, for the monitor (diagnostic: memory only)
            if entry["batch_id"] == done.batch_id:
                entry["completed_ms"] = now_ms
                break

    def _send_step(self, shard: int, kind: str, key: str, payload: Sequence[Any], sales: Sequence[Any] = ()) -> None:
        """Queue a step for a shard's hand-off: the next commit appends it, with the state that implies it."""
        seq = self.step_seqs[shard] = self.step_seqs.get(shard, 0) + 1
        self.steps_out.setdefault(shard, []).append(ShardStep(seq, kind, key, tuple(payload), tuple(sales)))

    # ------------------------------------------------------------------ views
    def view(self) -> dict[str, Any]:
        """inspect()'s plain data of the batches, the outbox, the counts and the stale books."""
        e = self.engine
        return {
            "cursor": self.cursor, "batch_seq": e.batch_seq,
            "batches_in_flight": {b.batch_id: {"orders": [x.order_id for x in b.plan.engagements],
                                               "open": sorted(b.open)} for b in e.batches.values()},
            "in_flight_notional": str(e.in_flight_notional()), "inventory_units": e.inventory_units(),
            "outbox": [[a.kind, a.key] for a in self.outbox],
            "history": list(self.history), "counts": dict(self.counts), "errors": list(self.errors),
            "notes": list(self.notes),
            # Books stale at the last read, and per stale book the orders the last plan left waiting for it.
            "stale_books": sorted(self.stale_books), "waiting_on_stale_books": dict(self.waiting_on_stale),
            "closed_pairs": sorted(self.closed_pairs),
        }
