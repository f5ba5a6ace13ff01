"""The order sender's stored kinds: each asset order, each batch's verdicts, the executions, the sender's state.

A domain dataclass whose fields are its stored layout (AssetOrder, SubmitResult, SenderFill, OrderDone) is held as
it is: pydantic refuses unknown fields and a renamed one changes the dump, which the fixture test catches. Version
0 is what the sender wrote before records; migrations fill what older layouts lacked.
"""
from __future__ import annotations

from typing import Any, ClassVar, Sequence

from core.asset_order import AssetOrder
from core.circuit_breaker import ACCOUNT
from core.sender_messages import Execution, OrderDone, SenderFill, SubmitResult
from store.records import Part, Record, RecordError, held_in, record_kind


def _order_v0(data: dict[str, Any]) -> dict[str, Any]:
    # Version 0 listed an order's fills (now keyed by trade id, as the order holds them); an order stored before
    # its reject reason existed has none; replaced_by and sent_at were not always written.
    order = data["order"]
    return {"order": {"reason": "", **order, "fills": {str(f["trade_id"]): f for f in order["fills"]}},
            "replaced_by": data.get("replaced_by"), "sent_at": data.get("sent_at")}


@record_kind
class SenderOrderRecord(Record):
    """One asset order (`<account>:orders` hash, by client order id), with the id of the order that replaced it
    after a not-found verdict and when this process last sent it."""

    KIND: ClassVar[str] = "sender.order"
    VERSION: ClassVar[int] = 1
    MIGRATIONS = {0: _order_v0}

    order: AssetOrder
    replaced_by: str | None
    sent_at: int | None


@record_kind
class SenderBatchRecord(Record):
    """The verdicts on one submitted batch (`<account>:batches` hash, by batch id): a batch submitted again gets
    the same answer."""

    KIND: ClassVar[str] = "sender.batch"
    VERSION: ClassVar[int] = 1
    MIGRATIONS = {0: held_in("results")}  # version 0 stored the bare list

    results: list[SubmitResult]

    @classmethod
    def of(cls, results: Sequence[SubmitResult]) -> "SenderBatchRecord":
        return cls(results=list(results))


_FILL_FIELDS = ("trade_id", "price", "quantity", "commission", "commission_asset", "time_ms", "is_maker")


def _execution_v0(data: dict[str, Any]) -> dict[str, Any]:
    # Version 0 tagged each entry with its kind and kept a fill's trade flat beside the order's identity; a
    # completion logged before reasons were carried has none.
    kind = data.get("kind")
    if kind not in ("fill", "done"):
        raise RecordError(f"sender.execution version 0: unknown entry kind {kind!r}")
    entry = {k: v for k, v in data.items() if k != "kind"}
    if kind == "done":
        return {"entry": {"reason": "", **entry}}
    return {"entry": {k: v for k, v in entry.items() if k not in _FILL_FIELDS}
            | {"fill": {k: entry[k] for k in _FILL_FIELDS}}}


@record_kind
class SenderExecutionRecord(Record):
    """One entry of the sender's execution log (`<account>:log` hash, by seq): a fill or an order's completion.
    The two shapes share no required fields (a fill has a trade id, a completion a status), so the union needs no
    tag."""

    KIND: ClassVar[str] = "sender.execution"
    VERSION: ClassVar[int] = 1
    MIGRATIONS = {0: _execution_v0}

    entry: SenderFill | OrderDone

    @classmethod
    def of(cls, execution: Execution) -> "SenderExecutionRecord":
        return cls(entry=execution)


class TripPart(Part):
    key: str
    scope: str
    reason: str
    detail: str
    since_ms: int
    rejects: int


class BreakerPart(Part):
    streak: dict[str, int]
    open: list[TripPart]


def _state_v0(data: dict[str, Any]) -> dict[str, Any]:
    # State written before the breaker existed has none (nothing open); trips stored before `detail`, `rejects`
    # and `scope` existed get the values the breaker's loader gave them. State written while executions were
    # pushed to a subscriber had no `log_seq` (the log hash had the seqs) and a `delivered`/`subscriber` pair that
    # the hand-off's cursor replaces.
    breaker = data.get("breaker") or {}
    trips = [{"detail": "", "rejects": 0, "scope": "account" if t["key"] == ACCOUNT else "symbol", **t}
             for t in breaker.get("open") or ()]
    return {"log_seq": int(data.get("log_seq", 0)), "breaker": {"streak": breaker.get("streak") or {}, "open": trips}}


@record_kind
class SenderStateRecord(Record):
    """The sender's own state (`<account>:state`): the last seq its execution log handed off, and the circuit
    breaker."""

    KIND: ClassVar[str] = "sender.state"
    VERSION: ClassVar[int] = 1
    MIGRATIONS = {0: _state_v0}

    log_seq: int
    breaker: BreakerPart
