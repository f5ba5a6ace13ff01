"""The record kinds of the solver (actors/solver.py): its state blob (the engine's snapshot, the sender cursor, the
outbox of calls) and the entries of its batch history.

The engine schema pins, field by field, the plain data of core.solver_engine's `snapshot()`; the outbox's payloads
are core's own types (Engagement, AssignedFill, BatchOrderResult, BasketLeg), whose fields are their schema. Version 0
is what the code wrote before records: JSON with the outbox pickled inside base64.
"""
from __future__ import annotations

import base64
import io
import pickle
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import Field

from core.batch_planner import BasketLeg, Engagement
from core.batch_result import BatchOrderResult
from core.lot_assignment import AssignedFill
from core.sell_assignment import SellResult
from core.side import Side
from core.solver_cycle import OutboxCall, ShardStep
from store.records import Record, record_kind, same_data
from store.shard_records import Part


class LotPart(Part):
    """core.lots.Lot as `to_dict()` writes it."""

    lot_id: str
    symbol: str
    quantity: int
    unit: Decimal
    price: Decimal
    fee: Decimal
    timestamp_ms: int
    consumed: int


class BatchPart(Part):
    """A batch in flight, enough to rebuild it by replaying its rounds of lots."""

    batch_id: str
    #: [order id, index, units, collateral, index price]
    engagements: list[tuple[str, str, Decimal, Decimal, Decimal]]
    #: [client order id, symbol, side, price, quantity, need]
    asset_orders: list[tuple[str, str, Side, Decimal, Decimal, Decimal]]
    notional: Decimal
    open: list[str]
    rounds: list[list[LotPart]]
    pending_lots: list[LotPart]
    touch: dict[str, Decimal]  # index -> one unit at the best asks when the batch was planned
    #: The batch's sells: [order id, index, units, minimum USDC or None, expected payout]
    sells: list[tuple[str, str, Decimal, Decimal | None, Decimal]]
    release: dict[str, dict[str, int]]  # index -> symbol -> base units its sells release
    #: Per released asset: [symbol, released, crossed, to exchange, to inventory, mid] (core.crossing.Crossing)
    crossings: list[tuple[str, int, int, int, int, Decimal]]
    sale_lots: dict[str, list[LotPart]]  # symbol -> the exchange sells' fills as lots of the sale
    traded: dict[str, list[tuple[Decimal, Decimal]]]  # symbol -> [price, quantity] of the exchange fills


class EnginePart(Part):
    batch_seq: int
    inventory: dict[str, list[LotPart]]
    batches: list[BatchPart]


# ------------------------------------------------------------------------------------------ the outbox
class EngageStep(Part):
    kind: Literal["engage"]
    key: str  # the batch id
    by_shard: dict[int, list[Engagement]]
    with_submit: bool  # the batch's submit is queued right after it and runs at the same time


class FillsStep(Part):
    kind: Literal["fills"]
    key: str  # batch_id:round
    by_shard: dict[int, list[AssignedFill]]


class CompleteStep(Part):
    kind: Literal["complete"]
    key: str
    by_shard: dict[int, list[BatchOrderResult]]


class RejectStep(Part):
    kind: Literal["reject"]
    key: str
    by_shard: dict[int, list[tuple[str, str]]]  # (order id, reason)


class SubmitStep(Part):
    kind: Literal["submit"]
    key: str
    orders: list[BasketLeg]


#: One step of the solver's outbox, told apart by its kind.
StepPart = Annotated[Union[EngageStep, FillsStep, CompleteStep, RejectStep, SubmitStep], Field(discriminator="kind")]


class ShardFills(Part):
    kind: Literal["fills"]
    key: str  # batch_id:round
    fills: list[AssignedFill]


class ShardComplete(Part):
    kind: Literal["complete"]
    key: str  # the batch id
    results: list[BatchOrderResult]
    sales: list[SellResult]  # the batch's sells of this shard: units redeemed, payout, lines


class ShardReject(Part):
    kind: Literal["reject"]
    key: str
    rejections: list[tuple[str, str]]  # (order id, reason)


def _shard_step_v2_to_v3(data: dict[str, Any]) -> dict[str, Any]:
    step = data["step"]
    return data | {"step": ({"sales": []} | step) if step["kind"] == "complete" else step}


@record_kind
class ShardStepRecord(Record):
    """One step the solver hands an index-order shard through their hand-off (store/streams.py `solver_steps`):
    a round's fill deltas, a batch's completion, or orders given up on. Keyed as before, so that a step the older
    outbox had already driven is a replay the shard recognises."""

    KIND: ClassVar[str] = "solver.shard_step"
    #: Version 2: a completion's results carry the batch touch of the order's index (None in older ones); version 3:
    #: a completion carries its sells' sales (none before).
    VERSION: ClassVar[int] = 3
    MIGRATIONS = {1: same_data, 2: _shard_step_v2_to_v3}

    step: Annotated[Union[ShardFills, ShardComplete, ShardReject], Field(discriminator="kind")]


#: The field of a shard step record that holds the payload, per kind.
_STEP_PAYLOAD = {"fills": "fills", "complete": "results", "reject": "rejections"}


