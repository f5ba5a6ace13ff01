"""The order sender's stored kinds: each asset order, each batch's verdicts, the execution log, the sender's state.

The domain classes keep their plain-data view (to_dict/from_dict); these schemas pin that view field by field, so
a key renamed in the domain code fails the fixture test instead of a restart. Version 0 is what the sender wrote
before records; its migrations fill what the older layouts lacked, with the defaults the loader applied then.
"""
from __future__ import annotations

from dataclasses import asdict
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal, Sequence, Union

from pydantic import Field

from core.asset_order import AssetOrder, AssetOrderStatus
from core.circuit_breaker import ACCOUNT
from core.sender_messages import Execution, SubmitResult, execution_from_dict, execution_to_dict
from core.side import Side
from store.records import Nested, Record, record_kind


class StoredFill(Nested):
    trade_id: int
    price: Decimal
    quantity: Decimal
    commission: Decimal
    commission_asset: str | None
    time_ms: int
    is_maker: bool


class StoredAssetOrder(Nested):
    client_order_id: str
    batch_id: str
    symbol: str
    side: Side
    order_type: str
    quantity: Decimal
    price: Decimal | None
    time_in_force: str | None
    status: AssetOrderStatus
    exchange_order_id: int | None
    executed_qty: Decimal
    reason: str
    fills: list[StoredFill]


def _order_v0(data: dict[str, Any]) -> dict[str, Any]:
    # An order stored before its reject reason existed has none; replaced_by and sent_at were not always written.
    return {"order": {"reason": "", **data["order"]}, "replaced_by": data.get("replaced_by"),
            "sent_at": data.get("sent_at")}


@record_kind
class SenderOrderRecord(Record):
    """One asset order (`<account>:orders` hash, by client order id), with the id of the order that replaced it
    after a not-found verdict and when this process last sent it."""

    KIND: ClassVar[str] = "sender.order"
    VERSION: ClassVar[int] = 1
    MIGRATIONS = {0: _order_v0}

    order: StoredAssetOrder
    replaced_by: str | None
    sent_at: int | None

    @classmethod
    def of(cls, order: AssetOrder, replaced_by: str | None, sent_at: int | None) -> "SenderOrderRecord":
        return cls.model_validate({"order": order.to_dict(), "replaced_by": replaced_by, "sent_at": sent_at})

    def asset_order(self) -> AssetOrder:
        return AssetOrder.from_dict(self.order.model_dump(mode="json"))


class StoredSubmitResult(Nested):
    symbol: str
    side: Side
    accepted: bool
    client_order_id: str | None
    quantity: Decimal | None
    price: Decimal | None
    status: str
    reason: str
    filter: str | None


@record_kind
class SenderBatchRecord(Record):
    """The verdicts on one submitted batch (`<account>:batches` hash, by batch id): a batch submitted again gets
    the same answer."""

    KIND: ClassVar[str] = "sender.batch"
    VERSION: ClassVar[int] = 1
    MIGRATIONS = {0: lambda data: {"results": data}}  # version 0 stored the bare list

    results: list[StoredSubmitResult]

    @classmethod
    def of(cls, results: Sequence[SubmitResult]) -> "SenderBatchRecord":
        return cls(results=[StoredSubmitResult(**asdict(r)) for r in results])

    def submit_results(self) -> list[SubmitResult]:
        return [SubmitResult(**dict(r)) for r in self.results]


class StoredSenderFill(Nested):
    kind: Literal["fill"]
    seq: int
    batch_id: str
    client_order_id: str
    symbol: str
    side: Side
    trade_id: int
    price: Decimal
    quantity: Decimal
    commission: Decimal
    commission_asset: str | None
    time_ms: int
    is_maker: bool


class StoredOrderDone(Nested):
    kind: Literal["done"]
    seq: int
    batch_id: str
    client_order_id: str
    symbol: str
    side: Side
    status: str
    executed_qty: Decimal
    reason: str


def _execution_v0(data: dict[str, Any]) -> dict[str, Any]:
    # A completion logged before reasons were carried has none.
    return {"entry": {"reason": "", **data} if data.get("kind") == "done" else data}


@record_kind
class SenderExecutionRecord(Record):
    """One entry of the sender's execution log (`<account>:log` hash, by seq): a fill or an order's completion."""

    KIND: ClassVar[str] = "sender.execution"
    VERSION: ClassVar[int] = 1
    MIGRATIONS = {0: _execution_v0}

    entry: Annotated[Union[StoredSenderFill, StoredOrderDone], Field(discriminator="kind")]

    @classmethod
    def of(cls, execution: Execution) -> "SenderExecutionRecord":
        return cls.model_validate({"entry": execution_to_dict(execution)})

    def execution(self) -> Execution:
        return execution_from_dict(self.entry.model_dump(mode="json"))


class StoredTrip(Nested):
    key: str
    scope: str
    reason: str
    detail: str
    since_ms: int
    rejects: int


class StoredBreaker(Nested):
    streak: dict[str, int]
    open: list[StoredTrip]


class SubscriberSpec(Nested):
    """The named actor executions are pushed to."""

    name: str
    namespace: str | None


def _state_v0(data: dict[str, Any]) -> dict[str, Any]:
    # State written before the breaker existed has none (nothing open); trips stored before `detail`, `rejects`
    # and `scope` existed get the values the breaker's loader gave them.
    breaker = data.get("breaker") or {}
    trips = [{"detail": "", "rejects": 0, "scope": "account" if t["key"] == ACCOUNT else "symbol", **t}
             for t in breaker.get("open") or ()]
    return {"delivered": int(data.get("delivered", 0)), "subscriber": data.get("subscriber"),
            "breaker": {"streak": breaker.get("streak") or {}, "open": trips}}


@record_kind
class SenderStateRecord(Record):
    """The sender's own state (`<account>:state`): the last seq its subscriber acknowledged, who the subscriber
    is, and the circuit breaker."""

    KIND: ClassVar[str] = "sender.state"
    VERSION: ClassVar[int] = 1
    MIGRATIONS = {0: _state_v0}

    delivered: int
    subscriber: SubscriberSpec | None
    breaker: StoredBreaker