def step_record(step: ShardStep) -> bytes:
    """A step queued for a shard (core.solver_cycle) as its hand-off record."""
    sales = {"sales": list(step.sales)} if step.kind == "complete" else {}
    return ShardStepRecord.model_validate({"step": {"kind": step.kind, "key": step.key,
                                                    _STEP_PAYLOAD[step.kind]: list(step.payload), **sales}}).dump()


def step_data(action: Any) -> dict[str, Any]:
    """The plain data of one outbox call (core.solver_cycle.OutboxCall: kind, key, by_shard, orders, with_submit)
    with the fields its kind has."""
    kind, key = action.kind, action.key
    if kind == "submit":
        return {"kind": kind, "key": key, "orders": list(action.orders)}
    data = {"kind": kind, "key": key, "by_shard": {k: list(v) for k, v in action.by_shard.items()}}
    return data | {"with_submit": getattr(action, "with_submit", False)} if kind == "engage" else data


def _lot_v0(lot: dict[str, Any]) -> dict[str, Any]:
    return {"timestamp_ms": 0, "consumed": 0} | lot  # a lot written before either had none


class _OldOutbox(pickle.Unpickler):
    """Older code pickled its outbox calls as actors.solver._Action (the fields of OutboxCall, in its order)."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("actors.solver", "_Action"):
            return OutboxCall
        return super().find_class(module, name)


def _state_v0_to_v1(data: dict[str, Any]) -> dict[str, Any]:
    engine = data["engine"]
    batches = [b | {"rounds": [[_lot_v0(l) for l in r] for r in b["rounds"]],
                    "pending_lots": [_lot_v0(l) for l in b["pending_lots"]]} for b in engine["batches"]]
    engine = engine | {"inventory": {s: [_lot_v0(l) for l in lots] for s, lots in engine["inventory"].items()},
                       "batches": batches}
    # Reads what older code wrote: the outbox as a pickled list of calls, inside base64. An engage stored before
    # with_submit existed lacks it: its submit is queued once the shards answer.
    outbox = [step_data(a) for a in _OldOutbox(io.BytesIO(base64.b64decode(data["outbox"]))).load()]
    return {"mint_seq": 0, "mints": [], "counts": {}, "errors": []} | data | {"engine": engine, "outbox": outbox}


def _state_v3_to_v4(data: dict[str, Any]) -> dict[str, Any]:
    # Version 4 keeps each batch's touch per index; a batch planned before has none (its orders' delay unknown).
    engine = data["engine"]
    return data | {"engine": engine | {"batches": [{"touch": {}} | b for b in engine["batches"]]}}


def _state_v4_to_v5(data: dict[str, Any]) -> dict[str, Any]:
    # Version 5 keeps each batch's sells, their release, the crossings, the sale's lots and the fills that price the
    # crossings; a batch planned before had none.
    engine = data["engine"]
    before = {"sells": [], "release": {}, "crossings": [], "sale_lots": {}, "traded": {}}
    return data | {"engine": engine | {"batches": [before | b for b in engine["batches"]]}}


def _state_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    # The solver relayed mints, owed in a hash of its own (and inside older blobs); the shards hand them to the
    # minter now, which asks every shard for its mint-pending orders when it starts: nothing here is needed.
    return {k: v for k, v in data.items() if k not in ("mint_seq", "mints")}


@record_kind
class SolverState(Record):
    """The solver's state blob, rewritten whole by every commit."""

    KIND: ClassVar[str] = "solver.state"
    VERSION: ClassVar[int] = 5
    MIGRATIONS = {0: _state_v0_to_v1, 1: _state_v1_to_v2, 2: lambda data: {"step_seqs": {}} | data,
                  3: _state_v3_to_v4, 4: _state_v4_to_v5}

    engine: EnginePart
    cursor: int  # the last sender seq consumed
    #: The outbox of calls (engage and submit now; a state written by older code may hold fills, completions and
    #: give-ups: they go to the shards' hand-offs when it loads).
    outbox: list[StepPart]
    step_seqs: dict[int, int]  # shard -> the last step appended to its hand-off
    counts: dict[str, int]
    errors: list[str]


class TickPart(Part):
    """Where a tick's time went (ms from its start), as planned: read by bench/flow.py."""

    woken: float | None
    fetched: float
    fetch: dict[str, float]
    early_reads: dict[str, float]
    planned: float


@record_kind
class SolverHistoryEntry(Record):
    """One planned batch in the solver's capped history list (diagnostics, written once when planned)."""

    KIND: ClassVar[str] = "solver.history"
    VERSION: ClassVar[int] = 3
    #: Version 2 counts the orders engaged per index (one index was served before: not counted then); version 3
    #: keeps the touch per index at planning (none before).
    MIGRATIONS = {0: same_data, 1: lambda data: {"indexes": {}} | data, 2: lambda data: {"touch": {}} | data}

    batch_id: str
    planned_ms: int
    orders: int
    indexes: dict[str, int]  # orders engaged per index
    asset_orders: list[tuple[str, Decimal, Decimal]]  # [client order id, price, quantity]
    inventory_used: dict[str, int]
    scale: Decimal
    deferred: list[tuple[str, str]]  # [order id, reason], the first 20
    tick_ms: TickPart
    touch: dict[str, Decimal]  # index -> one unit at the best asks at planning
